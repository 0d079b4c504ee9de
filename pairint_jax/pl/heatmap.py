"""Pair-score heatmaps (paper Figs. 3 and 5) that stay fast at genome-screen sizes.

The whole matrix is one ``imshow`` of a masked array (NaN cells take the colour map's
"bad" colour: light grey, "not measured") plus one RGBA overlay for the diagonal and the
measured-but-unscorable cells, so drawing costs the same for 10 or 1,000 perturbations.
Perturbations can keep their order, follow a grouping (e.g. pathways), a given list, or a
hierarchical clustering of their score profiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from pairint_jax.pl._common import as_matrix, finish, pair_lookup

__all__ = ["heatmap", "order_by_groups", "cluster_order"]

_NOT_MEASURED = (0.92, 0.92, 0.92, 1.0)
_UNSCORABLE = (0.55, 0.55, 0.55, 1.0)


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
    first: dict[str, int] = {}
    for lab in labels:
        first.setdefault(lab, len(first))
    if "" in first:  # ungrouped names last
        first[""] = len(first)
    order = sorted(range(len(names)), key=lambda k: (first[labels[k]], k))
    return np.asarray(order), [labels[k] for k in order]


def cluster_order(matrix) -> np.ndarray:
    """Leaf order of an average-linkage clustering of the rows of a symmetric score matrix.

    Missing entries (NaN, the diagonal included) are filled with the median of the finite
    scores, so that perturbations with few measured pairs sit near the middle rather than
    forming a cluster of their own. With fewer than two finite scores the order is unchanged.

    Args:
      matrix: ``[n, n]`` scores.

    Returns:
      ``[n]`` int, a permutation.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import pdist

    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    finite = m[np.isfinite(m)]
    if n < 3 or finite.size < 2:
        return np.arange(n)
    filled = np.where(np.isfinite(m), m, np.median(finite))
    return np.asarray(leaves_list(linkage(pdist(filled, "euclidean"), method="average")), dtype=int)


def _order(names, mat, order, groups):
    if isinstance(order, str):
        if order != "cluster":
            raise ValueError(f"order must be None, 'cluster' or a list of the perturbation names; got {order!r}.")
        if groups is not None:
            raise ValueError("order='cluster' and groups= both set the order; pass one of them.")
        return cluster_order(mat), None
    if order is not None:
        pos = {p: k for k, p in enumerate(names)}
        wanted = [str(p) for p in order]
        missing = [p for p in wanted if p not in pos]
        if missing or len(set(wanted)) != len(wanted) or len(wanted) != len(names):
            raise ValueError(
                f"order must list each of the {len(names)} perturbations once; unknown: {missing[:5]}, "
                f"got {len(wanted)} names ({len(set(wanted))} distinct)."
            )
        return np.asarray([pos[p] for p in wanted]), None
    perm, labels = order_by_groups(names, groups)
    return perm, (labels if groups is not None else None)


