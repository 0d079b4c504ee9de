"""The per-pair program: one pair's distances, bandwidth, block sums, statistic and null.

A pair ``(i, j)`` reads its double's rows from ``x`` and everything else from the
:class:`~pairint_jax.scores.disjointedness.shared.Shared` blocks. Its only unique
distance products are one matmul of the double against ``[double | control | i | j]``
(the *slab*) and one of ``i`` against ``j``. Then, in order:

1. :func:`pair_slab`: those two products, with the pair's masks;
2. :func:`pair_bandwidth`: the certified median of the cross distances between
   ``ij u 0`` and ``i u j`` (per-pair mode; the shared value otherwise);
3. :func:`block_sums`: the ten kernel block sums of the four groups;
4. the statistic, :func:`pairint_jax.stats.mixture_mmd2_from_block_sums`;
5. :func:`null_p_value`: optionally, null draws on the pooled kernel matrix.

:func:`score_pairs` maps this over all pairs in one compiled program
(:func:`pairint_jax.parallel.chunked_vmap`: ``vmap`` in chunks, ``lax.map`` across
them, sharded over a mesh when one is given).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pairint_jax.parallel import chunked_vmap
from pairint_jax.scores.disjointedness.shared import Shared, Statics
from pairint_jax.stats.kernels import kernel_fn, sq_distances
from pairint_jax.stats.median import GridSpec, bracket_median, grid_median
from pairint_jax.stats.mmd import bootstrap_null, mixture_mmd2_from_block_sums, permutation_null, permutation_p_value

#: Status codes of the per-pair pass. ``UNDERFLOW``: every kernel value between two
#: distinct observations of the pair is 0 (a shared bandwidth far below their distances),
#: so the statistic is 0 and carries no information.
OK, ZERO_MEDIAN, NOT_CONVERGED, UNDERFLOW = 0, 1, 2, 3


class PairResult(NamedTuple):
    """Per-pair outputs (``[P]`` each once mapped over pairs)."""

    score: jax.Array
    bandwidth: jax.Array  # the bandwidth used (per pair or shared)
    status: jax.Array  # OK, ZERO_MEDIAN, NOT_CONVERGED or UNDERFLOW
    n_passes: jax.Array  # counting passes of the certified median (0 with a shared bandwidth)
    p_value: jax.Array | None = None  # with null draws only


class Slab(NamedTuple):
    """One pair's own squared distances and masks."""

    d: jax.Array  # [m_d, m_d + n0 + 2 m_s] double against [double | control | i | j]
    d_ij: jax.Array  # [m_s, m_s] single i against single j
    mask_ij: jax.Array  # [m_d] real rows of the double
    m_i: jax.Array  # [m_s] real rows of i
    m_j: jax.Array  # [m_s]
    n_ij: jax.Array  # [] rows of the double
    nrm_ij: jax.Array  # [] largest norm of the double's rows


class PairBandwidth(NamedTuple):
    value: jax.Array  # the bandwidth reported
    safe: jax.Array  # the bandwidth the kernel uses (1 where the median is 0)
    status: jax.Array
    n_passes: jax.Array
    own: jax.Array | None = None  # "grid" median: the double-vs-(i, j) block, padding -1


def _columns(statics: Statics):
    """Start of the control, i, j and end columns of the slab."""
    m_d, n0, m_s = statics.m_d, statics.n0, statics.m_s
    return m_d, m_d + n0, m_d + n0 + m_s, m_d + n0 + 2 * m_s


def pair_slab(x, shared: Shared, start, n_ij, si, sj, statics: Statics) -> Slab:
    """The double's rows against ``[double | control | i | j]``, and ``i`` against ``j``."""
    s = shared.singles
    m_d, p = statics.m_d, statics.precision
    mask_ij = jnp.arange(m_d) < n_ij
    x_ij = jnp.where(mask_ij[:, None], jax.lax.dynamic_slice(x, (start, jnp.zeros_like(start)), (m_d, x.shape[1])), 0.0)
    sq_ij = jnp.sum(x_ij * x_ij, axis=1)
    cols = jnp.concatenate([x_ij, x[: statics.n0], s.xs[si], s.xs[sj]])
    col_sq = jnp.concatenate([sq_ij, s.sq0, s.sqs[si], s.sqs[sj]])
    d = sq_distances(x_ij, cols, precision=p, x_sq_norms=sq_ij, y_sq_norms=col_sq)
    d = jnp.where(jnp.arange(m_d)[:, None] == jnp.arange(d.shape[1])[None, :], 0.0, d)  # the ij-ij diagonal: exactly 0
    d_ij = sq_distances(s.xs[si], s.xs[sj], precision=p, x_sq_norms=s.sqs[si], y_sq_norms=s.sqs[sj])
    return Slab(d, d_ij, mask_ij, s.mask[si], s.mask[sj], n_ij, jnp.sqrt(jnp.max(sq_ij)))


