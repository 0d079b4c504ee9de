"""The pair-score heatmap draws any PairScores, with NaN cells, grouping and highlights."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from pairint_jax.plotting import order_by_groups, plot_pair_heatmap  # noqa: E402
from pairint_jax.results import PairScores  # noqa: E402


def _scores():
    names = ("A", "B", "C", "D")
    pairs = np.array([(i, j) for i in range(4) for j in range(i + 1, 4)])
    score = np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6])
    reason = np.array(["", "double 'A+C' not in screen", "", "", "", ""], dtype=object)
    return PairScores(names, pairs, score, reason, test="disjointedness")


def test_order_by_groups():
    order, labels = order_by_groups(["A", "B", "C", "D"], {"A": "x", "B": "y", "C": "x"})
    assert list(order) == [0, 2, 1, 3] and labels == ["x", "x", "y", ""]


def test_heatmap_renders_and_saves(tmp_path):
    fig = plot_pair_heatmap(_scores(), groups={"A": "x", "B": "y", "C": "x", "D": "y"}, highlight=[("B", "D")])
    ax = fig.axes[0]
    img = ax.images[0].get_array()
    assert img.mask.sum() == 4 + 2  # diagonal + the unscorable pair (both triangles)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "C", "B", "D"]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 2  # A-C and C-A are visibly marked
    assert len(fig.axes) == 2  # the colour bar
    out = tmp_path / "heat.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
