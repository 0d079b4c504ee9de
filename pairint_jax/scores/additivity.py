"""Additivity scores: how far the double's mean embedding is from the sum of the singles' shifts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.results import PairScores, pair_scores_from_screen

__all__ = ["additivity_scores"]


@jax.jit
def _additivity(x, group_ids, counts, pair_groups):
    # Centre on the control mean first: the shifts mu_g - mu_0 are then computed from
    # small numbers, avoiding float32 cancellation when the data have a large offset.
    n_groups = counts.shape[0]
    x = x - jnp.sum(jnp.where((group_ids == 0)[:, None], x, 0.0), axis=0) / counts[0]
    mu = jax.ops.segment_sum(x, group_ids, num_segments=n_groups) / counts[:, None]
    ij, c, i, j = (pair_groups[:, k] for k in range(4))
    resid = (mu[ij] - mu[c]) - (mu[i] - mu[c]) - (mu[j] - mu[c])
    return jnp.sqrt(jnp.sum(resid * resid, axis=1))


def additivity_scores(screen) -> PairScores:
    """Additivity score of every scorable pair: the norm of the non-additive part of the mean shift.

    ``A_ij = || (mu_ij - mu_0) - (mu_i - mu_0) - (mu_j - mu_0) ||_2`` where ``mu_g`` is the
    mean observation (embedding) of condition ``g`` (paper App. C.2). Disjoint perturbations give ``A_ij ~ 0`` (up to sampling noise of
    order ``sqrt(tr Cov / n)``); large values mean the double's mean shift is not the
    sum of the singles' shifts. All pairs in one jitted pass (a ``segment_sum`` over
    groups, then a gather).

    Args:
      screen: a :class:`~pairint_jax.Screen`; observations ``[N, *feature_shape]`` are
        flattened to ``[N, d]``.

    Returns:
      :class:`~pairint_jax.PairScores` with ``test="additivity"``; unscorable pairs are
      NaN with a reason.

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> x = np.array([[0.0], [0.0], [1.0], [1.0], [2.0], [2.0], [5.0], [5.0]])
      >>> s = pj.Screen.from_arrays(x, ["ctrl"] * 2 + ["A"] * 2 + ["B"] * 2 + ["A+B"] * 2)
      >>> float(pj.additivity_scores(s).score[0])   # 5 - (1 + 2)
      2.0
    """
    settings = {}
    if len(screen.pairs) == 0:
        return pair_scores_from_screen(screen, np.zeros(0), test="additivity", settings=settings)
    if screen.is_sparse:  # group means from the sparse rows (float64), never the dense matrix
        mu = screen.group_means().reshape(screen.n_groups, -1)
        ij, c, i, j = (screen.pair_groups[:, k] for k in range(4))
        score = np.linalg.norm((mu[ij] - mu[c]) - (mu[i] - mu[c]) - (mu[j] - mu[c]), axis=1)
        return pair_scores_from_screen(screen, score, test="additivity", settings=settings)
    x = np.asarray(screen.x).reshape(screen.x.shape[0], -1)
    dtype = np.float64 if (x.dtype == np.float64 and jax.config.jax_enable_x64) else np.float32
    score = _additivity(
        jnp.asarray(x, dtype),
        jnp.asarray(screen.group_ids, jnp.int32),
        jnp.asarray(screen.counts, dtype),
        jnp.asarray(screen.pair_groups, jnp.int32),
    )
    return pair_scores_from_screen(screen, np.asarray(score), test="additivity", settings=settings)
