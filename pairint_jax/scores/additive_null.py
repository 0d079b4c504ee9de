"""The additive-null test of every pair: is the double's mean shift the sum of the singles' shifts?

For a pair ``(i, j)`` with groups ``g in (ij, 0, i, j)``, signs ``s = (+1, +1, -1, -1)``,
``n_g`` rows, means ``xbar_g`` and covariances ``Sigma_g`` (any, unequal), the null is

    H0:  mu_ij - mu_i - mu_j + mu_0 = 0      (the genetic-interaction notion of Norman 2019, GEARS).

**Statistic.** The contrast ``c = sum_g s_g xbar_g`` has ``E||c||^2 = ||mu_c||^2 + sum_g
tr(Sigma_g) / n_g``, so

    T = ||c||^2 - sum_g tr(S_g) / n_g

(``S_g`` the unbiased sample covariance) is unbiased for ``||mu_c||^2`` and is ``0`` on
average under H0. Written out, ``T`` is a U-statistic (Chen & Qin 2010 with the
four-group contrast): within each group only the cross products ``<x_r, x_s>``, ``r != s``.

**Null distribution: a sign-flip (wild) multiplier bootstrap.** With group residuals
``e_r = sqrt(n_g / (n_g - 1)) (x_r - xbar_g)`` and independent Rademacher signs ``eps_r``
(:mod:`~pairint_jax.scores.group_draws`: ``u_g = sum_r eps_r e_r``), each draw is the
same U-statistic of the flipped residuals,

    T* = sum_g (||u_g||^2 - sum_r ||e_r||^2) / (n_g (n_g - 1))
         + sum_{g != h} s_g s_h <u_g, u_h> / (n_g n_h),

and ``p = (1 + #{T* >= T}) / (B + 1)``. Why it is valid:

* Under H0, ``T`` is a degenerate U-statistic of the centred rows ``x_r - mu_g``; each
  group is flipped *within itself*, so ``T*`` has mean exactly 0 and the conditional
  covariance of each group's draws is its own ``S_g / n_g``: unequal sizes and unequal
  covariances are reproduced, not pooled (a permutation across the four groups would
  assume exchangeable groups). The draws' variance estimates that of ``T``
  (``2 tr((sum_g Sigma_g / n_g)^2)``) from off-diagonal products only.
* Resampling rows *with replacement* instead (the classical bootstrap) puts the
  diagonal terms ``w_r^2 ||e_r||^2`` back into the draws: their spread grows like
  ``d^2 / n^3`` against the statistic's ``d / n^2``, so in ``d = 2,000`` genes with 50
  cells the draws are ~100x too wide and the test has no power. Sign flips keep the
  diagonal constant (``eps^2 = 1``) and subtract it exactly.
* The test is exact for symmetric residual distributions at any ``n`` (flipping signs
  is then a symmetry of the null) and asymptotically valid otherwise; the residual
  centring makes it slightly conservative when ``d`` is comparable to ``n^2``.

**The representation is taken as fixed.** Principal components fitted on the very cells
being tested are not fixed, and which cells they are fitted on matters
(``benchmarks/gi_test.py``, additive-only Perturb-seq screens, 1,000 genes, 50 PCs, 50
cells per group, 40 screens): PCs fitted on *all* cells (as ``scanpy.tl.pca`` does) kept
the level (rejection rate 0.047 at 0.05), as did PCs fitted on an independent screen
(0.059), but PCs fitted on the control and the singles only rejected 0.114 of the
additive pairs. Those PCs follow the sampling noise of the control's and the singles'
means, which enters every pair's contrast, while the doubles' noise is not selected, so
the contrast's variance in them is larger than the within-group covariances say. Fit the
PCs on all cells (or on other cells) before testing in ``X_pca``. The pairs of one screen
share the control and the singles, so their p-values are positively dependent: the
number of rejections in one screen varies several times more than a binomial count.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pairint_jax.scores.group_draws import GroupDraws, run_pairs, small_groups

__all__ = ["SIGNS", "contrast_statistic", "null_draws", "p_value", "additive_null_p_values"]

#: Signs of the four groups ``(ij, 0, i, j)`` in the interaction contrast.
SIGNS = (1.0, 1.0, -1.0, -1.0)


def _nm1(g: GroupDraws):
    return g.n * jnp.maximum(g.n - 1.0, 1.0)


def contrast_statistic(groups) -> jnp.ndarray:
    """``T = ||sum_g s_g xbar_g||^2 - sum_g tr(S_g) / n_g`` for four :class:`GroupDraws` ``(ij, 0, i, j)``."""
    c = sum(s * g.mean for s, g in zip(SIGNS, groups))
    return jnp.sum(c * c) - sum(g.ss / _nm1(g) for g in groups)


def null_draws(groups) -> jnp.ndarray:
    """``[B]`` sign-flip draws ``T*`` of :func:`contrast_statistic` (formula in the module doc)."""
    within = sum((g.uu - g.ss * g.n / jnp.maximum(g.n - 1.0, 1.0)) / _nm1(g) for g in groups)
    cross = 0.0
    for a in range(4):
        for b in range(a + 1, 4):
            ga, gb = groups[a], groups[b]
            cross = cross + 2.0 * SIGNS[a] * SIGNS[b] * jnp.sum(ga.u * gb.u, axis=1) / (ga.n * gb.n)
    return within + cross


def p_value(t, t_null) -> jnp.ndarray:
    """``(1 + #{T* >= T}) / (B + 1)``."""
    return (1.0 + jnp.sum(t_null >= t)) / (t_null.shape[0] + 1.0)


def _pair_test(dij, d0, di, dj, options):
    del options
    groups = (dij, d0, di, dj)
    t = contrast_statistic(groups)
    return t, p_value(t, null_draws(groups))


def additive_null_p_values(screen, *, n_draws: int, key, chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, p, reason)``, ``[P]`` each in ``screen.pair_groups`` order; pairs with a group
    below :data:`~pairint_jax.scores.group_draws.MIN_CELLS` rows get NaN and a reason."""
    t, p = run_pairs(screen, _pair_test, n_draws=n_draws, key=key, chunk=chunk)
    reason = small_groups(screen)
    bad = reason != ""
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    t[bad], p[bad] = np.nan, np.nan
    return t, p, reason
