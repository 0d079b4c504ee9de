"""The shared blocks: everything of the disjointedness scores that does not depend on the double.

One jitted call computes what every pair reuses from the control ``0`` and the singles:

* with a shared bandwidth (``"global"`` or fixed): the kernel sums of the control block,
  of the control-single blocks and of the single blocks (scalars per single), and the
  kernel matrices themselves when null draws need them;
* with the per-pair bandwidth the kernel depends on the pair, so the *squared distances*
  of those blocks are kept instead (``n_0^2 / 2 + n_s n_0 m_s + n_s m_s^2 / 2`` floats),
  and, for the ``"grid"`` median, the float-bit-grid histograms of the control-single
  blocks (:func:`pairint_jax.stats.grid_histogram`), added to each pair's own.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.stats.kernels import kernel_fn, sq_distances
from pairint_jax.stats.median import grid_histogram, grid_spec

#: Bins of the float-bit grid of the "grid" median (about 0.1% wide in squared distance).
N_GRID = 16384


@dataclasses.dataclass(frozen=True)
class Statics:
    """What fixes the shapes and branches of the compiled programs (hashable: a jit static).

    Attributes:
      n0: rows of the control.
      m_s: padded rows of a single.
      m_d: padded rows of a double.
      per_pair: each pair finds its own median bandwidth (else one value for all).
      kernel: ``"rbf"`` or ``"matern52"``.
      n_perm: null draws per pair (permutations or bootstrap draws; 0: no p-values).
      null: ``"permutation"`` or ``"bootstrap"``.
      median_method: ``"grid"`` or ``"sample"`` (per-pair bandwidth only).
      precision: matmul precision of the distance products.
      n_grid: bins of the median's float-bit grid.
    """

    n0: int
    m_s: int
    m_d: int
    per_pair: bool
    kernel: str
    n_perm: int
    null: str
    median_method: str
    precision: object = None
    n_grid: int = N_GRID

    def for_shared(self) -> Statics:
        """The same statics with the fields the shared blocks do not read normalised, so
        that settings which only change the per-pair program do not recompile them."""
        return dataclasses.replace(
            self,
            m_d=0,
            kernel="" if self.per_pair else self.kernel,
            n_perm=min(self.n_perm, 1),
            null="",
            median_method=self.median_method if self.per_pair else "",
        )


class Singles(NamedTuple):
    """The control's and the singles' rows and squared norms."""

    xs: jax.Array  # [n_s, m_s, D] the singles, padding rows zero
    mask: jax.Array  # [n_s, m_s] real rows
    sq0: jax.Array  # [n0] squared norms of the control rows
    sqs: jax.Array  # [n_s, m_s] squared norms of the singles' rows (0 on padding)
    nrm0: jax.Array  # [] largest control norm
    nrm_s: jax.Array  # [n_s] largest norm of each single


class PairDistances(NamedTuple):
    """Per-pair bandwidth: squared distances of the shared blocks (the kernel is per pair)."""

    d0s: jax.Array  # [n_s, n0, m_s] control against each single
    d00_tri: jax.Array  # [n0 (n0 - 1) / 2] strict upper triangle of the control block
    dss_tri: jax.Array  # [n_s, m_s (m_s - 1) / 2] strict upper triangles of the single blocks
    mss_tri: jax.Array  # [n_s, m_s (m_s - 1) / 2] their valid entries
    d00: jax.Array | None = None  # [n0, n0] full blocks, for the null draws only
    dss: jax.Array | None = None  # [n_s, m_s, m_s]


class GridHistograms(NamedTuple):
    """The one float-bit grid of every pair's median, and the control-single histograms."""

    base: jax.Array
    shift: jax.Array
    hist0s: jax.Array  # [n_s, n_grid + 3]


class KernelSums(NamedTuple):
    """Shared bandwidth: kernel sums of the shared blocks (U-statistic: no diagonal)."""

    s00: jax.Array  # [] control block
    s0s: jax.Array  # [n_s] control against each single
    sss: jax.Array  # [n_s] each single's block
    k00: jax.Array | None = None  # [n0, n0] the kernel matrices, for the null draws only
    k0s: jax.Array | None = None  # [n_s, n0, m_s]
    kss: jax.Array | None = None  # [n_s, m_s, m_s]


class Shared(NamedTuple):
    """Everything the per-pair program reuses; unused parts are ``None``."""

    singles: Singles
    distances: PairDistances | None = None
    grid: GridHistograms | None = None
    sums: KernelSums | None = None


