"""Additivity scores: how far the double's mean embedding is from the sum of the singles' shifts.

The question answered: *is the mean shift of the double the sum of the singles' shifts?*
(the genetic-interaction notion of Norman 2019 and GEARS). With ``n_permutations``, each
pair also gets the additive-null test of :mod:`pairint_jax.scores.additive_null`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, as_screen, nonnegative_int, optional_positive_int
from pairint_jax.results import PairScores, pair_scores_from_screen
from pairint_jax.scores.additive_null import additive_null_p_values
from pairint_jax.scores.group_draws import MIN_CELLS, auto_chunk, layout

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


def additivity_scores(
    screen, *, n_permutations: int | None = None, key=None, pairs_per_chunk: int | str | None = "auto"
) -> PairScores:
    """Additivity score of every scorable pair, and optionally its additive-null test.

    Answers: *is the mean shift of the double the sum of the singles' shifts?* (the
    genetic-interaction notion; a shift of every cell counts, unlike disjointedness).

    ``A_ij = || (mu_ij - mu_0) - (mu_i - mu_0) - (mu_j - mu_0) ||_2`` where ``mu_g`` is the
    mean observation (embedding) of condition ``g`` (paper App. C.2). Disjoint perturbations give ``A_ij ~ 0`` (up to sampling noise of
    order ``sqrt(tr Cov / n)``); large values mean the double's mean shift is not the
    sum of the singles' shifts. All pairs in one jitted pass (a ``segment_sum`` over
    groups, then a gather).

    With ``n_permutations = B > 0``, every pair is tested against the additive null
    ``H0: mu_ij - mu_i - mu_j + mu_0 = 0`` by the unbiased statistic
    ``T = ||xbar_ij - xbar_i - xbar_j + xbar_0||^2 - sum_g tr(S_g) / n_g`` and ``B``
    sign-flip (wild) multiplier draws of its null distribution, each group flipped within
    itself, so the test is valid with unequal group sizes and covariances and in
    thousands of dimensions (why: :mod:`pairint_jax.scores.additive_null`). One compiled
    pass: a per-pair function ``vmap``-ed over chunks of pairs, the doubles read from the
    host in blocks (a sparse screen is densified one block at a time).

    Args:
      screen: a :class:`~pairint_jax.Screen`; observations ``[N, *feature_shape]`` are
        flattened to ``[N, d]``.
      n_permutations: ``B``, the multiplier draws per pair of the additive-null test;
        ``None`` or 0 (default) skips the test (no ``p_value``/``q_value`` columns, no
        randomness). The smallest p-value is ``1 / (B + 1)``: with ``m`` pairs, BH needs
        ``B >= m / alpha - 1`` to reject a lone pair (:func:`pairint_jax.multitest.permutations_needed`).
      key: PRNG key (typed, legacy ``uint32[2]`` or an int seed; ``None``: ``key(0)``).
        Group ``g`` draws its signs from ``fold_in(key, g)`` (row by row), so results do
        not depend on chunking, padding or sparse storage. The control's and the
        singles' draws are shared by the pairs that use them, so p-values of different
        pairs are dependent (as they already are through the shared control).
      pairs_per_chunk: pairs per vmapped chunk of the test (``"auto"``: about 16 MiB of
        intermediates on CPU, 1 GiB on accelerators; ``None``: all pairs of a block at once).

    Returns:
      :class:`~pairint_jax.PairScores` with ``test="additivity"``; unscorable pairs are
      NaN with a reason. With the test: the columns ``statistic`` (``T``), ``p_value``
      and ``q_value`` (Benjamini-Hochberg); a pair with a group of fewer than
      ``MIN_CELLS = 5`` observations keeps its score and gets a NaN p-value with a reason.

    Raises:
      TypeError: ``screen`` is not a Screen; a non-int ``n_permutations``; a bad key.
      ValueError: a negative ``n_permutations`` or ``pairs_per_chunk``.

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> x = np.array([[0.0], [0.0], [1.0], [1.0], [2.0], [2.0], [5.0], [5.0]])
      >>> s = pj.Screen.from_arrays(x, ["ctrl"] * 2 + ["A"] * 2 + ["B"] * 2 + ["A+B"] * 2)
      >>> float(pj.additivity_scores(s).score[0])   # 5 - (1 + 2)
      2.0
    """
    screen = as_screen(screen, caller="additivity_scores")
    n_perm = 0 if n_permutations is None else nonnegative_int("n_permutations", n_permutations)
    key = as_key(key)
    if pairs_per_chunk != "auto":
        pairs_per_chunk = optional_positive_int("pairs_per_chunk", pairs_per_chunk, hint="Or pass 'auto' or None.")
    settings = {"n_permutations": n_perm, "null": "sign-flip multiplier bootstrap", "min_cells": MIN_CELLS} if n_perm else {}
    if len(screen.pairs) == 0:
        return pair_scores_from_screen(screen, np.zeros(0), test="additivity", settings=settings)
    score = _scores(screen)
    if not n_perm:
        return pair_scores_from_screen(screen, score, test="additivity", settings=settings)
    lay = layout(screen)
    chunk = pairs_per_chunk
    if chunk == "auto":
        d = int(np.prod(screen.feature_shape))
        chunk = auto_chunk(len(lay.d_groups), lay.m_d, d, n_perm, np.dtype(lay.dtype).itemsize)
    t, p, reason = additive_null_p_values(screen, n_draws=n_perm, key=key, chunk=chunk)
    reason = np.asarray([f"no p-value: {r}" if r else "" for r in reason], dtype=object)
    return pair_scores_from_screen(screen, score, columns={"statistic": t, "p_value": p}, reason=reason,
                                   test="additivity", settings=settings)


def _scores(screen) -> np.ndarray:
    """``[P]`` additivity scores (the existing one-pass computation)."""
    if screen.is_sparse:  # group means from the sparse rows (float64), never the dense matrix
        mu = screen.group_means().reshape(screen.n_groups, -1)
        ij, c, i, j = (screen.pair_groups[:, k] for k in range(4))
        return np.linalg.norm((mu[ij] - mu[c]) - (mu[i] - mu[c]) - (mu[j] - mu[c]), axis=1)
    x = np.asarray(screen.x).reshape(screen.x.shape[0], -1)
    dtype = np.float64 if (x.dtype == np.float64 and jax.config.jax_enable_x64) else np.float32
    score = _additivity(
        jnp.asarray(x, dtype),
        jnp.asarray(screen.group_ids, jnp.int32),
        jnp.asarray(screen.counts, dtype),
        jnp.asarray(screen.pair_groups, jnp.int32),
    )
    return np.asarray(score)
