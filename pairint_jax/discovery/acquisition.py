"""Acquisition functions: (posterior samples, remaining actions, key) -> a batch of pairs.

An *action* is an unordered pair ``(i, j)``, ``i < j``, not yet observed. Every policy
is a pure, jittable function

    policy(samples, remaining, key, *, batch, ...) -> Batch

* ``samples``: ``K`` posterior samples of the reward matrix, either
  :class:`~pairint_jax.discovery.posterior.FactorSamples` (factors; ``K x n x n`` is never
  materialised, rows are computed block by block) or a dense array ``[K, n, n]``.
* ``remaining``: ``[n, n]`` bool; ``remaining[i, j]`` for ``i < j`` says the action is
  still available (entries on and below the diagonal are ignored).
* ``key``: PRNG key (used by ``ts``, ``uniform`` and the fallback).

Policies (paper Sec. 4, App. D.3):

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
* :func:`greedy`: the ``b`` largest posterior means (pure exploitation).
* :func:`uniform`: ``b`` remaining actions uniformly at random, without replacement
  (the policy named ``"random"``; formerly the function ``random``).

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
If no sample is valid, the model-based policies fall back to :func:`uniform` and set
``Batch.fallback``.

Memory: the sample rewards are computed in blocks of ``chunk_size`` rows (``[K,
chunk_size, n]``; :mod:`~pairint_jax.discovery.sample_stats`); the default picks
``chunk_size`` so that a block holds about 2^24 values. The policy registry (names,
options, defaults) is :mod:`~pairint_jax.discovery.policies`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pairint_jax.discovery.sample_stats import (
    best_actions,
    block_rows,
    ids_core,
    moments,
    sample_matrix,
    sample_shape,
)
from pairint_jax.discovery.selection import Batch, finish_batch, lex_argmin, pair_index, pairs_from_flat, top_b, upper_mask

__all__ = [
    "IDS_LAMBDA",
    "Batch",
    "IDSStats",
    "greedy",
    "ids",
    "ids_stats",
    "pair_index",
    "thompson",
    "ucb",
    "uncertainty",
    "uniform",
]


#: Default ``lambda`` of ``Psi = Delta^lambda / v``. The digest's default is 2; its tuning grid is
#: {2, ..., 5}. 4 is the default since issue 12: on the maps of ``benchmarks/real_discovery.py``
#: it finds every top-5% pair of synthetic (b), where 2 stalls on some seeds (0.95), and it is
#: at least as good elsewhere (``benchmarks/RESULTS.md``, "IDS lambda = 4").
IDS_LAMBDA = 4.0


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

# ---------------------------------------------------------------------------- policies


def uniform(samples, remaining, key, *, batch: int) -> Batch:
    """``batch`` remaining actions uniformly at random, without replacement.

    Args:
      samples: ignored (may be None); present so every policy has one signature.
      remaining: ``[n, n]`` bool.
      key: PRNG key.
      batch: ``b`` (static).

    Returns:
      :class:`Batch`; ``n_valid = 0``, ``fallback = False``.

    Example:
      >>> b = uniform(None, jnp.ones((5, 5), bool), jax.random.key(0), batch=3)
      >>> b.pairs.shape
      (3, 2)
    """
    remaining = jnp.asarray(remaining, bool)
    n = remaining.shape[0]
    rem = upper_mask(remaining, n)
    u = jax.random.uniform(key, (n, n))
    pairs, valid, vals = top_b(u, rem, batch)
    pairs = jnp.where(valid[:, None], pairs, 0)
    return Batch(pairs, valid, jnp.where(valid, vals, 0.0).astype(jnp.float32), jnp.int32(0), jnp.bool_(False))


def ids_stats(samples, remaining, *, lam=IDS_LAMBDA, chunk_size: int | None = None) -> IDSStats:
    """The IDS quantities (Delta, v, Psi, p_best, mean, std) over the remaining actions.

    See the module docstring for the formulas and the ``v = 0`` rule.

    Args:
      samples: :class:`FactorSamples` or ``[K, n, n]``.
      remaining: ``[n, n]`` bool.
      lam: ``lambda`` (traced; default :data:`IDS_LAMBDA`).
      chunk_size: rows of ``R`` per block (static; None: automatic).

    Returns:
      :class:`IDSStats`, every field ``[n, n]`` with NaN off the remaining actions.

    Example:
      >>> s = jnp.array([[[0, 1, 2], [1, 0, 0], [2, 0, 0]], [[0, 3, 0], [3, 0, 1], [0, 1, 0]]], float)
      >>> st = ids_stats(s, jnp.ones((3, 3), bool))
      >>> float(st.delta[0, 1])  # mean best (2 + 3) / 2 minus mean of (0, 1) (1 + 3) / 2
      0.5
    """
    k, n = sample_shape(samples)
    rem = upper_mask(remaining, n)
    out = ids_core(samples, rem, jnp.asarray(lam, jnp.float32), block_rows(k, n, chunk_size))
    *fields, n_valid = out
    fields = [jnp.where(rem, f, jnp.nan) for f in fields]
    return IDSStats(*fields, n_valid)


def ids(samples, remaining, key, *, batch: int, lam=IDS_LAMBDA, reestimate: bool = False, chunk_size: int | None = None) -> Batch:
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
      lam: ``lambda`` (traced; default :data:`IDS_LAMBDA`).
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
    k, n = sample_shape(samples)
    rem = upper_mask(remaining, n)
    rows = block_rows(k, n, chunk_size)
    lam = jnp.asarray(lam, jnp.float32)

    if reestimate:

        def slot(cand, _):
            delta, v, psi, *_, n_valid = ids_core(samples, cand, lam, rows)
            flat, ok = lex_argmin(psi, delta, cand)
            cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
            return cand, (flat, ok, psi.reshape(-1)[flat], n_valid)

        _, (flat, valid, score, n_valid) = jax.lax.scan(slot, rem, None, length=batch)
        n_valid = n_valid[0]
    else:
        delta, v, psi, *_, n_valid = ids_core(samples, rem, lam, rows)

        def slot(cand, _):
            flat, ok = lex_argmin(psi, delta, cand)
            cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
            return cand, (flat, ok, psi.reshape(-1)[flat])

        _, (flat, valid, score) = jax.lax.scan(slot, rem, None, length=batch)
    return finish_batch(pairs_from_flat(flat, n), valid, score, n_valid, uniform(None, rem, key, batch=batch))


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
    k, n = sample_shape(samples)
    rem = upper_mask(remaining, n)
    k_order, k_fb = jax.random.split(key)
    _, _, finite = best_actions(samples, rem, block_rows(k, n, None))
    n_valid = jnp.sum(finite).astype(jnp.int32)
    prio = jnp.where(finite, jax.random.uniform(k_order, (k,)), -1.0)
    order = jnp.argsort(-prio)

    def slot(cand, t):
        s = order[t % jnp.maximum(n_valid, 1)]
        r = sample_matrix(samples, s)
        c = cand & jnp.isfinite(r)
        flat = jnp.argmax(jnp.where(c, r, -jnp.inf).reshape(-1))
        ok = jnp.any(c)
        cand = cand.reshape(-1).at[flat].set(False).reshape(n, n)
        return cand, (flat, ok, r.reshape(-1)[flat])

    _, (flat, valid, score) = jax.lax.scan(slot, rem, jnp.arange(batch))
    return finish_batch(pairs_from_flat(flat, n), valid, score, n_valid, uniform(None, rem, k_fb, batch=batch))


def _mean_std_policy(samples, remaining, key, batch, chunk_size, beta, *, use_std=True):
    k, n = sample_shape(samples)
    rem = upper_mask(remaining, n)
    rows = block_rows(k, n, chunk_size)
    _, _, finite = best_actions(samples, rem, rows)
    w = finite.astype(jnp.float32)
    mean, std = moments(samples, rem, w, rows)
    score = mean if not use_std else std if beta is None else mean + beta * std
    pairs, valid, vals = top_b(score, rem, batch)
    return finish_batch(pairs, valid, vals, jnp.sum(finite), uniform(None, rem, key, batch=batch))


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


def greedy(samples, remaining, key, *, batch: int, chunk_size: int | None = None) -> Batch:
    """Greedy on the posterior: the ``batch`` largest posterior means over the valid samples.

    Ties go to the lower pair index. A pure exploitation baseline: UCB with ``beta = 0``. The
    arguments are those of :func:`uncertainty`.

    Returns:
      :class:`Batch` with ``score = mean``.

    Example:
      >>> s = jax.random.normal(jax.random.key(0), (100, 6, 6))
      >>> greedy(s, jnp.ones((6, 6), bool), jax.random.key(1), batch=2).pairs.shape
      (2, 2)
    """
    return _mean_std_policy(samples, remaining, key, batch, chunk_size, None, use_std=False)


def __getattr__(name):
    if name == "random":
        warnings.warn(
            "pairint_jax.discovery.acquisition.random is renamed uniform (it shadowed the standard library's "
            "random); the old name will be removed.", DeprecationWarning, stacklevel=2,
        )
        return uniform
    if name in ("POLICIES", "POLICY_OPTIONS", "acquire", "acquire_jit", "check_policy"):
        from pairint_jax.discovery import policies  # the registry (imports this module)

        return getattr(policies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
