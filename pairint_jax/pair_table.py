"""The pair table of a screen: which pairs can be scored, and why the others cannot.

A pair ``(i, j)``, ``i < j`` in ``screen.perturbations`` order, is *scorable* when its
double and both singles are measured with at least :data:`MIN_OBSERVATIONS` rows each
(the control always is: :meth:`~pairint_jax.Screen.from_arrays` refuses a smaller one).
Scorers read the scorable pairs as ``[P, 4]`` group ids ``(i+j, control, i, j)``; every
other pair carries a reason, which the results report instead of a silent NaN.

These functions work on the screen's static metadata only (member tuples, counts,
names); :class:`~pairint_jax.Screen` exposes them as ``pairs``, ``pair_groups``,
``unscorable``, ``reason(i, j)`` and ``all_pairs()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["MIN_OBSERVATIONS", "PairTable", "pair_table", "pair_reason", "all_pairs", "unscorable_message"]

#: Fewest observations a group needs to enter any score (U-statistics, k-NN).
MIN_OBSERVATIONS = 2


class PairTable(NamedTuple):
    """The scorable pairs of a screen and the reasons of the measured unscorable ones.

    Attributes:
      pairs: ``[P, 2]`` int32 perturbation indices ``(i, j)``, ``i < j``, row-major order.
      groups: ``[P, 4]`` int32 group ids ``(i+j, control, i, j)`` of each scorable pair.
      reasons: ``{(i, j): reason}`` for every measured double that cannot be scored.
    """

    pairs: np.ndarray
    groups: np.ndarray
    reasons: dict


def pair_table(
    members: Sequence[tuple[int, ...]],
    counts: np.ndarray,
    single_groups: np.ndarray,
    perturbations: Sequence[str],
    conditions: Sequence[str],
) -> PairTable:
    """The :class:`PairTable` of a screen's groups.

    Args:
      members: ``G`` member tuples ``()``, ``(i,)`` or ``(i, j)`` (group order).
      counts: ``[G]`` observations per group.
      single_groups: ``[n]`` group id of each perturbation's single, ``-1`` if absent.
      perturbations: the ``n`` perturbation names.
      conditions: the ``G`` condition labels.
    """
    scorable, groups, reasons = [], [], {}
    for g, m in enumerate(members):
        if len(m) != 2:
            continue
        i, j = m
        why = []
        for p in (i, j):
            sg = single_groups[p]
            if sg < 0:
                why.append(f"single {perturbations[p]!r} not in screen")
            elif counts[sg] < MIN_OBSERVATIONS:
                why.append(f"single {perturbations[p]!r} has {counts[sg]} observation(s) (need >= {MIN_OBSERVATIONS})")
        if counts[g] < MIN_OBSERVATIONS:
            why.append(f"double {conditions[g]!r} has {counts[g]} observation(s) (need >= {MIN_OBSERVATIONS})")
        if why:
            reasons[(i, j)] = "; ".join(why)
        else:
            scorable.append((i, j))
            groups.append((g, 0, single_groups[i], single_groups[j]))
    return PairTable(
        np.asarray(scorable, dtype=np.int32).reshape(-1, 2), np.asarray(groups, dtype=np.int32).reshape(-1, 4), reasons
    )


def _not_measured(perturbations, sep: str, i, j):
    return "double '" + perturbations[i] + sep + perturbations[j] + "' not in screen"


def pair_reason(table: PairTable, measured: bool, perturbations: Sequence[str], sep: str, i: int, j: int) -> str:
    """Why pair ``(i, j)`` (``i < j``) is not scorable, or ``""`` if it is.

    ``measured`` says whether the double ``(i, j)`` is a group of the screen.
    """
    if (i, j) in table.reasons:
        return table.reasons[(i, j)]
    return "" if measured else _not_measured(perturbations, sep, i, j)


def all_pairs(table: PairTable, perturbations: Sequence[str], sep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair ``i < j`` with its scorable index and reason.

    Returns:
      ``(pairs, index, reasons)``: ``pairs [n(n-1)/2, 2]`` in row-major ``(i, j)``
      order; ``index [n(n-1)/2]`` the row of ``table.pairs`` for scorable pairs and
      ``-1`` otherwise; ``reasons [n(n-1)/2]`` (object) ``""`` for scorable pairs.
    """
    n = len(perturbations)
    iu, ju = np.triu_indices(n, k=1)
    allp = np.stack([iu, ju], axis=1).astype(np.int32)
    index = np.full(len(allp), -1, dtype=np.int64)
    flat = lambda p: p[:, 0].astype(np.int64) * n + p[:, 1]  # noqa: E731
    if len(table.pairs):
        index[np.searchsorted(flat(allp), flat(table.pairs))] = np.arange(len(table.pairs))
    reasons = np.full(len(allp), "", dtype=object)
    missing = index < 0
    if missing.any():
        names = np.asarray(perturbations, dtype=object)
        reasons[missing] = _not_measured(names, sep, allp[missing, 0], allp[missing, 1])
        if table.reasons:
            keyed = np.asarray(list(table.reasons.keys()), dtype=np.int64)
            pos = np.searchsorted(flat(allp), keyed[:, 0] * n + keyed[:, 1])
            reasons[pos] = np.asarray(list(table.reasons.values()), dtype=object)
    return allp, index, reasons


def unscorable_message(table: PairTable, perturbations: Sequence[str], sep: str, *, shown: int = 5) -> str:
    """The warning text listing the measured pairs that cannot be scored (``""`` if none)."""
    if not table.reasons:
        return ""
    items = list(table.reasons.items())
    listed = "; ".join(f"{perturbations[i]}{sep}{perturbations[j]}: {why}" for (i, j), why in items[:shown])
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return (
        f"{len(items)} measured pair(s) cannot be scored and will be reported as NaN: {listed}{more}. "
        "The rest of the screen is scored; see screen.unscorable for every reason."
    )
