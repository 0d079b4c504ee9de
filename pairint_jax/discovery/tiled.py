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

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax.discovery.links import apply_link
from pairint_jax.discovery.posterior import FactorSamples
from pairint_jax.discovery.sample_stats import info_ratio
from pairint_jax.parallel import check_mesh, mesh_size, replicated, shard_map, sharded, sharded_spec

__all__ = ["TiledBatch", "ids_tiled", "tile_plan"]

#: Values ``K x T x T`` of one tile when ``tile_size`` is automatic.
_TILE_VALUES = {"cpu": 1 << 22}
_TILE_VALUES_DEFAULT = 1 << 26
#: Flat pair indices ``i * n + j`` are int32.
MAX_N = 46340
#: Incremented when a pass is traced (tests check that a second round does not recompile).
TRACE_COUNTS = {"best": 0, "select": 0}


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


# ----------------------------------------------------------------------------- tiles (device)
def _values(fs, bi, bj, t: int, dense: bool, link: str):
    """``R_s`` on tile ``(bi, bj)`` for every sample: ``[K, T, T]``."""
    if dense:
        k = fs["r"].shape[0]
        return jax.lax.dynamic_slice(fs["r"], (0, bi * t, bj * t), (k, t, t))
    ub = jax.lax.dynamic_slice_in_dim(fs["u"], bi * t, t, axis=1)
    vb = jax.lax.dynamic_slice_in_dim(fs["v"], bi * t, t, axis=1)
    uc = jax.lax.dynamic_slice_in_dim(fs["u"], bj * t, t, axis=1)
    vc = jax.lax.dynamic_slice_in_dim(fs["v"], bj * t, t, axis=1)
    # u_i.v_j + v_i.u_j as one product with inner dimension 2m: one [K, T, T] output, not two
    f = 0.5 * jnp.einsum("kbm,kjm->kbj", jnp.concatenate([ub, vb], -1), jnp.concatenate([vc, uc], -1))
    f = f + fs["offset"][:, None, None]
    return fs["shift"] + fs["scale"] * apply_link(link, f)


def _mask(bi, bj, ok, excl, rem, t: int, n: int):
    """Remaining pairs of a tile: ``[T, T]`` bool."""
    i = bi * t + jnp.arange(t)[:, None]
    j = bj * t + jnp.arange(t)[None, :]
    m = (i < j) & (j < n) & ok
    if rem is not None:
        m = m & jax.lax.dynamic_slice(rem, (bi * t, bj * t), (t, t))
    if excl is not None:
        m = m.at[excl[:, 0], excl[:, 1]].set(False, mode="drop")
    return m


def _flat(bi, bj, t: int, n: int):
    i = bi * t + jnp.arange(t)[:, None]
    j = bj * t + jnp.arange(t)[None, :]
    return (i * n + j).astype(jnp.int32)


def _scan_tiles(body, carry, tiles, ok, excl):
    xs = (tiles, ok) if excl is None else (tiles, ok, excl)

    def step(c, x):
        (bi, bj), tok = x[0], x[1]
        return body(c, bi, bj, tok, x[2] if excl is not None else None), None

    return jax.lax.scan(step, carry, xs)[0]


def _best_local(carry, fs, tiles, ok, excl, rem, *, t, n, dense, link):
    """Pass 1 over some tiles: per sample, (best value, its flat pair index, all finite)."""
    TRACE_COUNTS["best"] += 1

    def body(c, bi, bj, tok, ex):
        best_val, best_idx, finite = c
        r = _values(fs, bi, bj, t, dense, link)
        k = r.shape[0]
        m = _mask(bi, bj, tok, ex, rem, t, n)
        fin = jnp.isfinite(r)
        finite = finite & jnp.all(fin | ~m[None], axis=(1, 2))
        rm = jnp.where(m[None] & fin, r, -jnp.inf).reshape(k, t * t)
        # argmax as max + the first index reaching it (two plain reductions: several times faster
        # than XLA:CPU's variadic argmax; the same lowest-index tie rule)
        val = jnp.max(rm, axis=1)
        loc = jnp.min(jnp.where(rm == val[:, None], jnp.arange(t * t, dtype=jnp.int32)[None, :], t * t), axis=1)
        flat = _flat(bi, bj, t, n).reshape(-1)[loc]
        better = (val > best_val) | ((val == best_val) & (flat < best_idx) & (val > -jnp.inf))
        return jnp.where(better, val, best_val), jnp.where(better, flat, best_idx), finite

    return _scan_tiles(body, carry, tiles, ok, excl)


