"""A lab discovery campaign on disk: propose a batch, run it, observe the scores, repeat.

The loop is ``screen -> score -> observe -> propose``::

    campaign = Campaign.create("my_campaign", ["A", "B", "C", ...], batch=10, seed=0)
    pairs = campaign.propose()                  # [("A", "C"), ...]; also saved to next_batch.csv
    campaign.observe(pairs, scores)             # scores measured in the lab
    campaign = Campaign.open("my_campaign")     # any later session, after a crash too

**State on disk.** ``<path>/campaign.json`` is the single source of truth, UTF-8 JSON,
no pickles::

    {"format": "pairint-campaign", "version": 1,
     "perturbations": ["A", "B", ...],            # pair (a, b) is stored with a before b here
     "settings": {"batch", "policy", "policy_options", "lr", "sigma_scale", "seed",
                  **dataclasses.asdict(LowRankModel) but n},   # rank, steps, link ("auto" allowed), ...
     "features": null | [[x, null, ...], ...],   # [n, f] per-perturbation features, null = NaN
     "rng": {"seed": 0, "round": 3},              # the key of round r is fold_in(key(seed), r)
     "observations": [{"a", "b", "score", "round"}, ...],
     "proposals": [{"round": 1, "pairs": [["A", "C"], ...], "n_observed": 0}, ...],
     "posterior": null | {"params": {"U_loc": [[...]], ...}, "shift": x, "scale": y}}

The file is checked against :mod:`~pairint_jax.discovery.campaign_schema` at every load and
before every save (:class:`CampaignStateError`, one line naming the bad field).
Floats are written with Python's shortest round-trip repr, so a reopened campaign holds
bit-identical scores and guide parameters. ``next_batch.csv`` and ``observations.csv`` are
convenience exports rewritten after every change (never read back).

**Crash safety.** Every change is an atomic read-modify-write of ``campaign.json`` under
an exclusive lock (:mod:`~pairint_jax.discovery.campaign_store`). A process killed at any
moment leaves either the old or the new state, never a mix; :meth:`Campaign.observe`
returns only after the new state is durable. States written before the model was stored
whole (flat ``rank``, ``steps``, ... in ``settings``) and without ``features`` still open.

**Determinism.** A proposal is one discovery round
(:mod:`~pairint_jax.discovery.campaign_round`, :func:`~pairint_jax.discovery.rounds.step`)
that depends only on the stored state (observations, the previous round's guide parameters
for the warm start, the features, the seed and the round number), so resuming from disk
gives exactly the proposals of an uninterrupted run. Calling :meth:`propose`
again before any new observation returns the same pending batch.

**Observations.** Re-observing a pair with the same score (equal up to ``rel_tol=1e-9``)
is a no-op; a different score is an error, as are unknown perturbations, a pair of a
perturbation with itself, and non-finite scores. A call is all-or-nothing: nothing is
recorded if any entry is bad. Pairs need not come from a proposal.

**Scale.** From ``campaign_round.TILED_MIN_N`` (1,000) perturbations on, an IDS campaign
picks its batch with :func:`~pairint_jax.discovery.tiled.ids_tiled` (the same batch as the
in-memory IDS), and its first, random batch by rejection sampling, so nothing of size
``n^2`` is ever built.

This module imports JAX lazily (only :meth:`propose` needs it).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from pairint_jax.discovery import campaign_store as store
from pairint_jax.discovery.campaign_schema import DEFAULT_RANK, FORMAT, VERSION, CampaignStateError
from pairint_jax.discovery.campaign_store import STATE_FILE

__all__ = ["Campaign", "CampaignStateError", "ObserveResult", "FORMAT", "VERSION"]

REL_TOL = 1e-9


class ObserveResult(NamedTuple):
    """What :meth:`Campaign.observe` did.

    Attributes:
      added: new observations recorded.
      unchanged: observations already recorded with the same score (no-ops).
      round: the round the new observations were recorded in.
    """

    added: int
    unchanged: int
    round: int


# ----------------------------------------------------------------------------- campaign


@dataclasses.dataclass(eq=False)
class Campaign:
    """A discovery campaign stored in the folder ``path`` (see the module docstring).

    Create with :meth:`create`, reopen with :meth:`open`. The object re-reads the state
    from disk under the lock at every :meth:`propose` and :meth:`observe`, so several
    objects (or processes) on the same folder stay consistent.

    Attributes:
      path: the campaign folder.
    """

    path: pathlib.Path
    _state: dict = dataclasses.field(repr=False)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path,
        perturbations: Sequence[str],
        *,
        batch: int | None = None,
        policy: str = "ids",
        seed: int = 0,
        rank: int = DEFAULT_RANK,
        steps: int = 5000,
        num_samples: int = 1000,
        lr: float = 0.01,
        sigma_scale: float = 1.0,
        link: str = "auto",
        offset: bool = True,
        standardize: bool = True,
        nonnegative: bool = False,
        policy_options: dict | None = None,
        features=None,
        feature_interactions: bool = False,
        model_options: dict | None = None,
    ) -> Campaign:
        """Start a campaign over all pairs of ``perturbations`` in a new folder ``path``.

        Args:
          path: folder to create (it may exist but must not hold a campaign).
          perturbations: the ``n >= 2`` distinct names (gene, drug, guide).
          batch: pairs per proposal, at most the ``n (n - 1) / 2`` pairs; ``None``: ``min(10, n (n - 1) / 2)``.
          policy: a name of :mod:`~pairint_jax.discovery.policies`: ``"ids" | "ts" | "ucb" |
            "us" | "greedy" | "hub" | "random"``.
          seed: integer seed in ``[0, 2**32)``; round ``r`` uses ``fold_in(key(seed), r)``.
          rank, steps, num_samples, lr, sigma_scale, offset, standardize, nonnegative: the posterior
            (see :class:`~pairint_jax.discovery.posterior.LowRankModel`).
          link: ``"auto"`` (default), ``"identity"``, ``"abs"`` or ``"softplus"``. ``"auto"`` is
            stored as such and resolved every round from the scores observed so far: ``"abs"``
            (the score is a magnitude) while none is negative, ``"identity"`` from the first
            negative score on (:func:`~pairint_jax.discovery.links.resolve_link`).
          policy_options: e.g. ``{"lam": 4.0}`` for IDS, ``{"beta": 1.0}`` for UCB. An IDS
            campaign stores its ``lam`` (default
            :data:`~pairint_jax.discovery.acquisition.IDS_LAMBDA`).
          features: optional ``[n, f]`` per-perturbation features (rows in the order of
            ``perturbations``; NaN = missing), stored in the state: the prior mean of
            ``"hub"``, and of the posterior where it takes features.
          feature_interactions: add the posterior's feature-interaction term (default False;
            :class:`~pairint_jax.discovery.posterior.LowRankModel`); stored in the settings.
          model_options: further ``LowRankModel`` settings (the keys of
            :data:`~pairint_jax.discovery.model_options.MODEL_OPTIONS`), e.g. ``pj.HUB_MODEL``
            (which sets ``link`` and ``feature_interactions`` too); stored in the settings.

        Returns:
          The new :class:`Campaign` (already saved).

        Raises:
          FileExistsError: ``path`` already holds a campaign.
          ValueError/TypeError: bad perturbation names or settings.

        Example:
          >>> c = Campaign.create(tmp / "c", ["A", "B", "C", "D"], batch=2, steps=200)  # doctest: +SKIP
        """
        from pairint_jax import _validate as V
        from pairint_jax.discovery.campaign_round import features_json
        from pairint_jax.discovery.links import resolve_link
        from pairint_jax.discovery.model_options import split_model_options
        from pairint_jax.discovery.policies import check_policy, get_policy
        from pairint_jax.discovery.posterior import LowRankModel
        from pairint_jax.discovery.rounds import as_features

        path = pathlib.Path(path)
        if (path / STATE_FILE).exists():
            raise FileExistsError(f"{path} already holds a campaign; reopen it with Campaign.open({str(path)!r}).")
        names = _check_names(perturbations)
        n_pairs = len(names) * (len(names) - 1) // 2
        batch = min(10, n_pairs) if batch is None else V.positive_int("batch", batch)
        if batch > n_pairs:
            raise ValueError(f"batch must be at most the number of pairs, {n_pairs} for {len(names)} perturbations; got {batch}.")
        seed = V.seed("seed", seed)
        opts = dict(policy_options or {})
        check_policy(policy, opts)
        if not get_policy(policy).jittable:
            raise ValueError(f"policy {policy!r} is not a campaign policy: an 'ids' campaign of many perturbations uses it by itself.")
        policy = get_policy(policy).name  # "uniform" is stored as "random"
        link, feature_interactions, extra = split_model_options(link, feature_interactions, model_options)
        feats = as_features(features, len(names), feature_interactions=feature_interactions)
        # stored, so the file keeps its lambda if the default changes (campaign_round.policy_options)
        if policy == "ids":
            opts.setdefault("lam", get_policy("ids").options["lam"])
        model = LowRankModel(n=len(names), rank=rank, steps=steps, num_samples=num_samples,
                             link=resolve_link(link, ()), offset=offset, standardize=standardize,
                             nonnegative=nonnegative, feature_interactions=feature_interactions, **extra)
        for name, val in (("lr", lr), ("sigma_scale", sigma_scale)):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a finite positive number, got {val!r}.")
        fields = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dataclasses.asdict(model).items() if k != "n"}
        if link == "auto":  # resolved every round (campaign_round.model_from_settings), the ELBO and floor with it
            fields.update(link="auto", elbo=None)
            if "factor_scale_min" not in extra:
                fields.update(factor_scale_min=None)
        settings = dict(batch=int(batch), policy=policy, policy_options=opts, lr=float(lr),
                        sigma_scale=float(sigma_scale), seed=int(seed), **fields)
        state = {
            "format": FORMAT,
            "version": VERSION,
            "perturbations": names,
            "settings": settings,
            "rng": {"seed": int(seed), "round": 0},
            "observations": [],
            "proposals": [],
            "posterior": None,
            "features": features_json(feats),
        }
        store.dump(state)  # fail early on anything JSON cannot hold (e.g. a numpy value in policy_options)
        path.mkdir(parents=True, exist_ok=True)
        with store.locked(path):
            if (path / STATE_FILE).exists():
                raise FileExistsError(f"{path} already holds a campaign; reopen it with Campaign.open({str(path)!r}).")
            store.atomic_write(path / STATE_FILE, store.dump(state))
            store.write_exports(path, state)
        return cls(path, state)

    @classmethod
    def open(cls, path) -> Campaign:
        """Reopen the campaign stored in the folder ``path``.

        Raises:
          FileNotFoundError: no ``campaign.json`` there.
          CampaignStateError: (a ``ValueError``) the file is not valid JSON, not a campaign of this
            format version, or breaks the schema (one line naming the field; see
            :mod:`~pairint_jax.discovery.campaign_schema`).
        """
        path = pathlib.Path(path)
        return cls(path, store.load(path))

    # -- views -----------------------------------------------------------------------

    @property
    def perturbations(self) -> tuple[str, ...]:
        return tuple(self._state["perturbations"])

    @property
    def settings(self) -> dict:
        return dict(self._state["settings"])

    @property
    def round(self) -> int:
        """Number of batches proposed so far."""
        return int(self._state["rng"]["round"])

    @property
    def pending(self) -> list[tuple[str, str]]:
        """Pairs of the latest proposal not observed yet."""
        return store.pending(self._state)

    @property
    def observations(self) -> list[dict]:
        """Every observation: dicts with ``a``, ``b``, ``score``, ``round``."""
        return [dict(o) for o in self._state["observations"]]

    @property
    def features(self) -> np.ndarray | None:
        """The stored per-perturbation features ``[n, f]`` float64 (NaN = missing), or None."""
        rows = self._state.get("features")
        return None if rows is None else np.array([[np.nan if v is None else v for v in r] for r in rows], np.float64)

    def to_frame(self):
        """Observations as a ``pandas.DataFrame`` (columns a, b, score, round)."""
        import pandas as pd

        return pd.DataFrame(self.observations, columns=["a", "b", "score", "round"])

    def __repr__(self) -> str:
        n = len(self.perturbations)
        s = self._state["settings"]
        return (
            f"Campaign({str(self.path)!r}: {n} perturbations, {n * (n - 1) // 2} pairs, "
            f"{len(self._state['observations'])} observed, round {self.round}, {len(self.pending)} pending; "
            f"policy={s['policy']!r}, batch={s['batch']})"
        )

    # -- the loop --------------------------------------------------------------------

    def observe(self, pairs: Iterable, scores: Iterable[float]) -> ObserveResult:
        """Record measured scores of pairs (all-or-nothing, durable when it returns).

        Args:
          pairs: ``(a, b)`` pairs of perturbation names (or integer indices), any order.
          scores: one finite float per pair.

        Returns:
          :class:`ObserveResult` (``added``, ``unchanged``, ``round``).

        Raises:
          ValueError: unknown perturbation, ``a == b``, a non-finite score, a length
            mismatch, or a score that conflicts with one already recorded.
        """
        pairs = list(pairs)
        scores = list(scores)
        if len(pairs) != len(scores):
            raise ValueError(f"observe: {len(pairs)} pairs but {len(scores)} scores; give one score per pair.")
        with store.locked(self.path):
            state = store.load(self.path)
            names = state["perturbations"]
            index = {p: i for i, p in enumerate(names)}
            seen = store.observed_keys(state)
            batch_new: dict = {}
            unchanged = 0
            for k, (pair, score) in enumerate(zip(pairs, scores)):
                a, b = _resolve_pair(pair, k, names, index)
                val = _check_score(score, a, b, k)
                key = (a, b) if index[a] < index[b] else (b, a)
                old = seen.get(key)
                if old is not None:
                    if not _same(old["score"], val):
                        raise ValueError(
                            f"conflicting score for pair ({key[0]}, {key[1]}): {old['score']!r} was recorded in round "
                            f"{old['round']}, now {val!r}. Observations are immutable: if the recorded value was wrong, start a "
                            "new campaign and observe the corrected scores there."
                        )
                    unchanged += 1
                    continue
                if key in batch_new:
                    if not _same(batch_new[key], val):
                        raise ValueError(f"pair ({key[0]}, {key[1]}) appears twice in this call with different scores {batch_new[key]!r} and {val!r}.")
                    unchanged += 1
                    continue
                batch_new[key] = val
            rnd = int(state["rng"]["round"])
            if batch_new:
                state["observations"].extend({"a": a, "b": b, "score": v, "round": rnd} for (a, b), v in batch_new.items())
                store.atomic_write(self.path / STATE_FILE, store.dump(state))
                store.write_exports(self.path, state)
            self._state = state
        return ObserveResult(len(batch_new), unchanged, rnd)

    def propose(self, *, progress: bool = False) -> list[tuple[str, str]]:
        """The next batch of pairs to run (saved to ``campaign.json`` and ``next_batch.csv``).

        The first batch is random unless observations were recorded before it. Later
        batches fit the posterior to every observation (warm-started from the previous
        round's guide) and apply the campaign's policy to the pairs neither observed nor
        pending. With no new observation since the last proposal, the same batch is
        returned again.

        Args:
          progress: print what is being done (fit, sampling) to stderr.

        Returns:
          ``batch`` pairs ``(a, b)`` of names (fewer when fewer pairs remain).

        Raises:
          ValueError: every pair has been observed or is pending.
        """
        with store.locked(self.path):
            state = store.load(self.path)
            props = state["proposals"]
            n_obs = len(state["observations"])
            if props and props[-1]["n_observed"] == n_obs and store.pending(state):
                self._state = state
                return store.pending(state)
            pairs, posterior = _compute_proposal(state, progress=progress)
            rnd = int(state["rng"]["round"]) + 1
            state["rng"]["round"] = rnd
            state["proposals"].append({"round": rnd, "pairs": [list(p) for p in pairs], "n_observed": n_obs})
            if posterior is not None:
                state["posterior"] = posterior
            store.atomic_write(self.path / STATE_FILE, store.dump(state))
            store.write_exports(self.path, state)
            self._state = state
        return [tuple(p) for p in pairs]


# ----------------------------------------------------------------------------- validation


def _check_names(perturbations) -> list[str]:
    if isinstance(perturbations, str):
        raise TypeError("perturbations must be a sequence of names, not one string; e.g. ['A', 'B', 'C'].")
    names = list(perturbations)
    bad = [p for p in names if not isinstance(p, str) or not p.strip()]
    if bad:
        raise TypeError(f"perturbation names must be non-empty strings; got {bad[:3]!r}.")
    names = [p.strip() for p in names]
    dup = sorted({p for p in names if names.count(p) > 1})
    if dup:
        raise ValueError(f"perturbation names must be distinct; repeated: {dup[:5]}.")
    if len(names) < 2:
        raise ValueError(f"a campaign needs at least 2 perturbations (one pair), got {len(names)}.")
    return names


def _resolve_pair(pair, k: int, names: list[str], index: dict) -> tuple[str, str]:
    try:
        a, b = pair
    except (TypeError, ValueError):
        raise ValueError(f"observation {k}: a pair must be (a, b), got {pair!r}.") from None
    out = []
    for x in (a, b):
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            if not 0 <= x < len(names):
                raise ValueError(f"observation {k}: perturbation index {x} is outside 0..{len(names) - 1}.")
            x = names[x]
        elif isinstance(x, str):
            x = x.strip()
            if x not in index:
                shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise ValueError(
                    f"observation {k}: unknown perturbation {x!r} in pair ({a}, {b}); this campaign has "
                    f"{len(names)} perturbations ({shown})."
                )
        else:
            raise ValueError(f"observation {k}: a perturbation must be a name or an index, got {x!r}.")
        out.append(x)
    if out[0] == out[1]:
        raise ValueError(f"observation {k}: pair ({out[0]}, {out[1]}) pairs a perturbation with itself; a pair needs two different perturbations.")
    return out[0], out[1]


def _check_score(score, a: str, b: str, k: int) -> float:
    try:
        val = float(score)
    except (TypeError, ValueError):
        raise ValueError(f"observation {k}: score {score!r} for pair ({a}, {b}) is not a number.") from None
    if not math.isfinite(val):
        raise ValueError(
            f"observation {k}: score for pair ({a}, {b}) is {val}; only finite scores can be observed "
            "(leave out pairs that could not be scored)."
        )
    return val


def _same(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0)

# ----------------------------------------------------------------------------- compute


def _compute_proposal(state: dict, *, progress: bool):
    from pairint_jax.discovery.campaign_round import compute_proposal  # imports JAX: only when proposing

    return compute_proposal(state, progress=progress)
