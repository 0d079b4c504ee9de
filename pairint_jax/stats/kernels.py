"""Squared distances, the RBF and Matern-2.5 kernels, and median-heuristic bandwidths.

Everything works on *squared* Euclidean distances ``D = ||x - y||^2`` computed with
matrix products, ``D = ||x||^2 + ||y||^2 - 2 x y^T``, so that the work runs on the
device's matmul units. Numerical care, for float32 and for TF32 (the default
precision of float32 matmuls on NVIDIA Ampere/Hopper GPUs, 10-bit mantissa inputs):

* **Clamp**: cancellation can make ``D`` slightly negative; it is clamped at 0.
* **Exact zero diagonals**: for self-distances (``y is None``) the diagonal is set to
  exactly 0, so ``k(x, x) == 1`` exactly and U-statistics can remove it by
  subtracting the group size (no reliance on ``||x||^2 - x.x`` cancelling).
* **Centre first**: the error of the matmul form grows with ``||x||^2``, not with the
  distance; callers (the screen scorers) subtract the control mean from every
  observation before computing distances, which leaves distances unchanged.
* Row norms are computed elementwise (``sum(x * x)``), never by the matmul, so they
  are full float32 even when the cross term runs in TF32. TF32 rounding of the
  inputs is unbiased and independent across features, so the relative error of a
  cross term ``x.y`` is about ``2^-11 / sqrt(d)`` of ``||x|| ||y||``.

Medians: :func:`median_heuristic` is the exact masked median (a sort), for the
functional core. The screen scorers use the fast *certified* medians of
:mod:`pairint_jax.stats.median` (histogram selection, guaranteed within ``rtol``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "KERNELS",
    "sq_distances",
    "kernel_from_sq",
    "kernel_fn",
    "rbf_kernel",
    "matern52_kernel",
    "median_heuristic",
]

#: Kernel names accepted everywhere (``kernel=``).
KERNELS = ("rbf", "matern52")

_SQRT5 = math.sqrt(5.0)


def sq_distances(
    x: jax.Array,
    y: jax.Array | None = None,
    *,
    precision=None,
    x_sq_norms: jax.Array | None = None,
    y_sq_norms: jax.Array | None = None,
) -> jax.Array:
    """Squared Euclidean distances by matrix products.

    ``D[a, b] = ||x_a||^2 + ||y_b||^2 - 2 x_a . y_b``, clamped at 0. With ``y=None``
    the self-distances of ``x`` are returned with an exactly-zero diagonal.

    Args:
      x: ``[n, d]`` observations.
      y: ``[m, d]`` observations, or ``None`` for ``y = x``.
      precision: matmul precision passed to ``jnp.matmul`` (``None``: the device
        default, TF32 for float32 on recent NVIDIA GPUs; ``"highest"``: full float32).
      x_sq_norms: optional ``[n]`` precomputed squared row norms ``sum(x * x, -1)``
        (rows reused across many calls need their norms only once).
      y_sq_norms: optional ``[m]`` precomputed squared row norms of ``y``.

    Returns:
      ``[n, m]`` (or ``[n, n]``) non-negative squared distances.

    Example:
      >>> import jax.numpy as jnp
      >>> sq_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]]))
      Array([[ 0., 25.],
             [25.,  0.]], dtype=float32)
    """
    nx = jnp.sum(x * x, axis=-1) if x_sq_norms is None else x_sq_norms
    if y is None:
        g = jnp.matmul(x, x.T, precision=precision)
        d = nx[:, None] + nx[None, :] - 2.0 * g
        d = jnp.maximum(d, 0.0)
        n = x.shape[0]
        return jnp.where(jnp.eye(n, dtype=bool), jnp.zeros((), d.dtype), d)
    ny = jnp.sum(y * y, axis=-1) if y_sq_norms is None else y_sq_norms
    g = jnp.matmul(x, y.T, precision=precision)
    return jnp.maximum(nx[:, None] + ny[None, :] - 2.0 * g, 0.0)


def rbf_kernel(sq: jax.Array, bandwidth) -> jax.Array:
    """RBF kernel on squared distances: ``k = exp(-r^2 / (2 s^2))``.

    Args:
      sq: squared distances ``r^2``, any shape.
      bandwidth: ``s > 0`` (traced scalar).

    Returns:
      Kernel values, same shape as ``sq``; exactly 1 where ``sq == 0``.
    """
    return jnp.exp(-sq / (2.0 * bandwidth * bandwidth))


def matern52_kernel(sq: jax.Array, bandwidth) -> jax.Array:
    """Matern-2.5 kernel on squared distances.

    ``k = (1 + sqrt5 r / l + 5 r^2 / (3 l^2)) exp(-sqrt5 r / l)`` with ``r = sqrt(sq)``.
    The square root is taken of ``max(sq, tiny)`` only where ``sq > 0`` so that the
    gradient at ``r = 0`` is finite (the kernel is twice differentiable there).

    Args:
      sq: squared distances ``r^2``, any shape.
      bandwidth: ``l > 0`` (traced scalar).

    Returns:
      Kernel values, same shape as ``sq``; exactly 1 where ``sq == 0``.
    """
    pos = sq > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
    u = _SQRT5 * r / bandwidth
    return (1.0 + u + u * u / 3.0) * jnp.exp(-u)


def kernel_from_sq(kernel: str, sq: jax.Array, bandwidth) -> jax.Array:
    """Evaluate kernel ``kernel`` (``"rbf"`` or ``"matern52"``) on squared distances."""
    if kernel == "rbf":
        return rbf_kernel(sq, bandwidth)
    if kernel == "matern52":
        return matern52_kernel(sq, bandwidth)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")


def kernel_fn(kernel: str, bandwidth) -> Callable[[jax.Array], jax.Array]:
    """The map ``sq -> k(sq)`` of kernel ``kernel`` at one bandwidth, constants hoisted.

    For a bandwidth applied to many blocks (every block of one pair), the per-bandwidth
    constant is computed once: the RBF becomes ``exp(sq * c)`` with ``c = -1 / (2 s^2)``,
    one multiply per element instead of a divide. Values equal :func:`kernel_from_sq`
    to float round-off.

    Args:
      kernel: ``"rbf"`` or ``"matern52"`` (static).
      bandwidth: ``s > 0`` (traced scalar).

    Returns:
      A function of squared distances (any shape) to kernel values (same shape).

    Example:
      >>> import jax.numpy as jnp
      >>> k = kernel_fn("rbf", 2.0)
      >>> bool(jnp.allclose(k(jnp.array([0.0, 4.0])), jnp.exp(jnp.array([0.0, -0.5]))))
      True
    """
    if kernel == "rbf":
        scale = -0.5 / (bandwidth * bandwidth)
        return lambda sq: jnp.exp(sq * scale)
    check_kernel(kernel)
    return lambda sq: kernel_from_sq(kernel, sq, bandwidth)


def check_kernel(kernel) -> str:
    """Validate a kernel name at the boundary."""
    if not isinstance(kernel, str) or kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    return kernel


def median_heuristic(x: jax.Array, y: jax.Array, mask_x: jax.Array | None = None, mask_y: jax.Array | None = None, *, precision=None) -> jax.Array:
    """Exact median of the cross distances ``||x_a - y_b||`` over valid rows (a sort).

    The median of an even number of values is the mean of the two middle values
    (``numpy.median``). Used by the functional core; the screen scorers use the
    faster certified :func:`bracket_median`.

    Args:
      x: ``[n, d]``; y: ``[m, d]``.
      mask_x: ``[n]`` bool, True on real rows (default all). mask_y: ``[m]`` likewise.
      precision: matmul precision.

    Returns:
      Scalar median distance (0 if every valid distance is 0; NaN if no valid pair).
    """
    sq = sq_distances(x, y, precision=precision)
    mx = jnp.ones(x.shape[0], bool) if mask_x is None else mask_x
    my = jnp.ones(y.shape[0], bool) if mask_y is None else mask_y
    valid = (mx[:, None] & my[None, :]).reshape(-1)
    r = jnp.sqrt(sq.reshape(-1))
    return _masked_median(r, valid)


def _masked_median(v: jax.Array, valid: jax.Array) -> jax.Array:
    n = jnp.sum(valid)
    s = jnp.sort(jnp.where(valid, v, jnp.inf))
    lo = s[jnp.maximum((n - 1) // 2, 0)]
    hi = s[jnp.maximum(n // 2, 0)]
    return jnp.where(n > 0, 0.5 * (lo + hi), jnp.nan)
