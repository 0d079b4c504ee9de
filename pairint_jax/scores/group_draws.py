"""Sign-flip (Rademacher multiplier) draws of every group's mean, and the pass over all pairs.

The additive-null test (:mod:`pairint_jax.scores.additive_null`) and the interaction
types (:mod:`pairint_jax.scores.interaction_types`) both need, for every pair ``(i, j)``,
the four group means ``xbar_g`` of ``g in (ij, 0, i, j)`` and ``B`` multiplier draws of
them. For group ``g`` with rows ``x_r``, residuals ``e_r = x_r - xbar_g`` and signs
``eps_br in {-1, +1}``, this module computes once per group

    u_b = sqrt(n_g / (n_g - 1)) * sum_r eps_br e_r          ([B, d])

so that ``xbar_g + u_b / n_g`` is a draw of the wild (sign-flip) bootstrap of the mean:
its covariance is exactly the unbiased ``S_g / n_g``. Signs are drawn per *row*
(``fold_in(fold_in(key, g), r)``), so they do not depend on how a group is padded, how
pairs are chunked or blocked, or whether the rows came from a dense or a sparse matrix.

Layout: the control and the singles are computed once (shared by every pair, like the
shared blocks of the disjointedness scores); the doubles are read from the host in
blocks of pairs (dense or sparse rows alike, densified one block at a time), and
every block runs the same compiled program: a per-pair function ``vmap``-ed in chunks
(:func:`pairint_jax.parallel.chunked_vmap`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import round_up
from pairint_jax.parallel import chunked_vmap
from pairint_jax.scores.disjointedness.layout import compute_dtype, pad_size

#: Fewest observations per group for multiplier draws (fewer: NaN with a reason).
MIN_CELLS = 5
#: Fewest pairs per vmapped chunk chosen by :func:`auto_chunk`, even above the budget: at
#: d = 2,000 genes one pair alone exceeds 16 MiB, and chunks of one pair leave the CPU idle
#: between tiny dispatches.
MIN_CHUNK = 2
_BUDGET = {"cpu": 16 << 20}  # bytes of per-chunk intermediates (cache-sized on CPU)
_BUDGET_DEFAULT = 1 << 30
_BLOCK_BYTES = 64 << 20  # bytes of doubles sent to the device per block


class GroupDraws(NamedTuple):
    """One group's mean and multiplier draws (leading ``[k]`` axes when batched)."""

    mean: jax.Array  # [d] group mean (control-centred coordinates)
    u: jax.Array  # [B, d] sqrt(n/(n-1)) sum_r eps_br (x_r - mean)
    uu: jax.Array  # [B] ||u_b||^2
    ss: jax.Array  # [] sum_r ||x_r - mean||^2
    n: jax.Array  # [] rows, as a float
    se2: jax.Array  # [d] squared standard error of the mean, per feature: S_g[f, f] / n


def signs(key, m: int, n_draws: int, dtype) -> jax.Array:
    """``[n_draws, m]`` Rademacher signs; column ``r`` from ``fold_in(key, r)`` (pad-invariant)."""
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(m))
    return jax.vmap(lambda k: jax.random.rademacher(k, (n_draws,), dtype))(keys).T


def group_draws(rows, n, eps) -> GroupDraws:
    """:class:`GroupDraws` of the first ``n`` of ``rows`` ``[m, d]`` with signs ``eps`` ``[B, m]``."""
    mask = jnp.arange(rows.shape[0]) < n
    nf = jnp.asarray(n, rows.dtype)
    mean = jnp.sum(jnp.where(mask[:, None], rows, 0.0), axis=0) / nf
    res = jnp.where(mask[:, None], rows - mean, 0.0)
    scale = jnp.sqrt(nf / jnp.maximum(nf - 1.0, 1.0))
    u = jnp.matmul(eps, res * scale, precision=jax.lax.Precision.HIGHEST)
    per_feature = jnp.sum(res * res, axis=0)
    se2 = per_feature / (nf * jnp.maximum(nf - 1.0, 1.0))
    return GroupDraws(mean, u, jnp.sum(u * u, axis=1), jnp.sum(per_feature), nf, se2)


def _draws(rows, n, key, g, n_draws, offset) -> GroupDraws:
    eps = signs(jax.random.fold_in(key, g), rows.shape[0], n_draws, rows.dtype)
    return group_draws(rows - offset, n, eps)


@functools.partial(jax.jit, static_argnames=("n_draws",))
def shared_draws(control, singles, s_counts, s_groups, offset, key, *, n_draws):
    """Draws of the control (group 0, ``[n0, d]``) and of the singles (``[n_s, m_s, d]``)."""
    ctrl = _draws(control, control.shape[0], key, 0, n_draws, offset)
    sing = jax.vmap(lambda r, n, g: _draws(r, n, key, g, n_draws, offset))(singles, s_counts, s_groups)
    return ctrl, sing


@functools.partial(jax.jit, static_argnames=("pair_fn", "n_draws", "chunk", "options"))
def _block(xd, d_counts, d_groups, slot_i, slot_j, ctrl, sing, offset, key, *, pair_fn, n_draws, chunk, options):
    def one(rows, n, g, si, sj):
        dij = _draws(rows, n, key, g, n_draws, offset)
        di, dj = (jax.tree.map(lambda a, s=s: a[s], sing) for s in (si, sj))
        return pair_fn(dij, ctrl, di, dj, options)

    return chunked_vmap(one, xd, d_counts, d_groups, slot_i, slot_j, chunk_size=chunk)


