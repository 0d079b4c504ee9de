"""Benchmark: does the posterior mean rank held-out pairs at small budgets? (issue 12, item 1)

    python benchmarks/posterior_fit.py                       # every matrix, 5/8/10/20% observed, 3 seeds
    python benchmarks/posterior_fit.py --matrices norman --fractions 0.08 --variants main,factors

For every matrix, observed fraction and seed, a random subset of the pairs is observed; the
posterior (one cold fit, ``--steps`` SVI steps) is scored by the Spearman correlation between
its mean (:func:`~pairint_jax.discovery.posterior.mean_matrix`) and the truth on the held-out
pairs, next to the **hub** score of issue 12, which needs no model:
``h_i = (sum_obs_i + m) / (count_i + 1)`` (``m`` the global mean of the observed scores),
predicting ``h_i + h_j``.

Matrices:

* ``norman``: Norman 2019 ``|GI|`` (112 genes); features: the singles' fitness
  (``single_fitnesses.csv``, ``average_fitness``) and its magnitude, from ../shared/data.
* ``a``: synthetic (a) of ``benchmarks/discovery.py`` (``W W^T + noise``, ``W >= 0``, n = 50);
* ``b``: synthetic (b): the disjointedness matrix of a 50-perturbation latent-factor screen;
* ``planted``: ``a_i + a_j + 1/2 (u_i.v_j + v_i.u_j) + noise`` (n = 80, rank 3, noise sd 0.3;
  main effects sd 1, factor entries sd 0.5); features: ``a + N(0, 0.5^2)`` (informative).

Variants (``--variants``; ``VARIANTS`` below): ``factors`` (the model before issue 12: no
main effects, unit factor priors), ``main`` (main effects, unit factor priors), ``main+ard``
(one learned prior scale per rank component), ``main+shared`` (one learned scale for all
factor entries: the default model); ``+feat`` with the matrix's features, ``+noise`` with two
pure-noise features; ``+init`` initialised from the data (``a`` from the hub estimate, the
factors from an eigendecomposition of the imputed residual); ``+sigX`` a HalfNormal(X) noise
prior (default 1). Every line is the mean over seeds.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

from pairint_jax.discovery import posterior as post  # noqa: E402

VARIANTS = {
    "factors": dict(model=dict(main_effects=False, factor_prior="unit")),
    "main": dict(model=dict(factor_prior="unit")),
    "main+ard": dict(model=dict(factor_prior="ard")),
    "main+shared": dict(model=dict(factor_prior="shared")),
    "main+shared+feat": dict(model=dict(factor_prior="shared"), features="informative"),
    "main+shared+noise": dict(model=dict(factor_prior="shared"), features="noise"),
    "main+ard+feat": dict(model=dict(factor_prior="ard"), features="informative"),
    "main+ard+noise": dict(model=dict(factor_prior="ard"), features="noise"),
    "main+feat": dict(model=dict(factor_prior="unit"), features="informative"),
    "main+noise": dict(model=dict(factor_prior="unit"), features="noise"),
    "main+sig0.5": dict(model=dict(factor_prior="unit"), sigma_scale=0.5),
    "main+shared+init": dict(model=dict(factor_prior="shared"), data_init=True),
    "main+ard+init": dict(model=dict(factor_prior="ard"), data_init=True),
    "main+ard+sig0.3": dict(model=dict(factor_prior="ard"), sigma_scale=0.3),
    "main+ard+sig3": dict(model=dict(factor_prior="ard"), sigma_scale=3.0),
}


# ----------------------------------------------------------------------------- matrices


def norman():
    import pandas as pd

    import pairint_jax as pj

    genes, gi = pj.datasets.norman2019_gi()
    feats = None
    for base in (ROOT.parent / "shared", pathlib.Path("/work/shared")):
        f = base / "data" / "norman2019_crispra_gi" / "single_fitnesses.csv"
        if f.is_file():
            t = pd.read_csv(f).set_index("guide_target")["average_fitness"]
            fit = np.array([t.get(g, np.nan) for g in genes], float)
            feats = np.stack([fit, np.abs(fit)], 1)
            break
    return np.abs(np.asarray(gi, float)), feats


def synthetic_a():
    from discovery import planted

    return planted(0, kind="nonneg"), None


def synthetic_b():
    from discovery import latent_factor_matrix

    m, _ = latent_factor_matrix()
    return m, None


def planted_main(seed: int = 0, n: int = 80, rank: int = 3, noise: float = 0.3):
    """``a_i + a_j + 1/2 (u_i.v_j + v_i.u_j) + noise`` and informative features ``a + N(0, 0.5^2)``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    u, v = 0.5 * rng.normal(size=(n, rank)), 0.5 * rng.normal(size=(n, rank))
    e = rng.normal(size=(n, n))
    r = a[:, None] + a[None, :] + 0.5 * (u @ v.T + v @ u.T) + noise * (e + e.T) / np.sqrt(2)
    np.fill_diagonal(r, np.nan)
    return r, (a + 0.5 * rng.normal(size=n))[:, None]


