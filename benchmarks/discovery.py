"""Benchmark: active discovery (DIGEST section 4), the paper's protocol and its costs.

    python benchmarks/discovery.py            # the full study (n = 50, 50 rounds x 10, 10 seeds, 5 policies)
    python benchmarks/discovery.py --quick    # CPU-sized: 3 seeds, 1000 SVI steps, K = 300, fewer fits

Sections (each prints a table):

1. correctness before timing: IDS quantities vs a float64 NumPy reference; the compiled
   SVI recovers a planted rank-2 matrix from 60% of its pairs.
2. model fit on non-negative, only roughly low-rank matrices: held-out error, Spearman
   correlation and top-5% recall of the posterior mean from 40% of the pairs, for several
   ranks, links (identity, abs, softplus) and non-negative factors.
3. the study: top-5% fraction at rounds 20 and 50, cumulative regret and known pairs found,
   per policy (mean [min, max] over seeds), on
   (a)  planted non-negative rank-4 matrices with noise, R = W W^T + noise, W >= 0;
   (a2) the hard variant R = |A A^T| + noise (|.| of a signed low-rank matrix is not low rank);
   (b)  the disjointedness matrix of a 50-perturbation latent-factor screen (hook below:
        skipped until ``pj.synthetic.latent_factor`` and ``pj.disjointedness_scores`` land);
   (c)  a real matrix: the SLKB 22Rv1 double-knockout screen, 50 genes, all 1,225 pairs,
        reward = -SL_score (stronger synthetic lethality = higher), known = CORUM co-complex
        pairs; read from ../shared/data (nothing is copied into the repository).
   Full mode adds IDS sensitivity runs over the rank (3, 8) and the noise prior
   (sigma_scale 0.3, 0.1).
4. timing: the study's wall time; one round (SVI + sampling + IDS) for n = 50 and
   n = 1,000 (about 500,000 candidate pairs), first call and steady state (median), next to
   the naive way measured in the same run: a Python loop of jitted numpyro ``svi.update``
   steps (AutoNormal, Trace_ELBO, Adam 0.01), then 1,000 posterior samples and IDS in NumPy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import pairint_jax as pj  # noqa: E402
from pairint_jax.discovery import acquisition as acq  # noqa: E402
from pairint_jax.discovery import posterior as post  # noqa: E402

POLICIES = ("ids", "ts", "ucb", "us", "greedy", "hub", "random")


def shared_dir() -> pathlib.Path | None:
    env = os.environ.get("PAIRINT_SHARED")
    for cand in ([pathlib.Path(env)] if env else []) + [ROOT.parent / "shared", pathlib.Path("/work/shared")]:
        if (cand / "data").is_dir():
            return cand
    return None


# ----------------------------------------------------------------------------- matrices


def planted(seed: int, n: int = 50, rank: int = 4, noise: float = 0.1, kind: str = "nonneg") -> np.ndarray:
    """(a): ``W W^T`` with ``W = |N(0,1)|`` (kind "nonneg"), or (a2): ``|A A^T|`` (kind "abs");
    plus symmetric Gaussian noise with sd ``noise * sd(off-diagonal signal)``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, rank))
    r = np.abs(w) @ np.abs(w).T if kind == "nonneg" else np.abs(w @ w.T)
    e = rng.normal(size=(n, n))
    off = ~np.eye(n, dtype=bool)
    return r + noise * r[off].std() * (e + e.T) / np.sqrt(2)