def heatmap(
    data,
    *,
    column: str = "score",
    order: str | Sequence[str] | None = None,
    groups: Mapping[str, str] | Sequence[str] | None = None,
    highlight: Iterable[tuple[str, str]] = (),
    highlight_label: str = "known pair",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar_label: str | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    max_labels: int = 150,
    figsize: tuple[float, float] | None = None,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Draw a symmetric pair-score matrix as a heatmap.

    Light grey cells were not measured (the screen has no such double), dark grey cells were
    measured but could not be scored (see the result's ``reason``), the diagonal is white.

    Args:
      data: a :class:`~pairint_jax.PairScores` or a square ``pandas.DataFrame`` labelled by
        perturbation on both axes (e.g. ``res.to_matrix_frame()``).
      column: ``"score"`` or a numeric column of a ``PairScores`` (e.g. ``"q_value"``).
      order: None (the given order, or the ``groups`` order), ``"cluster"`` (average-linkage
        clustering of the score profiles, :func:`cluster_order`) or a list of every name.
      groups: ordering by group (see :func:`order_by_groups`); boundaries are drawn and
        group names written along the top.
      highlight: ``(a, b)`` pairs to outline (known or true interactions).
      highlight_label: the legend entry of the outlined pairs.
      cmap, vmin, vmax: colour scale (default: the finite values' range).
      colorbar_label: default the test's score name and unit (e.g. "disjointedness MMD² (unbiased)").
      title: default the test's name.
      annotate: write the values in the cells; default only when ``n <= 12``.
      max_labels: above this many perturbations, only every k-th name is written.
      figsize: default: the matrix grows with ``n`` up to 10 inches, plus margins for the labels.
      ax: a matplotlib ``Axes`` to draw into; default a new figure.
      show: True calls ``plt.show()`` and returns None; default False.
      save: a path to save the figure to (the format follows the suffix).
      dpi: resolution when saving.

    Returns:
      The matplotlib ``Figure`` (None when ``show=True``).

    Example:
      >>> fig = pj.pl.heatmap(res, order="cluster", highlight=[("A", "B")], save="scores.png")  # doctest: +SKIP
    """
    import matplotlib
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    names, mat, measured, label = as_matrix(data, column)
    n = len(names)
    perm, labels = _order(names, mat, order, groups)
    mat, measured = mat[np.ix_(perm, perm)], measured[np.ix_(perm, perm)]
    onames = [names[k] for k in perm]
    fig, ax, cax = _figure(ax, onames, figsize, show=show, grouped=labels is not None, max_labels=max_labels)

    finite = mat[np.isfinite(mat)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    cm = matplotlib.colormaps[cmap].with_extremes(bad=_NOT_MEASURED)
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cm, vmin=lo, vmax=hi, interpolation="none", aspect="equal")
    overlay = np.zeros((n, n, 4))
    unscorable = measured & ~np.isfinite(mat)
    np.fill_diagonal(unscorable, False)
    overlay[unscorable] = _UNSCORABLE
    overlay[np.eye(n, dtype=bool)] = (1.0, 1.0, 1.0, 1.0)
    ax.imshow(overlay, interpolation="none", aspect="equal")

    hl = pair_lookup(highlight, onames)
    if hl:
        boxes = [Rectangle((c - 0.5, r - 0.5), 1, 1) for a, b in hl for r, c in ((a, b), (b, a))]
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor="red", linewidth=1.5 if n > 40 else 2.0,
                                          zorder=4, clip_on=False))
    if labels is not None:
        _draw_groups(ax, labels, n)
    if annotate is None:
        annotate = n <= 12
    if annotate:
        for a, b in zip(*np.nonzero(np.isfinite(mat))):
            frac = (mat[a, b] - lo) / (hi - lo)
            ax.text(b, a, f"{mat[a, b]:.2g}", ha="center", va="center", fontsize=7, color="black" if frac > 0.6 else "white")
    _tick_labels(ax, onames, max_labels)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    test = getattr(data, "test", "") or "pair scores"
    ax.set_title(title if title is not None else test)
    cb = fig.colorbar(im, cax=cax) if cax is not None else fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(colorbar_label or label)
    handles = []
    if (~measured & ~np.eye(n, dtype=bool)).any():
        handles.append(Patch(facecolor=_NOT_MEASURED, edgecolor="0.7", label="not measured"))
    if unscorable.any():
        handles.append(Patch(facecolor=_UNSCORABLE, label="measured, not scorable"))
    if hl:
        handles.append(Patch(fill=False, edgecolor="red", lw=2.0, label=highlight_label))
    if handles and cax is not None:  # our own figure: under the x labels, in the bottom margin
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(ax.get_position().x0, 0.0), ncol=3, fontsize=8,
                   frameon=False)
    elif handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.08 - 0.6 / max(n, 1) ** 0.5),
                  ncol=3, fontsize=8, frameon=False)
    return finish(fig, show=show, save=save, dpi=dpi, tight=cax is None)


def _label_step_and_size(n: int, side_in: float, max_labels: int) -> tuple[int, float]:
    step = max(1, int(np.ceil(n / max(int(max_labels), 1))))
    return step, float(np.clip(0.75 * side_in * 72 / max(n / step, 1), 3.0, 9.0))


def _figure(ax, names, figsize, *, show, grouped, max_labels):
    """``(fig, ax, cax)``. A new figure gets fixed margins computed from the label lengths
    (no layout engine: at 100+ names, constrained layout measures every label a dozen
    times and would double the drawing time); ``cax`` is None when drawing into ``ax``."""
    if ax is not None:
        return ax.figure, ax, None
    n = len(names)
    side = min(10.0, 2.5 + 0.3 * n) if figsize is None else min(figsize[0] - 2.0, figsize[1] - 1.5)
    step, fs = _label_step_and_size(n, side, max_labels)
    label_in = max((len(p) for p in names[::step]), default=1) * fs * 0.62 / 72 + 0.12
    left, bottom = label_in + 0.15, label_in + 0.55  # the legend sits under the x labels
    right, top = 1.35, 0.45 + (0.75 if grouped else 0.0)
    width, height = figsize if figsize is not None else (left + side + right, bottom + side + top)
    side = max(0.5, min(width - left - right, height - bottom - top))
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width, height))
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.2) / width, bottom / height, 0.18 / width, side / height))
    return fig, ax, cax


def _tick_labels(ax, names, max_labels):
    n = len(names)
    side = min(ax.get_position().width * ax.figure.get_figwidth(), ax.get_position().height * ax.figure.get_figheight())
    step, fs = _label_step_and_size(n, side, max_labels)
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([names[k] for k in ticks], rotation=90, fontsize=fs)
    ax.set_yticklabels([names[k] for k in ticks], fontsize=fs)
    ax.tick_params(length=2 if n > 40 else 3.5)


def _draw_groups(ax, labels, n):
    bounds = [k for k in range(1, n) if labels[k] != labels[k - 1]]
    for k in bounds:
        ax.axhline(k - 0.5, color="white", lw=1.5)
        ax.axvline(k - 0.5, color="white", lw=1.5)
    starts, ends = [0, *bounds], [*bounds, n]
    named = [(s, e) for s, e in zip(starts, ends) if labels[s]]
    if named:  # group names on a secondary top axis, so the title sits above them
        top = ax.secondary_xaxis("top")
        top.set_xticks([(s + e - 1) / 2 for s, e in named])
        top.set_xticklabels([labels[s] for s, _ in named], rotation=30, ha="left", fontsize=8)
        top.tick_params(length=0)
