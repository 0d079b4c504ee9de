"""Observed against expected shifts of the doubles: is ``Δ_ij`` the sum ``Δ_i + Δ_j``?

``Δ_g = μ_g - μ_0`` is the shift of condition ``g``'s mean observation from the control's.
Under additivity a double's shift is the sum of its singles' shifts; the plot puts one dot
per scorable pair at (expected, observed) after projecting both vectors on one direction,
so additive pairs fall on the diagonal, pairs above it move further than the sum
(synergy), pairs below it less (buffering).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from pairint_jax._validate import as_screen
from pairint_jax.pl._common import as_matrix, finish, new_figure
from pairint_jax.pl.pairs import _highlight_set, _name

__all__ = ["observed_vs_expected", "group_means"]


def group_means(screen) -> np.ndarray:
    """``[G, d]`` float64 mean observation of every condition of ``screen`` (flattened features).

    :meth:`Screen.group_means <pairint_jax.Screen.group_means>` flattened: dense and sparse
    screens alike (a sparse screen is summed group by group, never densified).
    """
    screen = as_screen(screen, caller="group_means")
    return screen.group_means().reshape(screen.n_groups, -1)


def _direction(direction, single_shifts: np.ndarray):
    if isinstance(direction, str):
        if direction == "expected":
            return None, "the expected shift Δ_i + Δ_j of each pair"
        if direction == "pc1":
            _, _, vt = np.linalg.svd(single_shifts, full_matrices=False)
            u = vt[0]
            if (single_shifts @ u).sum() < 0:
                u = -u
            return u, "the first principal axis of the singles' shifts"
        raise ValueError(f"direction must be 'expected', 'pc1' or a [d] vector; got {direction!r}.")
    u = np.asarray(direction, dtype=np.float64).reshape(-1)
    if u.shape[0] != single_shifts.shape[1] or not np.isfinite(u).all() or not np.linalg.norm(u) > 0:
        raise ValueError(f"direction must be a finite non-zero vector of length d = {single_shifts.shape[1]}, got shape {u.shape}.")
    return u / np.linalg.norm(u), "the given direction"


def observed_vs_expected(
    screen,
    scores=None,
    *,
    direction="expected",
    max_labels: int = 10,
    highlight: Iterable[tuple[str, str]] = (),
    cmap: str = "viridis",
    title: str | None = None,
    figsize: tuple[float, float] = (5.5, 5.0),
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Observed shift ``Δ_ij`` against the expected ``Δ_i + Δ_j``, projected on one direction.

    Directions (``direction=``):

    * ``"expected"`` (default): each pair on its own expected shift ``e = Δ_i + Δ_j``:
      x = ``||e||``, y = ``Δ_ij · e / ||e||``. The diagonal is additivity along the direction
      the singles predict; this works in any dimension and needs no common axis.
    * ``"pc1"``: every pair on the first principal axis ``u`` of the singles' shifts (the
      leading right singular vector of the ``[n, d]`` matrix of ``Δ_i``, signed so that the
      shifts project positively): x = ``e · u``, y = ``Δ_ij · u``.
    * a ``[d]`` vector: the same with that direction.

    Args:
      screen: the :class:`~pairint_jax.Screen` the scores came from (its group means are needed).
      scores: optional :class:`~pairint_jax.PairScores` or square DataFrame: colours the dots
        and picks the pairs to name (the highest scores); without it, the pairs furthest from
        the diagonal are named.
      direction: see above.
      max_labels: how many pairs to name.
      highlight: ``(a, b)`` pairs to circle and name.
      cmap, title, figsize, ax, show, save, dpi: as in :func:`pairint_jax.pl.heatmap`.

    Returns:
      The matplotlib ``Figure`` (None when ``show=True``).
    """
    screen = as_screen(screen, caller="observed_vs_expected")
    if len(screen.pairs) == 0:
        raise ValueError("the screen has no scorable pair (control, both singles and the double measured).")
    mu = group_means(screen)
    shift = mu - mu[0]
    ij, _, i, j = (np.asarray(screen.pair_groups)[:, k] for k in range(4))
    single_groups = np.asarray(screen.single_groups)
    singles = shift[single_groups[single_groups >= 0]]
    expected, observed = shift[i] + shift[j], shift[ij]
    u, what = _direction(direction, singles)
    if u is None:
        norm = np.linalg.norm(expected, axis=1)
        x = norm
        y = np.einsum("pd,pd->p", observed, expected) / np.where(norm > 0, norm, 1.0)
        xlabel, ylabel = "expected: ||Δ_i + Δ_j||", "observed: Δ_ij along Δ_i + Δ_j"
    else:
        x, y = expected @ u, observed @ u
        xlabel, ylabel = "expected: (Δ_i + Δ_j) · u", "observed: Δ_ij · u"
    names = [str(p) for p in screen.perturbations]
    pairs = np.asarray(screen.pairs)
    colour = None
    if scores is not None:
        snames, mat, _, clabel = as_matrix(scores)
        pos = {p: k for k, p in enumerate(snames)}
        idx = np.array([pos.get(p, -1) for p in names])  # perturbation -> row of the score matrix (-1: absent)
        ia, ib = idx[pairs[:, 0]], idx[pairs[:, 1]]
        colour = np.where((ia >= 0) & (ib >= 0), np.asarray(mat, float)[np.maximum(ia, 0), np.maximum(ib, 0)], np.nan)
    fig, ax = new_figure(ax, figsize, show=show)
    lo, hi = float(min(x.min(), y.min(), 0.0)), float(max(x.max(), y.max(), 0.0))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8, ls="--", label="additive (observed = expected)")
    if colour is not None and np.isfinite(colour).any():
        sc = ax.scatter(x, y, c=np.ma.masked_invalid(colour), cmap=cmap, s=18, lw=0, plotnonfinite=True)
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04).set_label(clabel)
        rank_key = np.where(np.isfinite(colour), -colour, np.inf)
    else:
        ax.scatter(x, y, s=18, lw=0, color="#1f77b4")
        rank_key = -np.abs(y - x)
    named = set(np.argsort(rank_key, kind="stable")[:max_labels].tolist())
    hl = _highlight_set(highlight)
    row = {p: i for i, p in enumerate(names)}
    code = pairs[:, 0] * len(names) + pairs[:, 1]  # the screen's pairs as flat indices; highlight is looked up there
    wanted = [row[a] * len(names) + row[b] for a, b in hl if a in row and b in row]
    for k in np.flatnonzero(np.isin(code, wanted)).tolist():
        ax.scatter([x[k]], [y[k]], s=70, facecolors="none", edgecolors="red", lw=1.2)
        named.add(k)
    for k in sorted(named):
        _name(ax, x[k], y[k], f"{names[pairs[k, 0]]}+{names[pairs[k, 1]]}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"observed vs expected shift from control\n(projected on {what})", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return finish(fig, show=show, save=save, dpi=dpi)