def latent_factor_matrix():
    """(b) HOOK: the disjointedness matrix of a 50-perturbation latent-factor screen, and its
    truly interacting pairs (same module) as the ``known`` list.

    Needs issues 2/3: ``pj.synthetic.latent_factor(key, n_perturbations=50)`` (returning
    ``(screen, truth)``) and ``pj.disjointedness_scores(screen).matrix``. Returns
    ``(None, None)`` until both exist.
    """
    synth = getattr(pj, "synthetic", None)
    if synth is None or not hasattr(synth, "latent_factor") or not hasattr(pj, "disjointedness_scores"):
        return None, None
    out = synth.latent_factor(jax.random.key(0), n_perturbations=50)
    screen, truth = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    matrix = np.asarray(pj.disjointedness_scores(screen, key=jax.random.key(1)).matrix, float)
    known = None
    if truth is not None:
        truth = np.asarray(truth, bool)
        known = [tuple(p) for p in np.argwhere(np.triu(truth, 1))]
    return matrix, known


def slkb_matrix():
    """(c): -SL_score of the SLKB 22Rv1 screen (50 genes, 1,225 pairs) and CORUM co-complex pairs."""
    import pandas as pd

    sh = shared_dir()
    if sh is None:
        return None, None, None
    d = pd.read_csv(sh / "data" / "slkb_demo_22Rv1" / "score_ref.csv")
    genes = sorted(set(d.gene_1) | set(d.gene_2))
    ix = {g: i for i, g in enumerate(genes)}
    m = np.full((len(genes), len(genes)), np.nan)
    for a, b, s in zip(d.gene_1, d.gene_2, d.SL_score):
        m[ix[a], ix[b]] = m[ix[b], ix[a]] = -s
    known = []
    corum = sh / "data" / "known_interactions" / "corum_core_human_complexes.tsv"
    if corum.is_file():
        c = pd.read_csv(corum, sep="\t", usecols=["subunits(Gene name)"])
        pairs = set()
        for sub in c["subunits(Gene name)"].dropna():
            members = sorted({ix[g] for g in str(sub).split(";") if g in ix})
            pairs.update((a, b) for k, a in enumerate(members) for b in members[k + 1:])
        known = sorted(pairs)
    return m, known, genes


# ----------------------------------------------------------------------------- 1. correctness


def numpy_ids(x: np.ndarray, lam: float = 2.0):
    """float64 IDS over actions: ``x [K, A]`` sampled rewards -> (Delta, v, Psi) per action."""
    k = len(x)
    astar = np.argmax(x, 1)
    mean = x.mean(0)
    delta = x[np.arange(k), astar].mean() - mean
    v = np.zeros(x.shape[1])
    for b in np.unique(astar):
        sel = astar == b
        v += sel.mean() * (x[sel].mean(0) - mean) ** 2
    psi = np.where(delta == 0, 0.0, np.where(v > 0, np.abs(delta) ** lam / np.where(v > 0, v, 1), np.inf))
    return delta, v, psi


def check_correctness():
    rng = np.random.default_rng(0)
    n, k = 20, 500
    s = rng.normal(size=(k, n, n))
    rem = np.triu(np.ones((n, n), bool), 1)
    rem[0, 1:6] = False
    got = jax.jit(acq.ids_stats)(jnp.asarray(s, jnp.float32), jnp.asarray(rem))
    i, j = np.nonzero(rem)
    d, v, _ = numpy_ids(s[:, i, j])
    err_d = np.max(np.abs(np.asarray(got.delta)[i, j] - d))
    err_v = np.max(np.abs(np.asarray(got.v)[i, j] - v) / np.maximum(v, 1e-12))
    assert err_d < 1e-4 and err_v < 1e-3, (err_d, err_v)

    n = 30
    a = rng.normal(size=(n, 2))
    r = a @ a.T
    iu = np.stack(np.triu_indices(n, 1), 1)
    sel = rng.random(len(iu)) < 0.6
    model = post.LowRankModel(n=n, rank=5)
    obs = post.Observations.from_pairs(iu[sel], r[iu[sel, 0], iu[sel, 1]], capacity=len(iu))
    st, _ = post.fit_jit(jax.random.key(1), post.init(jax.random.key(0), model), obs, model=model)
    mean, _ = post.posterior_mean_std(post.sample(jax.random.key(2), st, model=model, num_samples=500))
    un = np.zeros((n, n), bool)
    un[iu[~sel, 0], iu[~sel, 1]] = True
    rel = np.linalg.norm((np.asarray(mean) - r)[un]) / np.linalg.norm(r[un])
    assert rel < 0.05, rel
    print("## 1. correctness")
    print(f"IDS vs float64 NumPy (K={k}, {len(i)} actions): max |dDelta| = {err_d:.1e}, max rel dv = {err_v:.1e}")
    print(f"SVI on a planted rank-2 30x30 matrix from 60% of pairs: held-out relative error {rel:.4f}\n")


