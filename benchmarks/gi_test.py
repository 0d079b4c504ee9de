"""The additive-null test and the interaction types on Perturb-seq-like screens (not a timed test).

Prints, for X_pca (top PCs of log-normalised X) and log-normalised X at two group sizes:
the level (rejection rate at 0.05 on the additive pairs), the power (q < 0.05 on the
planted pairs), the confusion table of the type calls against the planted kinds; then
the time of the test for all pairs of an ``n``-gene screen against a per-pair NumPy loop
of the same statistic and sign-flip draws, measured in the same run (correctness first:
the loop's statistic must match).

    python benchmarks/gi_test.py            # 50 singles (1,225 doubles), 200 cells, d = 50 and 2,000
    python benchmarks/gi_test.py --quick    # smaller screens for a CPU
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
import warnings

import jax
import numpy as np
import pandas as pd

import pairint_jax as pj

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from tests._perturbseq import normalise_log1p, pca  # noqa: E402


def calibration(cells: int, *, n_genes: int, n_single: int, n_double: int, n_perm: int, seeds) -> tuple[list, list]:
    rows, calls = [], []
    for seed in seeds:
        adata, truth = pj.synthetic.perturbseq(jax.random.key(seed), n_genes=n_genes, n_single=n_single,
                                               n_double=n_double, cells_per_group=cells)
        adata.X = normalise_log1p(adata.X)
        adata.obsm["X_pca"] = pca(adata.X, 50)
        for rep in ("X_pca", "X"):
            screen = pj.io.from_anndata(adata, groupby="perturbation", use_rep=rep)
            df = pj.interaction_types(screen, n_permutations=n_perm, n_bootstrap=100, key=seed)
            m = df.merge(truth.pairs[["a", "b", "kind"]], on=["a", "b"])
            add = m[m.kind == "additive"]
            rows.append(dict(rep=rep, cells=cells, seed=seed, additive=len(add), rejected=int((add.p_value <= 0.05).sum()),
                             planted=int((m.kind != "additive").sum()),
                             detected=int(((m.kind != "additive") & (m.q_value < 0.05)).sum())))
            calls.append(m.assign(rep=rep, cells=cells)[["rep", "cells", "kind", "type"]])
    return rows, calls


def _numpy_pair(groups, eps, signs=(1.0, 1.0, -1.0, -1.0)):
    """T and its sign-flip draws for one pair, float64 NumPy (the peer of the compiled pass)."""
    means = [g.mean(0) for g in groups]
    c = sum(s * m for s, m in zip(signs, means))
    ns = [len(g) for g in groups]
    res = [(g - m) * np.sqrt(n / (n - 1.0)) for g, m, n in zip(groups, means, ns)]
    ss = [np.sum((g - m) ** 2) for g, m in zip(groups, means)]
    t = c @ c - sum(s / (n * (n - 1.0)) for s, n in zip(ss, ns))
    u = [e @ r for e, r in zip(eps, res)]
    t_null = sum((np.sum(ug**2, 1) - s * n / (n - 1.0)) / (n * (n - 1.0)) for ug, s, n in zip(u, ss, ns))
    for a in range(4):
        for b in range(a + 1, 4):
            t_null = t_null + 2 * signs[a] * signs[b] * np.sum(u[a] * u[b], 1) / (ns[a] * ns[b])
    return t, (1.0 + np.sum(t_null >= t)) / (len(t_null) + 1.0)


def timing(n_single: int, cells: int, d: int, n_perm: int, n_loop: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"P{k:02d}" for k in range(n_single)]
    shift = {n: rng.normal(size=d) * 0.2 for n in names}
    labels = ["ctrl"] + names + [f"{a}+{b}" for k, a in enumerate(names) for b in names[k + 1:]]
    x = np.concatenate([rng.normal(size=(cells, d)).astype(np.float32)
                        + sum(shift[p] for p in lab.split("+") if p in shift) for lab in labels])
    screen = pj.Screen.from_arrays(x.astype(np.float32), np.repeat(labels, cells))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pj.additivity_scores(screen, n_permutations=n_perm, key=0)  # compile
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            res = pj.additivity_scores(screen, n_permutations=n_perm, key=0)
            times.append(time.perf_counter() - t0)
    ours = float(np.median(times))
    stat = res.column_matrix("statistic")
    t0 = time.perf_counter()
    for (i, j), groups in list(zip(screen.pairs, screen.pair_groups))[:n_loop]:
        rows = [np.asarray(screen.group(int(g)), np.float64) for g in groups]
        eps = [rng.choice([-1.0, 1.0], size=(n_perm, len(r))) for r in rows]
        t, _ = _numpy_pair(rows, eps)
        assert abs(t - stat[i, j]) <= 1e-3 * (abs(t) + np.sqrt(d) * 4 / cells), (t, stat[i, j])
    loop = (time.perf_counter() - t0) / n_loop * len(screen.pairs)
    return dict(pairs=len(screen.pairs), cells=cells, d=d, B=n_perm, jax_s=round(ours, 2),
                numpy_loop_s=round(loop, 2), ratio=round(loop / ours, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller screens (CPU): see the printed sizes")
    args = ap.parse_args(argv)
    q = args.quick
    print(f"# gi_test {datetime.date.today()} | {platform.processor() or platform.machine()} | jax {jax.__version__} "
          f"| {jax.devices()[0].device_kind} | quick={q}")
    sizes = dict(n_genes=1000 if q else 2000, n_single=12 if q else 20, n_double=30 if q else 40,
                 n_perm=499 if q else 999, seeds=(0,) if q else (0, 1, 2))
    rows, calls = [], []
    for cells in (50, 300):
        r, c = calibration(cells, **sizes)
        rows += r
        calls += c
    cal = pd.DataFrame(rows).groupby(["rep", "cells"])[["additive", "rejected", "planted", "detected"]].sum()
    cal["level"] = (cal.rejected / cal.additive).round(3)
    cal["power"] = (cal.detected / cal.planted).round(3)
    print(f"\n## level and power ({sizes})\n")
    print(cal.to_string())
    conf = pd.concat(calls)
    for rep, part in conf.groupby("rep"):
        print(f"\n## type calls against planted kinds: {rep} (both group sizes)\n")
        print(pd.crosstab(part.kind, part.type).to_string())
    n_single, cells = (15, 100) if q else (50, 200)
    print(f"\n## timing: all pairs of a {n_single}-single screen, {cells} cells per group\n")
    tab = [timing(n_single, cells, d, n_perm=200, n_loop=10 if q else 20) for d in (50, 2000)]
    print(pd.DataFrame(tab).to_string(index=False))


if __name__ == "__main__":
    main()
