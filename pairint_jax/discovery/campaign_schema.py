"""The schema of ``campaign.json``, checked on every load and before every save.

:func:`validate_state` checks a decoded campaign state field by field (types, ranges,
perturbation names, pairs, scores, the posterior's shapes) and raises
:class:`CampaignStateError` with ONE line naming the first bad field::

    /lab/c/campaign.json: field 'settings.batch' must be an int >= 1, got 0.

:func:`read_state` decodes the file first (UTF-8 JSON, one object, no repeated keys).

The state (see :mod:`pairint_jax.discovery.campaign`):

* ``format`` ``"pairint-campaign"``, ``version`` 1;
* ``perturbations``: ``n >= 2`` distinct non-empty names without surrounding spaces;
* ``settings``: exactly the keys of :data:`SETTINGS` (``nonnegative``, ``elbo``, ``layout``,
  ``main_effects``, ``factor_prior``, ``factor_scale_min``, ``feature_interactions``,
  ``main_effect_scale_min`` and ``interaction_scale_min`` may be absent: the model's fields,
  ``dataclasses.asdict(LowRankModel)`` but ``n``, stored flat; files written before some existed
  lack them); ``link`` may be ``"auto"``, resolved every round from
  the observed scores, and ``elbo`` is then ``null``;
* ``features``: absent, ``null`` or ``[n, f]`` numbers (``null`` = missing), ``f >= 1``;
* ``rng``: ``{"seed": settings.seed, "round": R}`` with ``R`` the last proposal's round;
* ``observations``: ``{"a", "b", "score", "round"}`` with ``a`` before ``b`` in
  ``perturbations``, each pair once, finite scores, ``0 <= round <= R``;
* ``proposals``: ``{"round", "pairs", "n_observed"}`` with increasing rounds ``1..R``, known
  ordered pairs, each once per proposal, and ``0 <= n_observed <= len(observations)``;
* ``posterior``: ``null`` or ``{"params", "shift", "scale"}`` with the guide parameters
  ``U_loc, U_scale, V_loc, V_scale [n, settings.rank]``, ``sigma_loc, sigma_scale []`` and,
  with ``settings.offset``, ``offset_loc, offset_scale []``; optionally (issue 12, see
  :data:`EXTRA_PARAMS`) ``a_loc, a_scale [n]``, ``a_tau, w_tau []``, ``w_loc, w_scale [f]``,
  ``factor_scale`` (``[]`` or ``[rank]``), ``B_loc, B_scale [f, f]``, ``B_tau []``; ``*_scale``,
  ``*_tau`` and ``scale`` > 0.

This module imports neither JAX nor NumPy (a crash-test child opens campaigns without
JAX), so the few constants it shares with the JAX modules are mirrored here and compared
with them by the tests.

Example:
  >>> try:
  ...     validate_state({"format": "pairint-campaign", "version": 2})
  ... except CampaignStateError as err:
  ...     print(err)
  campaign.json: field 'version' must be 1 (the campaign format this pairint_jax reads), got 2.
"""

from __future__ import annotations

import json
import math
import pathlib

__all__ = ["CampaignStateError", "validate_state", "read_state", "SETTINGS", "PARAMS"]

FORMAT = "pairint-campaign"
VERSION = 1
#: Seeds lie in ``[0, SEED_LIMIT)``, as :func:`pairint_jax._validate.seed` requires.
SEED_LIMIT = 2**32
#: Options each policy accepts (the keys of ``acquisition.POLICY_OPTIONS``).
POLICY_OPTIONS = {"ids": ("lam", "reestimate", "chunk_size"), "ts": (), "ucb": ("beta", "chunk_size"),
                  "us": ("chunk_size",), "greedy": ("chunk_size",), "hub": (), "random": ()}
#: ``links.LINK_CHOICES``: the links, or ``"auto"`` (resolved from the observed scores every round).
LINK_CHOICES = ("identity", "abs", "softplus", "auto")
#: The keys of ``settings`` (the optional ones may be absent: files written before they existed).
SETTINGS = ("batch", "policy", "policy_options", "rank", "steps", "num_samples", "lr", "sigma_scale", "link",
            "offset", "standardize", "nonnegative", "elbo", "layout", "main_effects", "factor_prior",
            "factor_scale_min", "feature_interactions", "main_effect_scale_min", "interaction_scale_min", "seed")
