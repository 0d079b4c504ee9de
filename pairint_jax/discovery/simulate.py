"""Simulated discovery campaigns on a known reward matrix (DIGEST section 4, paper Fig. 6).

Each *chain* (one policy, one seed) runs ``rounds`` rounds of ``batch`` actions:

1. fit the low-rank posterior to every score revealed so far (warm start, compiled SVI);
2. draw ``K`` posterior samples of the factors;
3. pick a batch with the policy over the remaining actions;
4. reveal the true scores of the batch.

The first round is random unless ``observed`` pairs are supplied. The whole study is one
compiled program: ``jit(vmap over chains (scan over rounds (scan over SVI steps)))``.
:func:`simulate_many` puts several model-based policies into the same program (a
``lax.switch`` over the acquisition functions, vmapped); the random policy, which needs
no posterior, runs in its own, much cheaper program. Every policy sees the same seeds,
so the first random round of a seed is the same for every policy.

Metrics, per chain and round (after the round's batch is revealed):

* ``top5_fraction``: of the true top-5% pairs, the fraction observed so far. The top set
  is the ``ceil(0.05 P)`` available pairs with the highest true scores, plus any pair
  tied with the last of them (``P`` = available pairs). Supplied ``observed`` pairs count
  as observed.
* ``regret``: cumulative regret against the oracle that takes the ``batch`` best
  remaining true scores every round: ``sum of the (r+1) * batch best available scores
  (excluding supplied observations) - sum of the true scores the policy chose``.
* ``known_found``: how many of the ``known`` pairs have been observed (0 without a list).

Conventions for the input matrix: it must be square and symmetric (up to
``rtol = 1e-5``, NaN matching NaN); the diagonal is ignored; a NaN off the diagonal
marks an *unavailable* pair (for example one the screen could not score): it is never
chosen and belongs to no metric. Infinite entries are an error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax.discovery import acquisition as acq
from pairint_jax.discovery.policies import check_policy
from pairint_jax.discovery import posterior as post
from pairint_jax.parallel import check_mesh, mesh_size, pad_leading, replicated, shard_map, sharded, sharded_spec

__all__ = ["SimulationResult", "simulate", "simulate_many"]

MODEL_POLICIES = ("ids", "ts", "ucb", "us")
ALL_POLICIES = MODEL_POLICIES + ("random",)
TRACE_COUNTS = {"rounds": 0}


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


# ----------------------------------------------------------------------------- validation


def _as_matrix(reward_matrix) -> np.ndarray:
    if hasattr(reward_matrix, "matrix") and not isinstance(reward_matrix, np.ndarray):
        reward_matrix = reward_matrix.matrix  # a PairScores
    try:
        r = np.array(reward_matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"reward_matrix must be a numeric [n, n] array (or a PairScores), got {type(reward_matrix).__name__}: {err}") from err
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"reward_matrix must be square [n, n], got shape {r.shape}.")
    n = r.shape[0]
    if n < 3:
        raise ValueError(f"reward_matrix needs at least 3 perturbations, got n = {n}.")
    off = ~np.eye(n, dtype=bool)
    if np.any(np.isinf(r[off])):
        i, j = np.argwhere(np.isinf(r) & off)[0]
        raise ValueError(f"reward_matrix has an infinite entry at ({i}, {j}); use NaN to mark an unavailable pair.")
    nan_up, nan_lo = np.isnan(r), np.isnan(r.T)
    if np.any((nan_up != nan_lo) & off):
        i, j = np.argwhere((nan_up != nan_lo) & off)[0]
        raise ValueError(f"reward_matrix is not symmetric: entry ({i}, {j}) is NaN but ({j}, {i}) is not.")
    both = off & ~nan_up
    diff = np.abs(r - r.T)
    tol = 1e-5 * np.maximum(np.abs(r), np.abs(r.T)) + 1e-8 * (np.nanmax(np.abs(r[both])) if both.any() else 1.0)
    bad = both & (diff > tol)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"reward_matrix is not symmetric: R[{i}, {j}] = {r[i, j]:.6g} but R[{j}, {i}] = {r[j, i]:.6g} "
            f"({int(bad.sum()) // 2} such pairs). Symmetrise it, e.g. (R + R.T) / 2."
        )
    return r


def _pair_list(pairs, n: int, what: str) -> np.ndarray:
    arr = np.asarray(pairs)
    if arr.dtype == bool:
        if arr.shape != (n, n):
            raise ValueError(f"{what} as a bool matrix must be [n, n] = [{n}, {n}], got {arr.shape}.")
        arr = np.argwhere(np.triu(arr | arr.T, 1))
    arr = arr.reshape(-1, 2) if arr.size else np.zeros((0, 2), int)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise TypeError(f"{what} must hold integer perturbation indices (pairs [k, 2]), got dtype {arr.dtype}.")
        arr = arr.astype(np.int64)
    if np.any((arr < 0) | (arr >= n)):
        raise ValueError(f"{what}: a perturbation index is outside 0..{n - 1}.")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise ValueError(f"{what}: a pair (i, i) is on the diagonal; pairs need two different perturbations.")
    arr = np.sort(arr, axis=1)
    return np.unique(arr, axis=0)


@dataclasses.dataclass(frozen=True)
class _Problem:
    r: np.ndarray  # [n, n] float64, NaN diag / unavailable
    avail: np.ndarray  # [n, n] bool upper
    top: np.ndarray  # [n, n] bool upper
    known: np.ndarray  # [n, n] bool upper
    init_pairs: np.ndarray  # [k0, 2]
    oracle: np.ndarray  # [rounds]
    n_top: int
    n_known: int


def _problem(reward_matrix, *, rounds, batch, known, observed) -> _Problem:
    r = _as_matrix(reward_matrix)
    n = r.shape[0]
    for name, val in (("rounds", rounds), ("batch", batch)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}.")
    upper = np.triu(np.ones((n, n), bool), 1)
    avail = upper & np.isfinite(r)
    n_avail = int(avail.sum())
    if n_avail < 2:
        raise ValueError(f"reward_matrix has only {n_avail} available (finite, off-diagonal) pair(s).")
    init_pairs = _pair_list(observed if observed is not None else np.zeros((0, 2), int), n, "observed")
    if len(init_pairs) and not np.all(avail[init_pairs[:, 0], init_pairs[:, 1]]):
        bad = init_pairs[~avail[init_pairs[:, 0], init_pairs[:, 1]]][0]
        raise ValueError(f"observed pair ({bad[0]}, {bad[1]}) is unavailable (NaN in reward_matrix).")
    left = n_avail - len(init_pairs)
    if rounds * batch > left:
        raise ValueError(
            f"rounds * batch = {rounds * batch} exceeds the {left} available pairs not yet observed; "
            "lower rounds or batch."
        )
    vals = r[avail]
    n_top = int(math.ceil(0.05 * n_avail))
    thresh = np.sort(vals)[::-1][n_top - 1]
    top = avail & (np.nan_to_num(r, nan=-np.inf) >= thresh)
    known_m = np.zeros((n, n), bool)
    if known is not None:
        kp = _pair_list(known, n, "known")
        ok = avail[kp[:, 0], kp[:, 1]] if len(kp) else np.zeros(0, bool)
        if len(kp) and not ok.all():
            warnings.warn(f"{int((~ok).sum())} known pair(s) are unavailable (NaN) and can never be found; they are not counted.", stacklevel=3)
        kp = kp[ok]
        known_m[kp[:, 0], kp[:, 1]] = True
    rest = avail.copy()
    if len(init_pairs):
        rest[init_pairs[:, 0], init_pairs[:, 1]] = False
    best = np.sort(r[rest])[::-1]
    oracle = np.cumsum(best[: rounds * batch]).reshape(rounds, batch)[:, -1]
    return _Problem(r, avail, top, known_m, init_pairs, oracle, int(top.sum()), int(known_m.sum()))


# ----------------------------------------------------------------------------- the program


def _acquire(code, policies, samples, rem, key, *, batch, lam, beta, reestimate, chunk_size):
    """The batch of ``policies[code]``; a single policy is called directly, several through
    ``lax.switch`` (under ``vmap`` over chains every branch runs and one is selected)."""
    fns = {
        "ids": lambda: acq.ids(samples, rem, key, batch=batch, lam=lam, reestimate=reestimate, chunk_size=chunk_size),
        "ts": lambda: acq.thompson(samples, rem, key, batch=batch),
        "ucb": lambda: acq.ucb(samples, rem, key, batch=batch, beta=beta, chunk_size=chunk_size),
        "us": lambda: acq.uncertainty(samples, rem, key, batch=batch, chunk_size=chunk_size),
    }
    if len(policies) == 1:
        return fns[policies[0]]()
    return jax.lax.switch(code, [fns[p] for p in policies])


def _make_round(policies, model, batch, n_init, first_random, reestimate, chunk_size):
    """One round of one chain: ``(carry, r) -> (carry, outputs)``; ``r`` must not be batched."""
    random_only = policies == ("random",)

    def round_fn(consts, chain, carry, r):
        r_true, avail, top, known, oracle, lr, sigma_scale, lam, beta = consts
        key, code = chain
        taken, obs, state, cum, cum_inst = carry
        kf, ks, ka = jax.random.split(jax.random.fold_in(key, r), 3)
        rem = avail & ~taken

        def random_batch():
            return state, acq.uniform(None, rem, ka, batch=batch), jnp.float32(jnp.nan)

        def model_batch():
            new, info = post._fit(kf, state, obs, lr, sigma_scale, 1.0, model=model)
            samples = post.sample(ks, new, model=model)
            b = _acquire(code, policies, samples, rem, ka, batch=batch, lam=lam, beta=beta,
                         reestimate=reestimate, chunk_size=chunk_size)
            return new, b, info.loss

        if random_only:
            state, b, loss = random_batch()
        elif first_random:
            state, b, loss = jax.lax.cond(r == 0, random_batch, model_batch)
        else:
            state, b, loss = model_batch()

        i, j = b.pairs[:, 0], b.pairs[:, 1]
        y = jnp.where(b.valid, r_true[i, j], 0.0)
        best, _ = jax.lax.top_k(jnp.where(rem, r_true, -jnp.inf).reshape(-1), batch)
        inst = jnp.sum(jnp.where(jnp.isfinite(best), best, 0.0)) - jnp.sum(y)
        start = n_init + r * batch
        obs = post.Observations(
            jax.lax.dynamic_update_slice(obs.rows, i.astype(jnp.int32), (start,)),
            jax.lax.dynamic_update_slice(obs.cols, jnp.where(b.valid, j, 1).astype(jnp.int32), (start,)),
            jax.lax.dynamic_update_slice(obs.values, y.astype(jnp.float32), (start,)),
            jax.lax.dynamic_update_slice(obs.mask, b.valid, (start,)),
        )
        taken = taken.at[i, j].max(b.valid)
        cum = cum + jnp.sum(y)
        cum_inst = cum_inst + inst
        out = {
            "regret_remaining": cum_inst,
            "top": jnp.sum(taken & top),
            "regret": oracle[r] - cum,
            "known": jnp.sum(taken & known),
            "pairs": b.pairs,
            "rewards": y,
            "fallback": b.fallback,
            "loss": loss,
        }
        return (taken, obs, state, cum, cum_inst), out

    return round_fn


@functools.partial(
    jax.jit,
    static_argnames=("policies", "model", "batch", "n_init", "first_random", "reestimate", "chunk_size", "mesh"),
)
def _run_rounds(consts, chains, carry, round_ids, *, policies, model, batch, n_init, first_random, reestimate, chunk_size,
                mesh=None):
    TRACE_COUNTS["rounds"] += 1
    round_fn = _make_round(policies, model, batch, n_init, first_random, reestimate, chunk_size)

    def one_chain(chain, c):
        def body(cc, r):
            return round_fn(consts, chain, cc, r)

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


def _initial_carry(keys, prob: _Problem, model, capacity):
    n = prob.r.shape[0]
    k0 = len(prob.init_pairs)
    if k0:
        vals = prob.r[prob.init_pairs[:, 0], prob.init_pairs[:, 1]]
        obs = post.Observations.from_pairs(prob.init_pairs, vals, capacity=capacity)
    else:
        obs = post.Observations.empty(capacity)
    taken = np.zeros((n, n), bool)
    if k0:
        taken[prob.init_pairs[:, 0], prob.init_pairs[:, 1]] = True
    c = len(keys)
    states = jax.vmap(lambda k: post.init(k, model))(keys)
    tile = lambda x: jnp.broadcast_to(x, (c,) + jnp.shape(x))
    zeros = jnp.zeros((c,), jnp.float32)
    return (tile(jnp.asarray(taken)), jax.tree.map(tile, obs), states, zeros, zeros)


def _run_program(prob, policies, keys, codes, *, model, batch, rounds, lr, sigma_scale, lam, beta, reestimate, chunk_size, progress, desc,
                 mesh=None):
    n_init = len(prob.init_pairs)
    capacity = n_init + rounds * batch
    first_random = n_init == 0
    r32 = np.where(np.isfinite(prob.r), prob.r, 0.0).astype(np.float32)
    consts = (
        jnp.asarray(r32), jnp.asarray(prob.avail), jnp.asarray(prob.top), jnp.asarray(prob.known),
        jnp.asarray(prob.oracle, jnp.float32), jnp.float32(lr), jnp.float32(sigma_scale),
        jnp.float32(lam), jnp.float32(beta),
    )
    k_init, k_rounds = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
    carry = _initial_carry(k_init, prob, model, capacity)
    chains = (k_rounds, jnp.asarray(codes, jnp.int32))
    n_chains = len(codes)
    if mesh is not None:  # pad the chains to whole shards by repeating the last one; dropped below
        (chains, carry), _ = pad_leading((chains, carry), mesh_size(mesh))
        # placed as the program returns them, so a later call (progress bar) reuses the compiled program
        chains, carry = jax.device_put((chains, carry), sharded(mesh))
    static = dict(policies=policies, model=model, batch=batch, n_init=n_init,
                  first_random=first_random, reestimate=reestimate, chunk_size=chunk_size, mesh=mesh)
    t0 = time.perf_counter()
    if not progress:
        carry, out = _run_rounds(consts, chains, carry, jnp.arange(rounds, dtype=jnp.int32), **static)
        out = jax.device_get(out)
    else:
        parts = []
        bar = _progress(total=rounds, desc=desc, enabled=True, unit="round")
        for r in range(rounds):
            carry, o = _run_rounds(consts, chains, carry, jnp.arange(r, r + 1, dtype=jnp.int32), **static)
            parts.append(jax.device_get(o))
            bar.update(1)
        bar.close()
        out = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *parts)
    jax.block_until_ready(carry)
    out = jax.tree.map(lambda y: np.asarray(y)[:n_chains], out)
    return out, time.perf_counter() - t0


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
    rank: int = 5,
    steps: int = 5000,
    num_samples: int = 1000,
    lr: float = 0.01,
    sigma_scale: float = 1.0,
    link: str = "identity",
    offset: bool = True,
    standardize: bool = True,
    elbo: str | None = None,
    nonnegative: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
    policy_options: dict | None = None,
    mesh=None,
) -> dict[str, SimulationResult]:
    """Simulate several policies on the same matrix and seeds, model-based ones in one program.

    Same arguments as :func:`simulate`, with ``policies`` a sequence of names and
    ``policy_options`` a dict ``{policy: {option: value}}`` (``ids``: ``lam``,
    ``reestimate``, ``chunk_size``; ``ucb``: ``beta``).

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
    if isinstance(policies, str):
        policies = (policies,)
    policies = tuple(policies)
    if not policies or len(set(policies)) != len(policies):
        raise ValueError(f"policies must be a non-empty sequence of distinct names, got {policies!r}.")
    policy_options = dict(policy_options or {})
    unknown = sorted(set(policy_options) - set(policies))
    if unknown:
        raise ValueError(f"policy_options given for {unknown}, which are not among policies {policies}.")
    opts = {p: check_policy(p, policy_options.get(p, {})) for p in policies}
    mesh = check_mesh(mesh)
    _check_common(seeds, {"lr": lr, "sigma_scale": sigma_scale})
    prob = _problem(reward_matrix, rounds=rounds, batch=batch, known=known, observed=observed)
    n = prob.r.shape[0]
    model = post.LowRankModel(n=n, rank=rank, offset=offset, link=link, standardize=standardize,
                              steps=steps, num_samples=num_samples, elbo=elbo, nonnegative=nonnegative)
    keys = _seed_keys(key, seeds)
    lam = opts.get("ids", {}).get("lam", 2.0)
    beta = opts.get("ucb", {}).get("beta", 1.0)
    reestimate = bool(opts.get("ids", {}).get("reestimate", False))
    chunk = chunk_size
    for p in policies:
        if opts[p].get("chunk_size") is not None:
            chunk = opts[p]["chunk_size"]
    settings = dict(rounds=rounds, batch=batch, seeds=seeds, rank=rank, steps=steps, num_samples=num_samples,
                    lr=lr, sigma_scale=sigma_scale, link=model.link, offset=offset, standardize=standardize,
                    elbo=model.elbo, nonnegative=nonnegative, n=n, n_initial=len(prob.init_pairs), chunk_size=chunk,
                    devices=1 if mesh is None else mesh_size(mesh))

    groups = []
    model_based = tuple(p for p in policies if p != "random")
    if model_based:
        groups.append(model_based)
    if "random" in policies:
        groups.append(("random",))
    results = {}
    for group in groups:
        codes = np.repeat(np.arange(len(group)), seeds)
        gkeys = jnp.concatenate([keys] * len(group))
        out, wall = _run_program(
            prob, group, gkeys, codes, model=model, batch=batch, rounds=rounds, lr=lr, sigma_scale=sigma_scale,
            lam=lam, beta=beta, reestimate=reestimate, chunk_size=chunk, progress=progress, desc="+".join(group),
            mesh=mesh,
        )
        for g, name in enumerate(group):
            sl = slice(g * seeds, (g + 1) * seeds)
            results[name] = SimulationResult(
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
                settings={**settings, "policy": name, **{k: v for k, v in opts[name].items()}},
                wall_time=wall,
            )
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
    rank: int = 5,
    steps: int = 5000,
    num_samples: int = 1000,
    lr: float = 0.01,
    sigma_scale: float = 1.0,
    link: str = "identity",
    offset: bool = True,
    standardize: bool = True,
    elbo: str | None = None,
    nonnegative: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
    mesh=None,
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
      policy: ``"ids" | "ts" | "ucb" | "us" | "random"``.
      rounds: number of rounds (default 50).
      batch: pairs per round (default 10).
      seeds: independent campaigns (default 10).
      key: PRNG key (default ``jax.random.key(0)``); seed ``s`` uses ``fold_in(key, s)``.
      known: optional known interactions: pairs ``[k, 2]`` or a bool ``[n, n]`` matrix.
      observed: optional pairs ``[k0, 2]`` observed before round 1 (their true scores
        are revealed; the first round then uses the policy).
      rank: ``m`` of the low-rank model (default 5).
      steps: SVI steps per round (default 5000).
      num_samples: posterior samples ``K`` per round (default 1000).
      lr: Adam learning rate (default 0.01).
      sigma_scale: scale of the HalfNormal prior on the noise (standardised units).
      link, offset, standardize, elbo, nonnegative: see
        :class:`~pairint_jax.discovery.posterior.LowRankModel`.
      chunk_size: rows of ``R`` per block in the acquisition (None: automatic).
      progress: show a progress bar over rounds.
      mesh: optional :class:`jax.sharding.Mesh`: the seeds run split over its devices
        (see :func:`simulate_many`).
      **policy_options: ``lam=2.0`` and ``reestimate=False`` for IDS, ``beta=1.0`` for UCB.

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
        progress=progress, mesh=mesh,
        policy_options={policy: policy_options} if policy_options else None,
    )
    return out[policy]
