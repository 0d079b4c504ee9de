"""Disjointedness scores: the mixture MMD^2 of every scorable pair in one compiled pass.

Layout of the computation (``ARCHITECTURE.md``: ``Screen -> chunks of pairs -> vmap``):

1. **Prepare** (host, once): centre the observations on the control mean (distances
   are unchanged; float32/TF32 matmul distances get more accurate), pad the *singles*
   to one size ``m_s`` and each double to ``m_d`` (multiples of 8). The control is
   never padded with the other groups: it is a separate static-shape array
   ``[n_0, d]``, so a control 50x larger than the other groups costs only its own size.
2. **Shared work** (one jitted call): everything that does not depend on the double.
   With a global or fixed bandwidth these are the kernel sums of the control block,
   the control-single blocks and the single blocks (scalars per single). With the
   per-pair bandwidth the kernel depends on the pair, so the *squared distances* of
   those blocks are computed once and kept (``n_0^2 / 2 + n_s n_0 m_s + n_s m_s^2 / 2``
   floats), together with their float-bit-grid histograms for the medians.
3. **Per pair** (one jitted ``lax.map`` over chunks of a ``vmap``-ed single-pair
   function, :func:`pairint_jax.parallel.chunked_vmap`): the distance products of
   the double against ``[double, control, i, j]`` and of ``i`` against ``j`` (the
   only blocks unique to a pair), the certified median bandwidth, the ten block
   sums, the statistic, and optionally the null draws on the pooled kernel matrix.
   Peak memory is that of one chunk (``chunk_size`` pairs).

The per-pair median (the known bottleneck of a naive ``jnp.median`` per pair: a sort
of millions of cross distances per pair) is found by selection, never by sorting:
:func:`pairint_jax.stats.grid_median` (CPU default) bins the pair's own cross
distances on a float-bit grid and adds the precomputed histograms of the shared
control-single blocks; :func:`pairint_jax.stats.bracket_median` (accelerator default)
brackets the median from a 1,024-entry subsample and certifies/refines it with fused
counting passes. Both guarantee the median within ``median_rtol`` (default 0.1%) of
the exact median of all cross distances.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax.parallel import check_mesh, chunked_vmap, mesh_size
from pairint_jax.scores import _streaming
from pairint_jax.results import PairScores, pair_scores_from_screen
from pairint_jax.stats.kernels import check_kernel, kernel_from_sq, sq_distances
from pairint_jax.stats.median import GridSpec, bracket_median, grid_histogram, grid_median, grid_spec
from pairint_jax.stats.mmd import (
    NULLS,
    benjamini_hochberg,
    bootstrap_null,
    mixture_mmd2_from_block_sums,
    permutation_null,
    permutation_p_value,
)

__all__ = ["disjointedness_scores", "BANDWIDTHS"]

#: Bandwidth modes accepted by ``bandwidth=`` (besides a positive float).
BANDWIDTHS = ("pair", "global")

#: Status codes of the per-pair pass.
_OK, _ZERO_MEDIAN, _NOT_CONVERGED = 0, 1, 2

# Bytes of per-chunk intermediates when chunk_size="auto": on accelerators a large chunk
# keeps the device busy; on CPU a chunk that stays in cache is several times faster.
_MEMORY_BUDGET = {"cpu": 16 << 20}
_MEMORY_BUDGET_DEFAULT = 4 << 30
_GRID_RTOL = 2.5e-4  # below this median_rtol, grid bins never certify alone (see disjointedness_scores)
_MAX_PASSES = 48  # cap on the certified medians' refinement passes
_N_GRID = 16384  # bins of the float-bit grid of the "grid" median (about 0.1% wide in squared distance)


class _Prepared(NamedTuple):
    x: jax.Array  # [N + pad, D] centred, flattened observations
    n0: int
    s_starts: np.ndarray  # [n_s]
    s_counts: np.ndarray  # [n_s]
    m_s: int
    d_starts: np.ndarray  # [P]
    d_counts: np.ndarray  # [P]
    slot_i: np.ndarray  # [P]
    slot_j: np.ndarray  # [P]
    m_d: int


# ----------------------------------------------------------------------------- shared blocks
def _gather(x, starts, size):
    d = x.shape[1]
    return jax.vmap(lambda s: jax.lax.dynamic_slice(x, (s, jnp.zeros_like(s)), (size, d)))(starts)


def _shared_impl(x, s_starts, s_counts, bw, *, n0, m_s, mode, kernel, need_blocks, median_method, n_grid, precision):
    x0 = x[:n0]
    xs = _gather(x, s_starts, m_s)
    mask_s = jnp.arange(m_s)[None, :] < s_counts[:, None]
    xs = jnp.where(mask_s[..., None], xs, 0.0)
    sq0 = jnp.sum(x0 * x0, axis=1)
    sqs = jnp.where(mask_s, jnp.sum(xs * xs, axis=2), 0.0)
    out = {
        "xs": xs,
        "mask_s": mask_s,
        "sq0": sq0,
        "sqs": sqs,
        "nrm0": jnp.sqrt(jnp.max(sq0)),
        "nrm_s": jnp.sqrt(jnp.max(sqs, axis=1)),
    }
    d00 = sq_distances(x0, precision=precision)
    d0s = jax.vmap(lambda a: sq_distances(x0, a, precision=precision))(xs)  # [n_s, n0, m_s]
    dss = jax.vmap(lambda a: sq_distances(a, precision=precision))(xs)  # [n_s, m_s, m_s]
    if mode == "pair":
        # Self blocks are symmetric with a zero diagonal: keep their strict upper triangles
        # (half the kernel evaluations per pair); the full blocks only for the null draws.
        iu0 = np.triu_indices(n0, k=1)
        ius = np.triu_indices(m_s, k=1)
        out.update(
            d0s=d0s,
            d00_tri=d00[iu0],
            dss_tri=dss[:, ius[0], ius[1]],
            mss_tri=mask_s[:, ius[0]] & mask_s[:, ius[1]],
        )
        if need_blocks:
            out.update(d00=d00, dss=dss)
        if median_method == "grid":
            # One float-bit grid for every pair: from 2^-8 of the typical squared norm (about
            # half a typical squared distance) up to the largest possible squared distance.
            n_all = jnp.asarray(x0.shape[0], sq0.dtype) + jnp.sum(mask_s)
            typical = (jnp.sum(sq0) + jnp.sum(sqs)) / n_all
            tiny = jnp.finfo(x.dtype).tiny
            top = (2.0 * jnp.sqrt(jnp.max(jnp.sum(x * x, axis=1)))) ** 2
            spec = grid_spec(jnp.maximum(typical * 2.0**-8, tiny), jnp.maximum(top, tiny), n_grid=n_grid)
            valid0s = jnp.broadcast_to(mask_s[:, None, :], d0s.shape)
            out.update(grid_base=spec.base, grid_shift=spec.shift, hist0s=jax.vmap(lambda d, m: grid_histogram(d, m, spec))(d0s, valid0s))
        return out
    k00 = kernel_from_sq(kernel, d00, bw)
    k0s = jnp.where(mask_s[:, None, :], kernel_from_sq(kernel, d0s, bw), 0.0)
    pair_mask = mask_s[:, :, None] & mask_s[:, None, :]
    kss = jnp.where(pair_mask, kernel_from_sq(kernel, dss, bw), 0.0)
    out.update(
        s00=jnp.sum(k00) - n0,
        s0s=jnp.sum(k0s, axis=(1, 2)),
        sss=jnp.sum(kss, axis=(1, 2)) - s_counts.astype(kss.dtype),
    )
    if need_blocks:
        out.update(k00=k00, k0s=k0s, kss=kss)
    return out


_shared = jax.jit(
    _shared_impl,
    static_argnames=("n0", "m_s", "mode", "kernel", "need_blocks", "median_method", "n_grid", "precision"),
)


# ----------------------------------------------------------------------------- one pair
TRACE_COUNT = {"pairs": 0}  # incremented each time the per-pair pass is traced (tests check recompilation)


def _cross_sq(a, b, sq_a, sq_b, precision):
    """Squared distances ``[ra, rb]`` from precomputed squared row norms, clamped at 0."""
    return jnp.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * jnp.matmul(a, b.T, precision=precision), 0.0)


def _pairs_impl(
    x,
    shared,
    d_starts,
    d_counts,
    slot_i,
    slot_j,
    pair_index,
    bw,
    rtol,
    key,
    *,
    n0,
    m_d,
    mode,
    kernel,
    n_perm,
    null,
    chunk_size,
    precision,
    median_method,
    n_grid,
    max_passes,
    mesh=None,
):
    TRACE_COUNT["pairs"] += 1
    dim = x.shape[1]
    x0 = x[:n0]
    xs, mask_s, sq0, sqs = shared["xs"], shared["mask_s"], shared["sq0"], shared["sqs"]
    m_s = xs.shape[1]
    dtype = x.dtype
    ones0 = jnp.ones((n0,), bool)
    # Columns of a pair's distance slab: [ij (m_d) | control (n0) | i (m_s) | j (m_s)].
    c0, ci, cj, ce = m_d, m_d + n0, m_d + n0 + m_s, m_d + n0 + 2 * m_s
    self_diag = jnp.arange(m_d)[:, None] == jnp.arange(ce)[None, :]  # the ij-ij diagonal: exactly 0
    base_perms = None
    if n_perm > 0 and null == "permutation":
        # B permutations of the pooled layout, sorted once and shared by every pair (each pair
        # restricts them to its valid rows: uniform, no per-pair sort; see permutation_null).
        base_perms = jax.vmap(lambda k: jax.random.permutation(k, ce))(
            jax.random.split(jax.random.fold_in(key, 0x7FFFFFFF), n_perm)
        ).astype(jnp.int32)

    def one(start, n_ij, si, sj, idx):
        kp = jax.random.fold_in(key, idx)
        k_med, k_null = jax.random.split(kp)
        mask_ij = jnp.arange(m_d) < n_ij
        x_ij = jnp.where(mask_ij[:, None], jax.lax.dynamic_slice(x, (start, jnp.zeros_like(start)), (m_d, dim)), 0.0)
        x_i, x_j, m_i, m_j = xs[si], xs[sj], mask_s[si], mask_s[sj]
        n_i, n_j = jnp.sum(m_i), jnp.sum(m_j)
        sq_ij = jnp.sum(x_ij * x_ij, axis=1)
        # the pair's only unique distance products: one matmul for the double against
        # [double, control, i, j] and one for i against j
        slab = _cross_sq(
            x_ij,
            jnp.concatenate([x_ij, x0, x_i, x_j]),
            sq_ij,
            jnp.concatenate([sq_ij, sq0, sqs[si], sqs[sj]]),
            precision,
        )
        slab = jnp.where(self_diag, 0.0, slab)
        d_ij = _cross_sq(x_i, x_j, sqs[si], sqs[sj], precision)
        m_ij_cols = jnp.concatenate([m_i, m_j])
        status = jnp.asarray(_OK, jnp.int32)
        n_passes = jnp.asarray(0, jnp.int32)
        if mode == "pair":
            row_max = jnp.maximum(jnp.sqrt(jnp.max(sq_ij)), shared["nrm0"])
            col_max = jnp.maximum(shared["nrm_s"][si], shared["nrm_s"][sj])
            ub = (row_max + col_max) ** 2 * (1 + 1e-5)
            if median_method == "grid":
                # the double against i and j, padding marked by -1 and materialised once: the
                # histogram's flat index pass and the kernel sums then read it without re-deriving
                # row/column masks per element (which costs XLA:CPU about 2x on a flattened pass)
                d_own = _materialise(jnp.where(mask_ij[:, None] & m_ij_cols[None, :], slab[:, ci:], -1.0), rtol)
                own = [(d_own, d_own >= 0)]
            else:
                own = [(slab[:, ci:], mask_ij, m_ij_cols)]  # double vs i and j: one block
            def control():  # the shared control-single blocks (gathered only where read)
                return [(shared["d0s"][si], ones0, m_i), (shared["d0s"][sj], ones0, m_j)]

            if median_method == "grid":
                spec = GridSpec(base=shared["grid_base"], shift=shared["grid_shift"], n_grid=n_grid)
                med = grid_median(
                    own,
                    spec=spec,
                    extra_hist=shared["hist0s"][si] + shared["hist0s"][sj],
                    extra_blocks=control,
                    rtol=rtol,
                    upper_bound=ub,
                    max_passes=max_passes,
                )
            else:
                med = bracket_median(own + control(), key=k_med, rtol=rtol, upper_bound=ub)
            h = med.median
            status = jnp.where(med.zero, _ZERO_MEDIAN, jnp.where(med.converged, _OK, _NOT_CONVERGED))
            n_passes = med.n_passes
            h_safe = jnp.where(med.zero, jnp.ones((), dtype), h)
        else:
            h = h_safe = bw
        kf = _kernel_fn(kernel, h_safe)
        col_valid = jnp.concatenate([mask_ij, ones0, m_i, m_j])
        k_slab = kf(slab)
        # one masked reduction over the slab, then its four column blocks
        col_sums = jnp.sum(jnp.where(mask_ij[:, None] & col_valid[None, :], k_slab, 0.0), axis=0)
        s_ij_ij = jnp.sum(col_sums[:c0]) - n_ij  # the exact-zero diagonal gives k = 1 per row
        s_ij_0 = jnp.sum(col_sums[c0:ci])
        if mode == "pair" and median_method == "grid":
            s_ij_i = jnp.sum(jnp.where(d_own[:, :m_s] >= 0, kf(d_own[:, :m_s]), 0.0))
            s_ij_j = jnp.sum(jnp.where(d_own[:, m_s:] >= 0, kf(d_own[:, m_s:]), 0.0))
        else:
            s_ij_i = jnp.sum(col_sums[ci:cj])
            s_ij_j = jnp.sum(col_sums[cj:])
        k_ij = kf(d_ij)
        s_i_j = jnp.sum(jnp.where(m_i[:, None] & m_j[None, :], k_ij, 0.0))
        if mode == "pair":
            k0i = jnp.where(m_i[None, :], kf(shared["d0s"][si]), 0.0)
            k0j = jnp.where(m_j[None, :], kf(shared["d0s"][sj]), 0.0)
            s0i, s0j = jnp.sum(k0i), jnp.sum(k0j)
            s00 = 2.0 * jnp.sum(kf(shared["d00_tri"]))
            sii = 2.0 * jnp.sum(jnp.where(shared["mss_tri"][si], kf(shared["dss_tri"][si]), 0.0))
            sjj = 2.0 * jnp.sum(jnp.where(shared["mss_tri"][sj], kf(shared["dss_tri"][sj]), 0.0))
        else:
            s00, s0i, s0j = shared["s00"], shared["s0s"][si], shared["s0s"][sj]
            sii, sjj = shared["sss"][si], shared["sss"][sj]
        sums = jnp.stack(
            [
                jnp.stack([s_ij_ij, s_ij_0, s_ij_i, s_ij_j]),
                jnp.stack([s_ij_0, s00, s0i, s0j]),
                jnp.stack([s_ij_i, s0i, sii, s_i_j]),
                jnp.stack([s_ij_j, s0j, s_i_j, sjj]),
            ]
        ).astype(dtype)
        counts = jnp.stack([n_ij, jnp.asarray(n0, n_ij.dtype), n_i, n_j])
        t = mixture_mmd2_from_block_sums(sums, counts)
        out = {"score": t, "bandwidth": h, "status": status, "n_passes": n_passes}
        if n_perm > 0:
            k_self, k_0, k_i, k_j = k_slab[:, :c0], k_slab[:, c0:ci], k_slab[:, ci:cj], k_slab[:, cj:]
            if mode == "pair":
                k00 = kf(shared["d00"])
                kii = jnp.where(m_i[:, None] & m_i[None, :], kf(shared["dss"][si]), 0.0)
                kjj = jnp.where(m_j[:, None] & m_j[None, :], kf(shared["dss"][sj]), 0.0)
            else:
                k00 = shared["k00"]
                k0i, k0j = shared["k0s"][si], shared["k0s"][sj]
                kii, kjj = shared["kss"][si], shared["kss"][sj]
            kmat = jnp.block(
                [
                    [k_self, k_0, k_i, k_j],
                    [k_0.T, k00, k0i, k0j],
                    [k_i.T, k0i.T, kii, k_ij],
                    [k_j.T, k0j.T, k_ij.T, kjj],
                ]
            )
            labels = jnp.concatenate(
                [
                    jnp.where(mask_ij, 0, -1),
                    jnp.ones((n0,), jnp.int32),
                    jnp.where(m_i, 2, -1),
                    jnp.where(m_j, 3, -1),
                ]
            ).astype(jnp.int32)
            # Padding rows/cols of the pooled matrix are never used (label -1); give them a unit diagonal.
            kmat = jnp.where(jnp.eye(kmat.shape[0], dtype=bool), jnp.ones((), dtype), kmat)
            if null == "permutation":
                t_null = permutation_null(k_null, kmat, labels, n_permutations=n_perm, base_permutations=base_perms)
            else:
                t_null = bootstrap_null(k_null, kmat, labels, n_bootstrap=n_perm)
            out["p_value"] = permutation_p_value(t, t_null)
        return out

    return chunked_vmap(one, d_starts, d_counts, slot_i, slot_j, pair_index, chunk_size=chunk_size, mesh=mesh)


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


def _kernel_fn(kernel, bandwidth):
    """``sq -> k(sq)`` for one bandwidth, with the per-bandwidth constants hoisted out."""
    if kernel == "rbf":
        scale = -0.5 / (bandwidth * bandwidth)
        return lambda sq: jnp.exp(sq * scale)
    return lambda sq: kernel_from_sq(kernel, sq, bandwidth)


_pairs = jax.jit(
    _pairs_impl,
    static_argnames=(
        "n0",
        "m_d",
        "mode",
        "kernel",
        "n_perm",
        "null",
        "chunk_size",
        "precision",
        "median_method",
        "n_grid",
        "max_passes",
        "mesh",
    ),
)


# ----------------------------------------------------------------------------- global bandwidth
def _global_impl(x, key, *, n_rows, n_sample, precision):
    idx = jax.random.choice(key, n_rows, (n_sample,), replace=False)
    z = x[idx]
    sq = sq_distances(z, precision=precision)
    iu = jnp.triu_indices(n_sample, k=1)
    return jnp.median(jnp.sqrt(sq[iu]))


_global_median = jax.jit(_global_impl, static_argnames=("n_rows", "n_sample", "precision"))


# ----------------------------------------------------------------------------- host side
class _Layout(NamedTuple):
    """Host-side group layout shared by the in-memory and streamed preparations."""

    offsets: np.ndarray  # [G + 1] row offsets of the groups
    counts: np.ndarray  # [G]
    n0: int
    singles: np.ndarray  # [n_s] group ids of the singles that some pair uses
    m_s: int
    m_d: int
    dtype: type


def _layout(screen) -> _Layout:
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    counts = screen.counts
    singles = np.unique(pg[:, 2:4].reshape(-1))
    dtype = np.float64 if (screen.x.dtype == np.float64 and jax.config.jax_enable_x64) else np.float32
    return _Layout(
        offsets=np.asarray(screen.offsets, dtype=np.int64),
        counts=counts,
        n0=int(counts[0]),
        singles=singles,
        m_s=_pad_size(int(counts[singles].max())),
        m_d=_pad_size(int(counts[pg[:, 0]].max())),
        dtype=dtype,
    )


def _prepared(screen, lay: _Layout, x, s_starts, d_starts) -> _Prepared:
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    slot = {int(g): k for k, g in enumerate(lay.singles)}
    return _Prepared(
        x=x,
        n0=lay.n0,
        s_starts=s_starts,
        s_counts=lay.counts[lay.singles].astype(np.int32),
        m_s=lay.m_s,
        d_starts=d_starts,
        d_counts=lay.counts[pg[:, 0]].astype(np.int32),
        slot_i=np.asarray([slot[int(g)] for g in pg[:, 2]], np.int32),
        slot_j=np.asarray([slot[int(g)] for g in pg[:, 3]], np.int32),
        m_d=lay.m_d,
    )


def _prepare(screen) -> _Prepared:
    lay = _layout(screen)
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    # jnp.asarray, not np.asarray: a screen whose x already lives on the device (a Screen is a
    # pytree; replace its leaf with jax.device_put(screen.x)) is used in place, not re-sent.
    xj = _centre_and_pad(jnp.asarray(screen.x, lay.dtype), n0=lay.n0, pad=max(lay.m_s, lay.m_d))
    return _prepared(screen, lay, xj, lay.offsets[lay.singles].astype(np.int32), lay.offsets[pg[:, 0]].astype(np.int32))


def _prepare_streamed(screen):
    """``_prepare`` with only the control and singles on the device (``d_starts`` index the host rows)."""
    lay = _layout(screen)
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    x_host = _streaming.host_rows(screen)
    x_dev, s_starts = _streaming.device_part(
        screen, x_host, n0=lay.n0, singles=lay.singles, offsets=lay.offsets, counts=lay.counts, m_s=lay.m_s,
        pad=max(lay.m_s, lay.m_d), centre_and_pad=_centre_and_pad, dtype=lay.dtype,
    )
    return _prepared(screen, lay, x_dev, s_starts, lay.offsets[pg[:, 0]].astype(np.int64)), x_host


def _centre_and_pad(x, *, n0, pad):
    # The control mean is its own program (one shape, [n0, D]) and enters the centring as an
    # input, so every caller (in memory, streamed blocks) subtracts the identical vector.
    x = x.reshape(x.shape[0], -1)
    return _subtract_and_pad(x, _control_mean(x[:n0]), pad=pad)


@jax.jit
def _control_mean(x0):
    return jnp.mean(x0, axis=0)


@functools.partial(jax.jit, static_argnames=("pad",))
def _subtract_and_pad(x, mean, *, pad):
    return jnp.concatenate([x - mean, jnp.zeros((pad, x.shape[1]), x.dtype)])


def _pad_size(m: int) -> int:
    # A multiple of 8, not the coarser bucket_size ladder: every padded row of a double
    # costs a row of each per-pair block, so tight padding pays more than program reuse.
    return -(-m // 8) * 8


def _auto_chunk(prep: _Prepared, mode: str, n_perm: int, itemsize: int) -> int:
    n0, m_s, m_d = prep.n0, prep.m_s, prep.m_d
    floats = m_d * (m_d + n0 + 2 * m_s) + m_s * m_s
    if mode == "pair":
        floats += n0 * n0 // 2 + 2 * n0 * m_s + m_s * m_s
    if n_perm > 0:
        n = m_d + n0 + 2 * m_s
        floats += n * n + 2 * n * 4 * n_perm
    per_pair = 3 * itemsize * floats
    budget = _MEMORY_BUDGET.get(jax.default_backend(), _MEMORY_BUDGET_DEFAULT)
    n_pairs = len(prep.d_starts)
    c_max = int(max(1, min(n_pairs, budget // max(per_pair, 1))))
    # the pairs are padded to whole chunks: among chunk sizes down to half the budget's, take
    # the one that pads least (45 pairs: 3 x 15 rather than 4 x 12 with 3 padding pairs)
    return min(range(c_max, (c_max - 1) // 2, -1), key=lambda c: (-(-n_pairs // c) * c - n_pairs, -c))


def _check_finite(screen, x) -> None:
    if bool(jnp.all(jnp.isfinite(x))):
        return
    flat = np.asarray(screen.x).reshape(screen.x.shape[0], -1)
    bad_rows = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    groups = np.searchsorted(np.asarray(screen.offsets[1:]), bad_rows, side="right")
    names = sorted({screen.conditions[g] for g in groups})
    raise ValueError(
        f"the screen has {len(bad_rows)} observation(s) with non-finite values in condition(s) {names[:5]}; "
        "remove or impute them before scoring."
    )


def _bandwidth_mode(bandwidth):
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTHS:
            raise ValueError(f"bandwidth must be 'pair', 'global' or a positive float, got {bandwidth!r}.")
        return bandwidth, None
    try:
        value = float(bandwidth)
    except (TypeError, ValueError) as err:
        raise TypeError(f"bandwidth must be 'pair', 'global' or a positive float, got {bandwidth!r}.") from err
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a fixed bandwidth must be a positive finite float, got {bandwidth!r}.")
    return "fixed", value


def disjointedness_scores(
    screen,
    *,
    kernel: str = "rbf",
    bandwidth="pair",
    n_permutations: int = 200,
    null: str = "permutation",
    key: jax.Array | None = None,
    chunk_size: int | str | None = "auto",
    precision=None,
    median_rtol: float = 1e-3,
    median_method: str = "auto",
    global_sample: int = 2048,
    on_zero_bandwidth: str = "raise",
    progress: bool = False,
    mesh=None,
    stream: bool = False,
    stream_block: int | None = None,
) -> PairScores:
    """Disjointedness (mixture MMD^2) score of every scorable pair, with p- and q-values.

    For each pair ``(i, j)`` with a control, both singles and the double measured,

        score = MMD^2(1/2 p_ij + 1/2 p_0, 1/2 p_i + 1/2 p_j)

    by the exactly unbiased block-form estimator (``DIGEST.md`` section 2;
    :func:`pairint_jax.stats.mixture_mmd2`). Large scores mean the double is not the
    superposition of the singles: the perturbations are not disjoint. All pairs run
    in one compiled pass (``lax.map`` over chunks of a ``vmap``-ed pair function).

    Args:
      screen: a :class:`~pairint_jax.Screen`; observations of any feature shape are
        flattened to vectors.
      kernel: ``"rbf"`` (``exp(-r^2/(2s^2))``, default) or ``"matern52"``.
      bandwidth: ``"pair"`` (default, as in the paper's code): per pair, the median of
        the cross distances between ``ij u 0`` and ``i u j``, certified within
        ``median_rtol`` of the exact median; ``"global"``: the exact median of all
        pairwise distances among ``global_sample`` rows drawn without replacement from
        the whole screen (seeded by ``key``), shared by every pair; or a positive float.
      n_permutations: null draws per pair for the p-values (default 200); 0 skips them
        (no ``p_value``/``q_value`` columns).
      null: ``"permutation"`` (default; the digest's pooled permutation: valid and
        conservative, since the groups are stratified) or ``"bootstrap"`` (calibrated
        within-group multiplier bootstrap: reproduces the stratified null spread, so
        more power; level holds asymptotically; see
        :func:`pairint_jax.stats.bootstrap_null`). The bandwidth is held at its
        observed value during the null draws. The permutations are drawn once and
        shared by all pairs (each pair restricts them to its own rows), so p-values of
        different pairs are dependent, as they already are through the shared control.
      key: PRNG key (default ``jax.random.key(0)``); pair ``k`` uses
        ``fold_in(key, k)``, so results do not depend on ``chunk_size``.
      chunk_size: pairs per vmapped chunk (static). ``"auto"`` (default) keeps the
        chunk's intermediates near 4 GiB on accelerators and 16 MiB (cache-sized,
        measured fastest) on CPU; ``None`` vmaps all pairs at once.
      precision: matmul precision of the distance products (``None``: device default,
        TF32 on recent NVIDIA GPUs; ``"highest"``: full float32).
      median_rtol: tolerance of the certified pair median (default 1e-3, i.e. 0.1%).
      median_method: how the certified pair median is found (both guarantee
        ``median_rtol``): ``"grid"`` bins every cross distance on one float-bit grid
        (control-single blocks binned once and shared by all pairs; one scatter pass
        per pair, best on CPU; the few pairs whose grid bin is wider than
        ``median_rtol`` are redone by a second, refining program, compiled only when
        needed); ``"sample"`` brackets the median from a 1,024-entry
        subsample and refines it with fused counting passes (no scatter; best on
        GPUs); ``"auto"`` (default) picks by backend.
      global_sample: rows in the ``"global"`` bandwidth subsample (default 2048).
      on_zero_bandwidth: ``"raise"`` (default) raises when a pair's median distance is 0
        (constant or duplicated data); ``"nan"`` reports NaN with a reason instead.
      progress: show a progress bar (the pass is then split into up to 20 equal
        compiled blocks of pairs).
      mesh: optional :class:`jax.sharding.Mesh`: the pairs are split over its devices
        (``shard_map``; ``chunk_size`` then counts pairs per device, and every device runs
        whole chunks; observations and shared blocks replicated). With the same
        ``chunk_size`` the scores equal the single-device ones bit for bit
        (``tests/mesh_cases.py``).
      stream: keep the doubles in host memory and send them to the device in blocks of
        ``stream_block`` pairs (for screens that do not fit on the device; ``screen.x``
        may be a ``np.memmap``). Only the control and the singles stay on the device;
        see :mod:`pairint_jax.scores._streaming` for the memory bound. Same scores as
        in memory. A sparse screen (``screen.is_sparse``) always takes this path, so its
        rows are densified one block at a time.
      stream_block: pairs per streamed block (default: about 64 MiB of doubles on CPU,
        1 GiB on accelerators).

    Returns:
      :class:`~pairint_jax.PairScores` with ``test="disjointedness"``: ``score`` and the
      columns ``p_value``, ``q_value`` (Benjamini-Hochberg over the scored pairs) and
      ``bandwidth``; unscorable pairs are NaN with a ``reason``.

    Raises:
      ValueError: unknown kernel/null/bandwidth, a non-positive bandwidth, non-finite
        observations, or a zero median distance (with ``on_zero_bandwidth="raise"``).

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> rng = np.random.default_rng(0)
      >>> labels = np.repeat(["ctrl", "A", "B", "A+B"], 30)
      >>> x = rng.normal(size=(120, 4)) + 3.0 * (labels == "A+B")[:, None]
      >>> res = pj.disjointedness_scores(pj.Screen.from_arrays(x, labels), n_permutations=99)
      >>> bool(res.to_frame().p_value[0] < 0.05)
      True

    References:
      Gretton et al. (2012), A kernel two-sample test. JMLR 13.
    """
    check_kernel(kernel)
    mode, fixed = _bandwidth_mode(bandwidth)
    if null not in NULLS:
        raise ValueError(f"null must be one of {NULLS}, got {null!r}.")
    if isinstance(n_permutations, bool) or int(n_permutations) != n_permutations or n_permutations < 0:
        raise ValueError(f"n_permutations must be an int >= 0, got {n_permutations!r}.")
    n_perm = int(n_permutations)
    if median_method not in ("auto", "grid", "sample"):
        raise ValueError(f"median_method must be 'auto', 'grid' or 'sample', got {median_method!r}.")
    if on_zero_bandwidth not in ("raise", "nan"):
        raise ValueError(f"on_zero_bandwidth must be 'raise' or 'nan', got {on_zero_bandwidth!r}.")
    if not (0 < float(median_rtol) < 0.5):
        raise ValueError(f"median_rtol must be in (0, 0.5), got {median_rtol!r}.")
    if key is None:
        key = jax.random.key(0)
    if not jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    settings = {
        "kernel": kernel,
        "bandwidth": bandwidth if mode != "fixed" else fixed,
        "n_permutations": n_perm,
        "null": null,
        "median_rtol": float(median_rtol),
        "precision": precision,
    }
    if len(screen.pairs) == 0:
        return pair_scores_from_screen(screen, np.zeros(0), test="disjointedness", settings=settings)

    mesh = check_mesh(mesh)
    stream = stream or screen.is_sparse  # sparse rows are densified one block of doubles at a time
    if stream:
        prep, x_host = _prepare_streamed(screen)
    else:
        prep = _prepare(screen)
        _check_finite(screen, prep.x)
    k_global, k_pairs = jax.random.split(key)
    n_rows = int(screen.x.shape[0])
    if mode == "global":
        n_sample = int(min(global_sample, n_rows))
        if stream:  # the sampled rows only, ordered so the program draws them as in memory
            rows = _streaming.global_rows(x_host, k_global, n_rows, n_sample, prep.x.dtype)
            both = np.concatenate([np.asarray(x_host[: prep.n0], rows.dtype), rows])
            xg = _centre_and_pad(jnp.asarray(both), n0=prep.n0, pad=0)[prep.n0:]
            bw_value = float(_global_median(xg, k_global, n_rows=n_sample, n_sample=n_sample, precision=precision))
        else:
            bw_value = float(_global_median(prep.x, k_global, n_rows=n_rows, n_sample=n_sample, precision=precision))
        if not bw_value > 0:
            raise ValueError(
                f"the global median distance over {n_sample} sampled observations is 0 (constant or duplicated "
                "data); pass a fixed bandwidth=<float> or remove duplicated rows."
            )
        settings["global_bandwidth"] = bw_value
    elif mode == "fixed":
        bw_value = fixed
    else:
        bw_value = 1.0  # unused
    dtype = prep.x.dtype
    bw = jnp.asarray(bw_value, dtype)
    method = median_method
    if method == "auto":
        method = "grid" if jax.default_backend() == "cpu" else "sample"
    shared = _shared(
        prep.x,
        jnp.asarray(prep.s_starts),
        jnp.asarray(prep.s_counts),
        bw,
        n0=prep.n0,
        m_s=prep.m_s,
        mode=mode,
        # statics that do not change this program are normalised (fewer compilations)
        kernel=None if mode == "pair" else kernel,
        need_blocks=n_perm > 0,
        median_method=method if mode == "pair" else None,
        n_grid=_N_GRID,
        precision=precision,
    )
    n_pairs = len(prep.d_starts)
    if chunk_size == "auto":
        chunk = _auto_chunk(prep, mode, n_perm, jnp.dtype(dtype).itemsize)
    elif chunk_size is None:
        chunk = None
    else:
        if int(chunk_size) <= 0:
            raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}.")
        chunk = int(chunk_size)
    per_pair = [prep.d_starts, prep.d_counts, prep.slot_i, prep.slot_j, np.arange(n_pairs, dtype=np.int32)]
    statics = dict(
        n0=prep.n0,
        m_d=prep.m_d,
        mode=mode,
        kernel=kernel,
        n_perm=n_perm,
        null=null,
        precision=precision,
        median_method=method,
        n_grid=_N_GRID,
    )
    rtol = jnp.asarray(median_rtol, dtype)
    statics["mesh"] = mesh
    if stream:
        n_dev = 1 if mesh is None else mesh_size(mesh)
        step = (chunk or 1) * n_dev  # whole chunks on every device: no remainder program
        block = stream_block or _streaming.auto_block(
            n_pairs, prep.n0, prep.m_d, prep.x.shape[1], jnp.dtype(dtype).itemsize, step
        )
        block = -(-int(block) // step) * step
        layout = _streaming.BlockLayout(x_host, prep.n0, prep.m_d, block, np.dtype(dtype))
        run = functools.partial(_run_pairs_streamed, layout, shared, bw, rtol, k_pairs, statics, progress=progress)
    else:
        run = functools.partial(_run_pairs, prep.x, shared, bw, rtol, k_pairs, statics)
    # Grid medians: one histogram pass certifies almost every pair, so the main program has
    # no refinement loop (smaller, faster to compile); the rare pairs whose grid bin is
    # wider than median_rtol are redone by a second program with refinement passes.
    # (A grid bin is at least 2^-10 wide in squared distance, so a median_rtol below about
    # 2.5e-4 always needs refinement: then the single program with the loop is used.)
    one_pass = method == "grid" and mode == "pair" and median_rtol >= _GRID_RTOL
    passes = 1 if one_pass else _MAX_PASSES
    blocks = progress and not stream  # the streamed runner has its own bar
    out = _run_blocks(run, per_pair, chunk, passes) if blocks else run(per_pair, chunk, max_passes=passes)
    if one_pass:
        redo = np.flatnonzero(out["status"] == _NOT_CONVERGED)
        if len(redo):
            bucket = 1 << (len(redo) - 1).bit_length()  # powers of two: few distinct programs
            fix = run([a[redo] for a in per_pair], min(chunk or bucket, bucket), max_passes=_MAX_PASSES, n_pad=bucket)
            for k in out:
                out[k][redo] = fix[k]
    return _finish(screen, out, n_perm, on_zero_bandwidth, settings)


def _run_pairs(x, shared, bw, rtol, key, statics, per_pair, chunk, *, max_passes, n_pad=None):
    """Run the compiled pass on the given pairs, padded to whole chunks (by repeating the
    last pair, whose extra results are dropped): a remainder chunk would compile the
    whole per-pair program a second time."""
    n = len(per_pair[0])
    n_pad = max(n if n_pad is None else n_pad, n)
    if chunk is not None and chunk < n_pad:
        step = chunk * (1 if statics.get("mesh") is None else mesh_size(statics["mesh"]))  # whole chunks per device
        n_pad = -(-n_pad // step) * step
    idx = np.minimum(np.arange(n_pad), n - 1)
    args = [jnp.asarray(a[idx]) for a in per_pair]
    out = _pairs(x, shared, *args, bw, rtol, key, chunk_size=chunk, max_passes=max_passes, **statics)
    return {k: np.array(v)[:n] for k, v in out.items()}


def _run_pairs_streamed(layout, shared, bw, rtol, key, statics, per_pair, chunk, *, max_passes, n_pad=None, progress=False):
    """:func:`_run_pairs` with the doubles sent from the host block by block (``stream=True``)."""
    del n_pad  # every block is already padded to the layout's block size
    chunk = None if chunk is None else min(chunk, layout.block)
    bar = _progress(total=len(per_pair[0]), desc="disjointedness", enabled=progress, unit="pair")

    def call(xb, *args):  # the block's raw rows [control | doubles], centred here as in memory
        xb = _centre_and_pad(xb, n0=layout.n0, pad=0)
        return _pairs(xb, shared, *map(jnp.asarray, args), bw, rtol, key, chunk_size=chunk, max_passes=max_passes,
                      **statics)

    out = _streaming.run_blocks(layout, per_pair, call, progress_bar=bar)
    bar.close()
    return out


def _run_blocks(run, per_pair, chunk, max_passes):
    """The same compiled pass in up to 20 equal blocks of pairs, with a progress bar."""
    n_pairs = len(per_pair[0])
    step = chunk or n_pairs
    n_blocks = min(20, -(-n_pairs // step))
    block = -(-n_pairs // n_blocks)
    block = -(-block // step) * step
    pieces = []
    bar = _progress(total=n_pairs, desc="disjointedness", enabled=True, unit="pair")
    for start in range(0, n_pairs, block):
        sub = [a[start : start + block] for a in per_pair]
        pieces.append(run(sub, min(step, block), max_passes=max_passes, n_pad=block))
        bar.update(len(sub[0]))
    bar.close()
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def _finish(screen, out, n_perm, on_zero_bandwidth, settings) -> PairScores:
    score = np.asarray(out["score"], np.float64)
    status = np.asarray(out["status"])
    bandwidth = np.asarray(out["bandwidth"], np.float64)
    reason = np.full(len(score), "", dtype=object)
    zero = status == _ZERO_MEDIAN
    if zero.any():
        names = [
            f"{screen.perturbations[i]}{screen.sep}{screen.perturbations[j]}" for i, j in screen.pairs[np.flatnonzero(zero)]
        ]
        if on_zero_bandwidth == "raise":
            raise ValueError(
                f"{int(zero.sum())} pair(s) have a zero median cross distance (constant or duplicated data), so the "
                f"median heuristic gives no bandwidth: {names[:5]}. Pass a fixed bandwidth=<float>, "
                "bandwidth='global', or on_zero_bandwidth='nan' to report these pairs as NaN."
            )
        score[zero] = np.nan
        bandwidth[zero] = 0.0
        reason[zero] = "zero median distance (constant or duplicated data): no median-heuristic bandwidth"
    slow = int(np.sum(status == _NOT_CONVERGED))
    if slow:  # the bandwidth is still inside a proven bracket, only wider than median_rtol
        warnings.warn(
            f"the certified median did not reach median_rtol={settings['median_rtol']} for {slow} pair(s) "
            "(heavily tied distances); their bandwidths are approximate.",
            RuntimeWarning,
            stacklevel=3,
        )
    columns = {}
    if n_perm > 0:
        p = np.asarray(out["p_value"], np.float64)
        p[~np.isfinite(score)] = np.nan
        columns["p_value"] = p
        columns["q_value"] = benjamini_hochberg(p)
    columns["bandwidth"] = bandwidth
    settings = dict(settings)
    if "n_passes" in out and settings.get("bandwidth") == "pair":
        settings["median_passes_max"] = int(np.max(out["n_passes"]))
    return pair_scores_from_screen(screen, score, columns=columns, reason=reason, test="disjointedness", settings=settings)