_OPTIONAL_SETTINGS = ("nonnegative", "elbo", "layout", "main_effects", "factor_prior", "factor_scale_min",
                      "feature_interactions", "main_effect_scale_min", "interaction_scale_min")
#: ``posterior.FACTOR_PRIORS``.
FACTOR_PRIORS = ("shared", "ard", "unit")
#: ``posterior.DEFAULT_RANK`` (the default rank of ``Campaign.create`` and ``pairint campaign-init``).
DEFAULT_RANK = 8
#: ``acquisition.IDS_LAMBDA`` (the ``lam`` a new IDS campaign stores).
IDS_LAMBDA = 4.0
#: The ``lam`` of an IDS campaign file that stores none: it was written when the default was 2.
LEGACY_IDS_LAMBDA = 2.0
#: The fields of ``posterior.LowRankModel`` but ``n`` (stored flat in ``settings``).
MODEL_FIELDS = ("rank", "offset", "link", "standardize", "steps", "num_samples", "elbo", "nonnegative", "layout",
                "main_effects", "factor_prior", "factor_scale_min", "feature_interactions", "main_effect_scale_min",
                "interaction_scale_min")
#: Guide parameters of the posterior: ``[n, rank]`` factors and scalars (offset ones only with ``offset``).
PARAMS = {"U_loc": 2, "U_scale": 2, "V_loc": 2, "V_scale": 2, "sigma_loc": 0, "sigma_scale": 0,
          "offset_loc": 0, "offset_scale": 0}
#: Parameters added by issue 12 (main effects, feature weights, learned factor scale, the
#: feature-interaction matrix ``B``), optional (a file written before them resumes with their
#: initial values): ``"n"`` an ``[n]`` array, ``"f"`` an ``[f']`` array, ``"ff"`` an ``[f', f']``
#: array, ``"r"`` a number or an ``[rank]`` array, 0 a number. All but the ``*_loc`` ones are > 0.
EXTRA_PARAMS = {"a_loc": "n", "a_scale": "n", "a_tau": 0, "w_loc": "f", "w_scale": "f", "w_tau": 0, "factor_scale": "r",
                "B_loc": "ff", "B_scale": "ff", "B_tau": 0}
_TOP = ("format", "version", "perturbations", "settings", "rng", "observations", "proposals", "posterior", "features")


class CampaignStateError(ValueError):
    """A ``campaign.json`` that breaks its schema; the message is one line naming the field."""


