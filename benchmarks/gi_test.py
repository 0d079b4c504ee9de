"""The additive-null test and the interaction types on Perturb-seq-like screens (not a timed test).

Three parts, each printed as a table:

1. **Level.** Additive-only screens (1,000 genes, 12 singles, 50-gene programmes,
   ``kinds={}``, ``disjoint_programmes=True``), every pair of the singles, at 50 and 300
   cells per group, in ``X_pca`` (top 50 PCs of log-normalised X, fitted on all cells) and
   log-normalised ``X``, both normalised by the cells' true library sizes: every double is
   then exactly additive in ``log1p`` of normalised counts. ``X observed totals`` normalises
   by each cell's observed total instead (as scanpy's ``normalize_total``): the total moves
   with the programmes, which makes additive doubles slightly non-additive (a real effect of
   that normalisation, which the test may detect with many cells). The pairs of one
   screen share the control and the singles, so their rejections are positively
   correlated; the rate is pooled over several independent screens (seeds) and printed
   with a Clopper-Pearson 95% interval (which treats the tests as independent) next to a
   between-screen interval (a t interval over the screens' rates, which does not) and the
   design effect (variance of a screen's count / the binomial variance at 0.05).
   At 50 cells two more projections separate the test from the data-dependence of the
   PCs: ``X_pca heldout`` projects on PCs fitted to an independent screen of the same
   design (a fixed projection), ``X_pca ctrl+singles`` on PCs fitted to the control and
   singles only (not the doubles).
2. **Power and types.** Screens with the default planted kinds (disjoint programmes,
   normalised by the observed totals as a user would): the fraction of planted pairs with
   q < 0.05 and the confusion table of ``pj.interaction_types`` against the kinds.
3. **Timing.** The test for all pairs of a ``n``-single screen (``n (n - 1) / 2``
   doubles) against a per-pair NumPy loop of the same statistic and sign-flip draws
   (float32 data, as ours), measured in the same run; correctness first (the loop's
   statistic must match ours). The loop is timed on a subset of pairs and extrapolated
   (each pair costs the same: four groups of the same size).

    python benchmarks/gi_test.py            # level 10 screens per setting; timing 50 singles (1,225 doubles)
    python benchmarks/gi_test.py --quick    # 5 screens, 499 draws; types on 1,000 genes; 15-single timing
    python benchmarks/gi_test.py --ci       # the level at the sizes of the CI test, 30 screens
    python benchmarks/gi_test.py --parts level --seeds 20
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import warnings

import jax
import numpy as np
import pandas as pd
from scipy import stats

import pairint_jax as pj

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from tests._perturbseq import normalise_log1p, pca_basis  # noqa: E402

ALPHA = 0.05


def _screen(seed, cells, *, n_genes, n_single, n_double, kinds, n_pcs, programme_size=50, n_control=None,
            heldout=False, exact=False):
    """Reps of one generated screen (``X_pca``, ``X``; with ``heldout`` also ``X_pca heldout``) and its truth."""
    kw = dict(n_genes=n_genes, n_single=n_single, n_double=n_double, cells_per_group=cells, kinds=kinds,
              programme_size=programme_size, n_control=n_control, disjoint_programmes=True)
    adata, truth = pj.synthetic.perturbseq(jax.random.key(seed), **kw)
    counts = adata.X
    # additive-only: normalise by the true library sizes, so that H0 holds exactly (tests/_perturbseq.py)
    x = normalise_log1p(counts, truth.library_size if exact else None)
    adata.X = x
    mean, top = pca_basis(x, n_pcs)
    adata.obsm["X_pca"] = (np.asarray(x @ top) - mean @ top).astype(np.float32)
    reps = ["X_pca", "X"]
    if exact:  # and as scanpy would: by the observed totals, which move with the programmes
        adata.layers["observed totals"] = normalise_log1p(counts)
    if heldout:
        # PCs of an independent screen of the same design: a projection fixed before seeing these cells
        other, other_truth = pj.synthetic.perturbseq(jax.random.key(1_000_003 + seed), **kw)
        mean2, top2 = pca_basis(normalise_log1p(other.X, other_truth.library_size if exact else None), n_pcs)
        adata.obsm["X_pca heldout"] = (np.asarray(x @ top2) - mean2 @ top2).astype(np.float32)
        # PCs fitted on the control and the singles only: they follow those groups' sampling noise
        alone = ~adata.obs["perturbation"].astype(str).str.contains("+", regex=False).to_numpy()
        mean3, top3 = pca_basis(x[alone], n_pcs)
        adata.obsm["X_pca ctrl+singles"] = (np.asarray(x @ top3) - mean3 @ top3).astype(np.float32)
        reps[1:1] = ["X_pca heldout", "X_pca ctrl+singles"]
    out = {rep: pj.io.from_anndata(adata, groupby="perturbation", use_rep=rep) for rep in reps}
    if exact:
        out["X observed totals"] = pj.io.from_anndata(adata, groupby="perturbation", layer="observed totals")
    return out, truth


def level(cells, *, n_genes, n_single, n_pcs, n_perm, seeds, heldout, programme_size=50, n_double=None,
          n_control=None) -> pd.DataFrame:
    """One row per (screen, representation): additive pairs tested and rejected at 0.05."""
    rows = []
    for seed in seeds:
        reps, _ = _screen(seed, cells, n_genes=n_genes, n_single=n_single, n_double=n_double or math.comb(n_single, 2),
                          kinds={}, n_pcs=n_pcs, programme_size=programme_size, n_control=n_control,
                          heldout=heldout, exact=True)
        for rep, screen in reps.items():
            with warnings.catch_warnings():  # the p-value floor warning: only p <= 0.05 is used here
                warnings.simplefilter("ignore", pj.multitest.PValueFloorWarning)
                p = pj.additivity_scores(screen, n_permutations=n_perm, key=seed).to_frame().p_value.to_numpy()
            rows.append(dict(rep=rep, cells=cells, seed=seed, tests=len(p), rejected=int((p <= ALPHA).sum())))
    return pd.DataFrame(rows)


def summarise_level(frame: pd.DataFrame) -> pd.DataFrame:
    """Pooled rate with a Clopper-Pearson interval, a between-screen t interval and the design effect."""
    out = []
    for (rep, cells), part in frame.groupby(["rep", "cells"], sort=False):
        k, n, s = int(part.rejected.sum()), int(part.tests.sum()), len(part)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        rates = part.rejected / part.tests
        half = stats.t.ppf(0.975, s - 1) * rates.std(ddof=1) / math.sqrt(s) if s > 1 else math.nan
        per = part.tests.mean()
        deff = part.rejected.var(ddof=1) / (per * ALPHA * (1 - ALPHA)) if s > 1 else math.nan
        out.append({"rep": rep, "cells": cells, "screens": s, "tests": n, "rejected": k, "rate": round(k / n, 3),
                    "binomial 95%": f"[{ci.low:.3f}, {ci.high:.3f}]",
                    "between-screen 95%": f"[{max(rates.mean() - half, 0):.3f}, {rates.mean() + half:.3f}]",
                    "design effect": round(deff, 1), "per screen": " ".join(map(str, part.rejected))})
    return pd.DataFrame(out)


def power_and_types(cells, *, n_genes, n_single, n_double, n_pcs, n_perm, seeds) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, calls = [], []
    for seed in seeds:
        reps, truth = _screen(seed, cells, n_genes=n_genes, n_single=n_single, n_double=n_double, kinds=None,
                              n_pcs=n_pcs)
        for rep, screen in reps.items():
            df = pj.interaction_types(screen, n_permutations=n_perm, n_bootstrap=100, key=seed)
            m = df.merge(truth.pairs[["a", "b", "kind"]], on=["a", "b"])
            hit = m.kind != "additive"
            rows.append(dict(rep=rep, cells=cells, seed=seed, planted=int(hit.sum()),
                             detected=int((hit & (m.q_value < ALPHA)).sum())))
            calls.append(m.assign(rep=rep, cells=cells)[["rep", "cells", "kind", "type"]])
    return pd.DataFrame(rows), pd.concat(calls)


def _numpy_pair(groups, eps, signs=(1.0, 1.0, -1.0, -1.0)):
    """T and its p-value against sign-flip draws for one pair: the per-pair NumPy peer."""
    means = [g.mean(0) for g in groups]
    c = sum(s * m for s, m in zip(signs, means))
    ns = [len(g) for g in groups]
    res = [(g - m) * np.float32(np.sqrt(n / (n - 1.0))) for g, m, n in zip(groups, means, ns)]
    ss = [float(np.sum((g - m) ** 2)) for g, m in zip(groups, means)]
    t = float(c @ c) - sum(s / (n * (n - 1.0)) for s, n in zip(ss, ns))
    u = [e @ r for e, r in zip(eps, res)]
    t_null = sum((np.sum(ug * ug, 1) - s * n / (n - 1.0)) / (n * (n - 1.0)) for ug, s, n in zip(u, ss, ns))
    for a in range(4):
        for b in range(a + 1, 4):
            t_null = t_null + 2 * signs[a] * signs[b] * np.sum(u[a] * u[b], 1) / (ns[a] * ns[b])
    return t, (1.0 + np.sum(t_null >= t)) / (len(t_null) + 1.0)


def timing(n_single: int, cells: int, d: int, n_perm: int, n_loop: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"P{k:02d}" for k in range(n_single)]
    shift = {n: (rng.normal(size=d) * 0.2).astype(np.float32) for n in names}
    labels = ["ctrl"] + names + [f"{a}+{b}" for k, a in enumerate(names) for b in names[k + 1:]]
    x = np.empty((len(labels) * cells, d), np.float32)
    for k, lab in enumerate(labels):  # filled group by group: bounded temporaries at 1,276 x 200 x 2,000
        x[k * cells:(k + 1) * cells] = rng.standard_normal((cells, d), dtype=np.float32) + sum(
            (shift[p] for p in lab.split("+") if p in shift), np.zeros(d, np.float32))
    screen = pj.Screen.from_arrays(x, np.repeat(labels, cells))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pj.additivity_scores(screen, n_permutations=n_perm, key=0)  # compile
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = pj.additivity_scores(screen, n_permutations=n_perm, key=0)
            times.append(time.perf_counter() - t0)
    ours = float(np.median(times))
    stat = res.column_matrix("statistic")
    step = max(1, len(screen.pairs) // n_loop)  # a spread-out subset of pairs
    subset = list(zip(screen.pairs, screen.pair_groups))[::step][:n_loop]
    t0 = time.perf_counter()
    for (i, j), groups in subset:
        rows = [np.asarray(screen.group(int(g)), np.float32) for g in groups]
        eps = [rng.choice(np.array([-1.0, 1.0], np.float32), size=(n_perm, len(r))) for r in rows]
        t, _ = _numpy_pair(rows, eps)
        assert abs(t - stat[i, j]) <= 1e-3 * (abs(t) + math.sqrt(d) * 4 / cells), (t, stat[i, j])
    loop = (time.perf_counter() - t0) / len(subset) * len(screen.pairs)
    return {"pairs": len(screen.pairs), "cells": cells, "d": d, "B": n_perm, "JAX first call (s)": round(first, 2),
            "JAX steady (s)": round(ours, 2), "NumPy loop (s)": round(loop, 2),
            "loop pairs timed": len(subset), "loop / JAX": round(loop / ours, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller screens (CPU): see the printed sizes")
    ap.add_argument("--parts", default="level,types,timing", help="comma-separated: level, types, timing")
    ap.add_argument("--seeds", type=int, default=None, help="screens per setting of the level (default 10, quick 5)")
    ap.add_argument("--ci", action="store_true",
                    help="level only, at the sizes of the CI level test (400 genes, 10 singles, 10 doubles, 20 PCs)")
    ap.add_argument("--timing-d", default="50,2000", help="comma-separated feature counts of the timing")
    args = ap.parse_args(argv)
    q, parts = args.quick, set(args.parts.split(","))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# gi_test {datetime.date.today()} | {platform.processor() or platform.machine()} | jax {jax.__version__} "
          f"| {jax.devices()[0].device_kind} | quick={q} | load {load}")
    genes, n_pcs = (1000 if q else 2000), 50
    if args.ci:  # the design effect that tests/test_interaction_types.py::test_level_on_additive_pairs assumes
        seeds = range(args.seeds or 30)
        frame = pd.concat([level(c, n_genes=400, n_single=10, n_double=10, n_control=10 * c, n_pcs=20, n_perm=199,
                                 seeds=seeds, heldout=False, programme_size=30) for c in (50, 300)])
        print("\n## level at the CI sizes (400 genes, 10 singles, 10 random doubles, control 10x, 20 PCs, 199 draws)\n")
        print(summarise_level(frame).to_string(index=False))
        tested = frame[frame.rep.isin(["X_pca", "X"])]  # the CI test sums both representations of each screen
        per_screen = tested.groupby(["cells", "seed"]).rejected.sum()
        for cells, part in per_screen.groupby(level="cells"):
            binomial = 2 * 10 * ALPHA * (1 - ALPHA)
            print(f"cells {cells}: design effect of a screen's count over both reps: {part.var(ddof=1) / binomial:.2f}")
        parts = set()
    if "level" in parts:
        seeds = range(args.seeds or (5 if q else 10))
        sizes = dict(n_genes=1000, n_single=12, n_pcs=n_pcs, n_perm=499 if q else 999, seeds=seeds)
        t0 = time.perf_counter()
        frame = pd.concat([level(cells, heldout=cells == 50, **sizes) for cells in (50, 300)])
        print(f"\n## level on additive-only screens ({ {k: v for k, v in sizes.items() if k != 'seeds'} }, "
              f"{len(seeds)} screens per setting, {time.perf_counter() - t0:.0f} s)\n")
        print(summarise_level(frame).to_string(index=False))
    if "types" in parts:
        sizes = dict(n_genes=genes, n_single=12 if q else 20, n_double=30 if q else 40, n_pcs=n_pcs,
                     n_perm=499 if q else 999, seeds=(0,) if q else (0, 1, 2))
        rows, calls = [], []
        for cells in (50, 300):
            r, c = power_and_types(cells, **sizes)
            rows.append(r)
            calls.append(c)
        power = pd.concat(rows).groupby(["rep", "cells"])[["planted", "detected"]].sum()
        power["power"] = (power.detected / power.planted).round(3)
        print(f"\n## power ({sizes})\n")
        print(power.to_string())
        conf = pd.concat(calls)
        for rep, part in conf.groupby("rep"):
            print(f"\n## type calls against planted kinds: {rep} (both group sizes)\n")
            print(pd.crosstab(part.kind, part.type).to_string())
    if "timing" in parts:
        n_single, cells = (15, 100) if q else (50, 200)
        print(f"\n## timing: all pairs of a {n_single}-single screen, {cells} cells per group\n")
        tab = [timing(n_single, cells, int(d), n_perm=200, n_loop=10 if q else 20, repeats=3)
               for d in args.timing_d.split(",")]
        print(pd.DataFrame(tab).to_string(index=False))


if __name__ == "__main__":
    main()