def pair_bandwidth(slab: Slab, shared: Shared, si, sj, bandwidth, rtol, key, statics: Statics, max_passes: int):
    """The pair's certified median of the cross distances between ``ij u 0`` and ``i u j``
    (:func:`pairint_jax.stats.grid_median` or :func:`~pairint_jax.stats.bracket_median`),
    or the shared ``bandwidth``. Returns a :class:`PairBandwidth`."""
    zero = jnp.asarray(0, jnp.int32)
    if not statics.per_pair:
        return PairBandwidth(bandwidth, bandwidth, zero + OK, zero)
    ci = _columns(statics)[1]
    dist, ones0 = shared.distances, jnp.ones((statics.n0,), bool)
    row_max = jnp.maximum(slab.nrm_ij, shared.singles.nrm0)
    col_max = jnp.maximum(shared.singles.nrm_s[si], shared.singles.nrm_s[sj])
    upper = (row_max + col_max) ** 2 * (1 + 1e-5)

    def control():  # the shared control-single blocks (gathered only where read)
        return [(dist.d0s[si], ones0, slab.m_i), (dist.d0s[sj], ones0, slab.m_j)]

    own = None
    if statics.median_method == "grid":
        # the double against i and j, padding marked by -1 and materialised once: the
        # histogram's flat index pass and the kernel sums then read it without re-deriving
        # row/column masks per element (which costs XLA:CPU about 2x on a flattened pass)
        cols = jnp.concatenate([slab.m_i, slab.m_j])
        own = _materialise(jnp.where(slab.mask_ij[:, None] & cols[None, :], slab.d[:, ci:], -1.0), rtol)
        g = shared.grid
        med = grid_median(
            [(own, own >= 0)],
            spec=GridSpec(base=g.base, shift=g.shift, n_grid=statics.n_grid),
            extra_hist=g.hist0s[si] + g.hist0s[sj],
            extra_blocks=control,
            rtol=rtol,
            upper_bound=upper,
            max_passes=max_passes,
        )
    else:
        own_block = (slab.d[:, ci:], slab.mask_ij, jnp.concatenate([slab.m_i, slab.m_j]))
        med = bracket_median([own_block] + control(), key=key, rtol=rtol, upper_bound=upper)
    status = jnp.where(med.zero, ZERO_MEDIAN, jnp.where(med.converged, OK, NOT_CONVERGED))
    safe = jnp.where(med.zero, jnp.ones((), med.median.dtype), med.median)
    return PairBandwidth(med.median, safe, status, med.n_passes, own)


def _materialise(x, token):
    """``x``, computed once into its own buffer.

    XLA:CPU otherwise fuses an elementwise producer into each consumer; a consumer that
    flattens it (a scatter's index operand) then recomputes every broadcast operand with
    per-element index arithmetic, about 2x slower. A conditional on a runtime value
    (``token > 0``, always true here) is a fusion boundary that XLA cannot fold away
    (``lax.optimization_barrier`` does not survive XLA:CPU's passes), and with an
    unbatched predicate ``vmap`` keeps it a conditional.
    """
    return jax.lax.cond(token > 0, lambda v: v, lambda v: jnp.full_like(v, -1), x)


class _Kernels(NamedTuple):
    """Kernel blocks computed for the sums and reused by the null draws."""

    slab: jax.Array  # k of the slab
    ij: jax.Array  # k(i, j)
    c0i: jax.Array | None  # k(control, i), masked (per-pair bandwidth: computed here)
    c0j: jax.Array | None