class _Bad(Exception):
    """Internal: a field problem, turned into a :class:`CampaignStateError` naming the file."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def read_state(file) -> dict:
    """Decode and check the campaign state in ``file``.

    Raises:
      CampaignStateError: not UTF-8 JSON, not one object, a key repeated in an object, or
        any field breaking the schema (see :func:`validate_state`).
      OSError: the file cannot be read.
    """
    file = pathlib.Path(file)
    data = file.read_bytes()
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_repeated_keys)
    except UnicodeDecodeError as err:
        raise CampaignStateError(f"{file} is not valid campaign JSON (not UTF-8 text: {err.reason} at byte {err.start}).") from None
    except _Bad as bad:
        raise CampaignStateError(f"{file}: {bad.problem}.") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError, too-long ints, absurd nesting
        raise CampaignStateError(f"{file} is not valid campaign JSON ({_one_line(err)}); restore it from a copy.") from None
    return validate_state(doc, where=str(file))


def validate_state(doc, *, where: str = "campaign.json") -> dict:
    """Check a decoded campaign state against the schema (module docstring); return it unchanged.

    Args:
      doc: the state, as ``json.loads`` gives it.
      where: the file, for the message.

    Raises:
      CampaignStateError: one line naming the first bad field, e.g. ``field 'settings.batch'``.
    """
    try:
        _check(doc)
    except _Bad as bad:
        if bad.field == "format":
            raise CampaignStateError(f"{where} is not a pairint campaign: field 'format' {bad.problem}.") from None
        raise CampaignStateError(f"{where}: field {bad.field!r} {bad.problem}.") from None
    return doc


def _check(doc) -> None:
    if not isinstance(doc, dict):
        raise _Bad("(top level)", f"must be a JSON object holding the campaign, got {_kind(doc)}")
    if doc.get("format") != FORMAT:
        raise _Bad("format", f"must be {FORMAT!r}, got {_short(doc.get('format'))}")
    if type(doc.get("version")) is not int or doc["version"] != VERSION:
        raise _Bad("version", f"must be {VERSION} (the campaign format this pairint_jax reads), got {_short(doc.get('version'))}")
    _keys("", doc, _TOP, optional=("features",))
    names = _names(doc["perturbations"])
    index = {p: i for i, p in enumerate(names)}
    s = _settings(doc["settings"])
    rnd = _rng(doc["rng"], s["seed"])
    n_obs = _observations(doc["observations"], index, rnd)
    _proposals(doc["proposals"], index, rnd, n_obs)
    _posterior(doc["posterior"], len(names), s)
    _features(doc.get("features"), len(names))


# ----------------------------------------------------------------------------- sections


def _names(names) -> list:
    if not isinstance(names, list):
        raise _Bad("perturbations", f"must be a list of names, got {_kind(names)}")
    if len(names) < 2:
        raise _Bad("perturbations", f"must hold at least 2 names (one pair), got {len(names)}")
    seen: dict = {}
    for i, name in enumerate(names):
        field = f"perturbations[{i}]"
        if not isinstance(name, str):
            raise _Bad(field, f"must be a name (a string), got {_short(name)}")
        if not name.strip() or name != name.strip():
            raise _Bad(field, f"must be a non-empty name without surrounding spaces, got {name!r}")
        if name in seen:
            raise _Bad(field, f"repeats the name {name!r} of perturbations[{seen[name]}]; names must be distinct")
        seen[name] = i
    return names


def _settings(s) -> dict:
    _keys("settings", s, SETTINGS, optional=_OPTIONAL_SETTINGS)
    for name in ("batch", "rank", "steps", "num_samples"):
        _int(f"settings.{name}", s[name], low=1)
    if s["policy"] not in POLICY_OPTIONS:
        raise _Bad("settings.policy", f"must be one of {', '.join(map(repr, POLICY_OPTIONS))}, got {_short(s['policy'])}")
    _policy_options(s["policy_options"], s["policy"])
    for name in ("lr", "sigma_scale"):
        _number(f"settings.{name}", s[name], positive=True)
    if s["link"] not in LINK_CHOICES:
        raise _Bad("settings.link", f"must be one of {', '.join(map(repr, LINK_CHOICES))}, got {_short(s['link'])}")
    for name in ("offset", "standardize", "nonnegative", "main_effects", "feature_interactions"):
        if name in s and not isinstance(s[name], bool):
            raise _Bad(f"settings.{name}", f"must be true or false, got {_short(s[name])}")
    if s.get("elbo") not in (None, "analytic", "mc"):
        raise _Bad("settings.elbo", f"must be 'analytic', 'mc' or null, got {_short(s['elbo'])}")
    if s.get("layout", "auto") not in ("auto", "dense", "gather"):
        raise _Bad("settings.layout", f"must be 'auto', 'dense' or 'gather', got {_short(s['layout'])}")
    if s.get("factor_prior", "shared") not in FACTOR_PRIORS:
        raise _Bad("settings.factor_prior", f"must be one of {', '.join(map(repr, FACTOR_PRIORS))}, got {_short(s['factor_prior'])}")
    for name in ("factor_scale_min", "main_effect_scale_min", "interaction_scale_min"):  # the floors
        val = s.get(name)
        if val is None and name == "factor_scale_min":  # null: picked from the link every round
            continue
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val < 0:
            none = " or null" if name == "factor_scale_min" else ""
            raise _Bad(f"settings.{name}", f"must be a finite number >= 0{none}, got {_short(val)}")
    _int("settings.seed", s["seed"], low=0, below=SEED_LIMIT)
    return s


def _features(rows, n: int) -> None:
    if rows is None:
        return
    if not isinstance(rows, list) or len(rows) != n or not rows or not all(isinstance(r, list) for r in rows):
        raise _Bad("features", f"must be null or an [n, f] array with n = {n} rows (one per perturbation), got {_shape(rows)}")
    f = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != f or f == 0:
            raise _Bad(f"features[{i}]", f"must hold f = {max(f, 1)} values like the first row, got {len(row)}")
        for j, x in enumerate(row):
            if x is not None:
                _number(f"features[{i}][{j}]", x)


def _policy_options(opts, policy: str) -> None:
    field = "settings.policy_options"
    if not isinstance(opts, dict):
        raise _Bad(field, f"must be an object, got {_kind(opts)}")
    for key, val in opts.items():
        if key not in POLICY_OPTIONS[policy]:
            allowed = ", ".join(POLICY_OPTIONS[policy]) or "none"
            raise _Bad(f"{field}.{key}", f"is not an option of policy {policy!r} (it takes: {allowed})")
        if key == "lam":
            _number(f"{field}.lam", val, positive=True)
        elif key == "beta":
            _number(f"{field}.beta", val, low=0.0)
        elif key == "reestimate" and not isinstance(val, bool):
            raise _Bad(f"{field}.reestimate", f"must be true or false, got {_short(val)}")
        elif key == "chunk_size" and val is not None:
            _int(f"{field}.chunk_size", val, low=1)


def _rng(rng, seed: int) -> int:
    _keys("rng", rng, ("seed", "round"))
    _int("rng.seed", rng["seed"], low=0, below=SEED_LIMIT)
    if rng["seed"] != seed:
        raise _Bad("rng.seed", f"must equal settings.seed ({seed}), got {rng['seed']}")
    return _int("rng.round", rng["round"], low=0)


def _observations(obs, index: dict, rnd: int) -> int:
    if not isinstance(obs, list):
        raise _Bad("observations", f"must be a list, got {_kind(obs)}")
    seen: dict = {}
    for k, o in enumerate(obs):
        field = f"observations[{k}]"
        _keys(field, o, ("a", "b", "score", "round"))
        pair = _pair(field, o["a"], o["b"], index)
        if pair in seen:
            raise _Bad(field, f"repeats the pair ({pair[0]}, {pair[1]}) of observations[{seen[pair]}]; each pair is observed once")
        seen[pair] = k
        _number(f"{field}.score", o["score"])
        _int(f"{field}.round", o["round"], low=0, below=rnd + 1, why="the current round rng.round")
    return len(obs)


def _proposals(props, index: dict, rnd: int, n_obs: int) -> None:
    if not isinstance(props, list):
        raise _Bad("proposals", f"must be a list, got {_kind(props)}")
    last = 0
    for k, p in enumerate(props):
        field = f"proposals[{k}]"
        _keys(field, p, ("round", "pairs", "n_observed"))
        _int(f"{field}.round", p["round"], low=last + 1, why="proposal rounds increase from 1")
        last = p["round"]
        _int(f"{field}.n_observed", p["n_observed"], low=0, below=n_obs + 1, why="the number of observations")
        if not isinstance(p["pairs"], list):
            raise _Bad(f"{field}.pairs", f"must be a list of [a, b] pairs, got {_kind(p['pairs'])}")
        seen: set = set()
        for j, ab in enumerate(p["pairs"]):
            sub = f"{field}.pairs[{j}]"
            if not isinstance(ab, list) or len(ab) != 2:
                raise _Bad(sub, f"must be a pair [a, b] of names, got {_short(ab)}")
            pair = _pair(sub, ab[0], ab[1], index)
            if pair in seen:
                raise _Bad(sub, f"repeats the pair ({pair[0]}, {pair[1]}) within the proposal")
            seen.add(pair)
    if last != rnd:
        raise _Bad("rng.round", f"must equal the round of the last proposal ({last}), got {rnd}")


def _posterior(post, n: int, s: dict) -> None:
    if post is None:
        return
    _keys("posterior", post, ("params", "shift", "scale"))
    _number("posterior.shift", post["shift"])
    _number("posterior.scale", post["scale"], positive=True)
    wanted = [k for k in PARAMS if s["offset"] or not k.startswith("offset")]
    _keys("posterior.params", post["params"], wanted + list(EXTRA_PARAMS), optional=tuple(EXTRA_PARAMS))
    for name in (k for k in EXTRA_PARAMS if k in post["params"]):
        _extra_param(f"posterior.params.{name}", post["params"][name], EXTRA_PARAMS[name], n, s["rank"],
                     positive=not name.endswith("_loc"))
    for name in wanted:
        field, val, positive = f"posterior.params.{name}", post["params"][name], name.endswith("_scale")
        if PARAMS[name] == 0:
            _number(field, val, positive=positive)
            continue
        rank = s["rank"]
        if not (isinstance(val, list) and len(val) == n and all(isinstance(r, list) and len(r) == rank for r in val)):
            raise _Bad(field, f"must be an [n, rank] = [{n}, {rank}] array (n perturbations, settings.rank), got {_shape(val)}")
        for i, row in enumerate(val):
            if not all(type(x) is float and math.isfinite(x) and (x > 0 or not positive) for x in row):
                for j, x in enumerate(row):  # the slow path names the entry (ints pass)
                    _number(f"{field}[{i}][{j}]", x, positive=positive)


def _extra_param(field: str, val, kind, n: int, rank: int, *, positive: bool) -> None:
    if kind == "ff":
        if not (isinstance(val, list) and all(isinstance(r, list) and len(r) == len(val) for r in val)):
            raise _Bad(field, f"must be a square [f, f] array, got {_shape(val)}")
        for i, row in enumerate(val):
            _extra_param(f"{field}[{i}]", row, "f", n, rank, positive=positive)
        return
    if kind == 0 or (kind == "r" and not isinstance(val, list)):
        _number(field, val, positive=positive)
        return
    size = {"n": n, "r": rank}.get(kind)
    if not isinstance(val, list) or (size is not None and len(val) != size):
        want = {"n": f"[n] = [{n}]", "r": f"a number or [rank] = [{rank}]", "f": "[f]"}[kind]
        raise _Bad(field, f"must be a {want} array, got {_shape(val)}")
    for i, x in enumerate(val):
        _number(f"{field}[{i}]", x, positive=positive)


# ----------------------------------------------------------------------------- fields


def _keys(field: str, obj, required, *, optional=()) -> None:
    name = field or "(top level)"
    if not isinstance(obj, dict):
        raise _Bad(name, f"must be an object, got {_kind(obj)}")
    missing = [k for k in required if k not in obj and k not in optional]
    if missing:
        raise _Bad(f"{field}.{missing[0]}" if field else missing[0], "is missing")
    extra = [k for k in obj if k not in required]
    if extra:
        raise _Bad(f"{field}.{extra[0]}" if field else extra[0], f"is not a known field (known: {', '.join(required)})")


def _pair(field: str, a, b, index: dict) -> tuple:
    for side, x in (("a", a), ("b", b)):
        if not isinstance(x, str):
            raise _Bad(field, f"names perturbation {side} with {_short(x)}, not a name (a string)")
        if x not in index:
            raise _Bad(field, f"names {x!r}, which is not in 'perturbations'")
    if a == b:
        raise _Bad(field, f"pairs {a!r} with itself; a pair needs two different perturbations")
    if index[a] > index[b]:
        raise _Bad(field, f"stores the pair ({a}, {b}) out of order; {b!r} comes before {a!r} in 'perturbations'")
    return a, b


def _int(field: str, val, *, low: int, below: int | None = None, why: str = "") -> int:
    if not isinstance(val, int) or isinstance(val, bool):
        raise _Bad(field, f"must be an int >= {low}, got {_short(val)}")
    if val < low or (below is not None and val >= below):
        span = f">= {low}" if below is None else f"in [{low}, {below - 1}]"
        raise _Bad(field, f"must be an int {span}{f' ({why})' if why else ''}, got {val}")
    return val


def _number(field: str, val, *, positive: bool = False, low: float | None = None) -> float:
    if not isinstance(val, (int, float)) or isinstance(val, bool):
        raise _Bad(field, f"must be a finite number, got {_short(val)}")
    try:
        out = float(val)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise _Bad(field, f"must be a finite number, got {_short(val)}")
    if positive and not out > 0:
        raise _Bad(field, f"must be a number > 0, got {val!r}")
    if low is not None and out < low:
        raise _Bad(field, f"must be a number >= {low:g}, got {val!r}")
    return out


def _no_repeated_keys(pairs: list) -> dict:
    out: dict = {}
    for key, val in pairs:
        if key in out:
            raise _Bad(key, f"the key {key!r} appears twice in one object; keep one")
        out[key] = val
    return out


def _shape(val) -> str:
    if not isinstance(val, list):
        return _kind(val)
    lens = {len(r) if isinstance(r, list) else None for r in val}
    if len(lens) == 1 and None not in lens:
        return f"shape [{len(val)}, {lens.pop()}]"
    if lens == {None}:
        return f"shape [{len(val)}]"
    return f"a ragged list of {len(val)} rows"


def _kind(val) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an int", float: "a number"}
    return f"{names.get(type(val), type(val).__name__)} {_short(val)}" if not isinstance(val, (dict, list)) else names[type(val)]


def _short(val) -> str:
    text = repr(val)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
