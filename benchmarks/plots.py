"""Heatmap drawing time at Norman's size: ``pj.pl.heatmap`` against a per-cell-patch heatmap.

Workload: the 112 genes of Norman et al. (2019) with 131 measured doubles (the rest of the
6,216 pairs never measured), as in a Norman-sized Perturb-seq screen. Each timing builds the
figure and renders it to a PNG (Agg, 100 dpi), the work ``pairint score`` does per test.

The peer is the way the heatmap was drawn before (December 2026): ``imshow`` plus one hatched
``Rectangle`` per unscorable cell, constrained layout. It is re-created here (our own former
code, reduced to what costs time) and timed in the same run.

    python benchmarks/plots.py [--repeats 5] [--n-doubles 131]

Correctness is checked before timing: both draw the same finite cells.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import pairint_jax as pj  # noqa: E402
from pairint_jax.results import PairScores  # noqa: E402


def norman_sized(n_doubles: int, seed: int = 0) -> PairScores:
    genes, gi = pj.datasets.norman2019_gi()
    n = len(genes)
    iu, ju = np.triu_indices(n, 1)
    rng = np.random.default_rng(seed)
    measured = np.zeros(len(iu), bool)
    measured[rng.choice(len(iu), n_doubles, replace=False)] = True
    score = np.where(measured, np.abs(gi[iu, ju]), np.nan)
    reason = np.where(measured, "", "double not in screen").astype(object)
    return PairScores(tuple(genes), np.stack([iu, ju], 1), score, reason, test="additivity", measured=measured)


def patch_heatmap(res):
    """The former drawing: one hatched patch per missing off-diagonal cell."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    mat = res.matrix
    n = mat.shape[0]
    size = min(14.0, 2.5 + 0.32 * n)
    fig = Figure(figsize=(size + 1.2, size + 0.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    cm = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cm, interpolation="nearest")
    off = ~np.eye(n, dtype=bool)
    for a, b in zip(*np.nonzero(off & ~np.isfinite(mat))):
        ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, facecolor="0.85", edgecolor="0.55", hatch="///", lw=0))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(res.perturbations, rotation=90, fontsize=3.5)
    ax.set_yticklabels(res.perturbations, fontsize=3.5)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def render(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.tell()


def timed(fn, repeats):
    fn()  # warm-up: fonts, colour maps, imports
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-doubles", type=int, default=131)
    args = ap.parse_args()
    res = norman_sized(args.n_doubles)

    ours_fig = pj.pl.heatmap(res)
    peer_fig = patch_heatmap(res)
    a = np.ma.filled(ours_fig.axes[0].images[0].get_array(), np.nan)
    b = np.ma.filled(peer_fig.axes[0].images[0].get_array(), np.nan)
    assert np.array_equal(np.isfinite(a), np.isfinite(b)) and np.allclose(a[np.isfinite(a)], b[np.isfinite(b)])
    assert int(np.isfinite(a).sum()) == 2 * args.n_doubles and not ours_fig.axes[0].patches
    print(f"correctness: both draw the same {2 * args.n_doubles} finite cells; ours has "
          f"{len(ours_fig.axes[0].images)} images and 0 patches, the peer {len(peer_fig.axes[0].patches)} patches")

    rows = [
        ("heatmap, given order", lambda: render(pj.pl.heatmap(res))),
        ("heatmap, order='cluster'", lambda: render(pj.pl.heatmap(res, order="cluster"))),
    ]
    peer_wall, peer_cpu = timed(lambda: render(patch_heatmap(res)), max(1, min(args.repeats, 3)))
    load = os.getloadavg()[0]
    print(f"\nn = {res.n} genes, {args.n_doubles} measured doubles of {len(res.score)} pairs; PNG at 100 dpi; "
          f"median of {args.repeats} (peer: {max(1, min(args.repeats, 3))}); load average {load:.2f} at the start\n")
    print("| workload | ours (wall) | ours (CPU) | peer: one patch per missing cell (wall) | peer (CPU) | ratio (wall) |")
    print("|---|---|---|---|---|---|")
    for name, fn in rows:
        wall, cpu = timed(fn, args.repeats)
        print(f"| {name} | {wall:.3f} s | {cpu:.3f} s | {peer_wall:.2f} s | {peer_cpu:.2f} s | {peer_wall / wall:.1f}x |")


if __name__ == "__main__":
    main()
