"""One dot per pair: a volcano (score against -log10 q) and a ranked dot plot (score against rank).

Both name the pairs worth a look: the significant ones (``q <= alpha``) on the volcano, the
top-ranked ones on the dot plot, up to ``max_labels`` names, plus any ``highlight`` pairs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from pairint_jax.pl._common import as_table, finish, new_figure

__all__ = ["volcano", "ranked"]

_SIG = "#d62728"
_REST = "0.6"


def _highlight_set(highlight: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    out = set()
    for item in highlight or ():
        if isinstance(item, str) or len(item) != 2:
            raise ValueError(f"highlight takes (a, b) pairs of perturbation names, got {item!r}.")
        a, b = (str(v) for v in item)
        out |= {(a, b), (b, a)}
    return out


def _name(ax, x, y, text, **kw):
    ax.annotate(text, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7, **kw)


def volcano(
    data,
    *,
    alpha: float = 0.05,
    max_labels: int = 15,
    highlight: Iterable[tuple[str, str]] = (),
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 4.5),
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Score against ``-log10(q)`` for every scored pair; significant pairs in red and named.

    Args:
      data: a :class:`~pairint_jax.PairScores` with a ``q_value`` column (e.g. disjointedness
        with ``n_permutations > 0``), or its ``to_frame()`` table.
      alpha: the level: pairs with ``q <= alpha`` are significant; a dashed line marks it.
      max_labels: name at most this many significant pairs (the smallest q first).
      highlight: ``(a, b)`` pairs to circle and name whether significant or not.
      title: default the test's name and the correction.
      figsize, ax, show, save, dpi: as in :func:`pairint_jax.pl.heatmap`.

    Returns:
      The matplotlib ``Figure`` (None when ``show=True``).

    Raises:
      ValueError: the scores have no q-values (use :func:`ranked`).
    """
    table, label = as_table(data, alpha=alpha)
    if "q_value" not in table.columns:
        raise ValueError(
            "these scores have no q-values (additivity and separability give none; disjointedness needs "
            "n_permutations > 0): use pj.pl.ranked(...) for a ranked dot plot instead."
        )
    fig, ax = new_figure(ax, figsize, show=show)
    q = table["q_value"].to_numpy(np.float64)
    ok = np.isfinite(q)
    table, q = table[ok].reset_index(drop=True), q[ok]
    y = -np.log10(np.clip(q, 1e-300, 1.0))
    x = table["score"].to_numpy(np.float64)
    sig = table["significant"].to_numpy(bool)
    ax.scatter(x[~sig], y[~sig], s=12, color=_REST, lw=0, label=f"q > {alpha:g}")
    ax.scatter(x[sig], y[sig], s=18, color=_SIG, lw=0, label=f"significant (q ≤ {alpha:g}): {int(sig.sum())}")
    ax.axhline(-np.log10(alpha), color="k", lw=0.8, ls="--", label=f"q = {alpha:g}")
    named = set(np.argsort(q, kind="stable")[: int(sig.sum())][:max_labels].tolist())
    hl = _highlight_set(highlight)
    for k, (a, b) in enumerate(zip(table.a, table.b)):
        if (a, b) in hl:
            ax.scatter([x[k]], [y[k]], s=70, facecolors="none", edgecolors="k", lw=1.0)
            named.add(k)
    for k in sorted(named):
        _name(ax, x[k], y[k], f"{table.a[k]}+{table.b[k]}")
    ax.set_xlabel(label)
    ax.set_ylabel("-log10 q")
    corr = getattr(data, "correction", None)
    test = getattr(data, "test", "") or "pair scores"
    ax.set_title(title if title is not None else f"{test}: {len(table)} tested pairs" + (f" ({corr.upper()} q-values)" if corr else ""))
    ax.legend(frameon=False, fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return finish(fig, show=show, save=save, dpi=dpi)


def ranked(
    data,
    *,
    alpha: float = 0.05,
    max_labels: int = 10,
    highlight: Iterable[tuple[str, str]] = (),
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 4.5),
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Scores sorted from best to worst, one dot per scored pair, the top pairs named.

    Works for every test. Where the scores have q-values, significant pairs are red.

    Args:
      data: a :class:`~pairint_jax.PairScores`, its ``to_frame()`` table or a square matrix DataFrame.
      alpha: the level for ``significant`` (only used with q-values).
      max_labels: name the ``max_labels`` best pairs.
      highlight: ``(a, b)`` pairs to circle and name wherever they rank.
      title, figsize, ax, show, save, dpi: as in :func:`pairint_jax.pl.heatmap`.

    Returns:
      The matplotlib ``Figure`` (None when ``show=True``).
    """
    table, label = as_table(data, alpha=alpha)
    fig, ax = new_figure(ax, figsize, show=show)
    x = np.arange(1, len(table) + 1)
    y = table["score"].to_numpy(np.float64)
    sig = table["significant"].to_numpy(bool) if "significant" in table.columns else np.zeros(len(table), bool)
    ax.scatter(x[~sig], y[~sig], s=12, color="#1f77b4" if not sig.any() else _REST, lw=0)
    if sig.any():
        ax.scatter(x[sig], y[sig], s=18, color=_SIG, lw=0, label=f"significant (q ≤ {alpha:g}): {int(sig.sum())}")
        ax.legend(frameon=False, fontsize=8)
    named = set(range(min(max_labels, len(table))))
    hl = _highlight_set(highlight)
    for k, (a, b) in enumerate(zip(table.a, table.b)):
        if (a, b) in hl:
            ax.scatter([x[k]], [y[k]], s=70, facecolors="none", edgecolors="k", lw=1.0)
            named.add(k)
    for k in sorted(named):
        _name(ax, x[k], y[k], f"{table.a[k]}+{table.b[k]}")
    ax.set_xlabel("rank (1 = highest score)")
    ax.set_ylabel(label)
    if len(table) > 50:
        ax.set_xscale("log")
    test = getattr(data, "test", "") or "pair scores"
    ax.set_title(title if title is not None else f"{test}: {len(table)} scored pairs, best first")
    ax.grid(alpha=0.3)
    return finish(fig, show=show, save=save, dpi=dpi)
