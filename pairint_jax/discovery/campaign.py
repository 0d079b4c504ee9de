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
     "settings": {"batch", "policy", "policy_options", "rank", "steps", "num_samples", "lr",
                  "sigma_scale", "link", "offset", "standardize", "nonnegative", "seed"},
     "rng": {"seed": 0, "round": 3},              # the key of round r is fold_in(key(seed), r)
     "observations": [{"a", "b", "score", "round"}, ...],
     "proposals": [{"round": 1, "pairs": [["A", "C"], ...], "n_observed": 0}, ...],
     "posterior": null | {"params": {"U_loc": [[...]], ...}, "shift": x, "scale": y}}

The file is checked against :mod:`~pairint_jax.discovery.campaign_schema` at every load and
before every save (:class:`CampaignStateError`, one line naming the bad field).
Floats are written with Python's shortest round-trip repr, so a reopened campaign holds
bit-identical scores and guide parameters. ``next_batch.csv`` and ``observations.csv`` are
convenience exports rewritten after every change (never read back).

**Crash safety.** Every change is a read-modify-write of ``campaign.json`` under an
exclusive ``flock`` on ``<path>/.lock``: the new state goes to a temporary file in the same
folder, which is flushed and ``fsync``-ed, atomically renamed over the old file, and the
folder is ``fsync``-ed. A process killed at any moment leaves either the old or the new
state, never a mix; :meth:`Campaign.observe` returns only after the new state is durable.