MATRICES = {"norman": norman, "a": synthetic_a, "b": synthetic_b, "planted": planted_main}


# ----------------------------------------------------------------------------- scoring


def hub_prediction(n: int, pairs: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``[n, n]`` hub score ``h_i + h_j``, ``h_i = (sum_obs_i + m) / (count_i + 1)``."""
    m = vals.mean()
    s = np.zeros(n)
    c = np.zeros(n)
    np.add.at(s, pairs[:, 0], vals)
    np.add.at(s, pairs[:, 1], vals)
    np.add.at(c, pairs[:, 0], 1)
    np.add.at(c, pairs[:, 1], 1)
    h = (s + m) / (c + 1)
    return h[:, None] + h[None, :]


def spearman(pred, true) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(pred, true)[0])


def data_init(state, model, pairs, vals):
    """Initialisation from the data (standardised units): ``a`` from the hub estimate, the factors
    from the top ``m`` eigenpairs of the zero-imputed, inverse-frequency-scaled residual."""
    n, m = model.n, model.rank
    y = (vals - vals.mean()) / max(vals.std(), 1e-12)
    h = hub_prediction(n, pairs, y)
    a = np.diag(h) / 2  # h_i
    res = np.zeros((n, n))
    res[pairs[:, 0], pairs[:, 1]] = y - a[pairs[:, 0]] - a[pairs[:, 1]]
    res = (res + res.T) * (n * (n - 1) / 2) / len(pairs)
    lam, q = np.linalg.eigh(res)
    top = np.argsort(-np.abs(lam))[:m]
    u = np.sqrt(np.abs(lam[top])) * q[:, top]
    p = dict(state.params, a_loc=jax.numpy.asarray(a, "float32"), U_loc=jax.numpy.asarray(u, "float32"),
             V_loc=jax.numpy.asarray(u * np.sign(lam[top]), "float32"))
    return state._replace(params=p)


def fit_once(r, feats, frac, seed, variant, steps, rank):
    n = r.shape[0]
    iu = np.stack(np.triu_indices(n, 1), 1)
    iu = iu[np.isfinite(r[iu[:, 0], iu[:, 1]])]
    vals = r[iu[:, 0], iu[:, 1]]
    rng = np.random.default_rng(1000 + seed)
    k = max(2, int(round(frac * len(iu))))
    sel = np.zeros(len(iu), bool)
    sel[rng.choice(len(iu), k, replace=False)] = True
    spec = VARIANTS[variant]
    x = None
    if spec.get("features") == "informative":
        x = feats
    elif spec.get("features") == "noise":
        x = np.random.default_rng(7 + seed).normal(size=(n, 2))
    model = post.LowRankModel(n=n, rank=rank, steps=steps, **spec["model"])
    obs = post.Observations.from_pairs(iu[sel], vals[sel], capacity=len(iu))
    state = post.init(jax.random.key(seed), model, features=x)
    if spec.get("data_init"):
        state = data_init(state, model, iu[sel], vals[sel])
    state, info = post.fit_jit(jax.random.key(seed + 1), state, obs, model=model, sigma_scale=spec.get("sigma_scale", 1.0))
    mean = np.asarray(post.mean_matrix(state, model=model))
    held = iu[~sel]
    rho = spearman(mean[held[:, 0], held[:, 1]], vals[~sel])
    hub = hub_prediction(n, iu[sel], vals[sel])
    rho_hub = spearman(hub[held[:, 0], held[:, 1]], vals[~sel])
    top = max(1, int(np.ceil(0.05 * len(held))))
    truth_top = set(np.argsort(-vals[~sel])[:top])
    recall = lambda pr: len(set(np.argsort(-pr[held[:, 0], held[:, 1]])[:top]) & truth_top) / top
    return rho, rho_hub, recall(mean), recall(hub), bool(info.finite)


def check_hub():
    """The hub score against a brute-force double loop on hand-made observations."""
    pairs = np.array([[0, 1], [0, 2], [1, 3]])
    vals = np.array([1.0, 3.0, -2.0])
    got = hub_prediction(4, pairs, vals)
    m = vals.mean()
    h = [(sum(v for (i, j), v in zip(pairs, vals) if g in (i, j)) + m) / (sum(g in p for p in pairs) + 1) for g in range(4)]
    np.testing.assert_allclose(got, np.add.outer(h, h), rtol=1e-12)


def timing(n: int, capacity: int, steps: int, repeats: int = 5):
    """Median wall time of one compiled fit (``steps`` SVI steps, warm: compiled first) for the
    model before issue 12 (``factors``) and the default, on the same random buffer."""
    rng = np.random.default_rng(0)
    iu = np.stack(np.triu_indices(n, 1), 1)
    pick = iu[rng.choice(len(iu), min(capacity, len(iu)), replace=False)]
    obs = post.Observations.from_pairs(pick, rng.normal(size=len(pick)), capacity=capacity)
    out = {}
    for name in ("factors", "main+shared"):
        model = post.LowRankModel(n=n, rank=5, steps=steps, **VARIANTS[name]["model"])
        state = post.init(jax.random.key(0), model)
        jax.block_until_ready(post.fit_jit(jax.random.key(1), state, obs, model=model))
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(post.fit_jit(jax.random.key(2 + r), state, obs, model=model))
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matrices", default="norman,a,b,planted")
    ap.add_argument("--fractions", default="0.05,0.08,0.1,0.2")
    ap.add_argument("--variants", default="factors,main,main+feat,main+noise")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--rank", type=int, default=5)
    ap.add_argument("--timing", action="store_true", help="also time one fit (n = 50 and 1,000), old model vs default")
    args = ap.parse_args(argv)
    check_hub()
    if args.timing:
        print("| fit (5,000 steps, rank 5) | factors only (before) | default (main effects, shared scale) |")
        print("|---|---|---|")
        for n, cap in ((50, 512), (1000, 512)):
            t = timing(n, cap, 5000)
            print(f"| n = {n}, C = {cap} | {t['factors']:.3f} s | {t['main+shared']:.3f} s |", flush=True)
    print(f"({args.seeds} seeds, {args.steps} steps, rank {args.rank}; recall = top-5% held-out pairs among the predicted top 5%)")
    print("| matrix | % observed | variant | Spearman | hub Spearman | recall | hub recall |")
    print("|---|---|---|---|---|---|---|")
    for mname in args.matrices.split(","):
        t0 = time.perf_counter()
        r, feats = MATRICES[mname]()
        if r is None:
            print(f"| {mname} | skipped (matrix unavailable) | | | |")
            continue
        for frac in (float(f) for f in args.fractions.split(",")):
            for variant in args.variants.split(","):
                if VARIANTS[variant].get("features") == "informative" and feats is None:
                    continue
                out = np.array([fit_once(r, feats, frac, s, variant, args.steps, args.rank) for s in range(args.seeds)])
                flag = "" if out[:, 4].all() else " (non-finite!)"
                cells = " | ".join(f"{v:.3f}" for v in out[:, :4].mean(0))
                print(f"| {mname} | {100 * frac:.0f} | {variant} | {cells} |{flag}", flush=True)
        print(f"<!-- {mname}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