# ----------------------------------------------------------------------------- 2. model fit


def fit_quality(r: np.ndarray, *, rank: int, link: str, nonnegative: bool, steps: int, seed: int = 0):
    """Fit on a random 40% of the available pairs; score the posterior mean on the other 60%."""
    from scipy.stats import spearmanr

    n = r.shape[0]
    iu = np.stack(np.triu_indices(n, 1), 1)
    iu = iu[np.isfinite(r[iu[:, 0], iu[:, 1]])]
    rng = np.random.default_rng(seed)
    sel = rng.random(len(iu)) < 0.4
    vals = r[iu[:, 0], iu[:, 1]]
    model = post.LowRankModel(n=n, rank=rank, link=link, nonnegative=nonnegative, steps=steps)
    obs = post.Observations.from_pairs(iu[sel], vals[sel], capacity=len(iu))
    st, info = post.fit_jit(jax.random.key(seed + 1), post.init(jax.random.key(seed), model), obs, model=model)
    s = post.sample(jax.random.key(seed + 2), st, model=model, num_samples=300)
    mean = np.asarray(jnp.mean(s.dense(), 0))
    pred, true = mean[iu[~sel, 0], iu[~sel, 1]], vals[~sel]
    rel = np.linalg.norm(pred - true) / np.linalg.norm(true - true.mean())
    rho = spearmanr(pred, true)[0]
    k = max(1, math.ceil(0.05 * len(true)))
    recall = len(set(np.argsort(-pred)[:k]) & set(np.argsort(-true)[:k])) / k
    return rel, rho, recall, bool(info.finite)


def model_fit_table(mats: dict, quick: bool):
    configs = [
        dict(rank=5, link="identity", nonnegative=False),
        dict(rank=5, link="abs", nonnegative=False),
        dict(rank=5, link="identity", nonnegative=True),
    ]
    if not quick:
        configs += [
            dict(rank=3, link="identity", nonnegative=False),
            dict(rank=10, link="identity", nonnegative=False),
            dict(rank=5, link="softplus", nonnegative=False),
        ]
    steps = 1500 if quick else 5000
    print(f"## 2. model fit from 40% of the pairs (posterior mean on the held-out 60%; {steps} SVI steps)")
    print(f"{'matrix':<8} {'rank':>4} {'link':<9} {'factors':<8} {'rel.err':>8} {'spearman':>9} {'top5% recall':>13}")
    rows = []
    for name, (r, _) in mats.items():
        for cfg in configs:
            rel, rho, rec, ok = fit_quality(r, steps=steps, **cfg)
            fac = "nonneg" if cfg["nonnegative"] else "real"
            print(f"{name:<8} {cfg['rank']:>4} {cfg['link']:<9} {fac:<8} {rel:>8.3f} {rho:>9.3f} {rec:>13.2f}{'' if ok else '  (non-finite!)'}")
            rows.append(dict(matrix=name, **cfg, rel_err=rel, spearman=rho, top5_recall=rec))
    print("(rel.err = ||pred - true|| / ||true - mean(true)|| on held-out pairs; 1.0 = no better than the mean)\n")
    return rows


# ----------------------------------------------------------------------------- 3. study


def fmt(vals) -> str:
    vals = np.asarray(vals, float)
    return f"{vals.mean():.2f} [{vals.min():.2f}, {vals.max():.2f}]"


