r"""The two-sample MMD^2 of one sample against a reference (the control), with kernel sums
over a blocked reference.

.. math::
    \mathrm{MMD}^2_u(P, Q) = \frac{S_{xx}}{n(n-1)} + \frac{S_{yy}}{m(m-1)} - \frac{2 S_{xy}}{n m},
    \qquad S_{ab} = \sum_{s \in a,\, t \in b,\, s \ne t} k(s, t)

(Gretton et al. 2012, Lemma 6): exactly unbiased at any sample sizes. It is the
two-group case of the block-form estimator of :mod:`pairint_jax.stats.mmd` (weights
``c = (1, -1)``), built from the same kernels (:func:`~pairint_jax.stats.kernel_from_sq`).

The reference ``y`` (a control, often 10-100x larger than a perturbed group) is read in
row blocks by a ``lax.scan`` (:func:`blocked_kernel_sum`), so memory is ``n x block``
whatever its size, and its own sum ``S_yy``, the same for every sample compared with
it, is computed once and passed in (:func:`mmd2_from_sums`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pairint_jax.stats.kernels import check_kernel, kernel_from_sq, sq_distances

__all__ = ["blocked_kernel_sum", "blocked_self_sum", "kernel_sum", "mmd2_from_sums", "mmd2_two_sample"]


def kernel_sum(x, y, mask_x, mask_y, *, kernel: str, bandwidth, precision=None, diagonal=False) -> jax.Array:
    """Masked ``sum_{s, t valid} k(x_s, y_t)`` of ``x [n, d]`` and ``y [m, d]`` (masks ``[n]``, ``[m]``).

    ``diagonal`` (a bool, traced allowed; ``x`` and ``y`` then hold the same rows) sets the
    diagonal distances to exactly 0 and removes its ``k(0) = 1`` per valid row, giving
    ``S_xx = sum_{s != t} k(x_s, x_t)``.
    """
    sq = sq_distances(x, y, precision=precision)
    if x.shape[0] == y.shape[0]:
        sq = jnp.where(jnp.eye(x.shape[0], dtype=bool) & diagonal, jnp.zeros((), sq.dtype), sq)
    k = kernel_from_sq(kernel, sq, bandwidth)
    s = jnp.sum(jnp.where(mask_x[:, None] & mask_y[None, :], k, 0.0))
    return s - jnp.where(diagonal, jnp.sum(mask_x), 0).astype(s.dtype)


def blocked_kernel_sum(x, y_blocks, mask_x, mask_y_blocks, *, kernel: str, bandwidth, precision=None,
                       diagonal_block=-1) -> jax.Array:
    """``sum_{s, t valid} k(x_s, y_t)`` with ``y`` given as row blocks (one ``lax.scan`` step each).

    Args:
      x: ``[n, d]``; mask_x: ``[n]`` bool (True on real rows).
      y_blocks: ``[n_blocks, b, d]``; mask_y_blocks: ``[n_blocks, b]`` bool.
      kernel: ``"rbf"`` or ``"matern52"`` (static); bandwidth: positive scalar (traced).
      precision: matmul precision of the distances (static).
      diagonal_block: (traced int) the block that holds the same rows as ``x`` (then
        ``n = b``), whose pairs ``s = t`` are excluded; ``-1`` (default): none.

    Returns:
      Scalar sum.
    """

    def body(total, block):
        c, yb, mb = block
        part = kernel_sum(x, yb, mask_x, mb, kernel=kernel, bandwidth=bandwidth, precision=precision,
                          diagonal=c == diagonal_block)
        return total + part, None

    zero = jnp.zeros((), jnp.result_type(x.dtype, y_blocks.dtype))
    index = jnp.arange(y_blocks.shape[0])
    total, _ = jax.lax.scan(body, zero, (index, y_blocks, mask_y_blocks))
    return total


def blocked_self_sum(y_blocks, mask_y_blocks, *, kernel: str, bandwidth, precision=None) -> jax.Array:
    """``S_yy = sum_{s != t valid} k(y_s, y_t)`` of a sample given as ``[n_blocks, b, d]`` row
    blocks (masks ``[n_blocks, b]``): memory ``b x b``, one scan over block pairs."""

    def body(total, block):
        c, yb, mb = block
        part = blocked_kernel_sum(yb, y_blocks, mb, mask_y_blocks, kernel=kernel, bandwidth=bandwidth,
                                  precision=precision, diagonal_block=c)
        return total + part, None

    zero = jnp.zeros((), y_blocks.dtype)
    total, _ = jax.lax.scan(body, zero, (jnp.arange(y_blocks.shape[0]), y_blocks, mask_y_blocks))
    return total


def mmd2_from_sums(s_xx, s_yy, s_xy, n_x, n_y) -> jax.Array:
    """Unbiased ``MMD^2`` from the kernel sums (module formula); NaN when a sample has < 2 rows."""
    dtype = jnp.result_type(s_xx, s_yy, s_xy, float)
    n = jnp.asarray(n_x, dtype)
    m = jnp.asarray(n_y, dtype)
    ok = (n >= 2) & (m >= 2)
    n2 = jnp.where(ok, n, 2.0)
    m2 = jnp.where(ok, m, 2.0)
    value = s_xx / (n2 * (n2 - 1.0)) + s_yy / (m2 * (m2 - 1.0)) - 2.0 * s_xy / (n2 * m2)
    return jnp.where(ok, value, jnp.nan)


def mmd2_two_sample(x, y, mask_x=None, mask_y=None, *, kernel: str = "rbf", bandwidth=1.0, precision=None) -> jax.Array:
    """Unbiased two-sample ``MMD^2(P, Q)`` of ``x ~ P`` and ``y ~ Q`` (module formula).

    Pure ``jnp``: works under ``jit``, ``vmap`` (over padded samples with masks) and
    ``grad``. Padded rows (mask False) are ignored exactly.

    Args:
      x: ``[n, d]``; y: ``[m, d]`` samples.
      mask_x, mask_y: optional ``[n]``/``[m]`` bool masks (True = real row).
      kernel: ``"rbf"`` (``exp(-r^2/(2 s^2))``) or ``"matern52"`` (static).
      bandwidth: positive scalar (traced).
      precision: matmul precision of the distances (static).

    Returns:
      Scalar estimate (can be slightly negative: it is unbiased); NaN when a sample has
      fewer than 2 valid rows.

    Example:
      >>> import jax
      >>> kx, ky = jax.random.split(jax.random.key(0))
      >>> x, y = jax.random.normal(kx, (200, 2)), jax.random.normal(ky, (200, 2)) + 2.0
      >>> float(mmd2_two_sample(x, y, bandwidth=1.0)) > 0.3
      True

    References:
      Gretton et al. (2012), A kernel two-sample test. JMLR 13, Lemma 6.
    """
    check_kernel(kernel)
    x, y = jnp.asarray(x), jnp.asarray(y)
    dtype = jnp.result_type(x, y, float)
    x, y = x.astype(dtype), y.astype(dtype)
    mx = jnp.ones(x.shape[0], bool) if mask_x is None else jnp.asarray(mask_x, bool)
    my = jnp.ones(y.shape[0], bool) if mask_y is None else jnp.asarray(mask_y, bool)
    bw = jnp.asarray(bandwidth, dtype)
    kw = dict(kernel=kernel, bandwidth=bw, precision=precision)
    s_xx = kernel_sum(x, x, mx, mx, diagonal=True, **kw)
    s_yy = kernel_sum(y, y, my, my, diagonal=True, **kw)
    s_xy = kernel_sum(x, y, mx, my, **kw)
    return mmd2_from_sums(s_xx, s_yy, s_xy, jnp.sum(mx), jnp.sum(my))