def _lex_sort(inv, psi, delta, flat):
    """Sort by (invalid, Psi, Delta, pair index); ``+ 0.0`` maps -0.0 to 0.0 so equal values tie."""
    return jax.lax.sort((inv, psi + 0.0, delta + 0.0, flat), num_keys=4)


def _tile_best(psi, delta, cand, flat, kt: int):
    """The ``kt`` first pairs of a tile in (Psi, Delta, index) order: two ``top_k``, no sort.

    ``t`` is the ``kt``-th smallest ``Psi``; every pair with ``Psi < t`` is in (at most
    ``kt - 1`` of them, first in the top-k), the rest come from the pairs tied at ``t``
    ordered by ``Delta`` (``top_k`` puts the lower index first among equal values).
    """
    cand, psi, delta, flat = cand.reshape(-1), psi.reshape(-1), delta.reshape(-1), flat.reshape(-1)
    key = jnp.where(cand, psi, jnp.inf)
    neg, ia = jax.lax.top_k(-key, kt)
    thr = -neg[kt - 1]
    lt = cand & (key < thr)
    n_lt = jnp.sum(lt)
    tie = cand & (key == thr)
    _, ib = jax.lax.top_k(-jnp.where(tie, delta, jnp.inf), kt)
    slot = jnp.arange(kt)
    from_a = slot < n_lt
    idx = jnp.where(from_a, ia, ib[jnp.clip(slot - n_lt, 0, kt - 1)])
    ok = jnp.where(from_a, lt[idx], tie[idx])
    return (~ok).astype(jnp.int32), psi[idx], delta[idx], flat[idx]


def _merge(buf, new, b: int):
    both = tuple(jnp.concatenate([x, y]) for x, y in zip(buf, new))
    return tuple(x[:b] for x in _lex_sort(*both))


def _empty_buffer(b: int):
    return (
        jnp.ones((b,), jnp.int32),
        jnp.full((b,), jnp.inf, jnp.float32),
        jnp.full((b,), jnp.inf, jnp.float32),
        jnp.full((b,), jnp.iinfo(jnp.int32).max, jnp.int32),
    )


def _select_local(carry, fs, tiles, ok, excl, rem, stats, key, *, t, n, dense, link, b, mode):
    """Pass 2 over some tiles: the running top-``b`` (invalid, Psi, Delta, flat) buffer."""
    TRACE_COUNTS["select"] += 1
    kt = min(b, t * t)

    def body(c, bi, bj, tok, ex):
        m = _mask(bi, bj, tok, ex, rem, t, n)
        flat = _flat(bi, bj, t, n)
        if mode == "random":
            u = jax.random.uniform(jax.random.fold_in(key, bi * (n + 1) + bj), (t, t))
            psi, delta = -u, jnp.zeros((t, t), jnp.float32)
        else:
            w, single, ref, best_val, onehot, p_g, inv_c, n_groups, lam = stats
            # Every sum over samples is a product with a [K] (or [K, B_2]) weight matrix: the
            # weights are 0/1, and a GEMV reads the tile once (XLA:CPU's reductions over the
            # leading axis are ~30x slower).
            hi = jax.lax.Precision.HIGHEST
            r = _values(fs, bi, bj, t, dense, link).reshape(-1, t * t)
            wsum = jnp.maximum(jnp.sum(w), 1.0)
            keep = (w > 0)[:, None]
            rz = jnp.where(keep, r, 0.0)
            rc = jnp.where(keep, rz - rz[ref], 0.0)  # centred by the reference sample; 0 off the valid samples
            mean_c = jnp.matmul(w / wsum, rc, precision=hi)
            gap = jnp.where(keep, jnp.maximum(best_val[:, None] - rz, 0.0), 0.0)
            delta = jnp.matmul(w / wsum, gap, precision=hi)
            # v = sum_g p_g (S_g / c_g - mean)^2: a one-sample group contributes (w_s / W)(rc_s - mean)^2,
            # the others' sums S_g come from one product with the one-hot matrix of their members.
            solo = jnp.matmul(single / wsum, (rc - mean_c) ** 2, precision=hi)
            dev = jnp.matmul(onehot.T, rc, precision=hi) * inv_c[:, None] - mean_c
            v = solo + jnp.matmul(p_g, dev * dev, precision=hi)  # padded columns have p_g = 0
            v = jnp.where(n_groups > 1, v, 0.0).reshape(t, t)
            delta = delta.reshape(t, t)
            psi = info_ratio(delta, v, lam)
        return _merge(c, _tile_best(psi, delta, m, flat, kt), b)

    return _scan_tiles(body, carry, tiles, ok, excl)