def block_sums(kf, slab: Slab, bw: PairBandwidth, shared: Shared, si, sj, statics: Statics):
    """The ``[4, 4]`` kernel block sums of ``(ij, 0, i, j)`` (U-statistic diagonals) and
    the kernel blocks the null draws reuse."""
    c0, ci, cj, _ = _columns(statics)
    ones0 = jnp.ones((statics.n0,), bool)
    m_i, m_j, mask_ij = slab.m_i, slab.m_j, slab.mask_ij
    k_slab = kf(slab.d)
    col_valid = jnp.concatenate([mask_ij, ones0, m_i, m_j])
    # one masked reduction over the slab, then its four column blocks
    col_sums = jnp.sum(jnp.where(mask_ij[:, None] & col_valid[None, :], k_slab, 0.0), axis=0)
    s_ij_ij = jnp.sum(col_sums[:c0]) - slab.n_ij  # the exact-zero diagonal gives k = 1 per row
    s_ij_0 = jnp.sum(col_sums[c0:ci])
    if bw.own is not None:  # the materialised block: no masks to re-derive
        m_s = statics.m_s
        s_ij_i = jnp.sum(jnp.where(bw.own[:, :m_s] >= 0, kf(bw.own[:, :m_s]), 0.0))
        s_ij_j = jnp.sum(jnp.where(bw.own[:, m_s:] >= 0, kf(bw.own[:, m_s:]), 0.0))
    else:
        s_ij_i, s_ij_j = jnp.sum(col_sums[ci:cj]), jnp.sum(col_sums[cj:])
    k_ij = kf(slab.d_ij)
    s_i_j = jnp.sum(jnp.where(m_i[:, None] & m_j[None, :], k_ij, 0.0))
    if statics.per_pair:
        dist = shared.distances
        k0i = jnp.where(m_i[None, :], kf(dist.d0s[si]), 0.0)
        k0j = jnp.where(m_j[None, :], kf(dist.d0s[sj]), 0.0)
        s0i, s0j = jnp.sum(k0i), jnp.sum(k0j)
        s00 = 2.0 * jnp.sum(kf(dist.d00_tri))
        sii = 2.0 * jnp.sum(jnp.where(dist.mss_tri[si], kf(dist.dss_tri[si]), 0.0))
        sjj = 2.0 * jnp.sum(jnp.where(dist.mss_tri[sj], kf(dist.dss_tri[sj]), 0.0))
    else:
        k0i = k0j = None
        sums = shared.sums
        s00, s0i, s0j, sii, sjj = sums.s00, sums.s0s[si], sums.s0s[sj], sums.sss[si], sums.sss[sj]
    table = [
        [s_ij_ij, s_ij_0, s_ij_i, s_ij_j],
        [s_ij_0, s00, s0i, s0j],
        [s_ij_i, s0i, sii, s_i_j],
        [s_ij_j, s0j, s_i_j, sjj],
    ]
    return jnp.stack([jnp.stack(row) for row in table]), _Kernels(k_slab, k_ij, k0i, k0j)


