"""Active discovery on real interaction maps (issue 12): every policy, with and without side features.

    python benchmarks/real_discovery.py                       # full protocol (10 seeds, 5,000 steps, K = 1,000)
    python benchmarks/real_discovery.py --reduced             # CPU: 3 seeds, 1,000 SVI steps, K = 300
    python benchmarks/real_discovery.py --features both --matrices norman,bigpapi --timing
    python benchmarks/real_discovery.py --markdown real_discovery.md --json curves.json

Protocol (DIGEST section 4, issue 12): every policy (IDS, UCB, TS, US, greedy, hub, random) runs
``rounds`` rounds of ``batch`` pairs for ``seeds`` seeds; the first round is random; each
round refits the library's default posterior (``LowRankModel``: rank 8, main effects, shared
factor prior with floor ``factor_scale_min`` 0.5 under the abs link and 1.0 under the identity
link; ``steps`` SVI steps, ``K`` samples) to the
revealed scores, with ``simulate_many``'s default ``link="auto"``: ``"abs"`` on the matrices that
are never negative (Norman, SLKB |SL|, Big Papi, synthetic (a)), ``"identity"`` on those with
negative entries (the unbiased disjointedness of SLKB and synthetic (b)); ``--link`` overrides it.
Full: 50 rounds x batch 10, 10 seeds, 5,000 steps, K = 1,000.
``--features on|off|both`` runs each policy with the matrix's per-perturbation features
(``features=`` of :func:`pj.simulate_many`: the prior of the main effects and the prior mean of
``hub``), without them, or both. ``--feature-interactions`` adds the posterior's
feature-interaction term ``x_i^T B x_j`` to the runs with features, and ``--model hub`` fits
them with ``pj.HUB_MODEL``, the preset for hub-driven maps (identity link, the term, floors on
the learned prior scales).

Reward matrices (symmetric, NaN diagonal; a pair's true score is revealed when chosen) and
their features (z-scored columns; NaN = missing, imputed by the library):

* ``norman``: ``|GI|`` of the Norman et al. 2019 growth map, 112 genes, 6,216 pairs. Features:
  the singles' growth phenotypes of ``../shared/data/norman2019_crispra_gi/single_fitnesses.csv``
  (``average_fitness``, ``chosen_guide_fitness`` (9 NaN) and ``|average_fitness|``).
* ``slkb-abs-sl``: ``|SL score|`` of the SLKB 22Rv1 authors, 50 genes, 1,225 pairs.
* ``slkb-disj``: our disjointedness matrix of the SLKB 22Rv1 screen (RBF, per-pair median bandwidth).
  Both SLKB matrices use ``pj.perturbation_features(pj.datasets.slkb_22rv1())`` (shift, k-NN KL, MMD).
* ``bigpapi``: our additivity matrix of the Big Papi screen (26 genes with EEF2, 325 pairs);
  features ``pj.perturbation_features(pj.datasets.bigpapi())``.
* ``syn-a``: synthetic (a) of ``benchmarks/discovery.py``, ``W W^T + noise``, ``W = |N(0, 1)|``
  (n = 50, rank 4). Features: a noisy main-effect proxy, ``mean_j W_i.W_j + N(0, sd^2)`` with
  ``sd`` the proxy's own standard deviation (correlation about 0.7 with the true row effect).
* ``syn-b``: synthetic (b) of ``benchmarks/discovery.py``, the disjointedness matrix of a
  50-perturbation latent-factor screen; features ``pj.perturbation_features`` of that screen.

Metrics per round (mean [min, max] over seeds): the fraction of the true top-5% pairs found,
checked against a NumPy recount of the chosen pairs before anything is reported. ``--timing``
adds one round (fit + K samples + IDS batch of 10) at n = 50, 444 and 1,000 with the default
model (its link resolved from the timing matrix, ``W W^T >= 0``: ``"abs"``) and with the model
before issue 12 (``LowRankModel(main_effects=False, factor_prior="unit")``, identity link),
measured in the same run.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

import pairint_jax as pj  # noqa: E402
from pairint_jax.discovery.links import resolve_link  # noqa: E402

POLICIES = ("ids", "ucb", "ts", "us", "greedy", "hub", "random")
MATRICES = ("norman", "slkb-abs-sl", "slkb-disj", "bigpapi", "syn-a", "syn-b")
REPORT_ROUNDS = (10, 25, 50)
OLD_MODEL = dict(main_effects=False, factor_prior="unit", link="identity", rank=5)


def shared_data() -> pathlib.Path | None:
    """``$PAIRINT_SHARED/data``, ``../shared/data`` or ``/work/shared/data``, whichever exists."""
    for base in [os.environ.get("PAIRINT_SHARED"), ROOT.parent / "shared", "/work/shared"]:
        if base and (pathlib.Path(base) / "data").is_dir():
            return pathlib.Path(base) / "data"
    return None


def find_corum(path: str | None) -> pathlib.Path | None:
    """The CORUM table: ``--corum``, ``$PAIRINT_CORUM``, else the shared data folder if present."""
    data = shared_data()
    cands = [path, os.environ.get("PAIRINT_CORUM")]
    if data is not None:
        cands.append(data / "known_interactions" / "corum_core_human_complexes.tsv")
    for c in cands:
        if c and pathlib.Path(c).is_file():
            return pathlib.Path(c)
    return None


def zscore(x: np.ndarray) -> np.ndarray:
    """Each column z-scored ignoring NaN (NaN stays NaN)."""
    x = np.asarray(x, np.float64)
    sd = np.nanstd(x, axis=0)
    return (x - np.nanmean(x, axis=0)) / np.where(sd > 0, sd, 1.0)


def norman_features(genes) -> tuple[np.ndarray, str]:
    import pandas as pd

    data = shared_data()
    if data is None:
        return None, "none (../shared/data not found)"
    d = pd.read_csv(data / "norman2019_crispra_gi" / "single_fitnesses.csv").set_index("guide_target")
    d = d.reindex(list(genes))
    x = np.stack([d.average_fitness, d.chosen_guide_fitness, np.abs(d.average_fitness)], 1)
    return zscore(x), "singles' fitness (average, chosen guide, |average|), z-scored"


def screen_features(screen) -> np.ndarray:
    return np.asarray(pj.perturbation_features(screen).to_numpy(), np.float64)


def synthetic(name: str):
    """(reward, features, description) of synthetic (a) or (b) of benchmarks/discovery.py."""
    import discovery as bench

    if name == "syn-a":
        rng = np.random.default_rng(0)
        w = np.abs(rng.normal(size=(50, 4)))  # the W of bench.planted(0): same generator, same first draw
        reward = bench.planted(0, kind="nonneg")
        proxy = (w @ w.T).mean(1)
        feats = zscore((proxy + rng.normal(scale=proxy.std(), size=50))[:, None])
        return reward, feats, "synthetic (a) W W^T + noise, n = 50", "noisy main-effect proxy (row mean + equal-sd noise)"
    reward, _ = bench.latent_factor_matrix()
    out = pj.synthetic.latent_factor(jax.random.key(0), n_perturbations=50)
    screen = out[0] if isinstance(out, tuple) else out
    return reward, screen_features(screen), "synthetic (b) latent-factor disjointedness, n = 50", "perturbation_features"


def load_matrix(name: str, corum: pathlib.Path | None):
    """``(description, genes, reward [n, n], known {name: [k, 2]}, features [n, f], features description)``."""
    known, genes = {}, None
    if name.startswith("slkb"):
        genes, s = pj.datasets.slkb_22rv1_scores()
        known["SL calls"] = np.argwhere(np.triu(s < pj.datasets.SLKB_SL_CUTOFF, k=1))
        screen = pj.datasets.slkb_22rv1()
        assert tuple(genes) == screen.perturbations
        feats, fdesc = screen_features(screen), "perturbation_features (shift, k-NN KL, MMD)"
        if name == "slkb-disj":
            reward = pj.disjointedness_scores(screen, n_permutations=0).matrix
            desc = "SLKB 22Rv1, our disjointedness (RBF, pair bandwidth)"
        else:
            reward, desc = np.abs(s), "SLKB 22Rv1, |authors' SL score|"
    elif name == "norman":
        genes, gi = pj.datasets.norman2019_gi()
        reward, desc = np.abs(gi), "Norman 2019 GI map, |GI|"
        feats, fdesc = norman_features(genes)
    elif name == "bigpapi":
        screen = pj.datasets.bigpapi()
        genes = screen.perturbations
        reward, desc = pj.additivity_scores(screen).matrix, "Big Papi, our additivity score (26 genes with EEF2)"
        feats, fdesc = screen_features(screen), "perturbation_features (shift, k-NN KL, MMD)"
    elif name in ("syn-a", "syn-b"):
        reward, feats, desc, fdesc = synthetic(name)
        genes = tuple(str(i) for i in range(reward.shape[0]))
    else:
        raise ValueError(f"unknown matrix {name!r}; choose from {MATRICES}.")
    if corum is not None and not name.startswith("syn"):
        known["CORUM"] = pj.datasets.corum_pairs(corum, genes)
    return desc, tuple(genes), np.asarray(reward, np.float64), known, feats, fdesc


def top_set(reward: np.ndarray) -> np.ndarray:
    """Upper-triangle bool mask of the top-5% pairs: the ceil(0.05 P) best plus ties (the library's rule)."""
    n = reward.shape[0]
    iu = np.triu_indices(n, k=1)
    v = reward[iu]
    ok = np.isfinite(v)
    k = math.ceil(0.05 * ok.sum())
    thr = np.sort(v[ok])[::-1][k - 1]
    mask = np.zeros((n, n), bool)
    mask[iu] = ok & (v >= thr)
    return mask


def found_curve(chosen: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[seeds, rounds]`` number of ``mask`` pairs among the pairs chosen up to each round (NumPy oracle)."""
    hit = mask[np.minimum(chosen[..., 0], chosen[..., 1]), np.maximum(chosen[..., 0], chosen[..., 1])]
    return np.cumsum(hit.sum(-1), axis=1)


def check(res, reward: np.ndarray, known: dict) -> None:
    """Recompute the library's top-5% fraction and CORUM counts from the chosen pairs."""
    top = top_set(reward)
    np.testing.assert_allclose(found_curve(res.chosen, top) / top.sum(), res.top5_fraction, rtol=0, atol=1e-6)
    if "CORUM" in known:
        mask = np.zeros_like(top)
        mask[known["CORUM"][:, 0], known["CORUM"][:, 1]] = True
        np.testing.assert_array_equal(found_curve(res.chosen, mask), res.known_found)
    rew = reward[res.chosen[..., 0], res.chosen[..., 1]]
    np.testing.assert_allclose(rew, res.rewards, rtol=1e-5, atol=1e-6)
    ch = np.sort(res.chosen.reshape(res.seeds, -1, 2), axis=-1)
    for s in range(res.seeds):  # a pair is never chosen twice
        assert len(np.unique(ch[s], axis=0)) == ch.shape[1], "a pair was chosen twice"


def fmt(vals) -> str:
    v = np.asarray(vals, float)
    return f"{v.mean():.2f} [{v.min():.2f}, {v.max():.2f}]"


def run_matrix(name: str, args, corum, policies, feature_modes):
    """Print and return the table of one matrix: ``(lines, {(policy, features): [seeds, rounds]})``."""
    desc, genes, reward, known, feats, fdesc = load_matrix(name, corum)
    n = len(genes)
    n_rounds = min(args.rounds, (n * (n - 1) // 2 - 1) // args.batch)  # Big Papi: 325 pairs, 32 rounds of 10
    curves, walls = {}, {}
    for mode in feature_modes:
        if mode == "on" and feats is None:
            continue
        t0 = time.perf_counter()
        hub_model = args.model == "hub" and mode == "on"  # the preset needs features
        res = pj.simulate_many(
            reward, policies, rounds=n_rounds, batch=args.batch, seeds=args.seeds,
            key=jax.random.key(args.seed), known=known.get("CORUM"), steps=args.steps,
            num_samples=args.num_samples, progress=args.progress, features=feats if mode == "on" else None,
            link=args.link, feature_interactions=args.feature_interactions and mode == "on" and not hub_model,
            model_options=pj.HUB_MODEL if hub_model else None,
        )
        walls[mode] = time.perf_counter() - t0
        for pol, r in res.items():
            check(r, reward, known)
            curves[(pol, mode)] = r.top5_fraction
    n_top = int(top_set(reward).sum())
    rounds = [r for r in REPORT_ROUNDS if r <= n_rounds]
    rounds += [n_rounds] if n_rounds not in rounds else []
    wall = ", ".join(f"features {m}: {w:.0f} s" for m, w in walls.items())
    lines = [f"### {name}: {desc}", "",
             f"{n} genes, {n * (n - 1) // 2} pairs, top-5% set {n_top} pairs, {n_rounds} rounds. Features: {fdesc}. "
             f"Wall time (all policies, compilation included): {wall}.", "",
             "| policy | features | " + " | ".join(f"round {r}" for r in rounds) + " |",
             "|---|---|" + "---|" * len(rounds)]
    for pol in policies:
        for mode in feature_modes:
            if (pol, mode) in curves:
                c = curves[(pol, mode)]
                lines.append(f"| {pol} | {mode} | " + " | ".join(fmt(c[:, k - 1]) for k in rounds) + " |")
    lines += ["", *target_lines(curves, policies, n_rounds), ""]
    print("\n".join(lines), flush=True)
    return lines, {f"{p}|{m}": c.tolist() for (p, m), c in curves.items()}


def target_lines(curves: dict, policies, last: int) -> list[str]:
    """The issue's relative targets at the last round: IDS >= hub - 0.02; features on >= off - 0.02."""
    mean = {k: float(np.mean(v[:, last - 1])) for k, v in curves.items()}
    out = []
    for mode in ("off", "on"):
        if ("ids", mode) in mean and ("hub", mode) in mean:
            d = mean[("ids", mode)] - mean[("hub", mode)]
            out.append(f"- IDS - hub (features {mode}), round {last}: {d:+.3f} ({'met' if d >= -0.02 else 'NOT met'})")
        best = max((p for p in policies if (p, mode) in mean), key=lambda p: mean[(p, mode)], default=None)
        if best is not None:
            out.append(f"- best policy (features {mode}), round {last}: {best} {mean[(best, mode)]:.3f}")
    for pol in policies:
        if (pol, "on") in mean and (pol, "off") in mean:
            d = mean[(pol, "on")] - mean[(pol, "off")]
            out.append(f"- {pol}: features on - off, round {last}: {d:+.3f} ({'met' if d >= -0.02 else 'NOT met'})")
    return out


def time_round(n: int, n_obs: int, model_kw: dict, *, steps: int, k: int, reps: int) -> tuple[float, float]:
    """(first call, median steady-state) seconds of one compiled round: fit + K samples + IDS batch of 10."""
    from pairint_jax.discovery import posterior as post
    from pairint_jax.discovery import rounds
    from pairint_jax.discovery.campaign_round import bucket

    rng = np.random.default_rng(0)
    w = np.abs(rng.normal(size=(n, 4)))
    r = w @ w.T
    iu = np.stack(np.triu_indices(n, 1), 1)
    pairs = iu[rng.choice(len(iu), n_obs, replace=False)]
    model_kw = {"link": resolve_link("auto", r[np.triu_indices(n, 1)]), **model_kw}  # as simulate's default does
    model = post.LowRankModel(n=n, steps=steps, num_samples=k, **model_kw)
    obs = post.Observations.from_pairs(pairs, r[pairs[:, 0], pairs[:, 1]], capacity=bucket(n_obs))
    rem = np.triu(np.ones((n, n), bool), 1)
    rem[pairs[:, 0], pairs[:, 1]] = False
    state = rounds.init(jax.random.key(0), model, obs.capacity, observations=obs, remaining=rem)
    times = []
    for rep in range(reps + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(rounds.step_jit(jax.random.key(rep), state, obs, model=model, policy="ids", batch=10))
        times.append(time.perf_counter() - t0)
    return times[0], float(np.median(times[1:]))


def timing(args) -> list[str]:
    sizes = [(50, 250, 5000, 1000, 5)]
    if not args.reduced:
        sizes += [(444, 500, 5000, 1000, 3), (1000, 500, 5000, 1000, 3)]
    else:
        sizes += [(444, 500, 5000, 1000, 2), (1000, 500, 1000, 300, 2)]
    dev = jax.devices()[0]
    lines = [f"### One round (fit + K samples + IDS batch of 10), {dev.platform} {dev.device_kind}", "",
             "| n | observed | steps | K | old model first / steady (s) | default first / steady (s) | default / old |",
             "|---|---|---|---|---|---|---|"]
    for n, n_obs, steps, k, reps in sizes:
        if n > args.timing_max_n:
            continue
        of, os_ = time_round(n, n_obs, OLD_MODEL, steps=steps, k=k, reps=reps)
        nf, ns = time_round(n, n_obs, {}, steps=steps, k=k, reps=reps)
        lines.append(f"| {n} | {n_obs} | {steps} | {k} | {of:.2f} / {os_:.3f} | {nf:.2f} / {ns:.3f} | {ns / os_:.2f}x |")
        print(lines[-1], flush=True)
    lines += ["", "Old model: `LowRankModel(rank=5, main_effects=False, factor_prior=\"unit\")`; default: "
              "`LowRankModel(link=\"abs\")` (rank 8, main effects, shared factor prior floored at 0.5, the link "
              "`\"auto\"` picks for W W^T). "
              "Steady: median of the calls after the first.", ""]
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reduced", action="store_true", help="CPU: 3 seeds, 1,000 SVI steps, K = 300 (50 rounds x 10)")
    ap.add_argument("--matrices", default=",".join(MATRICES), help=f"comma-separated, from {MATRICES}")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--features", choices=("on", "off", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--num-samples", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--link", choices=("auto", "identity", "abs", "softplus"), default="auto",
                    help="the posterior's link (default auto: abs for a matrix that is never negative)")
    ap.add_argument("--feature-interactions", action="store_true",
                    help="with features: the posterior's feature-interaction term x_i' B x_j "
                         "(LowRankModel(feature_interactions=True))")
    ap.add_argument("--model", choices=("default", "hub"), default="default",
                    help="hub: the runs with features use pj.HUB_MODEL (identity link, feature interactions, "
                         "floors on the prior scales); the runs without features keep the default model")
    ap.add_argument("--timing", action="store_true", help="also time one round, default vs old model")
    ap.add_argument("--timing-only", action="store_true", help="only the timing section")
    ap.add_argument("--timing-max-n", type=int, default=1000, help="skip timing sizes above this n")
    ap.add_argument("--corum", default=None, help="CORUM core complexes table (default: $PAIRINT_CORUM or ../shared/data)")
    ap.add_argument("--markdown", default=None, help="write the tables to this Markdown file")
    ap.add_argument("--json", default=None, help="write the curves (every seed and round) to this JSON file")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    args.seeds = args.seeds or (3 if args.reduced else 10)
    args.steps = args.steps or (1000 if args.reduced else 5000)
    args.num_samples = args.num_samples or (300 if args.reduced else 1000)
    policies = tuple(args.policies.split(","))
    modes = ("off", "on") if args.features == "both" else (args.features,)
    lines = [f"Settings: {args.rounds} rounds x batch {args.batch}, {args.seeds} seeds, default LowRankModel "
             f"(rank {pj.discovery.posterior.DEFAULT_RANK}, main effects, shared factor prior floored at 0.5 (abs link) or 1.0 (identity)), {args.steps} SVI steps, K = {args.num_samples}, "
             f"IDS lambda = {pj.discovery.acquisition.IDS_LAMBDA:g}; feature interactions "
             f"{'on (with features)' if args.feature_interactions else 'off'}; "
             f"{'runs with features: pj.HUB_MODEL ' + str(dict(pj.HUB_MODEL)) + '; ' if args.model == 'hub' else ''}"
             "first round random. "
             f"Device: {jax.devices()[0].platform}; jax {jax.__version__}. "
             "Cells: top-5% found, mean [min, max] over seeds.", ""]
    print("\n".join(lines), flush=True)
    curves = {}
    if not args.timing_only:
        corum = find_corum(args.corum)
        for name in args.matrices.split(","):
            more, curves[name] = run_matrix(name, args, corum, policies, modes)
            lines += more
            if args.markdown:  # written after every matrix, so a cut-short run keeps its tables
                pathlib.Path(args.markdown).write_text("\n".join(lines) + "\n")
    if args.timing or args.timing_only:
        lines += timing(args)
    if args.markdown:
        pathlib.Path(args.markdown).write_text("\n".join(lines) + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(curves))


if __name__ == "__main__":
    main()
