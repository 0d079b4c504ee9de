"""Simulated discovery campaigns on a known reward matrix (paper Sec. 4, Fig. 6).

Each *chain* (one policy, one seed) runs ``rounds`` rounds of ``batch`` actions: the
shared round :func:`~pairint_jax.discovery.rounds.step` (fit the low-rank posterior to
every score revealed so far, draw ``K`` samples, let the policy pick a batch among the
remaining actions), then the true scores of the batch are revealed.

The first round is random unless ``observed`` pairs are supplied. The whole study is one
compiled program: ``jit(vmap over chains (scan over rounds (step)))``.
:func:`simulate_many` puts the policies that read the posterior into the same program (a
``lax.switch`` over the acquisition functions, vmapped); the model-free ones (``hub``,
``random``) run in their own, much cheaper program. Every policy sees the same seeds, so
the first random round of a seed is the same for every policy.

Metrics, per chain and round (after the round's batch is revealed):

* ``top5_fraction``: of the true top-5% pairs, the fraction observed so far. The top set
  is the ``ceil(0.05 P)`` available pairs with the highest true scores, plus any pair
  tied with the last of them (``P`` = available pairs). Supplied ``observed`` pairs count
  as observed.
* ``regret``: cumulative regret against the oracle that takes the ``batch`` best
  remaining true scores every round: ``sum of the (r+1) * batch best available scores
  (excluding supplied observations) - sum of the true scores the policy chose``.
* ``known_found``: how many of the ``known`` pairs have been observed (0 without a list).

The input matrix's conventions (symmetric, NaN = unavailable) are those of
:mod:`~pairint_jax.discovery.simulate_inputs`.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax.discovery import posterior as post
from pairint_jax.discovery import rounds as _rounds
from pairint_jax.discovery.links import resolve_link
from pairint_jax.discovery.model_options import split_model_options
from pairint_jax.discovery.policies import REGISTRY, check_policy, get_policy, split_options
from pairint_jax.discovery.simulate_inputs import Problem, check_policies, problem
from pairint_jax.parallel import check_mesh, mesh_size, pad_leading, replicated, shard_map, sharded, sharded_spec

__all__ = ["SimulationResult", "simulate", "simulate_many"]

#: Every policy a simulation can run (the jittable ones of the registry), the default of :func:`simulate_many`.
ALL_POLICIES = tuple(name for name, p in REGISTRY.items() if p.jittable)


@dataclasses.dataclass(frozen=True, eq=False)
class SimulationResult:
    """The curves of one policy over ``seeds`` chains and ``rounds`` rounds.

    Attributes:
      policy: the policy name.
      top5_fraction: ``[seeds, rounds]`` fraction of the true top-5% pairs observed so far.
      regret: ``[seeds, rounds]`` cumulative regret against the oracle (the digest's metric;
        it can decrease once the oracle has used up the best pairs and the policy has not).
      regret_remaining: ``[seeds, rounds]`` cumulative regret against the best ``batch``
        pairs of the policy's *own* remaining set each round (never decreases).
      known_found: ``[seeds, rounds]`` int, known pairs observed so far (zeros without ``known``).
      chosen: ``[seeds, rounds, batch, 2]`` int, the pairs chosen (``i < j``).
      rewards: ``[seeds, rounds, batch]`` their true scores.
      oracle: ``[rounds]`` the oracle's cumulative reward.
      fallback: ``[seeds, rounds]`` bool, rounds whose posterior had no finite sample (random batch).
      fit_loss: ``[seeds, rounds]`` final negative ELBO of each round's fit (NaN where no fit).
      n_top: size of the top-5% set.
      n_known: number of (available, distinct) known pairs.
      settings: every option the study ran with.
      wall_time: seconds for the whole call (compilation included) when run alone; for
        :func:`simulate_many`, the time of the program this policy ran in.
    """

    policy: str
    top5_fraction: np.ndarray
    regret: np.ndarray
    regret_remaining: np.ndarray
    known_found: np.ndarray
    chosen: np.ndarray
    rewards: np.ndarray
    oracle: np.ndarray
    fallback: np.ndarray
    fit_loss: np.ndarray
    n_top: int
    n_known: int
    settings: dict
    wall_time: float

    @property
    def seeds(self) -> int:
        return self.top5_fraction.shape[0]

    @property
    def rounds(self) -> int:
        return self.top5_fraction.shape[1]

    def at_round(self, r: int) -> dict:
        """Mean, min and max over seeds of each metric after round ``r`` (1-based)."""
        out = {}
        for name in ("top5_fraction", "regret", "known_found"):
            col = np.asarray(getattr(self, name), float)[:, r - 1]
            out[name] = (float(col.mean()), float(col.min()), float(col.max()))
        return out

    def to_frame(self):
        """Long ``pandas.DataFrame``: policy, seed, round (1-based) and the three metrics."""
        import pandas as pd

        s, r = np.meshgrid(np.arange(self.seeds), np.arange(1, self.rounds + 1), indexing="ij")
        return pd.DataFrame(
            {
                "policy": self.policy,
                "seed": s.ravel(),
                "round": r.ravel(),
                "top5_fraction": self.top5_fraction.ravel(),
                "regret": self.regret.ravel(),
                "known_found": self.known_found.ravel(),
            }
        )

    def __repr__(self) -> str:
        last = self.at_round(self.rounds)
        return (
            f"SimulationResult(policy={self.policy!r}, seeds={self.seeds}, rounds={self.rounds}, "
            f"top5_fraction={last['top5_fraction'][0]:.3f}, regret={last['regret'][0]:.4g}, "
            f"known_found={last['known_found'][0]:.3g}/{self.n_known})"
        )


# ----------------------------------------------------------------------------- the program


def _round(consts, chain, carry, r, *, policies, model, batch, static):
    """One round of one chain: the shared :func:`~pairint_jax.discovery.rounds.step`, then the
    truth is revealed and the metrics updated; ``r`` must not be batched."""
    r_true, avail, top, known, oracle, lr, sigma_scale, traced, n_init = consts
    key, code = chain
    state, cum, cum_inst = carry
    rem = state.remaining
    options = {p: {**dict(static[p]), **traced[p]} for p in policies}
    state, info = _rounds.step(jax.random.fold_in(key, r), state, state.observations, model=model, policy=policies,
                              batch=batch, options=options, lr=lr, sigma_scale=sigma_scale, code=code)
    i, j = info.pairs[:, 0], info.pairs[:, 1]
    y = jnp.where(info.valid, r_true[i, j], 0.0)
    best, _ = jax.lax.top_k(jnp.where(rem, r_true, -jnp.inf).reshape(-1), batch)
    inst = jnp.sum(jnp.where(jnp.isfinite(best), best, 0.0)) - jnp.sum(y)
    obs = _rounds.add_observations(state.observations, info.pairs, y, info.valid, n_init + r * batch)
    state = state._replace(observations=obs)
    taken = avail & ~state.remaining
    cum = cum + jnp.sum(y)
    cum_inst = cum_inst + inst
    out = {
        "regret_remaining": cum_inst,
        "top": jnp.sum(taken & top),
        "regret": oracle[r] - cum,
        "known": jnp.sum(taken & known),
        "pairs": info.pairs,
        "rewards": y,
        "fallback": info.fallback,
        "loss": info.loss,
    }
    return (state, cum, cum_inst), out


@functools.partial(jax.jit, static_argnames=("policies", "model", "batch", "static", "mesh"))
def _run_rounds(consts, chains, carry, round_ids, *, policies, model, batch, static, mesh=None):
    """``vmap`` over chains of a ``scan`` over rounds of :func:`_round` (``shard_map``-ed over a mesh)."""
    static = dict(static)

    def one_chain(chain, c):
        def body(cc, r):
            return _round(consts, chain, cc, r, policies=policies, model=model, batch=batch, static=static)

        return jax.lax.scan(body, c, round_ids)

    def run(ch, c):
        return jax.vmap(one_chain)(ch, c)

    if mesh is None:
        return run(chains, carry)
    # Chains (policy x seed) are independent: split them over the devices, no communication.
    # The carry stays sharded between calls; the per-round outputs come back replicated.
    spec = sharded_spec(mesh)
    carry, out = shard_map(run, mesh=mesh, in_specs=(spec, spec), out_specs=spec)(chains, carry)
    return carry, jax.tree.map(lambda y: jax.lax.with_sharding_constraint(y, replicated(mesh)), out)


def _initial_carry(keys, prob: Problem, model, capacity, features):
    n = prob.r.shape[0]
    if len(prob.init_pairs):
        vals = prob.r[prob.init_pairs[:, 0], prob.init_pairs[:, 1]]
        obs = post.Observations.from_pairs(prob.init_pairs, vals, capacity=capacity)
    else:
        obs = post.Observations.empty(capacity)
    states = jax.vmap(lambda k: _rounds.init(k, model, capacity, observations=obs, remaining=jnp.asarray(prob.avail),
                                            features=features))(keys)
    zeros = jnp.zeros((len(keys),), jnp.float32)
    return states, zeros, zeros


def _run_program(prob, policies, keys, codes, opts, *, model, batch, rounds_, lr, sigma_scale, features, progress,
                 desc, mesh=None):
    n_init = len(prob.init_pairs)
    capacity = n_init + rounds_ * batch
    r32 = np.where(np.isfinite(prob.r), prob.r, 0.0).astype(np.float32)
    split = {p: split_options(opts[p]) for p in policies}
    consts = (
        jnp.asarray(r32), jnp.asarray(prob.avail), jnp.asarray(prob.top), jnp.asarray(prob.known),
        jnp.asarray(prob.oracle, jnp.float32), jnp.float32(lr), jnp.float32(sigma_scale),
        {p: split[p][1] for p in policies}, jnp.int32(n_init),
    )
    k_init, k_rounds = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
    carry = _initial_carry(k_init, prob, model, capacity, features)
    chains = (k_rounds, jnp.asarray(codes, jnp.int32))
    n_chains = len(codes)
    if mesh is not None:  # pad the chains to whole shards by repeating the last one; dropped below
        (chains, carry), _ = pad_leading((chains, carry), mesh_size(mesh))
        # placed as the program returns them, so a later call (progress bar) reuses the compiled program
        chains, carry = jax.device_put((chains, carry), sharded(mesh))
    static = dict(policies=policies, model=model, batch=batch, mesh=mesh,
                  static=tuple((p, split[p][0]) for p in policies))
    t0 = time.perf_counter()
    if not progress:
        carry, out = _run_rounds(consts, chains, carry, jnp.arange(rounds_, dtype=jnp.int32), **static)
        out = jax.device_get(out)
    else:
        parts = []
        bar = _progress(total=rounds_, desc=desc, enabled=True, unit="round")
        for r in range(rounds_):
            carry, o = _run_rounds(consts, chains, carry, jnp.arange(r, r + 1, dtype=jnp.int32), **static)
            parts.append(jax.device_get(o))
            bar.update(1)
        bar.close()
        out = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *parts)
    jax.block_until_ready(carry)
    out = jax.tree.map(lambda y: np.asarray(y)[:n_chains], out)
    return out, time.perf_counter() - t0


def _result(name, out, sl, prob: Problem, settings, wall) -> SimulationResult:
    return SimulationResult(
        policy=name,
        top5_fraction=np.asarray(out["top"][sl], float) / prob.n_top,
        regret=np.asarray(out["regret"][sl], np.float64),
        regret_remaining=np.asarray(out["regret_remaining"][sl], np.float64),
        known_found=np.asarray(out["known"][sl], np.int64),
        chosen=np.asarray(out["pairs"][sl]),
        rewards=np.asarray(out["rewards"][sl]),
        oracle=prob.oracle.copy(),
        fallback=np.asarray(out["fallback"][sl]),
        fit_loss=np.asarray(out["loss"][sl]),
        n_top=prob.n_top,
        n_known=prob.n_known,
        settings=settings,
        wall_time=wall,
    )


def _check_common(seeds, model_kwargs):
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}.")
    for name in ("lr", "sigma_scale"):
        val = model_kwargs[name]
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a finite positive number, got {val!r}.")


def _seed_keys(key, seeds):
    if key is None:
        key = jax.random.key(0)
    if not jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(seeds))


def simulate_many(
    reward_matrix,
    policies=ALL_POLICIES,
    *,
    rounds: int = 50,
    batch: int = 10,
    seeds: int = 10,
    key=None,
    known=None,
    observed=None,
    rank: int = post.DEFAULT_RANK,
    steps: int = 5000,
    num_samples: int = 1000,
    lr: float = 0.01,
    sigma_scale: float = 1.0,
    link: str = "auto",
    offset: bool = True,
    standardize: bool = True,
    elbo: str | None = None,
    nonnegative: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
    policy_options: dict | None = None,
    features=None,
    feature_interactions: bool = False,
    model_options: dict | None = None,
    mesh=None,
) -> dict[str, SimulationResult]:
    """Simulate several policies on the same matrix and seeds, model-based ones in one program.

    Same arguments as :func:`simulate`, with ``policies`` a sequence of names and
    ``policy_options`` a dict ``{policy: {option: value}}`` (``ids``: ``lam``,
    ``reestimate``, ``chunk_size``; ``ucb``: ``beta``). The default runs every policy of
    :data:`ALL_POLICIES` (``ids, ts, ucb, us, greedy, hub, random``).

    With ``mesh`` (a :class:`jax.sharding.Mesh`), the chains of each program (policies x
    seeds) are split over the mesh's devices (``shard_map``; padded to a multiple of the
    device count by repeating the last chain); each chain runs the same code as without a
    mesh, so the curves agree with the single-device run (to float32 round-off of the
    vmapped batch shape: see ``tests/test_parallel_mesh.py``).

    Returns:
      ``{policy: SimulationResult}`` in the order given.

    Example:
      >>> r = np.random.default_rng(0).normal(size=(12, 3)); R = r @ r.T
      >>> out = simulate_many(R, ("ids", "random"), rounds=3, batch=2, seeds=2, steps=200, num_samples=64)
      >>> out["ids"].top5_fraction.shape
      (2, 3)
    """
    policies = check_policies(policies, policy_options)
    opts = {p: check_policy(p, dict(policy_options or {}).get(p, {})) for p in policies}
    mesh = check_mesh(mesh)
    _check_common(seeds, {"lr": lr, "sigma_scale": sigma_scale})
    prob = problem(reward_matrix, rounds=rounds, batch=batch, known=known, observed=observed)
    n = prob.r.shape[0]
    link, feature_interactions, extra = split_model_options(link, feature_interactions, model_options)
    feats = _rounds.as_features(features, n, feature_interactions=feature_interactions)
    model = post.LowRankModel(n=n, rank=rank, offset=offset, link=resolve_link(link, prob.r[np.triu_indices(n, 1)]),
                              standardize=standardize,
                              steps=steps, num_samples=num_samples, elbo=elbo, nonnegative=nonnegative,
                              feature_interactions=feature_interactions, **extra)
    keys = _seed_keys(key, seeds)
    chunk = chunk_size
    for p in policies:  # the simulation-wide chunk_size, unless a policy's options name their own
        if opts[p].get("chunk_size") is not None:
            chunk = opts[p]["chunk_size"]
        elif "chunk_size" in opts[p]:
            opts[p]["chunk_size"] = chunk_size
    settings = dict(rounds=rounds, batch=batch, seeds=seeds, rank=rank, steps=steps, num_samples=num_samples,
                    lr=lr, sigma_scale=sigma_scale, link=model.link, offset=offset, standardize=standardize,
                    elbo=model.elbo, factor_scale_min=model.factor_scale_min, nonnegative=nonnegative, n=n,
                    n_initial=len(prob.init_pairs), chunk_size=chunk,
                    features=feats.shape[1], feature_interactions=model.feature_interactions,
                    devices=1 if mesh is None else mesh_size(mesh))
    settings.update({k: getattr(model, k) for k in extra})  # the model_options, as fitted

    # policies that read the posterior share one program; the model-free ones share a much cheaper one
    model_based = tuple(p for p in policies if get_policy(p).needs_posterior)
    groups = [g for g in (model_based, tuple(p for p in policies if p not in model_based)) if g]
    results = {}
    for group in groups:
        codes = np.repeat(np.arange(len(group)), seeds)
        gkeys = jnp.concatenate([keys] * len(group))
        out, wall = _run_program(
            prob, group, gkeys, codes, opts, model=model, batch=batch, rounds_=rounds, lr=lr, sigma_scale=sigma_scale,
            features=feats, progress=progress, desc="+".join(group), mesh=mesh,
        )
        for g, name in enumerate(group):
            results[name] = _result(name, out, slice(g * seeds, (g + 1) * seeds), prob,
                                    {**settings, "policy": name, **opts[name]}, wall)
    return {p: results[p] for p in policies}


def simulate(
    reward_matrix,
    policy: str = "ids",
    rounds: int = 50,
    batch: int = 10,
    seeds: int = 10,
    key=None,
    known=None,
    *,
    observed=None,
    rank: int = post.DEFAULT_RANK,
    steps: int = 5000,
    num_samples: int = 1000,
    lr: float = 0.01,
    sigma_scale: float = 1.0,
    link: str = "auto",
    offset: bool = True,
    standardize: bool = True,
    elbo: str | None = None,
    nonnegative: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
    mesh=None,
    features=None,
    feature_interactions: bool = False,
    model_options: dict | None = None,
    **policy_options,
) -> SimulationResult:
    """Run a policy on a known reward matrix: ``seeds`` campaigns of ``rounds x batch`` pairs.

    Every round fits the low-rank posterior (``rank``, ``steps`` Adam steps at ``lr``,
    warm-started), draws ``num_samples`` samples and lets ``policy`` choose ``batch`` new
    pairs; their true scores are revealed. The first round is random unless ``observed``
    is given. One compiled program: ``vmap`` over seeds of a ``scan`` over rounds (with
    ``progress=True``: one call of the same compiled program per round, to update a bar).

    Args:
      reward_matrix: ``[n, n]`` symmetric scores (or a ``PairScores``); the diagonal is
        ignored and NaN marks an unavailable pair.
      policy: a name of :mod:`~pairint_jax.discovery.policies`: ``"ids" | "ts" | "ucb" | "us" |
        "greedy" | "hub" | "random"`` (``"uniform"`` is another name of ``"random"``).
      rounds: number of rounds (default 50).
      batch: pairs per round (default 10).
      seeds: independent campaigns (default 10).
      key: PRNG key (default ``jax.random.key(0)``); seed ``s`` uses ``fold_in(key, s)``.
      known: optional known interactions: pairs ``[k, 2]`` or a bool ``[n, n]`` matrix.
      observed: optional pairs ``[k0, 2]`` observed before round 1 (their true scores
        are revealed; the first round then uses the policy).
      rank: ``m`` of the low-rank model (default :data:`~pairint_jax.discovery.posterior.DEFAULT_RANK`, 8).
      steps: SVI steps per round (default 5000).
      num_samples: posterior samples ``K`` per round (default 1000).
      lr: Adam learning rate (default 0.01).
      sigma_scale: scale of the HalfNormal prior on the noise (standardised units).
      link: ``"auto"`` (default), ``"identity"``, ``"abs"`` or ``"softplus"``. ``"auto"`` fits
        ``"abs"`` when no entry of ``reward_matrix`` is negative (the score's range, which the
        user knows before measuring anything: ``|GI|``, a norm) and ``"identity"`` otherwise
        (:func:`~pairint_jax.discovery.links.resolve_link`); ``settings["link"]`` of the
        result records the link fitted.
      offset, standardize, elbo, nonnegative: see
        :class:`~pairint_jax.discovery.posterior.LowRankModel`.
      chunk_size: rows of ``R`` per block in the acquisition (None: automatic).
      progress: show a progress bar over rounds.
      mesh: optional :class:`jax.sharding.Mesh`: the seeds run split over its devices
        (see :func:`simulate_many`).
      features: optional ``[n, f]`` per-perturbation features (NaN = missing): the prior
        mean of ``"hub"``, and of the posterior where it takes features.
      feature_interactions: add the posterior's feature-interaction term
        ``1/2 (x_i^T B x_j + x_j^T B x_i)`` (default False; see
        :class:`~pairint_jax.discovery.posterior.LowRankModel`). Needs ``features``.
      model_options: further ``LowRankModel`` settings (the keys of
        :data:`~pairint_jax.discovery.model_options.MODEL_OPTIONS`), e.g. ``pj.HUB_MODEL``, the
        preset for hub-driven maps with informative singles (it sets ``link`` and
        ``feature_interactions`` too); ``settings`` of the result records them.
      **policy_options: ``lam=4.0`` (:data:`~pairint_jax.discovery.acquisition.IDS_LAMBDA`) and
        ``reestimate=False`` for IDS, ``beta=1.0`` for UCB.

    Returns:
      :class:`SimulationResult` with ``top5_fraction``, ``regret`` and ``known_found``,
      each ``[seeds, rounds]``.

    Example:
      >>> r = np.random.default_rng(0).normal(size=(12, 3)); R = r @ r.T
      >>> res = simulate(R, "ucb", rounds=3, batch=2, seeds=2, steps=200, num_samples=64, beta=0.5)
      >>> res.regret.shape
      (2, 3)
    """
    out = simulate_many(
        reward_matrix, (policy,), rounds=rounds, batch=batch, seeds=seeds, key=key, known=known,
        observed=observed, rank=rank, steps=steps, num_samples=num_samples, lr=lr, sigma_scale=sigma_scale,
        link=link, offset=offset, standardize=standardize, elbo=elbo, nonnegative=nonnegative, chunk_size=chunk_size,
        progress=progress, mesh=mesh, features=features, feature_interactions=feature_interactions,
        model_options=model_options, policy_options={policy: policy_options} if policy_options else None,
    )
    return out[policy]
