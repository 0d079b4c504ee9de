"""Per-perturbation side features for the posterior's prior: checked, standardised, imputed and
flagged (NaN marks a missing value)."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["prepare_features"]


def prepare_features(features, n: int) -> np.ndarray:
    """Process ``[n, f]`` per-perturbation features for the main effects' prior.

    Every column is standardised over its observed (non-NaN) values (``(x - mean) / std``;
    a constant column becomes 0), a missing value is imputed by the column mean (0 after
    standardising), and every column with a missing value gets an indicator column
    (1 where missing, then standardised like the values) appended after the ``f`` value columns.

    Args:
      features: ``None`` or an ``[n, f]`` array-like of floats; NaN marks a missing value.
        Must be concrete (not traced): the processing is NumPy.
      n: the number of perturbations (rows expected).

    Returns:
      ``[n, f']`` float32 with ``f' = f + (number of columns with a NaN)``; ``[n, 0]`` for
      ``None``.

    Raises:
      TypeError: not numeric (strings, objects, booleans).
      ValueError: not 2-d with ``n`` rows, an infinite value, or a column that is entirely NaN.

    Example:
      >>> prepare_features([[1.0], [np.nan], [3.0]], 3).round(3).tolist()
      [[-1.0, -0.707], [0.0, 1.414], [1.0, -0.707]]
    """
    if features is None:
        return np.zeros((n, 0), np.float32)
    if isinstance(features, jax.core.Tracer):
        raise TypeError("features must be a concrete array (not traced inside jit/vmap); pass it from outside the transform.")
    x = np.asarray(features)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(
            f"features must be a float array [n, f] (NaN for a missing value), got dtype {x.dtype}; "
            "convert names and categories to numbers first."
        )
    x = x.astype(np.float64)
    if x.ndim == 1:
        raise ValueError(f"features must be 2-d [n, f], got shape {x.shape}; use features[:, None] for one feature.")
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"features must have shape [n, f] with n = {n} perturbations (one row each), got {x.shape}.")
    if np.any(np.isinf(x)):
        raise ValueError("features must be finite or NaN (missing); found an infinite value.")
    missing = np.isnan(x)
    empty = np.flatnonzero(missing.all(0))
    if len(empty):
        raise ValueError(f"features column(s) {empty.tolist()} are entirely NaN (missing for every perturbation); drop them.")
    mean = np.nanmean(x, 0)
    std = np.nanstd(x, 0)
    z = np.where(missing, 0.0, (x - mean) / np.where(std > 0, std, 1.0))
    flags = missing[:, missing.any(0)].astype(np.float64)
    if flags.shape[1]:
        flags = flags - flags.mean(0)
        flags = flags / np.maximum(flags.std(0), 1e-12)
    return np.concatenate([z, flags], 1).astype(np.float32)
