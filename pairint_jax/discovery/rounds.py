"""One discovery round, written once: ``(init, step)`` over a :class:`RoundState`.

A round is *fit -> sample -> acquire*:

1. fit the low-rank posterior to every score observed so far (compiled SVI, warm-started
   from the previous round's guide: :func:`~pairint_jax.discovery.posterior.fit`);
2. draw ``K`` posterior samples of the factors;
3. let the policy choose ``batch`` pairs among the remaining ones.

Policies that do not read the posterior (``"hub"``, ``"random"``; see
:mod:`~pairint_jax.discovery.policies`) skip steps 1-2. While no score has been observed,
every policy takes a uniformly random batch (the same one for every policy, given the
key). The key of a round is split once, ``kf, ks, ka = split(key, 3)``: the fit, the
samples, the acquisition.

Every caller runs this step: :func:`~pairint_jax.discovery.simulate.simulate` as
``vmap(scan(step))`` over seeds and rounds, :meth:`~pairint_jax.discovery.campaign.Campaign.propose`
as :func:`step_jit`, and the tiled IDS (policy ``"ids_tiled"``, a host loop over tiles for
genome-scale screens) through the same :func:`step`, outside ``jit``.

Example:
  >>> from pairint_jax.discovery.posterior import LowRankModel, Observations
  >>> model = LowRankModel(n=6, rank=2, steps=50, num_samples=16)
  >>> state = init(jax.random.key(0), model, 16)
  >>> state, info = step_jit(jax.random.key(1), state, state.observations, model=model, policy="ids", batch=2)
  >>> info.pairs.shape, int(state.round)
  ((2, 2), 1)
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import positive_int
from pairint_jax.discovery import posterior as post
from pairint_jax.discovery.acquisition import uniform
from pairint_jax.discovery.policies import apply_policy, check_policy, get_policy, split_options

__all__ = ["RoundInfo", "RoundState", "add_observations", "as_features", "init", "step", "step_jit"]


class RoundState(NamedTuple):
    """Everything a discovery round carries to the next.

    Attributes:
      posterior: the fitted guide (:class:`~pairint_jax.discovery.posterior.PosteriorState`),
        the warm start of the next fit.
      observations: the observation buffer (:class:`~pairint_jax.discovery.posterior.Observations`,
        capacity ``C``) the last round was given.
      remaining: ``[n, n]`` bool, the pairs ``i < j`` that may still be chosen (neither
        observed nor chosen before); None on the tiled path, which never builds ``n^2`` arrays.
      exclude: ``[p, 2]`` int32 pairs that are not candidates besides the observed ones (in
        flight in the lab); read only when ``remaining`` is None.
      round: ``[]`` int32, rounds done.
      features: ``[n, f]`` float32 per-perturbation features (``f = 0``: none); NaN = missing.
    """

    posterior: post.PosteriorState
    observations: post.Observations
    remaining: jax.Array | None
    exclude: jax.Array
    round: jax.Array
    features: jax.Array


class RoundInfo(NamedTuple):
    """What one round chose and how.

    Attributes:
      pairs: ``[b, 2]`` int32, ``i < j`` (``(0, 0)`` in invalid slots).
      valid: ``[b]`` bool; False only when fewer than ``b`` pairs remained.
      score: ``[b]`` float32, the policy's criterion of each pick.
      n_valid: ``[]`` int32, posterior samples used (0 without a posterior).
      fallback: ``[]`` bool, no posterior sample was valid and the batch is random.
      loss: ``[]`` float32, the fit's final negative ELBO (NaN when the round did not fit).
    """

    pairs: jax.Array
    valid: jax.Array
    score: jax.Array
    n_valid: jax.Array
    fallback: jax.Array
    loss: jax.Array


def as_features(features, n: int, *, feature_interactions: bool = False) -> np.ndarray:
    """Validate per-perturbation features: ``[n, f]`` float32 (None -> ``[n, 0]``; NaN = missing).

    ``feature_interactions=True`` (the posterior's term ``x_i^T B x_j``) requires ``f >= 1``.

    Raises:
      TypeError: not numeric.
      ValueError: not ``[n, f]``, an infinite value, or no feature with ``feature_interactions``.
    """
    if feature_interactions and (features is None or np.size(features) == 0):
        raise ValueError("feature interactions (feature_interactions=True, --feature-interactions) need features: "
                         "the term is x_i' B x_j; pass features= (--features FILE.csv or --from-screen).")
    if features is None:
        return np.zeros((n, 0), np.float32)
    try:
        x = np.array(features, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"features must be a numeric array [n, f] (NaN = missing), got {type(features).__name__}: {err}") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"features must be [n, f] = [{n}, f] (one row per perturbation), got shape {x.shape}.")
    if np.isinf(x).any():
        i, j = np.argwhere(np.isinf(x))[0]
        raise ValueError(f"features[{i}, {j}] is infinite; use NaN to mark a missing value.")
    return x.astype(np.float32)


_INIT_TAKES_FEATURES = "features" in inspect.signature(post.init).parameters  # the main-effects posterior


def init(key, model: post.LowRankModel, capacity: int, *, observations=None, remaining=None, exclude=None,
         features=None) -> RoundState:
    """The state before the first round.

    Args:
      key: PRNG key of the initial guide (:func:`~pairint_jax.discovery.posterior.init`).
      model: the static :class:`~pairint_jax.discovery.posterior.LowRankModel`.
      capacity: observation-buffer slots ``C`` (static: every round reuses the program).
      observations: optional :class:`~pairint_jax.discovery.posterior.Observations` already
        known (capacity ``C``); default empty.
      remaining: optional ``[n, n]`` bool candidate mask (default: every pair ``i < j``
        not observed); ``False`` leaves out the ``remaining`` mask (tiled path).
      exclude: optional ``[p, 2]`` pairs that are not candidates (tiled path).
      features: optional ``[n, f]`` per-perturbation features.

    Returns:
      :class:`RoundState` with ``round = 0``.
    """
    n = model.n
    capacity = positive_int("capacity", capacity)
    obs = post.Observations.empty(capacity) if observations is None else observations
    if obs.capacity != capacity:
        raise ValueError(f"observations hold {obs.capacity} slots but capacity is {capacity}; they must agree.")
    feats = jnp.asarray(as_features(features, n))
    extra = {"features": feats} if (_INIT_TAKES_FEATURES and feats.shape[1]) else {}
    posterior = post.init(key, model, **extra)
    if remaining is None:
        remaining = jnp.triu(jnp.ones((n, n), bool), 1)
    if remaining is False:
        remaining = None
    else:
        remaining = _clear_observed(jnp.asarray(remaining, bool) & jnp.triu(jnp.ones((n, n), bool), 1), obs)
    excl = jnp.zeros((0, 2), jnp.int32) if exclude is None else jnp.asarray(np.asarray(exclude, np.int32).reshape(-1, 2))
    return RoundState(posterior, obs, remaining, excl, jnp.int32(0), feats)


def _clear_observed(remaining, obs):
    return remaining.at[obs.rows, obs.cols].min(~obs.mask)


def add_observations(obs: post.Observations, pairs, values, valid, start) -> post.Observations:
    """Write a batch into the buffer at slots ``start : start + b`` (``start`` may be traced).

    Invalid slots stay empty (mask False, ``cols = 1``).
    """
    valid = jnp.asarray(valid, bool)
    upd = lambda buf, x: jax.lax.dynamic_update_slice(buf, x.astype(buf.dtype), (start,))
    return post.Observations(
        upd(obs.rows, pairs[:, 0]),
        upd(obs.cols, jnp.where(valid, pairs[:, 1], 1)),
        upd(obs.values, jnp.where(valid, values, 0.0)),
        upd(obs.mask, valid),
    )


def _choose(policies, code, samples, observations, remaining, key, batch, options, features):
    def run(name):
        return lambda: apply_policy(name, samples=samples, observations=observations, remaining=remaining, key=key,
                                    batch=batch, options=options[name], features=features)

    if len(policies) == 1:
        return run(policies[0])()
    return jax.lax.switch(code, [run(p) for p in policies])


def step(key, state: RoundState, observations, *, model: post.LowRankModel, policy, batch: int, options=None,
         lr=0.01, sigma_scale=1.0, code=0, progress: bool = False) -> tuple[RoundState, RoundInfo]:
    """One round: fit, sample, acquire (module docstring). Pure and jittable for jittable policies.

    Args:
      key: PRNG key of the round (split into fit, samples and acquisition keys).
      state: the :class:`RoundState` after the previous round (or :func:`init`).
      observations: :class:`~pairint_jax.discovery.posterior.Observations`, every score
        observed so far (capacity ``C``, as in :func:`init`).
      model: the static :class:`~pairint_jax.discovery.posterior.LowRankModel`.
      policy: a policy name, or a tuple of names chosen among by ``code`` (``lax.switch``).
      batch: ``b``, pairs per round (static).
      options: the policy's options merged over its defaults
        (:func:`~pairint_jax.discovery.policies.check_policy`); for a tuple of policies, a
        dict ``{name: options}``. None: the defaults. ``lam``/``beta`` may be traced.
      lr, sigma_scale: the fit's Adam learning rate and noise-prior scale (traced).
      code: index into ``policy`` when it is a tuple (may be traced).
      progress: tiled path only: a progress bar over tiles.

    Returns:
      ``(state, info)``: the new :class:`RoundState` (chosen pairs removed from ``remaining``,
      ``round + 1``) and :class:`RoundInfo`.
    """
    policies = (policy,) if isinstance(policy, str) else tuple(policy)
    regs = [get_policy(p) for p in policies]
    if isinstance(policy, str):
        options = {policy: dict(regs[0].options) if options is None else options}
    elif options is None:
        options = {}
    options = {p: options.get(p, dict(r.options)) for p, r in zip(policies, regs)}
    if not all(r.jittable for r in regs):
        if len(policies) != 1:
            raise ValueError(f"a host-driven policy ({policies}) cannot be switched with others.")
        from pairint_jax.discovery.tiled_round import tiled_step

        return tiled_step(key, state, observations, model=model, batch=batch, options=options[policies[0]],
                          lr=lr, sigma_scale=sigma_scale, progress=progress)
    kf, ks, ka = jax.random.split(key, 3)
    rem = _clear_observed(state.remaining, observations)
    feats = state.features if state.features.shape[-1] else None
    nan = jnp.float32(jnp.nan)

    def first():  # nothing observed yet: a uniform batch, no fit
        return state.posterior, uniform(None, rem, ka, batch=batch), nan

    def choose():
        posterior, samples, loss = state.posterior, None, nan
        if any(r.needs_posterior for r in regs):
            posterior, info = post.fit(kf, state.posterior, observations, model=model, lr=lr, sigma_scale=sigma_scale)
            samples, loss = post.sample(ks, posterior, model=model), info.loss
        b = _choose(policies, code, samples, observations, rem, ka, batch, options, feats)
        return posterior, b, jnp.asarray(loss, jnp.float32)

    if policies == ("random",):
        posterior, b, loss = first()
    else:
        posterior, b, loss = jax.lax.cond(jnp.any(observations.mask), choose, first)
    rem = rem.at[b.pairs[:, 0], b.pairs[:, 1]].min(~b.valid)
    new = state._replace(posterior=posterior, observations=observations, remaining=rem, round=state.round + 1)
    return new, RoundInfo(b.pairs, b.valid, b.score, b.n_valid, b.fallback, loss)


@functools.partial(jax.jit, static_argnames=("model", "policy", "batch", "static"))
def _step_jit(key, state, observations, traced, lr, sigma_scale, *, model, policy, batch, static):
    return step(key, state, observations, model=model, policy=policy, batch=batch,
                options={**dict(static), **traced}, lr=lr, sigma_scale=sigma_scale)


def step_jit(key, state: RoundState, observations, *, model: post.LowRankModel, policy: str, batch: int,
             options=None, lr=0.01, sigma_scale=1.0, progress: bool = False) -> tuple[RoundState, RoundInfo]:
    """:func:`step` for one policy under ``jax.jit`` (static: model, policy, ``batch`` and the
    static options; ``lam``, ``beta``, ``lr`` and ``sigma_scale`` are traced).

    Validates ``options`` (:func:`~pairint_jax.discovery.policies.check_policy`). An empty
    observation buffer (known on the host) runs the ``"random"`` program: the same batch as
    :func:`step`, without compiling a fit that would not run. A host-driven policy
    (``"ids_tiled"``) runs :func:`step` directly.
    """
    opts = check_policy(policy, options)
    name = get_policy(policy).name
    if not get_policy(policy).jittable:
        return step(key, state, observations, model=model, policy=name, batch=batch, options=opts, lr=lr,
                    sigma_scale=sigma_scale, progress=progress)
    if not np.any(np.asarray(observations.mask)):
        name, opts = "random", {}
    static, traced = split_options(opts)
    return _step_jit(key, state, observations, traced, jnp.float32(lr), jnp.float32(sigma_scale),
                     model=model, policy=name, batch=int(batch), static=static)
