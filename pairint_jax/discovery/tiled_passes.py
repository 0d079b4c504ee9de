"""The two device passes of the tiled IDS (:func:`~pairint_jax.discovery.tiled.ids_tiled`).

* :func:`pass_best` (pass 1): a scan over tiles keeping, per sample, its best value, the
  pair reaching it (ties: the lower pair index) and whether all its values on remaining
  pairs are finite; samples sharded across the mesh.
* :func:`pass_select` (pass 2): a scan over tiles computing ``Delta``, ``v`` and ``Psi``
  of every pair of a tile from the group statistics of pass 1, and keeping a running
  top-``b`` in ``(invalid, Psi, Delta, pair index)`` order; tiles sharded across the mesh.
* :func:`final_batch`: merges the devices' survivors (a total order: sharded == single device).

The formulas and the memory budget are in :mod:`~pairint_jax.discovery.tiled`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pairint_jax.discovery.links import apply_link
from pairint_jax.discovery.sample_stats import info_ratio
from pairint_jax.parallel import replicated, shard_map, sharded_spec

__all__ = ["empty_buffer", "final_batch", "pass_best", "pass_select"]

#: Incremented when a pass is traced (tests check that a second round does not recompile).


# ----------------------------------------------------------------------------- tiles
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


def empty_buffer(b: int):
    return (
        jnp.ones((b,), jnp.int32),
        jnp.full((b,), jnp.inf, jnp.float32),
        jnp.full((b,), jnp.inf, jnp.float32),
        jnp.full((b,), jnp.iinfo(jnp.int32).max, jnp.int32),
    )


def _select_local(carry, fs, tiles, ok, excl, rem, stats, key, *, t, n, dense, link, b, mode):
    """Pass 2 over some tiles: the running top-``b`` (invalid, Psi, Delta, flat) buffer."""
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
def pass_best(carry, fs, tiles, ok, excl, rem, *, t, n, dense, link, mesh):
    fn = functools.partial(_best_local, t=t, n=n, dense=dense, link=link)
    if mesh is None:
        return fn(carry, fs, tiles, ok, excl, rem)
    spec, rep = sharded_spec(mesh), jax.sharding.PartitionSpec()
    # Samples sharded: each device scans every tile for its own samples (no communication).
    return shard_map(
        fn, mesh=mesh, in_specs=(spec, _fs_specs(fs, spec), rep, rep, rep, rep), out_specs=spec
    )(carry, fs, tiles, ok, excl, rem)


@functools.partial(jax.jit, static_argnames=("t", "n", "dense", "link", "b", "mode", "mesh"))
def pass_select(carry, fs, tiles, ok, excl, rem, stats, key, *, t, n, dense, link, b, mode, mesh):
    fn = functools.partial(_select_local, t=t, n=n, dense=dense, link=link, b=b, mode=mode)
    if mesh is None:
        return fn(carry, fs, tiles, ok, excl, rem, stats, key)
    spec, rep = sharded_spec(mesh), jax.sharding.PartitionSpec()
    # Tiles (actions) sharded; each device keeps its own top-b buffer (carry [D * b]).
    return shard_map(
        fn, mesh=mesh, in_specs=(spec, rep, spec, spec, spec, rep, rep, rep), out_specs=spec
    )(carry, fs, tiles, ok, excl, rem, stats, key)


@functools.partial(jax.jit, static_argnames=("b", "mesh"))
def final_batch(carry, *, b, mesh):
    if mesh is not None:
        carry = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, replicated(mesh)), carry)
    return tuple(x[:b] for x in _lex_sort(*carry))
