"""A campaign's next proposal: its stored state -> a :class:`~pairint_jax.discovery.rounds.RoundState`
-> one compiled round (:func:`~pairint_jax.discovery.rounds.step_jit`).

A proposal depends only on the stored state: the observations, the previous round's guide
(the warm start), the features, the seed and the round number (the key of round ``r`` is
``fold_in(key(seed), r)``), so resuming from disk gives the proposals of an uninterrupted run.

**Scale.** From :data:`TILED_MIN_N` perturbations on, an IDS campaign runs the round with the
policy ``"ids_tiled"`` (:mod:`~pairint_jax.discovery.tiled_round`: the same batch as the
in-memory IDS, nothing of size ``n^2`` built).

**The model.** Stored whole: ``dataclasses.asdict(LowRankModel)`` but ``n`` (the number of
perturbations), its fields flat in ``settings`` (``rank``, ``steps``, ``link``, ...; the
schema of :mod:`~pairint_jax.discovery.campaign_schema`). Fields missing from older states
take the :class:`~pairint_jax.discovery.posterior.LowRankModel` defaults.
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.discovery import posterior as post
from pairint_jax.discovery import rounds
from pairint_jax.discovery.campaign_store import pending
from pairint_jax.discovery.campaign_schema import LEGACY_IDS_LAMBDA
from pairint_jax.discovery.links import resolve_link
from pairint_jax.discovery.policies import check_policy, get_policy

__all__ = ["TILED_MIN_N", "bucket", "compute_proposal", "features_json", "load_features", "model_from_settings",
           "posterior_json"]

#: From this many perturbations on, an IDS campaign picks its batch with
#: :func:`~pairint_jax.discovery.tiled.ids_tiled` (in tiles of candidate pairs, without
#: ``[n, n]`` masks or ``K x pairs`` values), so that a genome-scale campaign (n = 20,000:
#: 2 x 10^8 candidate pairs) fits in memory.
TILED_MIN_N = 1000


def bucket(k: int) -> int:
    """Observation-buffer capacity: the next power of two >= k (at least 64), so a long
    campaign recompiles only when it crosses a bucket."""
    return max(64, 1 << max(0, (k - 1).bit_length()))


def model_from_settings(settings: dict, n: int, scores=()) -> post.LowRankModel:
    """The :class:`~pairint_jax.discovery.posterior.LowRankModel` of stored settings (missing fields: defaults,
    but a file written before ``factor_scale_min`` existed resumes unbounded, 0.0, and one written
    before ``feature_interactions`` existed resumes without them, as it was created).

    ``link = "auto"`` is resolved from ``scores``, the observed scores of the round
    (:func:`~pairint_jax.discovery.links.resolve_link`: ``"abs"`` while none is negative), and an
    ``elbo`` or ``factor_scale_min`` stored as null is then picked for that link
    (:data:`~pairint_jax.discovery.posterior.DEFAULT_FACTOR_SCALE_MIN`), so a resumed campaign fits
    the same model."""
    fields = {f.name for f in dataclasses.fields(post.LowRankModel)} - {"n"}
    stored = {k: v for k, v in settings.items() if k in fields}
    stored.setdefault("factor_scale_min", 0.0)
    stored.setdefault("feature_interactions", False)
    stored["link"] = resolve_link(stored.get("link", "identity"), scores)
    return post.LowRankModel(n=n, **stored)


def policy_options(policy: str, stored: dict) -> dict:
    """The options of a stored campaign's policy, merged over the defaults
    (:func:`~pairint_jax.discovery.policies.check_policy`).

    A new IDS campaign stores its ``lam``. An IDS file that stores none was written when the
    default was 2 (:data:`~pairint_jax.discovery.campaign_schema.LEGACY_IDS_LAMBDA`) and resumes
    with 2, so it proposes what it would have proposed uninterrupted."""
    opts = dict(stored)
    if policy == "ids":
        opts.setdefault("lam", LEGACY_IDS_LAMBDA)
    return check_policy(policy, opts)


def features_json(features) -> list | None:
    """Features ``[n, f]`` as JSON rows (NaN -> null), or None."""
    if features is None or np.shape(features)[1] == 0:
        return None
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(features, np.float64)]


def load_features(state: dict) -> np.ndarray | None:
    """The stored features ``[n, f]`` float32 (null -> NaN), or None."""
    rows = state.get("features")
    if rows is None:
        return None
    return np.array([[np.nan if v is None else v for v in row] for row in rows], np.float32)


def posterior_json(new) -> dict:
    """The guide's parameters and standardisation as JSON (shortest round-trip float32 values)."""
    if not all(np.all(np.isfinite(np.asarray(v))) for v in new.params.values()):
        raise ValueError("the posterior fit produced non-finite parameters; check the observed scores (scale, outliers).")
    return {
        "params": {k: np.asarray(v, np.float32).tolist() for k, v in new.params.items()},
        "shift": float(np.float32(new.shift)),
        "scale": float(np.float32(new.scale)),
    }


