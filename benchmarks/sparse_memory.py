"""Peak memory of reading and scoring a sparse screen: 100k cells x 2,000 genes (issue 14).

    python benchmarks/sparse_memory.py                 # 100,000 x 2,000, 5% non-zero
    python benchmarks/sparse_memory.py --cells 20000   # smaller

The claim: reading a sparse AnnData into a ``Screen`` and scoring it keeps the peak memory
within **2x the sparse matrix plus one dense group** (the AnnData's own matrix, one sorted
sparse copy, one group densified at a time), where the old reader densified the whole
matrix (``.toarray()``; 800 MB here, 15 GB at Norman's size).

Each workload runs in its own fresh process. Memory is measured two ways:
* ``traced``: the AnnData's matrix plus the peak of NumPy/SciPy allocations made by the
  workload (``tracemalloc``; excludes the interpreter and JAX's runtime);
* ``rss``: the growth of the process's peak resident memory during the workload
  (``VmHWM`` after resetting it through ``/proc/self/clear_refs``), plus the matrix.

Correctness first: the additivity scores of the sparse screen are checked against a
float64 NumPy reference on the dense matrix before anything is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import tracemalloc

import numpy as np


def _screen_adata(cells: int, genes: int, density: float, seed: int = 0):
    """Control 10%, 40 singles and 50 doubles (all scorable) sharing the rest equally; counts with a shift on
    the doubles of the first 20 genes. Built row block by row block (no dense matrix)."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_ctrl = cells // 10
    singles = [f"G{i}" for i in range(40)]
    doubles = [f"G{2 * i}+G{2 * i + 1}" for i in range(20)] + [f"G{i}+G{i + 10}" for i in range(30)]
    conds = singles + doubles
    per = (cells - n_ctrl) // len(conds)
    labels = np.asarray(["ctrl"] * (cells - per * len(conds)) + [c for c in conds for _ in range(per)], dtype=object)
    k = max(1, int(round(density * genes)))
    indices = np.empty((cells, k), np.int32)
    for lo in range(0, cells, 4096):
        hi = min(cells, lo + 4096)
        indices[lo:hi] = np.sort(np.argpartition(rng.random((hi - lo, genes), dtype=np.float32), k, axis=1)[:, :k], axis=1)
    data = rng.poisson(1.5, size=(cells, k)).astype(np.float32) + 1
    is_double = np.asarray(["+" in lab for lab in labels])
    data[is_double] += 2.0 * (indices[is_double] < 20)
    x = sp.csr_matrix((data.ravel(), indices.ravel(), np.arange(0, cells * k + 1, k)), shape=(cells, genes))
    order = rng.permutation(cells)  # real files are not sorted by group
    obs = pd.DataFrame({"perturbation": labels[order]}, index=[f"c{i}" for i in range(cells)])
    return anndata.AnnData(X=x[order], obs=obs)


def _rss(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _workload(name, args, out):
    import warnings

    import pairint_jax as pj

    warnings.simplefilter("ignore")
    adata = _screen_adata(args.cells, args.genes, args.density)
    pj.additivity_scores(pj.Screen.from_arrays(np.zeros((8, 2)), ["ctrl"] * 2 + ["A"] * 2 + ["B"] * 2 + ["A+B"] * 2))
    reset = _reset_hwm()
    rss0 = _rss("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    if name == "ours: read (from_anndata)":
        pj.io.from_anndata(adata)
    elif name == "ours: read + every group densified in turn":
        s = pj.io.from_anndata(adata)
        for g in range(s.n_groups):
            s.group(g)
    elif name == "ours: read + additivity":
        pj.additivity_scores(pj.io.from_anndata(adata))
    elif name == "old: densify X, read, additivity":
        pj.additivity_scores(pj.Screen.from_arrays(adata.X.toarray(), adata.obs["perturbation"].to_numpy()))
    else:
        raise ValueError(name)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out.put((name, elapsed, peak, (_rss("VmHWM") - rss0) if reset else float("nan")))


def _check(args) -> dict:
    """Sparse additivity == float64 reference on the dense matrix; sizes for the bound."""
    import pairint_jax as pj

    adata = _screen_adata(args.cells, args.genes, args.density)
    s = pj.io.from_anndata(adata)
    assert s.is_sparse
    dense = adata.X.toarray().astype(np.float64)
    labels = np.asarray(["+".join(pj.parse_label(lab)) or "ctrl" for lab in adata.obs["perturbation"]])
    mu = {c: dense[labels == c].mean(0) for c in s.conditions}
    res = pj.additivity_scores(s).to_frame().dropna(subset=["score"])
    for a, b, score in zip(res["a"], res["b"], res["score"]):
        ref = np.linalg.norm(mu[f"{a}+{b}"] - mu[a] - mu[b] + mu["ctrl"])
        assert abs(score - ref) <= 1e-9 * max(1.0, ref), (a, b, score, ref)
    x = adata.X
    return {
        "sparse": x.data.nbytes + x.indices.nbytes + x.indptr.nbytes,
        "group": int(s.counts.max()) * args.genes * 4,
        "dense": args.cells * args.genes * 4,
        "pairs": len(res),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--density", type=float, default=0.05)
    args = ap.parse_args()
    sizes = _check(args)
    mb = 1 / 2**20
    bound = 2 * sizes["sparse"] + sizes["group"]
    print(f"screen: {args.cells} x {args.genes}, density {args.density}; sparse matrix {sizes['sparse'] * mb:.1f} MiB, "
          f"dense {sizes['dense'] * mb:.1f} MiB, largest group dense {sizes['group'] * mb:.1f} MiB; "
          f"bound 2 x sparse + group = {bound * mb:.1f} MiB")
    print(f"check: additivity of {sizes['pairs']} pairs equals the float64 dense reference (rel. 1e-9)\n")
    names = ["ours: read (from_anndata)", "ours: read + every group densified in turn", "ours: read + additivity",
             "old: densify X, read, additivity"]
    ctx = mp.get_context("spawn")
    print("| workload | time | traced peak (matrix + workload) | rss peak (matrix + growth) | / bound | / dense |")
    print("|---|---|---|---|---|---|")
    for name in names:
        q = ctx.Queue()
        p = ctx.Process(target=_workload, args=(name, args, q))
        p.start()
        _, elapsed, peak, rss = q.get()
        p.join()
        traced = sizes["sparse"] + peak
        total_rss = sizes["sparse"] + rss
        print(f"| {name} | {elapsed:.2f} s | {traced * mb:.1f} MiB | {total_rss * mb:.1f} MiB | "
              f"{traced / bound:.2f} | {traced / sizes['dense']:.2f} |")


if __name__ == "__main__":
    main()
