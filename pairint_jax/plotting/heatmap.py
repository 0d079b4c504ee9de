"""Pair-score heatmaps in the style of the paper's Fig. 3 and Fig. 5.

A symmetric ``n x n`` matrix of pair scores, perturbations ordered by a grouping
(e.g. pathways), bright = strong interaction. Cells that could not be scored are
hatched grey, the diagonal is left white, and known or true pairs can be outlined.
Works for any :class:`~pairint_jax.PairScores` (disjointedness, additivity,
separability). Uses only the object-oriented matplotlib API (safe under Agg, no
``plt.show``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["plot_pair_heatmap", "order_by_groups"]


def order_by_groups(perturbations: Sequence[str], groups: Mapping[str, str] | Sequence[str] | None):
    """Order perturbations by group (first appearance of each group), stable within groups.

    Args:
      perturbations: the ``n`` names.
      groups: a mapping name -> group label, or ``n`` labels aligned with
        ``perturbations``, or None (keep the given order). Names missing from a
        mapping go last, in a group ``""``.

    Returns:
      ``(order [n] int, labels [n] str)``: the permutation and each ordered name's group.
    """
    names = list(perturbations)
    if groups is None:
        return np.arange(len(names)), [""] * len(names)
    if isinstance(groups, Mapping):
        labels = [str(groups.get(p, "")) for p in names]
    else:
        labels = [str(g) for g in groups]
        if len(labels) != len(names):
            raise ValueError(f"groups has {len(labels)} labels for {len(names)} perturbations; give one per perturbation.")
    first = {}
    for lab in labels:
        first.setdefault(lab, len(first))
    if "" in first:  # ungrouped names last
        first[""] = len(first)
    order = sorted(range(len(names)), key=lambda k: (first[labels[k]], k))
    return np.asarray(order), [labels[k] for k in order]


def plot_pair_heatmap(
    scores,
    *,
    column: str = "score",
    groups: Mapping[str, str] | Sequence[str] | None = None,
    highlight: Iterable[tuple[str, str]] = (),
    ax=None,
    title: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar_label: str | None = None,
    annotate: bool | None = None,
    highlight_label: str = "known pair",
):
    """Draw a pair-score matrix as a heatmap (paper Fig. 3/5 style).

    Args:
      scores: a :class:`~pairint_jax.PairScores` (anything with ``perturbations``,
        ``test`` and ``column_matrix``).
      column: ``"score"`` or a numeric column (e.g. ``"p_value"``, ``"bandwidth"``).
      groups: ordering (see :func:`order_by_groups`); group boundaries are drawn and
        group names written along the top.
      highlight: ``(a, b)`` pairs to outline (known or true interactions).
      ax: a matplotlib ``Axes`` to draw into; default: a new figure.
      title: default ``"<test>: <column>"``.
      cmap, vmin, vmax: colour scale (default: the finite values' range).
      colorbar_label: default the column name.
      annotate: write values in the cells; default only when ``n <= 12``.
      highlight_label: the legend entry of the outlined pairs (e.g. ``"true interaction"``).

    Returns:
      The matplotlib ``Figure``.

    Example:
      >>> fig = plot_pair_heatmap(res, groups={"A": "p1", "B": "p1", "C": "p2"}, highlight=[("A", "B")])
      >>> fig.savefig("scores.png", dpi=150)  # doctest: +SKIP
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    names = list(scores.perturbations)
    n = len(names)
    mat = np.asarray(scores.column_matrix(column), dtype=np.float64)
    order, labels = order_by_groups(names, groups)
    mat = mat[np.ix_(order, order)]
    onames = [names[k] for k in order]
    if ax is None:
        size = min(14.0, 2.5 + 0.32 * n)
        fig = Figure(figsize=(size + 1.2, size + 0.6), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    finite = mat[np.isfinite(mat)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
    # unscorable (off-diagonal NaN) cells: hatched grey, clearly unlike any colour of the scale
    off = ~np.eye(n, dtype=bool)
    for a, b in zip(*np.nonzero(off & ~np.isfinite(mat))):
        ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, facecolor="0.85", edgecolor="0.55", hatch="///", lw=0))
    pos = {p: k for k, p in enumerate(onames)}
    hl = [(pos[a], pos[b]) for a, b in highlight if a in pos and b in pos]
    for a, b in hl:
        for r, c in ((a, b), (b, a)):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.0))
    # group boundaries and names
    if groups is not None:
        bounds = [k for k in range(1, n) if labels[k] != labels[k - 1]]
        for k in bounds:
            ax.axhline(k - 0.5, color="white", lw=1.5)
            ax.axvline(k - 0.5, color="white", lw=1.5)
        starts = [0] + bounds
        ends = bounds + [n]
        named = [(s, e) for s, e in zip(starts, ends) if labels[s]]
        if named:
            # Group names on a secondary top axis, so the title is placed above them.
            top = ax.secondary_xaxis("top")
            top.set_xticks([(s + e - 1) / 2 for s, e in named])
            top.set_xticklabels([labels[s] for s, _ in named], rotation=30, ha="left", fontsize=8)
            top.tick_params(length=0)
    if annotate is None:
        annotate = n <= 12
    if annotate:
        for a in range(n):
            for b in range(n):
                if a != b and np.isfinite(mat[a, b]):
                    v = mat[a, b]
                    frac = (v - lo) / (hi - lo)
                    ax.text(b, a, f"{v:.2g}", ha="center", va="center", fontsize=7, color="black" if frac > 0.6 else "white")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 9 if n <= 20 else (7 if n <= 40 else (5 if n <= 80 else 3.5))
    ax.set_xticklabels(onames, rotation=90, fontsize=fs)
    ax.set_yticklabels(onames, fontsize=fs)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    test = getattr(scores, "test", "") or "pair scores"
    ax.set_title(title if title is not None else f"{test}: {column}")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(colorbar_label or column)
    handles = []
    if (off & ~np.isfinite(mat)).any():
        handles.append(Patch(facecolor="0.85", edgecolor="0.55", hatch="///", label="not scorable"))
    if hl:
        handles.append(Patch(fill=False, edgecolor="red", lw=2.0, label=highlight_label))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2, fontsize=8, frameon=False)
    return fig