def study(mats: dict, cfg: dict, plot_dir, quick: bool):
    print(f"## 3. the study: rounds {cfg['rounds']} x batch {cfg['batch']}, {cfg['seeds']} seeds, "
          f"{cfg['steps']} SVI steps, K = {cfg['num_samples']}, rank {cfg['rank']}; mean [min, max] over seeds")
    print(f"{'matrix':<8} {'policy':<7} {'top5%@20':>20} {'top5%@50':>20} {'regret@50':>26} {'known@50':>22} {'wall s':>7}")
    rows, total = [], 0.0
    for name, (r, known) in mats.items():
        out = pj.simulate_many(r, POLICIES, key=jax.random.key(0), known=known or None,
                               progress=not quick and sys.stderr.isatty(), **cfg)
        walls = {}
        for pol, res in out.items():
            walls.setdefault(res.wall_time, pol)
            last = res.rounds
            r20 = min(20, last)
            kn = f"{fmt(res.known_found[:, -1])}/{res.n_known}" if res.n_known else "-"
            print(f"{name:<8} {pol:<7} {fmt(res.top5_fraction[:, r20 - 1]):>20} {fmt(res.top5_fraction[:, -1]):>20} "
                  f"{fmt(res.regret[:, -1]):>26} {kn:>22} {res.wall_time:>7.1f}")
            rows.append(dict(matrix=name, policy=pol, top5_r20=res.top5_fraction[:, r20 - 1].tolist(),
                             top5_r50=res.top5_fraction[:, -1].tolist(), regret=res.regret[:, -1].tolist(),
                             known=res.known_found[:, -1].tolist(), n_known=res.n_known, wall=res.wall_time))
        total += sum(walls)
        if plot_dir is not None:
            import matplotlib

            matplotlib.use("Agg")
            from pairint_jax.plotting import plot_discovery_curves

            path = pathlib.Path(plot_dir) / f"discovery_{name}.png"
            plot_discovery_curves(out, title=f"matrix {name}", path=path)
            print(f"   curves: {path}")
    print(f"whole study: {total:.1f} s (compilation included)\n")
    return rows, total


def sensitivity(mats: dict, cfg: dict):
    """IDS alone with other ranks m and noise priors (the paper tuned m over 3-12)."""
    print("## 3b. IDS sensitivity: rank m and the noise prior sigma ~ HalfNormal(sigma_scale) (standardised units)")
    print(f"{'matrix':<8} {'rank':>4} {'sigma_scale':>11} {'top5%@20':>20} {'top5%@50':>20} {'regret@50':>26}")
    rows = []
    variants = [(3, 1.0), (8, 1.0), (5, 0.3), (5, 0.1)]
    for name, (r, _) in mats.items():
        for rank, ss in variants:
            res = pj.simulate(r, "ids", key=jax.random.key(0), sigma_scale=ss, **{**cfg, "rank": rank})
            print(f"{name:<8} {rank:>4} {ss:>11} {fmt(res.top5_fraction[:, 19]):>20} {fmt(res.top5_fraction[:, -1]):>20} "
                  f"{fmt(res.regret[:, -1]):>26}")
            rows.append(dict(matrix=name, rank=rank, sigma_scale=ss, top5_r20=res.top5_fraction[:, 19].tolist(),
                             top5_r50=res.top5_fraction[:, -1].tolist()))
    print("(rank 5, sigma_scale 1.0 is the default row of section 3)\n")
    return rows


# ----------------------------------------------------------------------------- 4. timing