**Determinism.** A proposal depends only on the stored state (observations, the previous
round's guide parameters for the warm start, the seed and the round number), so resuming
from disk gives exactly the proposals of an uninterrupted run. Calling :meth:`propose`
again before any new observation returns the same pending batch.

**Observations.** Re-observing a pair with the same score (equal up to ``rel_tol=1e-9``)
is a no-op; a different score is an error, as are unknown perturbations, a pair of a
perturbation with itself, and non-finite scores. A call is all-or-nothing: nothing is
recorded if any entry is bad. Pairs need not come from a proposal.

**Scale.** From :data:`TILED_MIN_N` perturbations on, an IDS campaign picks its batch with
:func:`~pairint_jax.discovery.tiled.ids_tiled` (the same batch as the in-memory IDS), and its
first, random batch by rejection sampling, so nothing of size ``n^2`` is ever built.

This module imports JAX lazily (only :meth:`propose` needs it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from pairint_jax._files import follow_umask
from pairint_jax.discovery.campaign_schema import FORMAT, VERSION, CampaignStateError, read_state, validate_state

__all__ = ["Campaign", "CampaignStateError", "ObserveResult", "FORMAT", "VERSION"]

STATE_FILE = "campaign.json"
LOCK_FILE = ".lock"
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


# ----------------------------------------------------------------------------- disk


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        follow_umask(tmp)  # mkstemp makes 0600; the campaign's files follow the umask, like open()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _locked(folder: pathlib.Path):
    """Exclusive advisory lock on ``folder/.lock`` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies (group-shared campaigns)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # temp files left by a writer that was killed: safe to remove while we hold the lock
        for name in (STATE_FILE, "observations.csv", "next_batch.csv"):
            for stale in glob.glob(str(folder / f".{name}.*.tmp")):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        yield
    finally:
        os.close(fd)


def _dump(state: dict) -> bytes:
    validate_state(state, where=STATE_FILE)  # never write a state that would not load
    return (json.dumps(state, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


def _load(path: pathlib.Path) -> dict:
    file = path / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"no campaign at {path}: {STATE_FILE} is missing. Create one with Campaign.create(path, perturbations) "
            "or `pairint campaign-init`."
        )
    return read_state(file)  # decoded and checked against the schema (CampaignStateError naming the field)


def _write_exports(path: pathlib.Path, state: dict) -> None:
    rows = ["a,b,score,round"] + [
        f"{_csv(o['a'])},{_csv(o['b'])},{o['score']!r},{o['round']}" for o in state["observations"]
    ]
    _atomic_write(path / "observations.csv", ("\n".join(rows) + "\n").encode("utf-8"))
    pending = _pending(state)
    rnd = state["proposals"][-1]["round"] if state["proposals"] else 0
    rows = ["round,a,b"] + [f"{rnd},{_csv(a)},{_csv(b)}" for a, b in pending]
    _atomic_write(path / "next_batch.csv", ("\n".join(rows) + "\n").encode("utf-8"))


def _csv(name: str) -> str:
    if any(c in name for c in ',"\n\r'):
        return '"' + name.replace('"', '""') + '"'
    return name


def _observed_keys(state: dict) -> dict:
    return {(o["a"], o["b"]): o for o in state["observations"]}


def _pending(state: dict) -> list[tuple[str, str]]:
    """Pairs of the latest proposal that are not observed yet (in flight)."""
    if not state["proposals"]:
        return []
    seen = _observed_keys(state)
    return [tuple(p) for p in state["proposals"][-1]["pairs"] if tuple(p) not in seen]


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
        rank: int = 5,
        steps: int = 5000,
        num_samples: int = 1000,
        lr: float = 0.01,
        sigma_scale: float = 1.0,
        link: str = "identity",
        offset: bool = True,
        standardize: bool = True,
        nonnegative: bool = False,
        policy_options: dict | None = None,
    ) -> Campaign:
        """Start a campaign over all pairs of ``perturbations`` in a new folder ``path``.

        Args:
          path: folder to create (it may exist but must not hold a campaign).
          perturbations: the ``n >= 2`` distinct names (gene, drug, guide).
          batch: pairs per proposal, at most the ``n (n - 1) / 2`` pairs; ``None``: ``min(10, n (n - 1) / 2)``.
          policy: ``"ids" | "ts" | "ucb" | "us" | "random"``.
          seed: integer seed in ``[0, 2**32)``; round ``r`` uses ``fold_in(key(seed), r)``.
          rank, steps, num_samples, lr, sigma_scale, link, offset, standardize, nonnegative: the posterior
            (see :class:`~pairint_jax.discovery.posterior.LowRankModel`).
          policy_options: e.g. ``{"lam": 2.0}`` for IDS, ``{"beta": 1.0}`` for UCB.

        Returns:
          The new :class:`Campaign` (already saved).

        Raises:
          FileExistsError: ``path`` already holds a campaign.
          ValueError/TypeError: bad perturbation names or settings.

        Example:
          >>> c = Campaign.create(tmp / "c", ["A", "B", "C", "D"], batch=2, steps=200)  # doctest: +SKIP
        """
        from pairint_jax import _validate as V
        from pairint_jax.discovery.acquisition import check_policy
        from pairint_jax.discovery.posterior import LowRankModel

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
        LowRankModel(n=len(names), rank=rank, steps=steps, num_samples=num_samples, link=link, offset=offset,
                     standardize=standardize, nonnegative=nonnegative)
        for name, val in (("lr", lr), ("sigma_scale", sigma_scale)):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a finite positive number, got {val!r}.")
        settings = dict(batch=int(batch), policy=policy, policy_options=opts, rank=int(rank), steps=int(steps),
                        num_samples=int(num_samples), lr=float(lr), sigma_scale=float(sigma_scale), link=link,
                        offset=bool(offset), standardize=bool(standardize), nonnegative=bool(nonnegative),
                        seed=int(seed))
        state = {
            "format": FORMAT,
            "version": VERSION,
            "perturbations": names,
            "settings": settings,
            "rng": {"seed": int(seed), "round": 0},
            "observations": [],
            "proposals": [],
            "posterior": None,
        }
        _dump(state)  # fail early on anything JSON cannot hold (e.g. a numpy value in policy_options)
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if (path / STATE_FILE).exists():
                raise FileExistsError(f"{path} already holds a campaign; reopen it with Campaign.open({str(path)!r}).")
            _atomic_write(path / STATE_FILE, _dump(state))
            _write_exports(path, state)
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
        return cls(path, _load(path))

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
        return _pending(self._state)

    @property
    def observations(self) -> list[dict]:
        """Every observation: dicts with ``a``, ``b``, ``score``, ``round``."""
        return [dict(o) for o in self._state["observations"]]

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
        with _locked(self.path):
            state = _load(self.path)
            names = state["perturbations"]
            index = {p: i for i, p in enumerate(names)}
            seen = _observed_keys(state)
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
                _atomic_write(self.path / STATE_FILE, _dump(state))
                _write_exports(self.path, state)
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
        with _locked(self.path):
            state = _load(self.path)
            props = state["proposals"]
            n_obs = len(state["observations"])
            if props and props[-1]["n_observed"] == n_obs and _pending(state):
                self._state = state
                return _pending(state)
            pairs, posterior = _compute_proposal(state, progress=progress)
            rnd = int(state["rng"]["round"]) + 1
            state["rng"]["round"] = rnd
            state["proposals"].append({"round": rnd, "pairs": [list(p) for p in pairs], "n_observed": n_obs})
            if posterior is not None:
                state["posterior"] = posterior
            _atomic_write(self.path / STATE_FILE, _dump(state))
            _write_exports(self.path, state)
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


def _bucket(k: int) -> int:
    """Observation-buffer capacity: the next power of two >= k (at least 64), so a long
    campaign recompiles only when it crosses a bucket."""
    return max(64, 1 << max(0, (k - 1).bit_length()))


def _compute_proposal(state: dict, *, progress: bool):
    import sys

    import jax
    import jax.numpy as jnp

    from pairint_jax.discovery import acquisition as acq
    from pairint_jax.discovery import posterior as post

    s = state["settings"]
    names = state["perturbations"]
    n = len(names)
    index = {p: i for i, p in enumerate(names)}
    obs = state["observations"]
    opts = acq.check_policy(s["policy"], dict(s["policy_options"]))
    if s["policy"] == "ids" and n >= TILED_MIN_N and not opts.get("reestimate", False):
        return _compute_proposal_tiled(state, opts, progress=progress)
    remaining = np.triu(np.ones((n, n), bool), 1)
    for o in obs:
        remaining[index[o["a"]], index[o["b"]]] = False
    for a, b in _pending(state):
        remaining[index[a], index[b]] = False
    if not remaining.any():
        raise _nothing_left(state)
    rnd = int(state["rng"]["round"]) + 1
    key = jax.random.fold_in(jax.random.key(int(s["seed"])), rnd)
    kf, ka = jax.random.split(key)
    batch = min(int(s["batch"]), int(remaining.sum()))  # fewer pairs when fewer remain
    if not obs:
        b = acq.random(None, jnp.asarray(remaining), ka, batch=batch)
        return _batch_names(b, names), None
    model = post.LowRankModel(n=n, rank=s["rank"], offset=s["offset"], link=s["link"], standardize=s["standardize"],
                              steps=s["steps"], num_samples=s["num_samples"], nonnegative=s.get("nonnegative", False))
    pairs = np.array([[index[o["a"]], index[o["b"]]] for o in obs])
    values = np.array([o["score"] for o in obs], np.float64)
    buf = post.Observations.from_pairs(pairs, values, capacity=_bucket(len(obs)))
    start = _start_state(state, model)
    if progress:
        print(f"round {rnd}: fitting the posterior to {len(obs)} observations ({s['steps']} SVI steps) ...", file=sys.stderr)
    new, b, info = _propose_program(
        key, start, buf, jnp.asarray(remaining), jnp.float32(s["lr"]), jnp.float32(s["sigma_scale"]),
        jnp.float32(opts.get("lam", 2.0)), jnp.float32(opts.get("beta", 1.0)),
        model=model, policy=s["policy"], batch=batch, reestimate=bool(opts.get("reestimate", False)),
        chunk_size=opts.get("chunk_size"),
    )
    if progress:
        print(f"round {rnd}: final loss {float(info.loss):.4g}, {int(b.n_valid)} valid posterior samples", file=sys.stderr)
    return _batch_names(b, names), _posterior_json(new)


def _posterior_json(new) -> dict:
    if not all(np.all(np.isfinite(np.asarray(v))) for v in new.params.values()):
        raise ValueError("the posterior fit produced non-finite parameters; check the observed scores (scale, outliers).")
    return {
        "params": {k: np.asarray(v, np.float32).tolist() for k, v in new.params.items()},
        "shift": float(np.float32(new.shift)),
        "scale": float(np.float32(new.scale)),
    }


def _start_state(state: dict, model):
    import jax
    import jax.numpy as jnp

    from pairint_jax.discovery import posterior as post

    if state["posterior"] is None:
        return post.init(jax.random.fold_in(jax.random.key(int(state["settings"]["seed"])), 0), model)
    p = state["posterior"]
    return post.PosteriorState(
        {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in p["params"].items()},
        jnp.float32(p["shift"]),
        jnp.float32(p["scale"]),
    )


#: From this many perturbations on, an IDS campaign picks its batch with
#: :func:`~pairint_jax.discovery.tiled.ids_tiled` (the same batch as the in-memory IDS, in
#: tiles of candidate pairs, without ``[n, n]`` masks or ``K x pairs`` values), so that a
#: genome-scale campaign (n = 20,000: 2 x 10^8 candidate pairs) fits in memory.
TILED_MIN_N = 1000


def _compute_proposal_tiled(state: dict, opts: dict, *, progress: bool):
    """:func:`_compute_proposal` for large IDS campaigns: nothing of size ``n^2`` is built."""
    import sys

    import jax

    from pairint_jax.discovery import posterior as post
    from pairint_jax.discovery.tiled import ids_tiled

    s = state["settings"]
    names = state["perturbations"]
    n = len(names)
    index = {p: i for i, p in enumerate(names)}
    obs = state["observations"]
    taken = [(index[o["a"]], index[o["b"]]) for o in obs] + [(index[a], index[b]) for a, b in _pending(state)]
    taken = np.array(sorted({(min(i, j), max(i, j)) for i, j in taken}), np.int64).reshape(-1, 2)
    if len(taken) >= n * (n - 1) // 2:
        raise _nothing_left(state)
    rnd = int(state["rng"]["round"]) + 1
    key = jax.random.fold_in(jax.random.key(int(s["seed"])), rnd)
    batch = min(int(s["batch"]), n * (n - 1) // 2 - len(taken))  # fewer pairs when fewer remain
    if not obs:
        return _random_pairs(jax.random.split(key)[1], n, taken, batch, names), None
    model = post.LowRankModel(n=n, rank=s["rank"], offset=s["offset"], link=s["link"], standardize=s["standardize"],
                              steps=s["steps"], num_samples=s["num_samples"], nonnegative=s.get("nonnegative", False))
    pairs = np.array([[index[o["a"]], index[o["b"]]] for o in obs])
    values = np.array([o["score"] for o in obs], np.float64)
    buf = post.Observations.from_pairs(pairs, values, capacity=_bucket(len(obs)))
    kf, ks, ka = jax.random.split(key, 3)
    if progress:
        print(f"round {rnd}: fitting the posterior to {len(obs)} observations ({s['steps']} SVI steps) ...", file=sys.stderr)
    new, info = post.fit_jit(kf, _start_state(state, model), buf, model=model, lr=s["lr"], sigma_scale=s["sigma_scale"])
    samples = post.sample(ks, new, model=model)
    b = ids_tiled(samples, ka, batch=batch, exclude=taken, lam=float(opts.get("lam", 2.0)), progress=progress)
    if progress:
        print(f"round {rnd}: final loss {float(info.loss):.4g}, {int(b.n_valid)} valid posterior samples", file=sys.stderr)
    return _batch_names(b, names), _posterior_json(new)


def _nothing_left(state: dict) -> ValueError:
    """The error of :meth:`Campaign.propose` when every pair is observed or pending."""
    n = len(state["perturbations"])
    total, pending = n * (n - 1) // 2, len(_pending(state))
    if pending:
        return ValueError(
            f"nothing left to propose: of the {total} pairs, {total - pending} are observed and {pending} pending "
            f"(proposed in round {state['rng']['round']}); record their scores first (Campaign.observe or `pairint observe`)."
        )
    return ValueError(f"nothing left to propose: all {total} pairs of this campaign are observed; the campaign is complete.")


def _random_pairs(key, n: int, taken: np.ndarray, batch: int, names: list[str]) -> list[tuple[str, str]]:
    """``batch`` distinct uniformly random pairs ``i < j`` not in ``taken``, without an ``[n, n]`` mask
    (rejection sampling, deterministic given ``key``)."""
    import jax

    skip = {(int(i), int(j)) for i, j in taken}
    out: list[tuple[int, int]] = []
    want = min(batch, n * (n - 1) // 2 - len(skip))
    draw = 0
    while len(out) < want:
        ij = np.asarray(jax.random.randint(jax.random.fold_in(key, draw), (4 * batch + 16, 2), 0, n))
        draw += 1
        for i, j in ij:
            p = (int(min(i, j)), int(max(i, j)))
            if p[0] != p[1] and p not in skip:
                skip.add(p)
                out.append(p)
                if len(out) == want:
                    break
    return [(names[i], names[j]) for i, j in out]


def _batch_names(b, names):
    pairs = np.asarray(b.pairs)
    valid = np.asarray(b.valid)
    return [(names[int(i)], names[int(j)]) for (i, j), ok in zip(pairs, valid) if ok]


def _propose_program(key, start, buf, remaining, lr, sigma_scale, lam, beta, *, model, policy, batch, reestimate, chunk_size):
    import functools

    import jax

    global _PROGRAM
    if _PROGRAM is None:
        from pairint_jax.discovery import acquisition as acq
        from pairint_jax.discovery import posterior as post

        @functools.partial(jax.jit, static_argnames=("model", "policy", "batch", "reestimate", "chunk_size"))
        def program(key, start, buf, remaining, lr, sigma_scale, lam, beta, *, model, policy, batch, reestimate, chunk_size):
            kf, ks, ka = jax.random.split(key, 3)
            new, info = post._fit(kf, start, buf, lr, sigma_scale, 1.0, model=model)
            samples = post.sample(ks, new, model=model)
            if policy == "ids":
                b = acq.ids(samples, remaining, ka, batch=batch, lam=lam, reestimate=reestimate, chunk_size=chunk_size)
            elif policy == "ucb":
                b = acq.ucb(samples, remaining, ka, batch=batch, beta=beta, chunk_size=chunk_size)
            elif policy == "us":
                b = acq.uncertainty(samples, remaining, ka, batch=batch, chunk_size=chunk_size)
            elif policy == "ts":
                b = acq.thompson(samples, remaining, ka, batch=batch)
            else:
                b = acq.random(samples, remaining, ka, batch=batch)
            return new, b, info

        _PROGRAM = program
    return _PROGRAM(key, start, buf, remaining, lr, sigma_scale, lam, beta, model=model, policy=policy, batch=batch,
                    reestimate=reestimate, chunk_size=chunk_size)


_PROGRAM = None
