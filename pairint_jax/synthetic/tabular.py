"""D.1.1: the tabular separability screen (paper App. D.1.1).

Three independent latents ``Z1, Z2, Z3``, each ``N(0, 1)`` in the control. A latent is
``N(shift, 1)`` (``shift = 3``) in a condition if *any* perturbation of the condition
targets it (the paper's "or/and" rule):

=========  ===============
 A         Z1
 B         Z1, Z2
 C         Z3
 D         Z3
=========  ===============

So ``A+B`` moves ``Z1`` and ``Z2`` (like ``B`` alone) and ``C+D`` moves ``Z3`` (like
``C`` or ``D`` alone). The observations are ``X = g(Z)`` with ``g`` a random 7-layer
LeakyReLU MLP from ``R^3`` to ``R^dim`` (default ``dim = 16``; see
:func:`~pairint_jax.synthetic.random_mlp`: orthogonal layers, slope 0.5, so ``g`` is
injective and KL divergences between conditions equal those between the latents).

Truth: the inseparable pairs, those whose perturbations share a latent: A-B and C-D.
Their separability score ``|KL(p0||pi) + KL(p0||pj) - KL(p0||pij)|`` is large (4.5 nats
in the latents for both), and zero for every other pair.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.screen import Screen
from pairint_jax._validate import as_key, positive_int, renamed_keywords
from pairint_jax.screen import MIN_OBSERVATIONS
from pairint_jax.synthetic._common import (
    Latents,
    all_doubles,
    build_screen,
    check_real,
    condition_table,
    truth_from_targets,
)
from pairint_jax.synthetic._mlp import mlp_apply_chunked, random_mlp

__all__ = ["separability_tabular", "D11_TARGETS"]

#: Which latents each perturbation of D.1.1 targets (0-based: Z1 = 0).
D11_TARGETS: dict[str, tuple[int, ...]] = {"A": (0,), "B": (0, 1), "C": (2,), "D": (2,)}


def _targets_table(targets: Mapping[str, Sequence[int]] | None):
    """Validate ``targets=``; return names, per-perturbation target sets and n_latents."""
    targets = D11_TARGETS if targets is None else targets
    if not isinstance(targets, Mapping) or len(targets) < 2:
        raise ValueError("targets must map at least 2 perturbation names to the latent indices they perturb.")
    names = [str(k) for k in targets]
    sets = []
    for name, idx in targets.items():
        idx = tuple(int(i) for i in np.atleast_1d(np.asarray(idx, dtype=np.int64)))
        if not idx or min(idx) < 0:
            raise ValueError(f"targets[{name!r}] must be a non-empty list of latent indices >= 0, got {idx}.")
        sets.append(frozenset(idx))
    n_latents = max(max(s) for s in sets) + 1
    return names, sets, n_latents


def condition_masks(members, sets, n_latents: int) -> np.ndarray:
    """``[G, n_latents]`` float32: 1 where any perturbation of the condition targets the latent."""
    masks = np.zeros((len(members), n_latents), dtype=np.float32)
    for g, mem in enumerate(members):
        for i in mem:
            masks[g, list(sets[i])] = 1.0
    return masks


def d11_latents(key, masks, shift, n_control: int, n_per_condition: int):
    """Latents of every row: control ``[n_control]`` then ``n_per_condition`` per other condition.

    Args:
      key: PRNG key.
      masks: ``[G - 1, L]`` 0/1 targets of the non-control conditions.
      shift: the perturbed mean (traced scalar).

    Returns:
      ``[n_control + (G - 1) * n_per_condition, L]`` float32 latents.
    """
    n_latents = masks.shape[1]
    n = n_control + masks.shape[0] * n_per_condition
    mean = jnp.concatenate([jnp.zeros((n_control, n_latents)), jnp.repeat(shift * masks, n_per_condition, axis=0)])
    return mean + jax.random.normal(key, (n, n_latents))


@functools.partial(jax.jit, static_argnames=("n_control", "n_per_condition", "rows_per_chunk"))
def _sample(key, mixing, masks, shift, *, n_control, n_per_condition, rows_per_chunk):
    z = d11_latents(key, masks, shift, n_control, n_per_condition)
    return mlp_apply_chunked(mixing, z, rows_per_chunk), z


@renamed_keywords(chunk_size="rows_per_chunk")
def separability_tabular(
    key,
    *,
    n_per_condition: int = 2000,
    n_control: int | None = None,
    dim: int = 16,
    n_layers: int = 7,
    shift: float = 3.0,
    negative_slope: float = 0.5,
    targets: Mapping[str, Sequence[int]] | None = None,
    rows_per_chunk: int = 65536,
    map_key=None,
    return_latents: bool = False,
):
    """The D.1.1 screen: latents with separable and inseparable pairs, mapped by a random MLP.

    Model (per observation of condition ``c``)::

        Z_l ~ N(shift * [some perturbation of c targets l], 1),  l = 1..L
        X   = g(Z),   g: R^L -> R^dim a random n_layers-deep LeakyReLU MLP

    with the paper's targets A -> Z1, B -> Z1, Z2, C -> Z3, D -> Z3 (``L = 3``) by default.
    All 4 singles and all 6 doubles are generated.

    Args:
      key: JAX PRNG key (or int seed). Same key, same screen.
      n_per_condition: observations per single and double (static). The separability
        k-NN ranking needs about 2000 (A-B and C-D top-2 in 8/10 seeds) to 5000 (10/10).
      n_control: control observations (static); default ``n_per_condition``.
      dim: output dimension ``d`` (static), ``>= L`` so that ``g`` is injective. Default 16:
        an injective map from 3 latents into 16 dimensions, as in the paper's App. D.1.1.
      n_layers: depth of ``g`` (paper: 7).
      shift: mean of a perturbed latent (paper: 3).
      negative_slope: LeakyReLU slope of ``g``.
      targets: optional ``{name: latent indices}`` replacing the paper's table.
      rows_per_chunk: rows pushed through ``g`` per chunk (static; formerly ``chunk_size``);
        bounds working memory.
      map_key: optional key for ``g`` alone (to keep the map fixed across data seeds);
        default: derived from ``key``.
      return_latents: also return a :class:`~pairint_jax.synthetic.Latents` with ``z [N, L]``
        and the map ``mixing``.

    Returns:
      ``(screen, truth)`` or ``(screen, truth, latents)``: ``screen.x`` is ``[N, dim]``
      float32 with ``N = n_control + 10 * n_per_condition``; ``truth`` is ``[4, 4]`` bool,
      True for A-B and C-D.

    Example:
      >>> screen, truth = separability_tabular(jax.random.key(0), n_per_condition=100)
      >>> screen.x.shape, [screen.perturbations[i] + "-" + screen.perturbations[j]
      ...                  for i, j in zip(*np.nonzero(np.triu(truth)))]
      ((1100, 16), ['A-B', 'C-D'])
    """
    key = as_key(key, default_seed=None)
    n_per_condition = positive_int("n_per_condition", n_per_condition, minimum=MIN_OBSERVATIONS)
    n_control = n_per_condition if n_control is None else positive_int("n_control", n_control, minimum=MIN_OBSERVATIONS)
    names, sets, n_latents = _targets_table(targets)
    dim = positive_int("dim", dim)
    if dim < n_latents:
        raise ValueError(
            f"dim={dim} is smaller than the {n_latents} latents, so g would not be injective; use dim >= {n_latents}."
        )
    n_layers = positive_int("n_layers", n_layers)
    shift = check_real("shift", shift)
    rows_per_chunk = positive_int("rows_per_chunk", rows_per_chunk)
    k_map, k_data = jax.random.split(key)
    if map_key is not None:
        k_map = as_key(map_key, name="map_key")
    mixing = random_mlp(k_map, n_latents, dim, n_layers=n_layers, negative_slope=negative_slope)
    labels, members = condition_table(names, all_doubles(len(names)))
    masks = condition_masks(members[1:], sets, n_latents)
    x, z = _sample(
        k_data,
        mixing,
        jnp.asarray(masks),
        jnp.float32(shift),
        n_control=n_control,
        n_per_condition=n_per_condition,
        rows_per_chunk=rows_per_chunk,
    )
    screen: Screen = build_screen(x, labels, n_control, n_per_condition, names)
    truth = truth_from_targets(sets)
    if return_latents:
        return screen, truth, Latents(z=np.asarray(z), mixing=mixing)
    return screen, truth