def naive_round(r: np.ndarray, pairs: np.ndarray, *, steps: int, k: int, rank: int = 5) -> float:
    """The straightforward way: a Python loop over jitted numpyro ``svi.update`` steps (AutoNormal,
    Trace_ELBO, Adam 0.01), ``k`` posterior samples, IDS in NumPy. Returns seconds."""
    import numpyro
    import numpyro.distributions as dist
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    n = r.shape[0]
    rows, cols = jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1])
    y = jnp.asarray(r[pairs[:, 0], pairs[:, 1]], jnp.float32)
    y = (y - y.mean()) / y.std()

    def model(rows, cols, y):
        u = numpyro.sample("U", dist.Normal(jnp.zeros((n, rank)), 1.0).to_event(2))
        v = numpyro.sample("V", dist.Normal(jnp.zeros((n, rank)), 1.0).to_event(2))
        b = numpyro.sample("b", dist.Normal(0.0, 1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        f = 0.5 * (jnp.sum(u[rows] * v[cols], -1) + jnp.sum(v[rows] * u[cols], -1)) + b
        numpyro.sample("y", dist.Normal(f, sigma), obs=y)

    guide = AutoNormal(model)
    svi = SVI(model, guide, optax.adam(0.01), Trace_ELBO())
    t0 = time.perf_counter()
    state = svi.init(jax.random.key(0), rows, cols, y)
    update = jax.jit(svi.update)
    for _ in range(steps):
        state, loss = update(state, rows, cols, y)
    params = svi.get_params(state)
    smp = guide.sample_posterior(jax.random.key(1), params, sample_shape=(k,))
    u, v, b = np.asarray(smp["U"]), np.asarray(smp["V"]), np.asarray(smp["b"])
    rem = np.triu(np.ones((n, n), bool), 1)
    rem[pairs[:, 0], pairs[:, 1]] = False
    i, j = np.nonzero(rem)
    x = 0.5 * (np.einsum("kam,kam->ka", u[:, i], v[:, j]) + np.einsum("kam,kam->ka", v[:, i], u[:, j])) + b[:, None]
    _, _, psi = numpy_ids(x)
    np.argsort(psi)[:10]
    return time.perf_counter() - t0


def our_round(n: int, n_obs: int, *, steps: int, k: int, rank: int = 5, reps: int = 3):
    """One compiled round (SVI fit + K samples + IDS batch of 10) as the campaign runs it."""
    from pairint_jax.discovery import rounds
    from pairint_jax.discovery.campaign_round import bucket

    rng = np.random.default_rng(0)
    w = np.abs(rng.normal(size=(n, 4)))
    r = w @ w.T
    iu = np.stack(np.triu_indices(n, 1), 1)
    pairs = iu[rng.choice(len(iu), n_obs, replace=False)]
    model = post.LowRankModel(n=n, rank=rank, steps=steps, num_samples=k)
    obs = post.Observations.from_pairs(pairs, r[pairs[:, 0], pairs[:, 1]], capacity=bucket(n_obs))
    rem = np.triu(np.ones((n, n), bool), 1)
    rem[pairs[:, 0], pairs[:, 1]] = False
    start = rounds.init(jax.random.key(0), model, obs.capacity, observations=obs, remaining=rem)

    def call(seed):
        out = rounds.step_jit(jax.random.key(seed), start, obs, model=model, policy="ids", batch=10)
        jax.block_until_ready(out)
        return out

    t0 = time.perf_counter()
    call(0)
    first = time.perf_counter() - t0
    times = []
    for rep in range(reps):
        t0 = time.perf_counter()
        call(rep + 1)
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times)), r, pairs


