"""Selection of the k nearest candidates without sorting (the k-NN estimator's inner step).

:func:`smallest` packs each squared distance and its column index into one float
(the distance with its lowest mantissa bits replaced by the index) and finds the ``kk``
smallest by ``kk`` fused ``min`` passes: no sort, no ``top_k`` and no ``argmin`` over a
full block (all slow on CPU). :func:`kth_smallest` ranks a short last axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pairint_jax._validate import ceil_div

__all__ = ["smallest", "kth_smallest"]

#: Candidates per tile in the packed-key selection: 8 index bits, so the approximate
#: order is blurred by at most 2^-15 relative in float32 (2^-44 in float64).
_TILE = 256


def _tile_smallest(d2, ok, kk: int):
    """Packed-key selection along a last axis of at most ``_TILE`` entries.

    Returns ``(keys [..., kk], local_idx [..., kk] int32, found [..., kk] bool)``; keys are
    the packed floats (the distance with its low mantissa bits replaced by the index).
    """
    m = d2.shape[-1]
    bits = max(1, int(m - 1).bit_length())
    itype = jnp.int32 if d2.dtype.itemsize == 4 else jnp.int64
    big = jnp.finfo(d2.dtype).max
    # Clamp to the normal range: keys must never be denormal (CPUs may flush them to zero).
    d2 = jnp.where(ok, jnp.clip(d2, jnp.finfo(d2.dtype).tiny, big), big)
    low = (1 << bits) - 1
    mask_hi = ~jnp.asarray(low, itype)
    ib = (jax.lax.bitcast_convert_type(d2, itype) & mask_hi) | jnp.arange(m, dtype=itype)
    keys = jax.lax.bitcast_convert_type(ib, d2.dtype)
    sentinel = jax.lax.bitcast_convert_type(jnp.asarray(big, d2.dtype), itype) & mask_hi
    prev = jnp.full(d2.shape[:-1], -1.0, d2.dtype)
    out = []
    for _ in range(kk):
        prev = jnp.min(jnp.where(keys > prev[..., None], keys, jnp.inf), axis=-1)
        out.append(prev)
    keys_k = jnp.stack(out, axis=-1)
    kbits = jax.lax.bitcast_convert_type(keys_k, itype)
    found = (kbits & mask_hi) < sentinel  # inf (nothing left) is above too
    return keys_k, (kbits & low).astype(jnp.int32), found


def smallest(d2, ok, kk: int):
    """Indices of the ``kk`` smallest valid entries along the last axis.

    Each squared distance (clamped to the normal floats ``[tiny, max]``; invalid
    entries the max float) has its lowest mantissa bits replaced by its column index
    within a tile of ``_TILE`` columns. For non-negative floats the bit patterns are
    ordered like the values, so these packed keys -- still finite floats -- are
    unique and ordered by distance, and ``kk`` rounds of a fused float ``min`` over
    the keys above the previous minimum give the ``kk`` nearest candidates *and*
    their indices: no sort, no ``top_k``, no ``argmin`` over the full block (all slow
    on CPU). Longer axes are cut into tiles; ``lax.top_k`` then picks the ``kk`` best
    of the ``kk`` per tile. Dropping 8 low bits only blurs the *approximate* order
    (2^-15 relative in float32); the candidates' distances are recomputed exactly.

    Returns:
      ``(idx [..., kk] int32, found [..., kk] bool)``.
    """
    m = d2.shape[-1]
    if m <= _TILE:
        _, idx, found = _tile_smallest(d2, ok, kk)
        return idx, found
    n_tiles = ceil_div(m, _TILE)
    pad = n_tiles * _TILE - m
    lead = d2.shape[:-1]
    widths = [(0, 0)] * len(lead) + [(0, pad)]
    d2t = jnp.pad(d2, widths).reshape(lead + (n_tiles, _TILE))
    okt = jnp.pad(jnp.broadcast_to(ok, d2.shape), widths).reshape(lead + (n_tiles, _TILE))
    keys, local, found = _tile_smallest(d2t, okt, kk)  # [..., n_tiles, kk]
    glob = local + (jnp.arange(n_tiles, dtype=jnp.int32) * _TILE)[:, None]
    vals = jnp.where(found, keys, jnp.inf).reshape(lead + (n_tiles * kk,))
    neg, pos = jax.lax.top_k(-vals, kk)
    idx = jnp.take_along_axis(glob.reshape(lead + (n_tiles * kk,)), pos, axis=-1)
    return idx, jnp.isfinite(neg)


def kth_smallest(e, k: int):
    """k-th smallest (1-based) along the last, short axis, by ranks (ties broken by position)."""
    kk = e.shape[-1]
    pos = jnp.arange(kk)
    smaller = e[..., None, :] < e[..., :, None]  # [..., j, i]: e_i < e_j
    tie_before = (e[..., None, :] == e[..., :, None]) & (pos[None, :] < pos[:, None])
    rank = jnp.sum(smaller | tie_before, axis=-1)
    return jnp.max(jnp.where(rank == k - 1, e, -jnp.inf), axis=-1)
