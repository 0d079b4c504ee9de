"""Multiple testing for pair p-values: one implementation behind every test's ``q_value``.

A screen tests every measured pair at once, so a p-value below 0.05 means little on its
own. Every :class:`~pairint_jax.PairScores` that carries a ``p_value`` column derives its
``q_value`` column here (see :meth:`PairScores.with_correction`), whichever test made it:

* ``"bh"``: Benjamini-Hochberg adjusted p-values, which control the false discovery rate
  (Benjamini & Hochberg, 1995), computed by :func:`scipy.stats.false_discovery_control`;
* ``"holm"``: Holm's step-down adjusted p-values, which control the family-wise error rate
  (Holm, 1979): ``q_(k) = max_{l <= k} min(1, (m - l + 1) p_(l))`` over the ``m`` p-values
  sorted ascending.

A pair is significant at level ``alpha`` when ``q <= alpha``. NaN p-values (pairs that
were not tested) are left out of the family and stay NaN.

Permutation p-values ``(1 + #{T_null >= T_obs}) / (1 + B)`` can never go below
``1 / (B + 1)``: with ``m`` pairs, neither correction can reject a single pair unless
``1 / (B + 1) <= alpha / m``, i.e. ``B >= m / alpha - 1``
(:func:`permutations_needed`).

References:
  Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate", J. R. Stat. Soc. B 57 (1995).
  S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 6 (1979).
  B. Phipson and G. K. Smyth, "Permutation p-values should never be zero", Stat. Appl. Genet. Mol. Biol. 9 (2010).
"""

from __future__ import annotations

import math

import numpy as np

from pairint_jax._validate import nonnegative_int, one_of, probability

__all__ = ["CORRECTIONS", "adjust_p_values", "p_floor", "permutations_needed", "PValueFloorWarning"]

#: Names accepted by ``correction=`` (and their long names, for tables and reports).
CORRECTIONS = {"bh": "Benjamini-Hochberg (FDR)", "holm": "Holm (FWER)"}


class PValueFloorWarning(UserWarning):
    """Some pairs sit at the smallest attainable permutation p-value, ``1 / (B + 1)``."""


def adjust_p_values(p, *, method: str = "bh") -> np.ndarray:
    """Adjusted p-values (q-values) of a family of tests; NaN entries are ignored and stay NaN.

    Args:
      p: ``[P]`` p-values in ``[0, 1]``; NaN marks a pair that was not tested.
      method: ``"bh"`` (Benjamini-Hochberg, through
        :func:`scipy.stats.false_discovery_control`) or ``"holm"``.

    Returns:
      ``[P]`` float64 adjusted p-values, each ``>= p`` and ``<= 1``.

    Raises:
      ValueError: an unknown ``method`` or a finite p-value outside ``[0, 1]``.

    Example:
      >>> adjust_p_values([0.01, 0.04, np.nan, 0.03], method="holm").round(3).tolist()
      [0.03, 0.06, nan, 0.06]
    """
    one_of("correction", method, tuple(CORRECTIONS), hint="bh controls the false discovery rate, holm the family-wise error.")
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return q
    pv = p[ok]
    if pv.min() < 0.0 or pv.max() > 1.0:
        raise ValueError(f"p-values must lie in [0, 1], got values in [{pv.min():.3g}, {pv.max():.3g}].")
    if method == "bh":
        from scipy.stats import false_discovery_control

        q[ok] = false_discovery_control(pv, method="bh")
    else:
        q[ok] = _holm(pv)
    return q


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.shape[0]
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


def p_floor(p, n_permutations: int) -> np.ndarray:
    """``[P]`` bool: where a permutation p-value sits at its floor ``1 / (B + 1)``.

    Such a pair beat every one of the ``B`` permutations; its true p-value may be far
    smaller, and only more permutations can tell. NaN p-values give False.

    Args:
      p: ``[P]`` p-values (NaN where not tested).
      n_permutations: ``B``, the number of permutations (or bootstrap draws) behind them.
    """
    b = nonnegative_int("n_permutations", n_permutations)
    p = np.asarray(p, dtype=np.float64)
    # p is never below the floor; the tolerance absorbs float32 rounding of (1 + 0) / (1 + B).
    return np.isfinite(p) & (p <= (1.0 + 1e-5) / (b + 1.0))


def permutations_needed(n_tests: int, alpha: float = 0.05) -> int:
    """The fewest permutations ``B`` whose floor ``1 / (B + 1)`` is at most ``alpha / n_tests``.

    Below this, Holm cannot reject any pair and Benjamini-Hochberg can reject only when
    many pairs share the smallest p-value: ``B >= n_tests / alpha - 1``.

    Example:
      >>> permutations_needed(190, alpha=0.05)
      3799
    """
    m = nonnegative_int("n_tests", n_tests)
    a = probability("alpha", alpha)
    return max(0, math.ceil(m / a - 1e-9) - 1)