def _round_state(state: dict, model, policy: str, observed: np.ndarray, values, in_flight: np.ndarray):
    s = state["settings"]
    n = model.n
    buf = post.Observations.from_pairs(observed, values, capacity=bucket(len(observed)))
    if policy == "ids_tiled":
        remaining = False
    else:
        remaining = np.triu(np.ones((n, n), bool), 1)
        remaining[in_flight[:, 0], in_flight[:, 1]] = False
    rs = rounds.init(jax.random.fold_in(jax.random.key(int(s["seed"])), 0), model, buf.capacity, observations=buf,
                     remaining=remaining, exclude=in_flight, features=load_features(state))
    p = state["posterior"]
    if p is not None:  # warm start from the stored guide
        params = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in p["params"].items()}
        rs = rs._replace(posterior=rs.posterior._replace(params=params, shift=jnp.float32(p["shift"]),
                                                         scale=jnp.float32(p["scale"])))
    return rs, buf


def compute_proposal(state: dict, *, progress: bool):
    """The next batch of a stored campaign: ``(pairs of names, posterior JSON or None)``.

    The batch is capped at the pairs left. The posterior is returned when the round fitted it (policies that read it, once a score
    is observed); None leaves the stored one as it is.

    Raises:
      ValueError: every pair is observed or pending.
    """
    s = state["settings"]
    names = state["perturbations"]
    n = len(names)
    index = {p: i for i, p in enumerate(names)}
    obs = state["observations"]
    policy = get_policy(s["policy"]).name
    opts = policy_options(policy, s["policy_options"])
    if policy == "ids" and n >= TILED_MIN_N and not opts.get("reestimate", False):
        policy, opts = "ids_tiled", {"lam": opts["lam"]}
    sort = lambda pairs: np.sort(np.array(pairs, np.int64).reshape(-1, 2), axis=1)
    observed = sort([[index[o["a"]], index[o["b"]]] for o in obs])
    in_flight = sort([[index[a], index[b]] for a, b in pending(state)])
    left = n * (n - 1) // 2 - len(observed) - len(in_flight)
    if left <= 0:
        raise _nothing_left(state)
    scores = [o["score"] for o in obs]
    model = model_from_settings(s, n, scores)
    rs, buf = _round_state(state, model, policy, observed, scores, in_flight)
    rnd = int(state["rng"]["round"]) + 1
    fits = bool(obs) and get_policy(policy).needs_posterior
    if progress and fits:
        print(f"round {rnd}: fitting the posterior to {len(obs)} observations ({model.steps} SVI steps) ...", file=sys.stderr)
    new, info = rounds.step_jit(jax.random.fold_in(jax.random.key(int(s["seed"])), rnd), rs, buf, model=model,
                                policy=policy, batch=min(int(s["batch"]), left), options=opts, lr=s["lr"],
                                sigma_scale=s["sigma_scale"], progress=progress)
    if progress and fits:
        print(f"round {rnd}: final loss {float(info.loss):.4g}, {int(info.n_valid)} valid posterior samples", file=sys.stderr)
    pairs = [(names[int(i)], names[int(j)]) for (i, j), ok in zip(np.asarray(info.pairs), np.asarray(info.valid)) if ok]
    return pairs, (posterior_json(new.posterior) if fits else None)


def _nothing_left(state: dict) -> ValueError:
    """The error of :meth:`Campaign.propose` when every pair is observed or pending."""
    n = len(state["perturbations"])
    total, n_pending = n * (n - 1) // 2, len(pending(state))
    if n_pending:
        return ValueError(
            f"nothing left to propose: of the {total} pairs, {total - n_pending} are observed and {n_pending} pending "
            f"(proposed in round {state['rng']['round']}); record their scores first (Campaign.observe or `pairint observe`)."
        )
    return ValueError(f"nothing left to propose: all {total} pairs of this campaign are observed; the campaign is complete.")
