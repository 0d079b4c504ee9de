"""Acquisition functions: (posterior samples, remaining actions, key) -> a batch of pairs.

An *action* is an unordered pair ``(i, j)``, ``i < j``, not yet observed. Every policy
is a pure, jittable function

    policy(samples, remaining, key, *, batch, ...) -> Batch

* ``samples``: ``K`` posterior samples of the reward matrix, either
  :class:`~pairint_jax.discovery.posterior.FactorSamples` (factors; ``K x n x n`` is never
  materialised, rows are computed block by block) or a dense array ``[K, n, n]``.
* ``remaining``: ``[n, n]`` bool; ``remaining[i, j]`` for ``i < j`` says the action is
  still available (entries on and below the diagonal are ignored).
* ``key``: PRNG key (used by ``ts``, ``random`` and the fallback).

Policies (DIGEST section 4):

* :func:`ids`: information-directed sampling. Over the valid samples ``R^(s)``
  restricted to the remaining actions, ``a*_s = argmax_a R^(s)(a)``, ``p_b`` the fraction
  of samples with ``a*_s = b``;
  ``Delta(a) = mean_s R^(s)(a*_s) - mean_s R^(s)(a)`` (computed as
  ``mean_s [R^(s)(a*_s) - R^(s)(a)]``, a mean of non-negative gaps, so it is exactly 0
  for an action optimal in every sample);
  ``v(a) = sum_b p_b (mean_{s: a*_s=b} R^(s)(a) - mean_s R^(s)(a))^2``;
  ``Psi(a) = Delta(a)^lambda / v(a)``. The batch is the ``b`` actions with the smallest
  ``Psi``, ties broken by the smaller ``Delta`` and then the lower pair index;
  ``reestimate=True`` recomputes ``a*``, ``Delta``, ``v`` on the remaining actions
  before every later slot.
* :func:`thompson`: one posterior sample per slot (distinct samples, in random order),
  each taking its best action not chosen yet.
* :func:`ucb`: the ``b`` largest ``mean + beta * std``.
* :func:`uncertainty`: the ``b`` largest ``std``.
* :func:`random`: ``b`` remaining actions uniformly at random, without replacement.

**The v = 0 rule.** ``Psi(a) = 0`` when ``Delta(a) = 0`` (the action is optimal in every
sample: take it, there is no regret to trade); ``Psi(a) = +inf`` when ``Delta(a) > 0`` and
``v(a) = 0`` (no information and positive regret). Every ``+inf`` is ordered by ``Delta``
(greedy on the posterior mean). ``v = 0`` happens exactly when all samples agree on
``a*`` (one group: set to 0 explicitly) or an action's sampled values are all equal
(moments are computed on values centred by one reference sample, so this is an exact 0).

**Ties.** Within a sample, ``a*`` is the lowest pair index among equal maxima (pairs are
indexed row-major, ``i * n + j``, which is the ``np.triu_indices`` order). Every
top-``b`` selection breaks ties toward the lower index.

**Non-finite draws.** A sample with any non-finite value on a remaining action is dropped
(weight 0) from every statistic (``n_valid`` in :class:`Batch` counts the kept samples).
If no sample is valid, the model-based policies fall back to :func:`random` and set
``Batch.fallback``.

Memory: the sample rewards are computed in blocks of ``chunk_size`` rows (``[K,
chunk_size, n]``); the default picks ``chunk_size`` so that a block holds about 2^24
values.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.discovery.posterior import FactorSamples

__all__ = [
    "POLICIES",
    "POLICY_OPTIONS",
    "Batch",
    "IDSStats",
    "acquire",
    "acquire_jit",
    "check_policy",
    "ids",
    "ids_stats",
    "pair_index",
    "random",
    "thompson",
    "ucb",
    "uncertainty",
]

_BLOCK_VALUES = 1 << 24


class Batch(NamedTuple):
    """A batch of chosen actions.

    Attributes:
      pairs: ``[b, 2]`` int32, ``i < j`` (``(0, 0)`` in invalid slots).
      valid: ``[b]`` bool; False only when fewer than ``b`` actions remained.
      score: ``[b]`` float32, the policy's criterion for each pick (``Psi`` for IDS, the
        sample's value for TS, ``mean + beta std`` for UCB, ``std`` for US, a uniform draw
        for random).
      n_valid: ``[]`` int32, posterior samples used (finite on the remaining actions).
      fallback: ``[]`` bool, no sample was valid and the batch is random.
    """

    pairs: jax.Array
    valid: jax.Array
    score: jax.Array
    n_valid: jax.Array
    fallback: jax.Array


class IDSStats(NamedTuple):
    """IDS quantities over the remaining actions, each ``[n, n]`` (NaN elsewhere).

    Attributes:
      delta: expected regret ``Delta``.
      v: information proxy ``v = Var(E[R_a | a*])``.
      psi: information ratio ``Delta^lambda / v`` with the module's ``v = 0`` rule.
      p_best: ``p_a``, the fraction of valid samples whose best action is ``a``.
      mean: posterior mean over the valid samples.
      std: posterior std (``ddof = 0``) over the valid samples.
      n_valid: ``[]`` number of valid samples.
    """

    delta: jax.Array
    v: jax.Array
    psi: jax.Array
    p_best: jax.Array
    mean: jax.Array
    std: jax.Array
    n_valid: jax.Array


def pair_index(i, j, n: int):
    """Position of pair ``(i, j)``, ``i < j``, in ``np.triu_indices(n, 1)`` order."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