def null_p_value(key, t, kf, slab: Slab, kernels: _Kernels, shared: Shared, si, sj, base_perms, statics: Statics):
    """The p-value of ``t`` from ``statics.n_perm`` null draws on the pair's pooled kernel
    matrix (:func:`pairint_jax.stats.permutation_null` or
    :func:`~pairint_jax.stats.bootstrap_null`), the bandwidth held at its observed value."""
    c0, ci, cj, _ = _columns(statics)
    m_i, m_j = slab.m_i, slab.m_j
    k = kernels.slab
    k_self, k_0, k_i, k_j = k[:, :c0], k[:, c0:ci], k[:, ci:cj], k[:, cj:]
    if statics.per_pair:
        dist = shared.distances
        k00, k0i, k0j = kf(dist.d00), kernels.c0i, kernels.c0j
        kii = jnp.where(m_i[:, None] & m_i[None, :], kf(dist.dss[si]), 0.0)
        kjj = jnp.where(m_j[:, None] & m_j[None, :], kf(dist.dss[sj]), 0.0)
    else:
        sums = shared.sums
        k00, k0i, k0j, kii, kjj = sums.k00, sums.k0s[si], sums.k0s[sj], sums.kss[si], sums.kss[sj]
    k_ij = kernels.ij
    kmat = jnp.block(
        [
            [k_self, k_0, k_i, k_j],
            [k_0.T, k00, k0i, k0j],
            [k_i.T, k0i.T, kii, k_ij],
            [k_j.T, k0j.T, k_ij.T, kjj],
        ]
    )
    labels = jnp.concatenate(
        [jnp.where(slab.mask_ij, 0, -1), jnp.ones((statics.n0,), jnp.int32), jnp.where(m_i, 2, -1), jnp.where(m_j, 3, -1)]
    ).astype(jnp.int32)
    # Padding rows/cols of the pooled matrix are never used (label -1); give them a unit diagonal.
    kmat = jnp.where(jnp.eye(kmat.shape[0], dtype=bool), jnp.ones((), kmat.dtype), kmat)
    if statics.null == "permutation":
        t_null = permutation_null(key, kmat, labels, n_permutations=statics.n_perm, base_permutations=base_perms)
    else:
        t_null = bootstrap_null(key, kmat, labels, n_bootstrap=statics.n_perm)
    return permutation_p_value(t, t_null)


def _base_permutations(key, statics: Statics):
    """``n_perm`` permutations of the pooled layout, drawn once and shared by every pair
    (each pair restricts them to its valid rows: uniform, no per-pair sort; see
    :func:`pairint_jax.stats.permutation_null`)."""
    if statics.n_perm == 0 or statics.null != "permutation":
        return None
    n_cols = _columns(statics)[3]
    keys = jax.random.split(jax.random.fold_in(key, 0x7FFFFFFF), statics.n_perm)
    return jax.vmap(lambda k: jax.random.permutation(k, n_cols))(keys).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("statics", "chunk_size", "max_passes", "mesh"))
def score_pairs(x, shared: Shared, pairs, bandwidth, rtol, key, *, statics: Statics, chunk_size, max_passes, mesh=None):
    """Score every pair of ``pairs`` in one compiled pass.

    Args:
      x: ``[rows, D]`` centred rows holding the control and the doubles.
      shared: the :class:`Shared` blocks.
      pairs: a :class:`~pairint_jax.scores.disjointedness.layout.PairTable` of ``[P]``
        device arrays (``d_starts`` index ``x``).
      bandwidth: the shared bandwidth (traced; unused with a per-pair bandwidth).
      rtol: the certified median's relative tolerance (traced).
      key: PRNG key; pair ``k`` uses ``fold_in(key, index[k])``.
      statics: the :class:`Statics`.
      chunk_size: pairs per vmapped chunk (per device under ``mesh``), or None.
      max_passes: the median's refinement passes (1: a single histogram pass).
      mesh: optional mesh the pairs are split over.

    Returns:
      :class:`PairResult` of ``[P]`` arrays.
    """
    base_perms = _base_permutations(key, statics)

    def one(start, n_ij, si, sj, index):
        k_median, k_null = jax.random.split(jax.random.fold_in(key, index))
        slab = pair_slab(x, shared, start, n_ij, si, sj, statics)
        bw = pair_bandwidth(slab, shared, si, sj, bandwidth, rtol, k_median, statics, max_passes)
        kf = kernel_fn(statics.kernel, bw.safe)
        sums, kernels = block_sums(kf, slab, bw, shared, si, sj, statics)
        counts = jnp.stack([n_ij, jnp.asarray(statics.n0, n_ij.dtype), jnp.sum(slab.m_i), jnp.sum(slab.m_j)])
        t = mixture_mmd2_from_block_sums(sums.astype(x.dtype), counts)
        # the sums exclude the U-statistic diagonals: all zero means every kernel value underflowed
        status = jnp.where((bw.status == OK) & jnp.all(sums == 0), UNDERFLOW, bw.status)
        p = None
        if statics.n_perm > 0:
            p = null_p_value(k_null, t, kf, slab, kernels, shared, si, sj, base_perms, statics)
        return PairResult(t, bw.value, status, bw.n_passes, p)

    return chunked_vmap(one, *pairs, chunk_size=chunk_size, mesh=mesh)