def timing(quick: bool, study_wall: float, cfg: dict, n_matrices: int):
    print("## 4. timing (this machine: " + f"{jax.devices()[0].platform}, {jax.devices()[0].device_kind})")
    steps = 5000
    first50, ours50, r50, pairs50 = our_round(50, 250, steps=steps, k=1000)
    naive50 = naive_round(r50, pairs50, steps=steps, k=1000)
    n_big, k_big, steps_big = (1000, 200, 1000) if quick else (1000, 1000, 5000)
    first_big, ours_big, _, _ = our_round(n_big, 500, steps=steps_big, k=k_big, reps=1 if quick else 3)
    print(f"{'workload':<58} {'ours first':>11} {'ours steady':>12} {'naive':>9} {'ratio':>7}")
    print(f"{'one round n=50, 250 observed, 5000 steps, K=1000, IDS':<58} {first50:>10.2f}s {ours50:>11.3f}s "
          f"{naive50:>8.2f}s {naive50 / ours50:>6.1f}x")
    label = f"one round n={n_big}, 500 observed, {steps_big} steps, K={k_big}, IDS"
    print(f"{label:<58} {first_big:>10.2f}s {ours_big:>11.3f}s {'-':>9} {'-':>7}")
    # the naive way fits once per round of every model-based policy, seed and matrix
    # (the first round is random; hub and random fit nothing: 5 policies fit)
    chains = n_matrices * 5 * cfg["seeds"] * (cfg["rounds"] - 1)
    naive_study = naive50 * chains * (cfg["steps"] / steps)
    print(f"{'whole study (' + str(chains) + ' fitted rounds) vs naive round x ' + str(chains):<58} "
          f"{'':>11} {study_wall:>11.1f}s {naive_study:>8.0f}s {naive_study / max(study_wall, 1e-9):>6.1f}x")
    print("(naive = Python loop of jitted numpyro svi.update steps with AutoNormal + Trace_ELBO, then samples and IDS "
          "in NumPy; the naive study time is the naive round time times the number of rounds, scaled to the study's "
          "SVI steps)\n")
    return dict(round_n50_first=first50, round_n50=ours50, naive_round_n50=naive50, round_big_first=first_big,
                round_big=ours_big, n_big=n_big, k_big=k_big, steps_big=steps_big, naive_study=naive_study)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU-sized run (3 seeds, 1000 steps, K = 300).")
    ap.add_argument("--matrices", default="a,a2,b,c", help="comma-separated subset of a, a2, b, c.")
    ap.add_argument("--plot-dir", default=None, help="write the three curves per matrix as PNGs here.")
    ap.add_argument("--json", default=None, help="write every number to this JSON file.")
    ap.add_argument("--skip-fit", action="store_true", help="skip section 2.")
    ap.add_argument("--skip-timing", action="store_true", help="skip section 4.")
    ap.add_argument("--skip-sensitivity", action="store_true", help="skip section 3b (full mode only).")
    ap.add_argument("--sensitivity", action="store_true", help="run section 3b in --quick mode too.")
    ap.add_argument("--rank", type=int, default=5, help="rank m of the low-rank model in section 3 (default 5).")
    args = ap.parse_args(argv)
    quick = args.quick
    cfg = dict(rounds=50, batch=10, seeds=3 if quick else 10, steps=1000 if quick else 5000,
               num_samples=300 if quick else 1000, rank=args.rank)
    t_all = time.perf_counter()
    check_correctness()

    want = set(args.matrices.split(","))
    mats = {}
    if "a" in want:
        mats["a"] = (planted(0, kind="nonneg"), None)
    if "a2" in want:
        mats["a2"] = (planted(0, kind="abs"), None)
    if "b" in want:
        m, known = latent_factor_matrix()
        if m is None:
            print("(b) skipped: pj.synthetic.latent_factor / pj.disjointedness_scores have not landed yet\n")
        else:
            mats["b"] = (m, known)
    if "c" in want:
        m, known, _ = slkb_matrix()
        if m is None:
            print("(c) skipped: ../shared/data is not available\n")
        else:
            mats["c"] = (m, known)
    if args.plot_dir:
        pathlib.Path(args.plot_dir).mkdir(parents=True, exist_ok=True)

    results = {"settings": cfg, "quick": quick}
    if not args.skip_fit:
        results["fit"] = model_fit_table({k: v for k, v in mats.items()}, quick)
    results["study"], study_wall = study(mats, cfg, args.plot_dir, quick)
    results["study_wall"] = study_wall
    if (not quick or args.sensitivity) and not args.skip_sensitivity:
        results["sensitivity"] = sensitivity(mats, cfg)
    if not args.skip_timing:
        results["timing"] = timing(quick, study_wall, cfg, len(mats))
    print(f"benchmark total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
