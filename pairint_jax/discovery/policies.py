"""The one registry of acquisition policies: name -> function, its options and their defaults.

Every policy is reached through :data:`REGISTRY` (``simulate``, ``simulate_many``,
:class:`~pairint_jax.discovery.campaign.Campaign`, the CLI and :func:`acquire`):

========== ======================================== ==================================== =========
name       function                                 options (default)                    reads
========== ======================================== ==================================== =========
ids        :func:`~.acquisition.ids`                lam (4.0), reestimate (False),       posterior
                                                    chunk_size (None)
ts         :func:`~.acquisition.thompson`           --                                   posterior
ucb        :func:`~.acquisition.ucb`                beta (1.0), chunk_size (None)        posterior
us         :func:`~.acquisition.uncertainty`        chunk_size (None)                    posterior
greedy     :func:`~.acquisition.greedy`             chunk_size (None)                    posterior
hub        :func:`~.hub.hub`                        --                                   observations
random     :func:`~.acquisition.uniform`            --                                   nothing
ids_tiled  :func:`~.tiled.ids_tiled` (host driver)  lam (4.0), tile_size (None)          posterior
========== ======================================== ==================================== =========

``"uniform"`` is accepted as another name of ``"random"``. Options named in
:data:`STATIC_OPTIONS` fix shapes or code paths (static under ``jit``); the others (``lam``,
``beta``) are traced, so changing them does not recompile. ``ids_tiled`` is not jittable
(a host loop over tiles); a round (:func:`~pairint_jax.discovery.rounds.step`) runs it
outside ``jit``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from pairint_jax.discovery import acquisition as acq
from pairint_jax.discovery.hub import hub
from pairint_jax.discovery.selection import Batch

__all__ = [
    "ALIASES",
    "POLICIES",
    "POLICY_OPTIONS",
    "REGISTRY",
    "STATIC_OPTIONS",
    "Policy",
    "acquire",
    "acquire_jit",
    "apply_policy",
    "check_policy",
    "get_policy",
    "split_options",
]


@dataclasses.dataclass(frozen=True)
class Policy:
    """One acquisition policy.

    Attributes:
      name: the canonical name.
      fn: ``fn(first, remaining, key, *, batch, **options) -> Batch``; ``first`` is the
        posterior samples (``reads == "posterior"``), the
        :class:`~pairint_jax.discovery.posterior.Observations` (``"observations"``) or
        ignored (``"nothing"``).
      options: option name -> default (read-only).
      reads: ``"posterior" | "observations" | "nothing"``.
      jittable: False for a host-driven policy (``ids_tiled``).
    """

    name: str
    fn: Callable
    options: Mapping
    reads: str
    jittable: bool = True

    @property
    def needs_posterior(self) -> bool:
        """Whether a round must fit the posterior and sample it before this policy."""
        return self.reads == "posterior"


def _ids_tiled(*args, **kwargs):
    from pairint_jax.discovery.tiled import ids_tiled  # host driver; imports on first use

    return ids_tiled(*args, **kwargs)


def _entry(name, fn, reads, jittable=True, **options):
    return Policy(name, fn, types.MappingProxyType(options), reads, jittable)


REGISTRY: Mapping[str, Policy] = types.MappingProxyType({
    "ids": _entry("ids", acq.ids, "posterior", lam=acq.IDS_LAMBDA, reestimate=False, chunk_size=None),
    "ts": _entry("ts", acq.thompson, "posterior"),
    "ucb": _entry("ucb", acq.ucb, "posterior", beta=1.0, chunk_size=None),
    "us": _entry("us", acq.uncertainty, "posterior", chunk_size=None),
    "greedy": _entry("greedy", acq.greedy, "posterior", chunk_size=None),
    "hub": _entry("hub", hub, "observations"),
    "random": _entry("random", acq.uniform, "nothing"),
    "ids_tiled": _entry("ids_tiled", _ids_tiled, "posterior", jittable=False, lam=acq.IDS_LAMBDA, tile_size=None),
})
#: Other accepted spellings -> the canonical name.
ALIASES = types.MappingProxyType({"uniform": "random"})
#: Options that are static under ``jit`` (shapes and code paths).
STATIC_OPTIONS = ("reestimate", "chunk_size", "tile_size")
#: ``{name: function}`` of the jittable policies (kept for compatibility).
POLICIES = types.MappingProxyType({k: p.fn for k, p in REGISTRY.items() if p.jittable})
#: ``{name: {option: default}}`` of the jittable policies (kept for compatibility).
POLICY_OPTIONS = types.MappingProxyType({k: dict(p.options) for k, p in REGISTRY.items() if p.jittable})


def get_policy(name: str) -> Policy:
    """The :class:`Policy` called ``name`` (an alias resolves to its canonical policy)."""
    if not isinstance(name, str) or ALIASES.get(name, name) not in REGISTRY:
        names = sorted(REGISTRY) + sorted(ALIASES)
        raise ValueError(f"unknown policy {name!r}; expected one of {names}.")
    return REGISTRY[ALIASES.get(name, name)]


def check_policy(policy: str, options: Mapping | None = None) -> dict:
    """Validate a policy name and its options; return the options merged over the defaults.

    Raises:
      ValueError: an unknown policy, an option the policy does not take, ``lam <= 0`` or
        ``beta < 0`` (or either not finite).
    """
    p = get_policy(policy)
    options = dict(options or {})
    bad = sorted(set(options) - set(p.options))
    if bad:
        hint = ", ".join(p.options) or "none"
        raise ValueError(f"policy {policy!r} does not take option(s) {bad}; it accepts: {hint}.")
    merged = {**p.options, **options}
    for name, positive in (("lam", True), ("beta", False)):
        if name in merged:
            val = merged[name]
            ok = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
            if not ok or (positive and val <= 0) or (not positive and val < 0):
                what = "positive" if positive else "non-negative"
                raise ValueError(f"policy {policy!r}: {name} must be a finite {what} number, got {val!r}.")
    return merged


def split_options(options: Mapping) -> tuple[tuple, dict]:
    """``(static, traced)``: the static options as a sorted, hashable tuple of items and the
    others as float32 scalars (validated options from :func:`check_policy`)."""
    static = tuple(sorted((k, v) for k, v in options.items() if k in STATIC_OPTIONS))
    traced = {k: jnp.float32(v) for k, v in options.items() if k not in STATIC_OPTIONS}
    return static, traced


def apply_policy(policy: str, *, samples, observations, remaining, key, batch: int, options: Mapping,
                 features=None) -> Batch:
    """Run a jittable policy on what it reads (samples, observations or nothing).

    Args:
      policy: a policy name.
      samples: posterior samples (None for policies that do not read them).
      observations: the :class:`~pairint_jax.discovery.posterior.Observations` so far.
      remaining: ``[n, n]`` bool.
      key: PRNG key.
      batch: ``b`` (static).
      options: the policy's options (validated; traced or static values).
      features: optional ``[n, f]`` features (read by ``hub``).

    Returns:
      :class:`~pairint_jax.discovery.selection.Batch`.
    """
    p = get_policy(policy)
    if p.reads == "observations":
        return p.fn(observations, remaining, key, batch=batch, features=features, **options)
    return p.fn(samples if p.reads == "posterior" else None, remaining, key, batch=batch, **options)


def acquire(policy: str, samples, remaining, key, *, batch: int, features=None, **options) -> Batch:
    """Dispatch to a policy by name; ``samples`` is what it reads (the
    :class:`~pairint_jax.discovery.posterior.Observations` for ``"hub"``, ignored for ``"random"``)."""
    options = check_policy(policy, options)
    return apply_policy(policy, samples=samples, observations=samples, remaining=remaining, key=key,
                        batch=batch, options=options, features=features)


@functools.partial(jax.jit, static_argnames=("policy", "batch", "static"))
def _acquire_jit(samples, remaining, key, traced, features, *, policy, batch, static):
    return apply_policy(policy, samples=samples, observations=samples, remaining=remaining, key=key, batch=batch,
                        options={**dict(static), **traced}, features=features)


def acquire_jit(policy: str, samples, remaining, key, *, batch: int, features=None, **options) -> Batch:
    """:func:`acquire` under ``jax.jit`` (static: the policy, ``batch`` and the static options)."""
    p = get_policy(policy)
    if not p.jittable:
        raise ValueError(f"policy {policy!r} runs on the host and cannot be jitted; call it directly.")
    static, traced = split_options(check_policy(policy, options))
    return _acquire_jit(samples, remaining, key, traced, features, policy=p.name, batch=batch, static=static)
