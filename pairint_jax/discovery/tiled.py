"""IDS over every remaining pair of a genome-scale screen, streamed in tiles and sharded.

:func:`~pairint_jax.discovery.acquisition.ids` keeps ``[n, n]`` statistics, which is
right for a campaign of hundreds of perturbations. At n = 20,000 there are about
2 x 10^8 candidate pairs, and ``K = 1000`` posterior samples of all of them would be
8 x 10^11 bytes. :func:`ids_tiled` computes the same batch (the ``b`` smallest
``Psi = Delta^lambda / v``, the same ``v = 0`` rule and the same tie order: ``Psi``,
then ``Delta``, then the pair index) without any array larger than one tile:

* the upper triangle of ``R`` is cut into square tiles of ``T x T`` pairs (tile rows
  ``bi <= bj``; only the diagonal tiles carry wasted lower-triangle entries). A tile's
  values for all samples, ``R_s(a)`` for ``a`` in the tile, are a batched product of
  the low-rank factors, ``[K, T, m] x [K, m, T]``: ``K x n x n`` is never formed.
* **pass 1** (the per-sample argmax): a scan over tiles keeps, per sample, its best
  value, the pair reaching it (ties: the lower pair index) and whether all its values
  on remaining pairs are finite. Samples are sharded across the mesh.
* **host step**: the distinct optimal actions ``b`` of the valid samples (``B`` of them,
  ``B <= K``) and their counts ``c_b``, ``p_b = c_b / W``. The groups with two or more
  samples (``B_2 <= K / 2`` of them) give a one-hot matrix ``H [K, B_2]`` (padded to a
  power of two: few compiled shapes).
* **pass 2** (``Delta``, ``v`` and the batch): a scan over tiles, sharded across the
  mesh, computes for each tile the moments over samples of the values centred by a
  reference sample (``rc = R - R_ref``, as in ``acquisition``), the gaps
  ``Delta(a) = mean_s (R_s(a*_s) - R_s(a))``, and
  ``v(a) = sum_b p_b (S_b(a) / c_b - mean_s rc_s(a))^2`` with the group sums
  ``S_b = sum_{s: a*_s = b} rc_s``: a one-sample group's term is elementwise
  (``(w_s / W) (rc_s - mean)^2``), the others' sums are one matrix product
  ``S = H^T rc`` (``[B_2, K] x [K, T^2]``, full float32). A running top-``b`` over
  tiles (``lax.top_k`` then a lexicographic ``lax.sort`` of the ``2b`` survivors) keeps
  the batch; the devices' ``b`` survivors are merged at the end.

Memory (per device): the factors ``2 K n m`` floats (replicated), one tile's values
and their temporaries (a few times ``K T^2`` floats; ``T`` is chosen so that
``K T^2`` is about 2^22 values on CPU and 2^26 on accelerators), ``B_2 T^2`` floats for
the group sums and the excluded-pair table. Work: ``8 K m + 2 K B_2 + O(K)`` flops per
pair in the two passes (``B_2`` is 0 when every sample has its own optimum and at most
``K / 2``).

Equivalence: the same batch as ``acquisition.ids`` (``tests/test_discovery_tiled.py``
checks every pick and its ``Psi`` to ``rtol = 1e-5``); with a mesh, the same batch as
without (each tile is computed by the same code on one device; the merge is a total
order).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax.discovery.acquisition import IDS_LAMBDA
from pairint_jax.discovery.posterior import FactorSamples
from pairint_jax.discovery.tiled_passes import empty_buffer, final_batch, pass_best, pass_select
from pairint_jax.parallel import check_mesh, mesh_size, replicated, sharded

__all__ = ["TiledBatch", "ids_tiled", "tile_plan"]

#: Values ``K x T x T`` of one tile when ``tile_size`` is automatic.
_TILE_VALUES = {"cpu": 1 << 22}
_TILE_VALUES_DEFAULT = 1 << 26
#: Flat pair indices ``i * n + j`` are int32.
MAX_N = 46340


class TiledBatch(NamedTuple):
    """A batch chosen by :func:`ids_tiled`: the fields of :class:`~pairint_jax.discovery.acquisition.Batch`
    (as NumPy arrays) and how the round was computed.

    Attributes:
      pairs: ``[b, 2]`` int32, ``i < j`` (``(0, 0)`` in invalid slots).
      valid: ``[b]`` bool; False only when fewer than ``b`` pairs remained.
      score: ``[b]`` float32, ``Psi`` of each pick (a uniform draw for the random fallback).
      n_valid: number of posterior samples used (finite on every remaining pair).
      fallback: True when no sample was valid and the batch is uniformly random.
      n_groups: ``B``, the number of distinct optimal actions over the valid samples.
      n_columns: columns of the one-hot group matrix: the groups with two or more samples,
        padded to a power of two (the ``2 K B`` flops per pair use this ``B``).
      tile_size: ``T``.
      n_tiles: tiles of the upper triangle (before padding to the mesh).
    """

    pairs: np.ndarray
    valid: np.ndarray
    score: np.ndarray
    n_valid: int
    fallback: bool
    n_groups: int
    n_columns: int
    tile_size: int
    n_tiles: int


# ----------------------------------------------------------------------------- plan (host)
def tile_plan(n: int, k: int, tile_size: int | None = None) -> tuple[int, int]:
    """``(T, n_tiles)`` for ``n`` perturbations and ``K`` samples.

    ``T`` (a multiple of 8, at most ``n`` rounded up to 8) makes one tile hold about
    2^22 (CPU) or 2^26 (accelerators) values ``K T^2`` unless given; ``n_tiles`` is
    ``nt (nt + 1) / 2`` with ``nt = ceil(n / T)``.

    Example:
      >>> tile_plan(20000, 1000, 256)
      (256, 3160)
    """
    cap = -(-n // 8) * 8
    if tile_size is None:
        budget = _TILE_VALUES.get(jax.default_backend(), _TILE_VALUES_DEFAULT)
        t = int(math.sqrt(budget / max(k, 1))) // 8 * 8
        t = max(8, min(t, cap))
    else:
        if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 1:
            raise ValueError(f"tile_size must be a positive int or None, got {tile_size!r}.")
        t = int(min(tile_size, cap))
    nt = -(-n // t)
    return t, nt * (nt + 1) // 2


def _tiles(nt: int) -> np.ndarray:
    bi, bj = np.triu_indices(nt)
    return np.stack([bi, bj], 1).astype(np.int32)  # row-major, bj >= bi


def _tile_id(bi, bj, nt):
    return bi * nt - bi * (bi - 1) // 2 + (bj - bi)


def _exclusion_table(exclude, n: int, t: int, nt: int) -> np.ndarray | None:
    """Excluded pairs grouped by tile: ``[n_tiles, Kt, 2]`` local coordinates (``t`` = unused slot)."""
    if exclude is None:
        return None
    arr = np.asarray(exclude)
    if arr.size == 0:
        return None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"exclude must be integer pairs [k, 2], got shape {arr.shape} and dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"exclude: a perturbation index is outside 0..{n - 1}.")
    lo, hi = np.minimum(arr[:, 0], arr[:, 1]).astype(np.int64), np.maximum(arr[:, 0], arr[:, 1]).astype(np.int64)
    keep = lo < hi
    flat = np.unique(lo[keep] * n + hi[keep])
    lo, hi = flat // n, flat % n
    tid = _tile_id(lo // t, hi // t, nt)
    n_tiles = nt * (nt + 1) // 2
    counts = np.bincount(tid, minlength=n_tiles)
    kt = max(8, 1 << max(0, int(counts.max()) - 1).bit_length())  # a power of two >= 8: few compiled shapes
    order = np.argsort(tid, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    slot = np.arange(len(tid)) - starts[tid[order]]
    table = np.full((n_tiles, kt, 2), t, np.int32)
    table[tid[order], slot, 0] = lo[order] % t
    table[tid[order], slot, 1] = hi[order] % t
    return table


# ----------------------------------------------------------------------------- driver
def _factors(samples, n_pad):
    if isinstance(samples, FactorSamples):
        pad = ((0, 0), (0, n_pad - samples.n), (0, 0))
        fs = {
            "u": jnp.pad(samples.u, pad),
            "v": jnp.pad(samples.v, pad),
            "offset": jnp.asarray(samples.offset, jnp.float32),
            "shift": jnp.asarray(samples.shift, jnp.float32),
            "scale": jnp.asarray(samples.scale, jnp.float32),
        }
        return fs, False, samples.link, samples.num_samples, samples.n
    r = jnp.asarray(samples)
    if r.ndim != 3 or r.shape[1] != r.shape[2]:
        raise ValueError(f"samples must be FactorSamples or an array [K, n, n], got shape {r.shape}.")
    n = r.shape[1]
    return {"r": jnp.pad(r, ((0, 0), (0, n_pad - n), (0, n_pad - n)))}, True, "identity", r.shape[0], n


def _take_samples(fs, idx):
    return {k: (v[idx] if k in ("u", "v", "offset", "r") else v) for k, v in fs.items()}


def _groups_host(best_idx, w):
    """Group of each sample: the first valid sample with the same optimal action, else 0
    (exactly ``sample_stats.best_groups``, so the samples are ordered the same way)."""
    first = {}
    for s in np.flatnonzero(w > 0):
        first.setdefault(int(best_idx[s]), int(s))
    return np.asarray([first.get(int(i), 0) for i in best_idx], np.int64)


def _blocks(arrays, d: int, calls: int):
    """Split tile arrays ``[d * per, ...]`` (device-major) into ``calls`` blocks of ``[d * L, ...]``."""
    per = arrays[0].shape[0] // d
    size = -(-per // calls)
    out = []
    for c in range(calls):
        lo, hi = c * size, min(per, (c + 1) * size)
        if lo >= hi:
            break
        out.append([np.concatenate([a[q * per + lo: q * per + hi] for q in range(d)]) if a is not None else None for a in arrays])
    return out


def ids_tiled(
    samples,
    key: jax.Array | None = None,
    *,
    batch: int,
    exclude=None,
    remaining=None,
    lam: float = IDS_LAMBDA,
    tile_size: int | None = None,
    mesh=None,
    progress: bool = False,
) -> TiledBatch:
    """IDS batch over every remaining pair, streamed in tiles: never ``K x pairs`` in memory.

    Over the valid samples ``R^(s)`` (finite on every remaining pair):
    ``a*_s = argmax_a R^(s)(a)``, ``p_b`` the fraction of samples with ``a*_s = b``,
    ``Delta(a) = mean_s [R^(s)(a*_s) - R^(s)(a)]``,
    ``v(a) = sum_b p_b (mean_{s: a*_s = b} R^(s)(a) - mean_s R^(s)(a))^2``,
    ``Psi = Delta^lambda / v`` (``Psi = 0`` where ``Delta = 0``, ``+inf`` where ``v = 0 < Delta``).
    The batch is the ``b`` pairs with the smallest ``(Psi, Delta, pair index)``: the same
    batch as :func:`~pairint_jax.discovery.acquisition.ids` (module docstring for how).

    Args:
      samples: :class:`~pairint_jax.discovery.posterior.FactorSamples` (``u, v [K, n, m]``),
        or a dense ``[K, n, n]`` array (small problems).
      key: PRNG key for the random fallback (no valid sample); default ``key(0)``.
      batch: ``b`` (static).
      exclude: pairs ``[k, 2]`` that are not candidates (observed, in flight or
        unavailable); scales with ``k``, not ``n^2``.
      remaining: optional ``[n, n]`` bool mask (as the other policies take; ``n^2`` bytes
        on every device). Both may be given; a pair must pass both.
      lam: ``lambda`` (default :data:`~pairint_jax.discovery.acquisition.IDS_LAMBDA`).
      tile_size: ``T`` (static; default :func:`tile_plan`).
      mesh: optional :class:`~jax.sharding.Mesh`: pass 1 shards the samples, pass 2 the
        tiles, over all its devices; the result equals the single-device one.
      progress: progress bar over tiles (each pass is then up to 20 compiled calls).

    Returns:
      :class:`TiledBatch` (NumPy), ``score = Psi`` of each pick.

    Raises:
      ValueError: ``n > 46340`` (int32 pair indices), bad ``exclude``/``remaining`` shapes,
        ``batch < 1``, ``lam <= 0``.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (64, 30, 30)); s = (s + s.transpose(0, 2, 1)) / 2
      >>> ids_tiled(s, batch=3, exclude=[[0, 1]], tile_size=8).pairs.shape
      (3, 2)
    """
    mesh = check_mesh(mesh)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}.")
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite positive number, got {lam!r}.")
    key = jax.random.key(0) if key is None else key
    k_dim, n = (samples.num_samples, samples.n) if isinstance(samples, FactorSamples) else np.shape(samples)[:2]
    if n > MAX_N:
        raise ValueError(f"ids_tiled supports n <= {MAX_N} perturbations (int32 pair indices), got n = {n}.")
    t, n_tiles = tile_plan(n, k_dim, tile_size)
    nt = -(-n // t)
    n_pad = nt * t
    fs, dense, link, k_dim, n = _factors(samples, n_pad)
    b = int(batch)

    rem = None
    if remaining is not None:
        rem_np = np.asarray(remaining, bool)
        if rem_np.shape != (n, n):
            raise ValueError(f"remaining must be a bool array [n, n] = [{n}, {n}], got shape {rem_np.shape}.")
        rem = jnp.asarray(np.pad(np.triu(rem_np, 1), ((0, n_pad - n), (0, n_pad - n))))
    excl = _exclusion_table(exclude, n, t, nt)

    d = 1 if mesh is None else mesh_size(mesh)
    tiles = _tiles(nt)
    per = -(-n_tiles // d)
    calls = min(20, per) if progress else 1
    size = -(-per // calls)
    calls = -(-per // size)
    per = calls * size  # every call takes whole, equal blocks: one compiled shape
    tile_ok = np.arange(per * d) < n_tiles
    tiles = np.concatenate([tiles, np.zeros((per * d - n_tiles, 2), np.int32)])
    if excl is not None:
        excl = np.concatenate([excl, np.full((per * d - n_tiles,) + excl.shape[1:], t, np.int32)])
    bar = _progress(total=2 * per * d, desc="IDS tiles", enabled=progress, unit="tile")
    statics = dict(t=t, n=n, dense=dense, link=link, mesh=mesh)

    # pass 1: samples sharded, every tile
    k_pad = -(-k_dim // d) * d
    take = np.minimum(np.arange(k_pad), k_dim - 1)
    fs1 = _take_samples(fs, take) if k_pad != k_dim else fs
    carry = _place((jnp.full((k_pad,), -jnp.inf, jnp.float32), jnp.zeros((k_pad,), jnp.int32), jnp.ones((k_pad,), bool)), mesh)
    for blk in _blocks([tiles, tile_ok, excl], 1, calls):
        carry = pass_best(carry, fs1, *map(_dev, blk), rem, **statics)
        bar.update(len(blk[0]))
    best_val, best_idx, finite = (np.asarray(jax.device_get(_replicate(x, mesh)))[:k_dim] for x in carry)

    # host: groups of the valid samples
    stats, order, n_valid, n_groups, b_pad = _group_stats(best_val, best_idx, finite, lam)
    mode = "ids" if n_valid > 0 else "random"
    fs2 = _take_samples(fs, order)

    # pass 2: tiles sharded, running top-b per device
    carry = _place(tuple(jnp.tile(x, d) for x in empty_buffer(b)), mesh)
    for blk in _blocks([tiles, tile_ok, excl], d, calls):
        carry = pass_select(carry, fs2, *map(_dev, blk), rem, stats, key, b=b, mode=mode, **statics)
        bar.update(len(blk[0]))
    bar.close()
    inv, psi, _, flat = (np.asarray(x) for x in final_batch(carry, b=b, mesh=mesh))
    valid = inv == 0
    pairs = np.where(valid[:, None], np.stack([flat // n, flat % n], 1), 0).astype(np.int32)
    score = np.where(valid, -psi if mode == "random" else psi, 0.0).astype(np.float32)
    return TiledBatch(pairs, valid, score, n_valid, mode == "random", n_groups, b_pad, t, n_tiles)


def _group_stats(best_val, best_idx, finite, lam):
    """Pass 2's inputs from pass 1 (host): the samples' order (grouped by optimal action) and
    the weights, reference, best values, one-hot group matrix and group sizes."""
    k_dim = len(finite)
    w = finite.astype(np.float32)
    n_valid = int(w.sum())
    group = _groups_host(best_idx, w)
    order = np.argsort(group, kind="stable")
    distinct, sizes = np.unique(group[w > 0], return_counts=True)
    # groups of one sample go elementwise; the one-hot product covers the larger groups only
    multi = distinct[sizes > 1]
    b_pad = _multi_columns(len(multi))
    go, wo = group[order], w[order]
    in_multi = (wo > 0) & np.isin(go, multi)
    onehot = np.zeros((k_dim, b_pad), np.float32)
    onehot[np.flatnonzero(in_multi), np.searchsorted(multi, go[in_multi])] = 1.0
    counts = onehot.sum(0)
    wsum = max(float(wo.sum()), 1.0)
    stats = (
        jnp.asarray(wo),
        jnp.asarray(((wo > 0) & ~in_multi).astype(np.float32)),
        jnp.int32(int(np.argmax(wo > 0))),
        jnp.asarray(np.where(finite, best_val, 0.0)[order], jnp.float32),
        jnp.asarray(onehot),
        jnp.asarray(counts / wsum, jnp.float32),
        jnp.asarray(1.0 / np.maximum(counts, 1.0), jnp.float32),
        jnp.int32(len(distinct)),
        jnp.float32(lam),
    )
    return stats, order, n_valid, len(distinct), b_pad


def _multi_columns(n_multi: int) -> int:
    """Columns of the one-hot matrix: the groups with several samples, padded to a power of two."""
    return 1 << max(0, n_multi - 1).bit_length()


def _place(carry, mesh):
    """A carry placed as the sharded passes return it, so later calls (progress blocks) reuse the program."""
    return carry if mesh is None else jax.device_put(carry, sharded(mesh))


def _dev(x):
    return None if x is None else jnp.asarray(x)


def _replicate(x, mesh):
    if mesh is None:
        return x
    return jax.jit(lambda y: y, out_shardings=replicated(mesh))(x)
