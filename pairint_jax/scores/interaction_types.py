"""The type of every pair's interaction: the Norman 2019 / GEARS interaction parameters.

Answers: *how* does the double's mean shift differ from the sum of the singles' shifts?
On control-centred group means ``delta_g = xbar_g - xbar_0`` (one value per feature:
gene or principal component), each pair fits, across features and without intercept,

    delta_ij ~ c1 delta_i + c2 delta_j

by a Huber M-estimate (iteratively reweighted least squares, ``k = 1.345`` robust
standard deviations, the scale the MAD of the residuals, re-estimated once halfway), so
that a few outlying features (a knocked-down target, a gene of a new programme) do not
drag the coefficients. The regressors are themselves noisy means, which would bias a
plain fit towards 0 (errors in variables: with 50 cells per group the magnitude came out
about 0.15 low); every weighted solve subtracts their known noise moments (the
per-feature squared standard errors of the four means) from the normal equations
(moment-corrected least squares), and falls back to the plain solve where the corrected
matrix is not clearly positive definite. Only the features that move are fitted: those where the double
or a single differs from the control by more than ``z_select`` (default 3) standard
errors. In 2,000 genes most genes do not move, and their noise (shared through the
control mean) would pull every coefficient towards 0.5. From ``(c1, c2)``:

* ``magnitude = sqrt(c1^2 + c2^2)`` (``sqrt 2`` when additive);
* ``model_fit``: the noise-corrected ``R^2`` of the fit on those features,
  ``1 - (SS_res - E_res) / (SS_tot - E_tot)`` in ``[0, 1]``, where ``E_*`` is what the
  sampling noise of the means alone adds (:func:`huber_fit`);
* ``dominance = |log10(|c1| / |c2|)|`` (0: equal contributions; ``inf``: one is 0);
* ``equality_of_contribution = min(|c1|, |c2|) / max(|c1|, |c2|)`` in ``[0, 1]``.

**Types**, in this order (the first rule that applies; thresholds are keywords):

1. ``additive``: the additive-null test (:mod:`~pairint_jax.scores.additive_null`) is not
   significant, ``q_value > alpha`` (or the pair has too few cells to test);
2. ``suppression``: unequal contributions (``equality < max_equality``, default 0.6) and
   the larger coefficient ``< max_suppressed`` (default 0.6): one single is cancelled
   and the other shrunk, so the double is below that single's own effect. Checked
   before the fit: a double that barely moves has a noisy ``model_fit``;
3. ``neomorphic``: ``model_fit < min_fit`` (default 0.6): the double's shift is not a
   combination of the singles' shifts (new genes move);
4. ``epistasis``: unequal contributions and the larger coefficient ``>= max_suppressed``:
   one single dominates (the double looks like it);
5. ``synergy`` if ``magnitude > sqrt 2``, else ``buffering``: both contribute, more (less)
   than additively.

**Intervals**: ``magnitude`` and ``model_fit`` are refitted on ``n_bootstrap`` draws of
the four group means (the same sign-flip draws as the test: group ``g``'s mean plus
``u_b / n_g``, covariance ``S_g / n_g``), and ``*_lo``/``*_hi`` are their percentiles.
They are approximate: on Gaussian screens with exact ``(c1, c2)`` the 95% magnitude
interval covered the truth for 70-87% of the pairs (50 and 200 cells). ``model_fit`` is
bounded by 1, so its interval rarely reaches 1 even for a perfectly fitting pair.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, as_screen, float_in_range, optional_positive_int, positive_int, probability
from pairint_jax.scores.additive_null import contrast_statistic, null_draws, p_value
from pairint_jax.scores.group_draws import auto_chunk, layout, run_pairs, small_groups

__all__ = ["interaction_types", "huber_fit", "TYPES"]

#: The interaction types, in the order the rules are tried (``additive`` first).
TYPES = ("additive", "suppression", "neomorphic", "epistasis", "synergy", "buffering")
HUBER_K = 1.345
_ITERATIONS = 12  # IRLS steps on each of the two scales


def _solve2(x, w, y, se2):
    """Weighted least squares of ``y`` ``[d]`` on the two columns of ``x`` ``[d, 2]``, corrected
    for the noise of the regressors (moment-corrected least squares). Every column and ``y``
    is a group mean minus the control mean, so with the squared standard errors
    ``se2 = (ij, 0, i, j)`` the regressors' noise covariance is ``[[s_i + s_0, s_0], [s_0,
    s_j + s_0]]`` per feature and each covaries with ``y``'s noise by ``s_0``; their weighted
    sums are subtracted from the normal equations. If the corrected matrix is not clearly
    positive definite (determinant below a tenth of the plain one, or a non-positive
    diagonal), the plain equations are solved instead."""
    _, s_0, s_i, s_j = se2
    xw = x * w[:, None]
    a, b = xw.T @ x, xw.T @ y
    n_0, n_i, n_j = w @ s_0, w @ s_i, w @ s_j
    a_c = a - jnp.stack([jnp.stack([n_i + n_0, n_0]), jnp.stack([n_0, n_j + n_0])])
    b_c = b - jnp.stack([n_0, n_0])
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    det_c = a_c[0, 0] * a_c[1, 1] - a_c[0, 1] * a_c[1, 0]
    ok = (det_c > 0.1 * det) & (a_c[0, 0] > 0) & (a_c[1, 1] > 0)
    a, b = jnp.where(ok, a_c, a), jnp.where(ok, b_c, b)
    ridge = 1e-12 * (jnp.trace(a) + jnp.finfo(y.dtype).tiny)
    a = a + ridge * jnp.eye(2, dtype=y.dtype)
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    return jnp.stack([a[1, 1] * b[0] - a[0, 1] * b[1], a[0, 0] * b[1] - a[1, 0] * b[0]]) / det


def _mad_scale(r, keep):
    return jnp.nanmedian(jnp.where(keep, jnp.abs(r), jnp.nan)) / 0.6745 + jnp.finfo(r.dtype).tiny


def huber_fit(y, a, b, keep, se2):
    """Huber fit of ``y ~ c1 a + c2 b`` (no intercept) over the features ``keep``.

    Args:
      y, a, b: ``[d]`` the double's and the singles' control-centred shifts.
      keep: ``[d]`` bool, the features the fit uses.
      se2: ``(ij, 0, i, j)`` per-feature squared standard errors of the four means ``[d]``.

    Returns:
      ``(c [2], model_fit [])``: the coefficients and the noise-corrected ``R^2``:
      ``1 - (SS_res - E_res) / (SS_tot - E_tot)`` over ``keep`` (``SS_tot = sum y^2``,
      uncentred, as the model has no intercept), where ``E_res`` and
      ``E_tot`` are the sums of squares that the sampling noise of the means alone
      would give (so a small but well-fitted double is not mistaken for a poor fit),
      clipped to ``[0, 1]``.
    """
    x = jnp.stack([a, b], axis=1)
    w0 = keep.astype(y.dtype)
    s_ij, s_0, s_i, s_j = se2
    c = _solve2(x, w0, y, se2)

    def step(c, scale):
        r = jnp.abs(y - x @ c)
        w = jnp.where(r <= HUBER_K * scale, 1.0, HUBER_K * scale / jnp.maximum(r, jnp.finfo(y.dtype).tiny))
        return _solve2(x, w0 * w, y, se2)

    for _ in range(2):  # the scale from the current residuals, then IRLS steps at that scale
        scale = _mad_scale(y - x @ c, keep)
        c = jax.lax.fori_loop(0, _ITERATIONS, lambda _, c, s=scale: step(c, s), c)
    r = y - x @ c
    ss_res = jnp.sum(w0 * r * r) - jnp.sum(w0 * (s_ij + c[0] ** 2 * s_i + c[1] ** 2 * s_j + (c[0] + c[1] - 1) ** 2 * s_0))
    ss_tot = jnp.sum(w0 * y * y) - jnp.sum(w0 * (s_ij + s_0))  # uncentred: the model has no intercept
    ss_res = jnp.maximum(ss_res, 0.0)
    return c, 1.0 - ss_res / jnp.maximum(jnp.maximum(ss_tot, ss_res), jnp.finfo(y.dtype).tiny)


def _pair_types(dij, d0, di, dj, options):
    n_boot, lo, hi, z = options
    groups = (dij, d0, di, dj)
    t = contrast_statistic(groups)
    p = p_value(t, null_draws(groups))
    shifts = [g.mean - d0.mean for g in (dij, di, dj)]
    keep = jnp.any(jnp.stack([jnp.abs(s) > z * jnp.sqrt(g.se2 + d0.se2) for s, g in zip(shifts, (dij, di, dj))]), 0)
    se2 = tuple(g.se2 for g in groups)
    c, fit = huber_fit(*shifts, keep, se2)

    def draw(uij, u0, ui, uj):
        m0 = d0.mean + u0 / d0.n
        return huber_fit(dij.mean + uij / dij.n - m0, di.mean + ui / di.n - m0, dj.mean + uj / dj.n - m0, keep, se2)

    cb, fb = jax.vmap(draw)(dij.u[:n_boot], d0.u[:n_boot], di.u[:n_boot], dj.u[:n_boot])
    mag = jnp.sqrt(jnp.sum(cb * cb, axis=1))
    q = jnp.asarray([lo, hi], mag.dtype)
    return t, p, c, fit, jnp.quantile(mag, q), jnp.quantile(fb, q), jnp.sum(keep)


def _classify(q, big, equality, magnitude, fit, *, alpha, min_fit, max_equality, max_suppressed) -> np.ndarray:
    """The first rule of the module docstring that applies to each pair (``big = max |c|``)."""
    rules = [
        ~(q <= alpha),  # NaN q (untested) is additive too
        (equality < max_equality) & (big < max_suppressed),
        ~(fit >= min_fit),  # a NaN fit (no feature moved) is not a good fit
        equality < max_equality,
        magnitude > math.sqrt(2.0),
    ]
    return np.select(rules, TYPES[:5], default=TYPES[5]).astype(object)


def interaction_types(
    screen,
    *,
    n_bootstrap: int = 200,
    n_permutations: int = 999,
    key=None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    min_fit: float = 0.6,
    max_equality: float = 0.6,
    max_suppressed: float = 0.6,
    z_select: float = 3.0,
    pairs_per_chunk: int | str | None = "auto",
):
    """The interaction parameters and type of every scorable pair (tidy table).

    See the module docstring for the fit, the columns and the rules of the types. One
    compiled pass over all pairs (the per-pair function ``vmap``-ed in chunks; the
    doubles read in host blocks, so sparse screens work and equal dense ones).

    Args:
      screen: a :class:`~pairint_jax.Screen` (use a representation where the mean shift
        means something: ``X_pca`` or log-normalised expression).
      n_bootstrap: draws of the four means for the intervals (the fit is redone per
        draw; default 200).
      n_permutations: sign-flip draws of the additive-null test (default 999; at least
        ``n_bootstrap``, the intervals reuse the first draws).
      key: PRNG key or int seed (``None``: ``jax.random.key(0)``); as in
        :func:`~pairint_jax.additivity_scores`, so the same key gives the same p-values.
      alpha: level of the BH-adjusted ``q_value`` below which a pair is not ``additive``.
      confidence: coverage of the percentile intervals (default 0.95).
      min_fit, max_equality, max_suppressed: the thresholds of the rules (module docstring).
      pairs_per_chunk: pairs per vmapped chunk (``"auto"``, an int, or None).

    Returns:
      ``pandas.DataFrame``, one row per scorable pair, in ``screen.pairs`` order, columns
      ``a, b, c1, c2, magnitude, magnitude_lo, magnitude_hi, model_fit, model_fit_lo,
      model_fit_hi, dominance, equality_of_contribution, p_value, q_value, type, reason``
      (``reason`` says why a pair has no p-value: a group with fewer than 5 cells; such
      a pair is ``additive`` by rule 1).

    Raises:
      TypeError, ValueError: a parameter of the wrong type or out of range.

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> rng = np.random.default_rng(0)
      >>> a, b = np.repeat([1.0, 0.0], 15), np.repeat([0.0, 1.0], 15)  # two programmes of 15 features
      >>> means = {"ctrl": 0 * a, "A": a, "B": b, "A+B": 3 * (a + b)}   # 3x the additive shift
      >>> x = np.concatenate([rng.normal(size=(40, 30)) * 0.3 + m for m in means.values()])
      >>> screen = pj.Screen.from_arrays(x, np.repeat(list(means), 40))
      >>> pj.interaction_types(screen, n_bootstrap=50, n_permutations=99).type.tolist()
      ['synergy']
    """
    import pandas as pd

    screen = as_screen(screen, caller="interaction_types")
    n_boot = positive_int("n_bootstrap", n_bootstrap, minimum=2)
    n_perm = positive_int("n_permutations", n_permutations, minimum=n_boot,
                          hint="The intervals reuse the test's first n_bootstrap draws.")
    key = as_key(key)
    alpha = probability("alpha", alpha)
    confidence = probability("confidence", confidence)
    thresholds = {n: float_in_range(n, v, low=0.0) for n, v in
                  [("min_fit", min_fit), ("max_equality", max_equality), ("max_suppressed", max_suppressed)]}
    z_select = float_in_range("z_select", z_select, low=0.0)
    lay = layout(screen) if len(screen.pairs) else None
    if pairs_per_chunk == "auto":
        chunk = None if lay is None else auto_chunk(len(lay.d_groups), lay.m_d, int(np.prod(screen.feature_shape)),
                                                    n_perm + 4 * n_boot, np.dtype(lay.dtype).itemsize)
    else:
        chunk = optional_positive_int("pairs_per_chunk", pairs_per_chunk, hint="Or pass 'auto' or None.")
    names = np.asarray(screen.perturbations, dtype=object)
    if lay is None:
        return pd.DataFrame({c: [] for c in _COLUMNS})
    half = (1.0 - confidence) / 2.0
    _, p, c, fit, mag_ci, fit_ci, n_kept = run_pairs(screen, _pair_types, n_draws=n_perm, key=key, chunk=chunk,
                                                     options=(n_boot, half, 1.0 - half, z_select))
    reason = small_groups(screen)
    p = np.where(reason != "", np.nan, np.asarray(p, np.float64))
    from pairint_jax.multitest import adjust_p_values

    q = adjust_p_values(p)
    c = np.asarray(c, np.float64)
    c1, c2 = c[:, 0], c[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = np.abs(np.log10(np.abs(c1) / np.abs(c2)))
    big = np.maximum(np.abs(c1), np.abs(c2))
    equality = np.divide(np.minimum(np.abs(c1), np.abs(c2)), big, out=np.ones_like(big), where=big > 0)
    kinds = _classify(q, big, equality, np.hypot(c1, c2), np.asarray(fit), alpha=alpha, **thresholds)
    data = dict(a=names[screen.pairs[:, 0]], b=names[screen.pairs[:, 1]], c1=c1, c2=c2, magnitude=np.hypot(c1, c2),
                magnitude_lo=mag_ci[:, 0], magnitude_hi=mag_ci[:, 1], model_fit=fit, model_fit_lo=fit_ci[:, 0],
                model_fit_hi=fit_ci[:, 1], dominance=dominance, equality_of_contribution=equality, p_value=p,
                q_value=q, type=kinds, reason=reason)
    return pd.DataFrame({k: np.asarray(v, np.float64) if k not in ("a", "b", "type", "reason") else v
                         for k, v in data.items()})


_COLUMNS = ("a", "b", "c1", "c2", "magnitude", "magnitude_lo", "magnitude_hi", "model_fit", "model_fit_lo",
            "model_fit_hi", "dominance", "equality_of_contribution", "p_value", "q_value", "type", "reason")