# ----------------------------------------------------------------------------- compiled steps
def _fs_specs(fs, spec):
    return {k: (spec if k in ("u", "v", "offset", "r", "svalid") else jax.sharding.PartitionSpec()) for k in fs}


@functools.partial(jax.jit, static_argnames=("t", "n", "dense", "link", "mesh"))
def _pass_best(carry, fs, tiles, ok, excl, rem, *, t, n, dense, link, mesh):
    fn = functools.partial(_best_local, t=t, n=n, dense=dense, link=link)
    if mesh is None:
        return fn(carry, fs, tiles, ok, excl, rem)
    spec, rep = sharded_spec(mesh), jax.sharding.PartitionSpec()
    # Samples sharded: each device scans every tile for its own samples (no communication).
    return shard_map(
        fn, mesh=mesh, in_specs=(spec, _fs_specs(fs, spec), rep, rep, rep, rep), out_specs=spec
    )(carry, fs, tiles, ok, excl, rem)


@functools.partial(jax.jit, static_argnames=("t", "n", "dense", "link", "b", "mode", "mesh"))
def _pass_select(carry, fs, tiles, ok, excl, rem, stats, key, *, t, n, dense, link, b, mode, mesh):
    fn = functools.partial(_select_local, t=t, n=n, dense=dense, link=link, b=b, mode=mode)
    if mesh is None:
        return fn(carry, fs, tiles, ok, excl, rem, stats, key)
    spec, rep = sharded_spec(mesh), jax.sharding.PartitionSpec()
    # Tiles (actions) sharded; each device keeps its own top-b buffer (carry [D * b]).
    return shard_map(
        fn, mesh=mesh, in_specs=(spec, rep, spec, spec, spec, rep, rep, rep), out_specs=spec
    )(carry, fs, tiles, ok, excl, rem, stats, key)


@functools.partial(jax.jit, static_argnames=("b", "mesh"))
def _final(carry, *, b, mesh):
    if mesh is not None:
        carry = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, replicated(mesh)), carry)
    return tuple(x[:b] for x in _lex_sort(*carry))


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
    lam: float = 2.0,
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
      lam: ``lambda`` (default 2).
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
        carry = _pass_best(carry, fs1, *map(_dev, blk), rem, **statics)
        bar.update(len(blk[0]))
    best_val, best_idx, finite = (np.asarray(jax.device_get(_replicate(x, mesh)))[:k_dim] for x in carry)

    # host: groups of the valid samples
    w = finite.astype(np.float32)
    n_valid = int(w.sum())
    group = _groups_host(best_idx, w)
    order = np.argsort(group, kind="stable")
    distinct, sizes = np.unique(group[w > 0], return_counts=True)
    n_groups = len(distinct)
    mode = "ids" if n_valid > 0 else "random"
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
        jnp.int32(n_groups),
        jnp.float32(lam),
    )
    fs2 = _take_samples(fs, order)

    # pass 2: tiles sharded, running top-b per device
    carry = _place(tuple(jnp.tile(x, d) for x in _empty_buffer(b)), mesh)
    for blk in _blocks([tiles, tile_ok, excl], d, calls):
        carry = _pass_select(carry, fs2, *map(_dev, blk), rem, stats, key, b=b, mode=mode, **statics)
        bar.update(len(blk[0]))
    bar.close()
    inv, psi, _, flat = (np.asarray(x) for x in _final(carry, b=b, mesh=mesh))
    valid = inv == 0
    pairs = np.where(valid[:, None], np.stack([flat // n, flat % n], 1), 0).astype(np.int32)
    score = np.where(valid, -psi if mode == "random" else psi, 0.0).astype(np.float32)
    return TiledBatch(pairs, valid, score, n_valid, mode == "random", n_groups, b_pad, t, n_tiles)


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
