"""Why a k-NN KL ``KL(p0 || pg)`` could not be computed, naming the condition at fault.

The estimate of condition ``g`` is invalid when some control point lacks a k-th
nearest *distinct* neighbour, either inside the control (``rho``: then *every*
condition fails and the control is at fault) or inside ``g`` (``nu``: only ``g``
fails). A point lacks one when, among its ``k + max_duplicates`` nearest candidates,
fewer than ``k`` are at a non-zero distance. This module redoes the failing search
(:func:`pairint_jax.stats.knn_distances`, the same code) and tells the three causes
apart on the host:

* more exact copies of the point than ``max_duplicates`` can skip (e.g. a constant
  control);
* fewer than ``k`` distinct candidates at all;
* neither: the distances underflow float32 (observations that differ by less than
  about 1e-19), so distinct points look identical. Then duplicates are not blamed.

It runs only when some estimate failed (a rare path).
"""

from __future__ import annotations

import numpy as np

from pairint_jax.screen import bucket_size
from pairint_jax.stats.knn import knn_distances


def _explain(point: np.ndarray, candidates: np.ndarray, *, own: bool, who: str, k: int, max_duplicates: int) -> str:
    """Why ``point`` has no k-th distinct neighbour among ``candidates`` (``own``: it is one of them)."""
    same = np.all(candidates == point, axis=1)
    copies = int(same.sum()) - int(own)
    distinct = len(np.unique(candidates[~same], axis=0))
    what = "one of its observations" if own else "a control observation"
    if copies > max_duplicates:
        return (
            f"{who} holds {copies} exact copies of {what}{' (a constant control?)' if own and distinct == 0 else ''}, "
            f"more than max_duplicates={max_duplicates} can skip, so that point has fewer than k={k} distinct "
            f"neighbours; pass max_duplicates={copies} or more, or remove the duplicated rows"
        )
    if distinct < k:
        return (
            f"{who} has only {distinct} observation(s) distinct from {what}; the k-NN estimator with k={k} needs "
            f"{k}; use a smaller k"
        )
    pair = "the control's observations" if own else f"the observations of {who} and the control"
    return (
        f"distances between {pair} underflow to 0 in float32 (observations differing by less than about 1e-19), "
        "so distinct points look identical; rescale x (e.g. standardise the features)"
    )


def knn_failure_reasons(screen, x0, groups, *, k: int, max_duplicates: int) -> dict[int, str]:
    """The reason of every condition in ``groups`` whose k-NN KL was invalid.

    Args:
      screen: the :class:`~pairint_jax.Screen`.
      x0: ``[n0, d]`` the control's observations as the estimator read them (same dtype).
      groups: group ids whose estimate came back invalid.
      k, max_duplicates: the estimator's options.

    Returns:
      ``{group id: reason}``; each reason names the condition at fault. When the control
      is at fault every condition gets the same reason, which names the control only.
    """
    x0 = np.asarray(x0)
    rho = np.asarray(knn_distances(x0, k=k, max_duplicates=max_duplicates)[0])
    bad0 = np.flatnonzero(~np.isfinite(rho))
    opts = dict(k=k, max_duplicates=max_duplicates)
    if len(bad0):
        why = _explain(x0[bad0[0]], x0, own=True, who=f"the control {screen.control!r}", **opts)
        # one reason for every condition (a pair then shows it once): the control is at fault
        return {int(g): f"no k-NN KL can be computed because of the control: {why}" for g in groups}
    out = {}
    for g in groups:
        cond = screen.conditions[g]
        xg, mask = screen.padded([g], size=bucket_size(int(screen.counts[g])))  # few distinct compiled shapes
        xg = xg[0].reshape(xg.shape[1], -1).astype(x0.dtype)
        nu = np.asarray(knn_distances(x0, xg, k=k, mask_q=mask[0], max_duplicates=max_duplicates)[0])
        bad = np.flatnonzero(~np.isfinite(nu))
        if len(bad):
            why = _explain(x0[bad[0]], xg[mask[0]], own=False, who=f"condition {cond!r}", **opts)
        else:  # not expected: the same search succeeded this time
            why = f"fewer than k={k} distinct neighbours"
        out[int(g)] = f"k-NN KL of condition {cond!r} could not be computed: {why}"
    return out
