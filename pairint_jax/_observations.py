"""Checks of the observations a :class:`~pairint_jax.Screen` is built from.

Every screen's observations are numeric, one row per observation, and *usable by the
scorers*:

* every value is finite (no NaN, no inf);
* every row's Euclidean norm is at most :data:`MAX_ROW_NORM` (``2**60``, about 1.2e18).
  The scorers compute in float32 on accelerators: squared distances
  ``|a|^2 + |b|^2 - 2 a.b`` between rows of norm up to ``2**61`` (after centring) stay
  below ``2**124``, far from float32's largest value (about ``2**128`` = 3.4e38), while
  a single entry of 1e20 would make them overflow to inf. Such a value is refused here,
  naming its row and condition, instead of surfacing later as a NaN score with a
  misleading reason (a "constant" median, "duplicated" neighbours).

Dense arrays (NumPy, JAX, ``np.memmap``) are checked in blocks of rows, so a memmap is
never read whole; sparse matrices are checked on their stored values.
"""

from __future__ import annotations

import numpy as np

from pairint_jax.sparse import SparseRows, issparse

#: Largest Euclidean norm of one observation (see the module docstring).
MAX_ROW_NORM = 2.0**60

#: Bytes of observations read at once by the checks (bounds memory on memmaps).
_CHECK_BYTES = 64 << 20


def _as_observation_array(x) -> np.ndarray:
    if isinstance(x, (list, tuple)):
        shapes = [np.shape(r) for r in x]
        if shapes and any(s != shapes[0] for s in shapes):
            bad = next(i for i, s in enumerate(shapes) if s != shapes[0])
            raise ValueError(
                f"inconsistent dimensions: observation 0 has shape {shapes[0]} but observation "
                f"{bad} has shape {shapes[bad]}; every observation must have the same shape."
            )
    x = np.asarray(x)
    if x.dtype == object:
        raise ValueError("inconsistent dimensions: x is ragged (object array); every observation must have the same shape.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise TypeError(f"x must be numeric, got dtype {x.dtype}.")
    if x.ndim < 2:
        raise ValueError(
            f"inconsistent dimensions: x must be [N, d] or [N, ...] with one row per observation, "
            f"got shape {x.shape}. For a scalar readout pass x[:, None]."
        )
    if x.shape[0] == 0 or int(np.prod(x.shape[1:])) == 0:
        raise ValueError(f"x is empty (shape {x.shape}); a screen needs observations with at least one feature.")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return np.ascontiguousarray(x, dtype=dtype)


def as_observations(x):
    """Dense observations as a float32/float64 array; 2-D sparse ones as ``SparseRows`` (not copied).

    Raises:
      ValueError: ragged rows, fewer than 2 dimensions, no rows or no features.
      TypeError: a non-numeric dtype.
    """
    if not issparse(x):
        return _as_observation_array(x)
    rows = SparseRows(x)  # CSR as is; other formats converted (one sparse copy)
    dtype = rows.dtype
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == bool):
        raise TypeError(f"x must be numeric, got sparse dtype {dtype}.")
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"x is empty (shape {rows.shape}); a screen needs observations with at least one feature.")
    return rows


def as_label_list(labels) -> np.ndarray:
    """``[N]`` object array of labels; a single string is refused (it is not one label per row)."""
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence with one label per observation, not a single string.")
    return np.asarray(labels, dtype=object).reshape(-1)


def take_rows(x, rows: np.ndarray):
    """``x[rows]`` that keeps sparse rows sparse (one sparse copy; none when ``rows`` is ``0..N-1``)
    and makes them float32 unless they are float64."""
    if not isinstance(x, SparseRows):
        return x[rows]
    csr = x.csr
    if not (len(rows) == csr.shape[0] and np.array_equal(rows, np.arange(len(rows)))):
        csr = csr[rows]
    if csr.dtype not in (np.float32, np.float64):
        csr = csr.astype(np.float32)
    return SparseRows(csr)


def _bad_rows(x) -> tuple[np.ndarray, np.ndarray]:
    """``(nonfinite_rows, large_rows)`` of dense or sparse observations.

    A row is large when it is finite and its norm, computed in float64 (inf when even
    float64 overflows, e.g. for 1e300 entries), exceeds :data:`MAX_ROW_NORM`.
    """
    if isinstance(x, SparseRows):
        nonfinite = x.nonfinite_rows()
        sq = x.row_sq_norms()
    else:
        n = x.shape[0]
        row_bytes = max(1, int(np.prod(x.shape[1:])) * x.dtype.itemsize)
        step = max(1, _CHECK_BYTES // row_bytes)
        parts_bad, parts_sq = [], []
        with np.errstate(over="ignore", invalid="ignore"):
            for lo in range(0, n, step):
                block = np.asarray(x[lo : lo + step]).reshape(min(step, n - lo), -1)
                parts_bad.append(lo + np.flatnonzero(~np.isfinite(block).all(axis=1)))
                parts_sq.append(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        nonfinite = np.concatenate(parts_bad)
        sq = np.concatenate(parts_sq)
    sq[nonfinite] = 0.0
    return nonfinite, np.flatnonzero(~(sq <= MAX_ROW_NORM**2))


def _per_condition(rows: np.ndarray, conditions, offsets, order, x=None) -> str:
    """``condition 'A': 2 row(s) (e.g. input row 7)`` for up to 5 conditions; with ``x``,
    also the largest absolute value of the example row."""
    group = np.searchsorted(np.asarray(offsets[1:]), rows, side="right")
    per: dict[str, list] = {}
    for b, g in zip(rows, group):
        per.setdefault(conditions[g], []).append(int(b))
    parts = []
    for c, items in list(per.items())[:5]:
        b = items[0]
        note = "" if x is None else f", largest |value| {float(np.max(np.abs(np.asarray(x[b : b + 1])))):.3g}"
        parts.append(f"condition {c!r}: {len(items)} row(s) (e.g. input row {b if order is None else int(order[b])}{note})")
    return "; ".join(parts)


def check_observations(xs, conditions, offsets, order=None) -> None:
    """Raise unless every observation is finite and of norm at most :data:`MAX_ROW_NORM`.

    This is an invariant of every :class:`~pairint_jax.Screen` (see the module docstring).

    Args:
      xs: ``[N, ...]`` observations in screen (group-sorted) row order, or ``SparseRows``.
      conditions, offsets: the screen's condition labels and row offsets (for the message).
      order: ``order[r]`` is the input row of sorted row ``r``; default the identity.

    Raises:
      ValueError: naming the conditions and input rows of the offending observations.
    """
    nonfinite, large = _bad_rows(xs)
    if len(nonfinite):
        raise ValueError(
            f"x has {len(nonfinite)} observation(s) with non-finite values (NaN or inf): "
            f"{_per_condition(nonfinite, conditions, offsets, order)}. "
            "Remove or impute them before building the screen."
        )
    if len(large):
        raise ValueError(
            f"x has {len(large)} observation(s) too large for float32 arithmetic (row norm above "
            f"2**60 = {MAX_ROW_NORM:.3g}, so squared distances between observations would overflow float32, "
            f"whose largest value is 3.4e38): {_per_condition(large, conditions, offsets, order, xs)}. "
            "Rescale x (e.g. divide by a constant or standardise the features), or remove these rows."
        )