def _gather(x, starts, size):
    d = x.shape[1]
    return jax.vmap(lambda s: jax.lax.dynamic_slice(x, (s, jnp.zeros_like(s)), (size, d)))(starts)


def _singles(x, s_starts, s_counts, n0, m_s) -> Singles:
    x0 = x[:n0]
    xs = _gather(x, s_starts, m_s)
    mask = jnp.arange(m_s)[None, :] < s_counts[:, None]
    xs = jnp.where(mask[..., None], xs, 0.0)
    sq0 = jnp.sum(x0 * x0, axis=1)
    sqs = jnp.where(mask, jnp.sum(xs * xs, axis=2), 0.0)
    return Singles(xs, mask, sq0, sqs, jnp.sqrt(jnp.max(sq0)), jnp.sqrt(jnp.max(sqs, axis=1)))


def _grid(x, singles: Singles, d0s, n_grid) -> GridHistograms:
    # One float-bit grid for every pair: from 2^-8 of the typical squared norm (about half a
    # typical squared distance) up to the largest possible squared distance.
    n_all = jnp.asarray(singles.sq0.shape[0], singles.sq0.dtype) + jnp.sum(singles.mask)
    typical = (jnp.sum(singles.sq0) + jnp.sum(singles.sqs)) / n_all
    tiny = jnp.finfo(x.dtype).tiny
    top = (2.0 * jnp.sqrt(jnp.max(jnp.sum(x * x, axis=1)))) ** 2
    spec = grid_spec(jnp.maximum(typical * 2.0**-8, tiny), jnp.maximum(top, tiny), n_grid=n_grid)
    valid0s = jnp.broadcast_to(singles.mask[:, None, :], d0s.shape)
    hist0s = jax.vmap(lambda d, m: grid_histogram(d, m, spec))(d0s, valid0s)
    return GridHistograms(spec.base, spec.shift, hist0s)


def _pair_distances(d00, d0s, dss, mask, keep_blocks) -> PairDistances:
    # Self blocks are symmetric with a zero diagonal: keep their strict upper triangles
    # (half the kernel evaluations per pair); the full blocks only for the null draws.
    iu0 = np.triu_indices(d00.shape[0], k=1)
    ius = np.triu_indices(mask.shape[1], k=1)
    full = (d00, dss) if keep_blocks else (None, None)
    return PairDistances(d0s, d00[iu0], dss[:, ius[0], ius[1]], mask[:, ius[0]] & mask[:, ius[1]], *full)


def _kernel_sums(kf, d00, d0s, dss, mask, s_counts, keep_blocks) -> KernelSums:
    k00 = kf(d00)
    k0s = jnp.where(mask[:, None, :], kf(d0s), 0.0)
    kss = jnp.where(mask[:, :, None] & mask[:, None, :], kf(dss), 0.0)
    sums = (jnp.sum(k00) - k00.shape[0], jnp.sum(k0s, axis=(1, 2)), jnp.sum(kss, axis=(1, 2)) - s_counts.astype(kss.dtype))
    return KernelSums(*sums, *((k00, k0s, kss) if keep_blocks else ()))


@functools.partial(jax.jit, static_argnames=("statics",))
def shared_blocks(x, s_starts, s_counts, bandwidth, *, statics: Statics) -> Shared:
    """The shared blocks of the control (the first ``n0`` rows of ``x``) and the singles.

    Args:
      x: ``[rows, D]`` centred rows, the control first, zero-padded at the end.
      s_starts: ``[n_s]`` first row of each single; s_counts: ``[n_s]`` its rows.
      bandwidth: the shared bandwidth (traced; unused with ``statics.per_pair``).
      statics: the :class:`Statics` (pass ``statics.for_shared()``).

    Returns:
      :class:`Shared`.
    """
    singles = _singles(x, s_starts, s_counts, statics.n0, statics.m_s)
    x0, xs, keep = x[: statics.n0], singles.xs, statics.n_perm > 0
    d00 = sq_distances(x0, precision=statics.precision)
    d0s = jax.vmap(lambda a: sq_distances(x0, a, precision=statics.precision))(xs)  # [n_s, n0, m_s]
    dss = jax.vmap(lambda a: sq_distances(a, precision=statics.precision))(xs)  # [n_s, m_s, m_s]
    if not statics.per_pair:
        kf = kernel_fn(statics.kernel, bandwidth)
        return Shared(singles, sums=_kernel_sums(kf, d00, d0s, dss, singles.mask, s_counts, keep))
    grid = _grid(x, singles, d0s, statics.n_grid) if statics.median_method == "grid" else None
    return Shared(singles, distances=_pair_distances(d00, d0s, dss, singles.mask, keep), grid=grid)