# ---------------------------------------------------------------------------- helpers


def _shape(samples) -> tuple[int, int]:
    if isinstance(samples, FactorSamples):
        return samples.num_samples, samples.n
    if samples.ndim != 3 or samples.shape[1] != samples.shape[2]:
        raise ValueError(f"samples must be FactorSamples or an array [K, n, n], got shape {samples.shape}.")
    return samples.shape[0], samples.shape[1]


def _block(samples, start, size):
    if isinstance(samples, FactorSamples):
        return samples.block(start, size)
    return jax.lax.dynamic_slice_in_dim(samples, start, size, axis=1)


def _sample_matrix(samples, s):
    if isinstance(samples, FactorSamples):
        return samples.sample_matrix(s)
    return samples[s]


def _block_rows(k: int, n: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        return int(max(1, min(n, _BLOCK_VALUES // max(1, k * n))))
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size (rows per block) must be a positive int or None, got {chunk_size}.")
    return int(min(n, chunk_size))


def _blocks(n: int, rows: int):
    """Nominal block starts; a start is clamped to ``n - rows`` and rows before it are masked."""
    return jnp.arange(0, n, rows, dtype=jnp.int32)


def _upper(remaining, n):
    remaining = jnp.asarray(remaining, bool)
    if remaining.shape != (n, n):
        raise ValueError(f"remaining must be a bool array [n, n] = [{n}, {n}], got shape {remaining.shape}.")
    idx = jnp.arange(n)
    return remaining & (idx[None, :] > idx[:, None])


def _scan_blocks(samples, rem, rows, fn, carry):
    """Run ``fn(carry, R_block [K, rows, n], mask [rows, n], start)`` over the row blocks."""
    k, n = _shape(samples)

    def body(c, i0):
        start = jnp.minimum(i0, n - rows)
        r_idx = start + jnp.arange(rows)
        m = jax.lax.dynamic_slice_in_dim(rem, start, rows, axis=0) & (r_idx >= i0)[:, None]
        return fn(c, _block(samples, start, rows), m, start), None

    carry, _ = jax.lax.scan(body, carry, _blocks(n, rows))
    return carry


def _best(samples, rem, rows):
    """Per sample: best remaining value and flat index, and whether all remaining values are finite."""
    k, n = _shape(samples)

    def fn(c, r, m, start):
        best_val, best_idx, finite = c
        fin = jnp.isfinite(r)
        finite = finite & jnp.all(fin | ~m[None], axis=(1, 2))
        rm = jnp.where(m[None] & fin, r, -jnp.inf).reshape(k, -1)
        # argmax as max + first index of the max: the same result (the lowest index among ties;
        # 0 when all are -inf), and about 2x faster on CPU than XLA's variadic argmax reduction
        val = jnp.max(rm, axis=1)
        size = rm.shape[1]
        first = jnp.where(rm == val[:, None], jnp.arange(size, dtype=jnp.int32)[None], size)
        loc = jnp.minimum(jnp.min(first, axis=1), size - 1)
        flat = (start + loc // n) * n + loc % n
        better = val > best_val
        return (jnp.where(better, val, best_val), jnp.where(better, flat, best_idx), finite)

    init = (jnp.full((k,), -jnp.inf, jnp.float32), jnp.zeros((k,), jnp.int32), jnp.ones((k,), bool))
    return _scan_blocks(samples, rem, rows, fn, init)


def _groups(best_idx, w):
    """Group id of each valid sample: the first valid sample with the same best action."""
    same = (best_idx[None, :] == best_idx[:, None]) & (w[None, :] > 0)
    return jnp.argmax(same, axis=1)


def _reference(w):
    return jnp.argmax(w > 0)


def _wsum(w, x):
    """``sum_s w[s] x[s]`` over the leading (sample) axis, as a matrix-vector product.

    The same sum as ``jnp.sum(w[:, None, None] * x, 0)``; XLA:CPU runs a reduction over the
    leading axis of a ``[K, rows, n]`` block several times slower than the GEMV (measured 6x for
    the mean and variance at n = 1,000, K = 200). Full float32 precision, also on GPUs, whose
    default matmul precision would round ``x`` to TF32.
    """
    return jnp.tensordot(w, x, axes=1, precision=jax.lax.Precision.HIGHEST)


def _moments(samples, rem, w, rows, *, best_val=None, group=None):
    """Mean and std over valid samples, and (with ``best_val``/``group``) IDS's Delta and v.

    One pass per row block: values are centred by a reference sample (``rc = R - R_ref``),
    then ``sum w rc``, ``sum w rc^2`` and ``sum w gap`` are matrix-vector products over the
    samples (:func:`_wsum`). With ``group`` (which must be sorted, as
    :func:`_ids_core` arranges) the group sums ``S_g = sum_{s in g} w_s rc_s`` come from one
    sorted ``segment_sum`` and ``v = sum_g (c_g / W) (S_g / c_g - mean)^2``.
    """
    k, n = _shape(samples)
    wsum = jnp.maximum(jnp.sum(w), 1.0)
    ref = _reference(w)
    with_ids = group is not None
    if with_ids:
        counts = jax.ops.segment_sum(w, group, num_segments=k, indices_are_sorted=True)
        n_groups = jnp.sum(counts > 0)
        p_g = (counts / wsum)[:, None, None]
        inv_c = (1.0 / jnp.maximum(counts, 1.0))[:, None, None]
    ww = w[:, None, None]

    def fn(c, r, m, start):
        keep = ww > 0
        rz = jnp.where(keep, r, 0.0)
        base = rz[ref]
        rc = jnp.where(keep, rz - base, 0.0)
        mean_c = _wsum(w, rc) / wsum
        var = jnp.maximum(_wsum(w, rc * rc) / wsum - mean_c * mean_c, 0.0)
        outs = [mean_c + base, jnp.sqrt(var)]
        if with_ids:
            sums = jax.ops.segment_sum(ww * rc, group, num_segments=k, indices_are_sorted=True)
            v = _wsum(p_g[:, 0, 0], jnp.where(p_g > 0, (sums * inv_c - mean_c) ** 2, 0.0))
            v = jnp.where(n_groups > 1, v, 0.0)  # one group: exactly 0, whatever the rounding
            gap = jnp.where(keep, jnp.maximum(best_val[:, None, None] - rz, 0.0), 0.0)
            delta = _wsum(w, gap) / wsum
            outs += [delta, v]
        return tuple(jax.lax.dynamic_update_slice_in_dim(o, x, start, 0) for o, x in zip(c, outs))

    init = tuple(jnp.zeros((n, n), jnp.float32) for _ in range(4 if with_ids else 2))
    return _scan_blocks(samples, rem, rows, fn, init)


def _permute(samples, order):
    """Samples reordered along the sample axis."""
    if isinstance(samples, FactorSamples):
        return dataclasses.replace(samples, u=samples.u[order], v=samples.v[order], offset=samples.offset[order])
    return samples[order]


def _psi(delta, v, lam):
    safe_v = jnp.where(v > 0, v, 1.0)
    ratio = jnp.where(v > 0, delta**lam / safe_v, jnp.inf)
    ratio = jnp.where(jnp.isnan(ratio), jnp.inf, ratio)  # inf / inf after an overflow
    return jnp.where(delta == 0, 0.0, ratio)


def _ids_core(samples, rem, lam, rows):
    k, n = _shape(samples)
    best_val, best_idx, finite = _best(samples, rem, rows)
    w = finite.astype(jnp.float32)
    group = _groups(best_idx, w)
    order = jnp.argsort(group, stable=True)  # contiguous groups: a sorted segment_sum
    mean, std, delta, v = _moments(
        _permute(samples, order), rem, w[order], rows,
        best_val=jnp.where(finite, best_val, 0.0)[order], group=group[order],
    )
    psi = _psi(delta, v, lam)
    p_best = jnp.zeros((n * n,), jnp.float32).at[best_idx].add(w) / jnp.maximum(jnp.sum(w), 1.0)
    return delta, v, psi, p_best.reshape(n, n), mean, std, jnp.sum(w).astype(jnp.int32)


def _lex_argmin(primary, secondary, cand):
    """Flat index of the lexicographic minimum of (primary, secondary, index) over ``cand``."""
    p = jnp.where(cand, primary, jnp.inf)
    c1 = cand & (p == jnp.min(p))
    s = jnp.where(c1, secondary, jnp.inf)
    c2 = c1 & (s == jnp.min(s))
    return jnp.argmax(c2.reshape(-1)), jnp.any(cand)


def _pairs_from_flat(flat, n):
    return jnp.stack([flat // n, flat % n], -1).astype(jnp.int32)


def _top_b(score, cand, batch):
    """The ``batch`` largest ``score`` among ``cand`` (ties: lower flat index first)."""
    n = cand.shape[0]
    s = jnp.where(cand, score, -jnp.inf).reshape(-1)
    vals, idx = jax.lax.top_k(s, batch)
    valid = cand.reshape(-1)[idx]
    return _pairs_from_flat(idx, n), valid, vals


def _finish(pairs, valid, score, n_valid, fallback_batch):
    fallback = n_valid == 0
    pairs = jnp.where(fallback, fallback_batch.pairs, pairs)
    valid = jnp.where(fallback, fallback_batch.valid, valid)
    score = jnp.where(fallback, fallback_batch.score, score)
    pairs = jnp.where(valid[:, None], pairs, 0)
    return Batch(pairs.astype(jnp.int32), valid, score.astype(jnp.float32), n_valid.astype(jnp.int32), fallback)


# ---------------------------------------------------------------------------- policies


def random(samples, remaining, key, *, batch: int) -> Batch:
    """``batch`` remaining actions uniformly at random, without replacement.

    Args:
      samples: ignored (may be None); present so every policy has one signature.
      remaining: ``[n, n]`` bool.
      key: PRNG key.
      batch: ``b`` (static).

    Returns:
      :class:`Batch`; ``n_valid = 0``, ``fallback = False``.

    Example:
      >>> b = random(None, jnp.ones((5, 5), bool), jax.random.key(0), batch=3)
      >>> b.pairs.shape
      (3, 2)
    """
    remaining = jnp.asarray(remaining, bool)
    n = remaining.shape[0]
    rem = _upper(remaining, n)
    u = jax.random.uniform(key, (n, n))
    pairs, valid, vals = _top_b(u, rem, batch)
    pairs = jnp.where(valid[:, None], pairs, 0)
    return Batch(pairs, valid, jnp.where(valid, vals, 0.0).astype(jnp.float32), jnp.int32(0), jnp.bool_(False))


def ids_stats(samples, remaining, *, lam=2.0, chunk_size: int | None = None) -> IDSStats:
    """The IDS quantities (Delta, v, Psi, p_best, mean, std) over the remaining actions.

    See the module docstring for the formulas and the ``v = 0`` rule.

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      lam: ``lambda`` (traced; digest default 2).
      chunk_size: rows of ``R`` per block (static; None: automatic).

    Returns:
      :class:`IDSStats`, every field ``[n, n]`` with NaN off the remaining actions.

    Example:
      >>> s = jnp.array([[[0, 1, 2], [1, 0, 0], [2, 0, 0]], [[0, 3, 0], [3, 0, 1], [0, 1, 0]]], float)
      >>> st = ids_stats(s, jnp.ones((3, 3), bool))
      >>> float(st.delta[0, 1])  # mean best (2 + 3) / 2 minus mean of (0, 1) (1 + 3) / 2
      0.5
    """
    k, n = _shape(samples)
    rem = _upper(remaining, n)
    out = _ids_core(samples, rem, jnp.asarray(lam, jnp.float32), _block_rows(k, n, chunk_size))
    *fields, n_valid = out
    fields = [jnp.where(rem, f, jnp.nan) for f in fields]
    return IDSStats(*fields, n_valid)


def ids(samples, remaining, key, *, batch: int, lam=2.0, reestimate: bool = False, chunk_size: int | None = None) -> Batch:
    """Information-directed sampling: the ``batch`` actions with the smallest ``Psi``.

    ``Psi(a) = Delta(a)^lambda / v(a)`` (module docstring). Greedy batch: slots are
    filled in order of increasing ``(Psi, Delta, pair index)``. With ``reestimate=True``
    each later slot recomputes ``a*``, ``Delta`` and ``v`` with the earlier picks removed
    from the remaining actions (``b`` times the cost).

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      key: PRNG key (used only by the random fallback).
      batch: ``b`` (static).
      lam: ``lambda`` (traced; digest default 2).
      reestimate: re-estimate per slot (static; default False, the paper's greedy batch).
      chunk_size: rows of ``R`` per block (static; None: automatic).

    Returns:
      :class:`Batch` with ``score = Psi`` of each pick.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (100, 6, 6))
      >>> ids(s, jnp.ones((6, 6), bool), jax.random.key(1), batch=2).pairs.shape
      (2, 2)

    References:
      Russo & Van Roy (2018), Learning to optimize via information-directed sampling;
      Xu et al. (2022), Adaptive sampling for discovery.
    """
    k, n = _shape(samples)
    rem = _upper(remaining, n)
    rows = _block_rows(k, n, chunk_size)
    lam = jnp.asarray(lam, jnp.float32)

    if reestimate:

        def slot(cand, _):
            delta, v, psi, *_, n_valid = _ids_core(samples, cand, lam, rows)
            flat, ok = _lex_argmin(psi, delta, cand)
            cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
            return cand, (flat, ok, psi.reshape(-1)[flat], n_valid)

        _, (flat, valid, score, n_valid) = jax.lax.scan(slot, rem, None, length=batch)
        n_valid = n_valid[0]
    else:
        delta, v, psi, *_, n_valid = _ids_core(samples, rem, lam, rows)

        def slot(cand, _):
            flat, ok = _lex_argmin(psi, delta, cand)
            cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
            return cand, (flat, ok, psi.reshape(-1)[flat])

        _, (flat, valid, score) = jax.lax.scan(slot, rem, None, length=batch)
    return _finish(_pairs_from_flat(flat, n), valid, score, n_valid, random(None, rem, key, batch=batch))


def thompson(samples, remaining, key, *, batch: int) -> Batch:
    """Thompson sampling: slot ``t`` takes the best not-yet-chosen action of one posterior sample.

    The ``b`` slot samples are distinct valid samples in random order (cycled if fewer
    than ``b`` are valid).

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      key: PRNG key.
      batch: ``b`` (static).

    Returns:
      :class:`Batch` with ``score`` = the slot sample's value of its pick.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (100, 6, 6))
      >>> thompson(s, jnp.ones((6, 6), bool), jax.random.key(1), batch=2).valid.tolist()
      [True, True]
    """
    k, n = _shape(samples)
    rem = _upper(remaining, n)
    k_order, k_fb = jax.random.split(key)
    _, _, finite = _best(samples, rem, _block_rows(k, n, None))
    n_valid = jnp.sum(finite).astype(jnp.int32)
    prio = jnp.where(finite, jax.random.uniform(k_order, (k,)), -1.0)
    order = jnp.argsort(-prio)

    def slot(cand, t):
        s = order[t % jnp.maximum(n_valid, 1)]
        r = _sample_matrix(samples, s)
        c = cand & jnp.isfinite(r)
        flat = jnp.argmax(jnp.where(c, r, -jnp.inf).reshape(-1))
        ok = jnp.any(c)
        cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
        return cand, (flat, ok, r.reshape(-1)[flat])

    _, (flat, valid, score) = jax.lax.scan(slot, rem, jnp.arange(batch))
    return _finish(_pairs_from_flat(flat, n), valid, score, n_valid, random(None, rem, k_fb, batch=batch))


def _mean_std_policy(samples, remaining, key, batch, chunk_size, beta):
    k, n = _shape(samples)
    rem = _upper(remaining, n)
    rows = _block_rows(k, n, chunk_size)
    _, _, finite = _best(samples, rem, rows)
    w = finite.astype(jnp.float32)
    mean, std = _moments(samples, rem, w, rows)
    score = std if beta is None else mean + beta * std
    pairs, valid, vals = _top_b(score, rem, batch)
    return _finish(pairs, valid, vals, jnp.sum(finite), random(None, rem, key, batch=batch))


def ucb(samples, remaining, key, *, batch: int, beta=1.0, chunk_size: int | None = None) -> Batch:
    """Upper confidence bound: the ``batch`` largest ``mean + beta * std`` over the samples.

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      key: PRNG key (random fallback only).
      batch: ``b`` (static).
      beta: exploration weight (traced; default 1; paper grid 0.01-5).
      chunk_size: rows of ``R`` per block (static; None: automatic).

    Returns:
      :class:`Batch` with ``score = mean + beta * std``.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (100, 6, 6))
      >>> ucb(s, jnp.ones((6, 6), bool), jax.random.key(1), batch=2, beta=0.5).pairs.shape
      (2, 2)
    """
    return _mean_std_policy(samples, remaining, key, batch, chunk_size, jnp.asarray(beta, jnp.float32))


def uncertainty(samples, remaining, key, *, batch: int, chunk_size: int | None = None) -> Batch:
    """Uncertainty sampling: the ``batch`` largest posterior ``std`` (``ddof = 0``).

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      key: PRNG key (random fallback only).
      batch: ``b`` (static).
      chunk_size: rows of ``R`` per block (static; None: automatic).

    Returns:
      :class:`Batch` with ``score = std``.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (100, 6, 6))
      >>> uncertainty(s, jnp.ones((6, 6), bool), jax.random.key(1), batch=2).pairs.shape
      (2, 2)
    """
    return _mean_std_policy(samples, remaining, key, batch, chunk_size, None)


POLICIES = {"ids": ids, "ts": thompson, "ucb": ucb, "us": uncertainty, "random": random}

# Options each policy accepts (besides ``batch``); ``chunk_size`` is static.
POLICY_OPTIONS = {
    "ids": {"lam": 2.0, "reestimate": False, "chunk_size": None},
    "ts": {},
    "ucb": {"beta": 1.0, "chunk_size": None},
    "us": {"chunk_size": None},
    "random": {},
}


def check_policy(policy: str, options: dict) -> dict:
    """Validate a policy name and its options; return the options merged over the defaults."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {sorted(POLICIES)}.")
    allowed = POLICY_OPTIONS[policy]
    bad = sorted(set(options) - set(allowed))
    if bad:
        hint = ", ".join(allowed) or "none"
        raise ValueError(f"policy {policy!r} does not take option(s) {bad}; it accepts: {hint}.")
    merged = {**allowed, **options}
    for name in ("lam", "beta"):
        if name in merged:
            val = merged[name]
            if not np.isfinite(val) or (name == "lam" and val <= 0) or (name == "beta" and val < 0):
                raise ValueError(f"policy {policy!r}: {name} must be a finite {'positive' if name == 'lam' else 'non-negative'} number, got {val!r}.")
    return merged


def acquire(policy: str, samples, remaining, key, *, batch: int, **options) -> Batch:
    """Dispatch to a policy by name (``"ids" | "ts" | "ucb" | "us" | "random"``)."""
    options = check_policy(policy, options)
    fn = POLICIES[policy]
    return fn(samples, remaining, key, batch=batch, **options)


@functools.partial(jax.jit, static_argnames=("policy", "batch", "reestimate", "chunk_size"))
def _acquire_jit(policy, samples, remaining, key, batch, lam, beta, reestimate, chunk_size):
    if policy == "ids":
        return ids(samples, remaining, key, batch=batch, lam=lam, reestimate=reestimate, chunk_size=chunk_size)
    if policy == "ucb":
        return ucb(samples, remaining, key, batch=batch, beta=beta, chunk_size=chunk_size)
    if policy == "us":
        return uncertainty(samples, remaining, key, batch=batch, chunk_size=chunk_size)
    if policy == "ts":
        return thompson(samples, remaining, key, batch=batch)
    return random(samples, remaining, key, batch=batch)


def acquire_jit(policy: str, samples, remaining, key, *, batch: int, **options) -> Batch:
    """:func:`acquire` under ``jax.jit`` (static: policy, batch, reestimate, chunk_size)."""
    o = check_policy(policy, options)
    return _acquire_jit(
        policy, samples, remaining, key, batch,
        jnp.float32(o.get("lam", 2.0)), jnp.float32(o.get("beta", 1.0)),
        bool(o.get("reestimate", False)), o.get("chunk_size"),
    )