class Layout(NamedTuple):
    """Host layout of the pairs of a screen (``[P]`` arrays in ``screen.pair_groups`` order)."""

    d_groups: np.ndarray  # group id of each pair's double
    d_counts: np.ndarray  # its rows
    slot_i: np.ndarray  # index of single i among s_groups
    slot_j: np.ndarray
    s_groups: np.ndarray  # [n_s] group ids of the singles in use
    m_d: int  # padded rows of a double
    dtype: type


def layout(screen) -> Layout:
    """Where every pair's groups sit (no rows read)."""
    pg = np.asarray(screen.pair_groups, np.int64)
    s_groups = np.unique(pg[:, 2:4].reshape(-1))
    slot = np.searchsorted(s_groups, pg[:, 2:4])
    counts = screen.counts
    return Layout(pg[:, 0].astype(np.int32), counts[pg[:, 0]].astype(np.int32), slot[:, 0].astype(np.int32),
                  slot[:, 1].astype(np.int32), s_groups, pad_size(int(counts[pg[:, 0]].max())), compute_dtype(screen))


def small_groups(screen) -> np.ndarray:
    """``[P]`` reason strings: ``""``, or which of the pair's groups has fewer than :data:`MIN_CELLS` rows."""
    pg = np.asarray(screen.pair_groups, np.int64)
    counts = screen.counts[pg]
    out = np.full(len(pg), "", dtype=object)
    for k in np.flatnonzero((counts < MIN_CELLS).any(axis=1)):
        small = [f"{screen.conditions[g]} has {int(c)}" for g, c in zip(pg[k], counts[k]) if c < MIN_CELLS]
        out[k] = f"too few observations for the multiplier draws ({', '.join(small)}; need >= {MIN_CELLS})"
    return out


def auto_chunk(n_pairs: int, m_d: int, d: int, n_draws: int, itemsize: int) -> int:
    """Pairs per vmapped chunk whose intermediates fit 16 MiB on CPU (1 GiB elsewhere), and
    at least :data:`MIN_CHUNK` (or all pairs, if fewer)."""
    per_pair = 3 * itemsize * (n_draws * m_d + 2 * m_d * d + 8 * n_draws * d)
    budget = _BUDGET.get(jax.default_backend(), _BUDGET_DEFAULT)
    return int(min(n_pairs, max(MIN_CHUNK, budget // max(per_pair, 1))))


def run_pairs(screen, pair_fn, *, n_draws: int, key, chunk: int | None, options=()):
    """``pair_fn(draws_ij, draws_0, draws_i, draws_j, options)`` for every scorable pair.

    Args:
      screen: a :class:`~pairint_jax.Screen` (dense or sparse rows) with scorable pairs.
      pair_fn: a module-level function of four :class:`GroupDraws` and ``options``
        returning a pytree of arrays (a static argument: one compilation per function).
      n_draws: ``B``, multiplier draws per group (``>= 1``).
      key: PRNG key; group ``g`` draws its signs from ``fold_in(key, g)``.
      chunk: pairs per vmapped chunk, or None for all pairs of a block at once.
      options: a hashable tuple of static options passed to ``pair_fn``.

    Returns:
      ``pair_fn``'s outputs stacked over pairs, as host arrays ``[P, ...]``.
    """
    lay = layout(screen)
    dtype = lay.dtype
    offset = jnp.asarray(screen.group_means([0]).reshape(-1), dtype)  # float64 control mean, any storage
    control = jnp.asarray(np.asarray(screen.group(0)).reshape(int(screen.counts[0]), -1), dtype)
    singles, _ = screen.padded(lay.s_groups, size=pad_size(int(screen.counts[lay.s_groups].max())))
    singles = jnp.asarray(singles.reshape(singles.shape[0], singles.shape[1], -1), dtype)
    s_counts = jnp.asarray(screen.counts[lay.s_groups], jnp.int32)
    ctrl, sing = shared_draws(control, singles, s_counts, jnp.asarray(lay.s_groups, jnp.int32), offset, key,
                              n_draws=n_draws)
    n_pairs, d = len(lay.d_groups), int(control.shape[1])
    step = chunk or n_pairs
    block = round_up(max(1, min(n_pairs, _BLOCK_BYTES // max(1, lay.m_d * d * np.dtype(dtype).itemsize))), step)
    block = min(block, round_up(n_pairs, step))
    pieces = []  # device outputs, copied to the host after the loop: blocks are dispatched back to back
    for lo in range(0, n_pairs, block):
        take = np.minimum(np.arange(lo, lo + block), n_pairs - 1)  # the last block padded by repetition
        xd, _ = screen.padded(lay.d_groups[take], size=lay.m_d)  # only these rows are read (dense or sparse)
        out = _block(jnp.asarray(xd.reshape(block, lay.m_d, -1), dtype), *(jnp.asarray(a[take]) for a in (lay.d_counts, lay.d_groups, lay.slot_i, lay.slot_j)),
                     ctrl, sing, offset, key, pair_fn=pair_fn, n_draws=n_draws,
                     chunk=None if step >= block else step, options=options)
        pieces.append(out)
        if len(pieces) > 2:  # at most two blocks of doubles in flight: bounded host memory
            jax.block_until_ready(pieces[-3])
    # every block holds `block` pairs (the last padded by repetition): concatenate, then trim
    return jax.tree.map(lambda *p: np.concatenate([np.asarray(v) for v in p])[:n_pairs], *pieces)
