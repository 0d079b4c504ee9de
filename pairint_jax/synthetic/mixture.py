"""D.1.3: the mixture screen for the disjointedness test (paper App. D.1.3).

A one-dimensional latent ``z`` follows a six-component mixture with fixed weights

    p(z) = 1/8 P0 + 1/8 P1 + 1/8 P2 + 1/8 P3 + 1/4 P4 + 1/4 P5,

every component ``N(0, 1)`` in the control. Perturbations replace components
(``N(mean, scale)`` has standard deviation ``scale``; ``Cauchy(loc, scale)``):

=========  ====  ==================
 A          P1    N(5, 1)
 B          P2    N(10, 1)
 C          P3    N(-5, 5)
 D          P4    N(0, 5)
 E          P4    N(-10, 5)
 D+E        P4    N(10, 5)
 F          P5    Cauchy(15, 1)
 G          P5    Cauchy(-15, 1)
 F+G        P5    Cauchy(20, 1)
=========  ====  ==================

Every other double applies both singles' replacements; they touch different components,
so for those pairs ``1/2 (p_ij + p_0) = 1/2 (p_i + p_j)`` exactly and the population
disjointedness ``MMD^2`` is zero. D-E and F-G touch the same component with a
non-additive result: those are the interacting pairs (the truth).

The observations are ``x = g(z)`` with ``g`` a random 10-layer LeakyReLU MLP from ``R`` to
``R^dim`` (default ``dim = 8``; injective, see :func:`~pairint_jax.synthetic.random_mlp`).
Note that F and G move a Cauchy component, which has no mean, so the additivity score
(differences of means) is not meaningful on this screen.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, positive_int, renamed_keywords
from pairint_jax.screen import MIN_OBSERVATIONS
from pairint_jax.synthetic._common import (
    Latents,
    all_doubles,
    build_screen,
    condition_table,
    row_groups,
)
from pairint_jax.synthetic._mlp import mlp_apply_chunked, random_mlp

__all__ = ["disjointedness_mixture", "D13_WEIGHTS", "D13_SINGLES", "D13_DOUBLES"]

#: Mixture weights of P0..P5.
D13_WEIGHTS = (1 / 8, 1 / 8, 1 / 8, 1 / 8, 1 / 4, 1 / 4)
#: Single perturbations: name -> (component, family, loc, scale).
D13_SINGLES: dict[str, tuple[int, str, float, float]] = {
    "A": (1, "normal", 5.0, 1.0),
    "B": (2, "normal", 10.0, 1.0),
    "C": (3, "normal", -5.0, 5.0),
    "D": (4, "normal", 0.0, 5.0),
    "E": (4, "normal", -10.0, 5.0),
    "F": (5, "cauchy", 15.0, 1.0),
    "G": (5, "cauchy", -15.0, 1.0),
}
#: The interacting doubles and what they do to their shared component.
D13_DOUBLES: dict[tuple[str, str], tuple[int, str, float, float]] = {
    ("D", "E"): (4, "normal", 10.0, 5.0),
    ("F", "G"): (5, "cauchy", 20.0, 1.0),
}


def _component_table(names, members):
    """Per condition ``[G, 6]`` loc, scale and is-Cauchy arrays."""
    n_comp = len(D13_WEIGHTS)
    loc = np.zeros((len(members), n_comp), np.float32)
    scale = np.ones((len(members), n_comp), np.float32)
    cauchy = np.zeros((len(members), n_comp), bool)

    def put(g, spec):
        comp, family, mu, s = spec
        loc[g, comp], scale[g, comp], cauchy[g, comp] = mu, s, family == "cauchy"

    for g, mem in enumerate(members):
        key = tuple(names[i] for i in mem)
        if key in D13_DOUBLES:
            put(g, D13_DOUBLES[key])
            continue
        for i in mem:
            put(g, D13_SINGLES[names[i]])
    return loc, scale, cauchy


@functools.partial(jax.jit, static_argnames=("n_control", "n_per_condition", "rows_per_chunk"))
def _sample(key, mixing, log_w, loc, scale, cauchy, *, n_control, n_per_condition, rows_per_chunk):
    gid = row_groups(loc.shape[0], n_control, n_per_condition)
    n = gid.shape[0]
    kc, kn, kk = jax.random.split(key, 3)
    comp = jax.random.categorical(kc, log_w, shape=(n,))
    eps = jnp.where(cauchy[gid, comp], jax.random.cauchy(kk, (n,)), jax.random.normal(kn, (n,)))
    z = (loc[gid, comp] + scale[gid, comp] * eps)[:, None]
    return mlp_apply_chunked(mixing, z, rows_per_chunk), z, comp


@renamed_keywords(chunk_size="rows_per_chunk")
def disjointedness_mixture(
    key,
    *,
    n_per_condition: int = 1000,
    n_control: int | None = None,
    dim: int = 8,
    n_layers: int = 10,
    negative_slope: float = 0.5,
    rows_per_chunk: int = 65536,
    map_key=None,
    return_latents: bool = False,
):
    """The D.1.3 screen: a 1-D latent mixture whose components perturbations replace.

    Model (per observation of condition ``c``)::

        k ~ Categorical(1/8, 1/8, 1/8, 1/8, 1/4, 1/4)
        z ~ P_k^(c)          (the table in the module docstring)
        x = g(z),  g: R -> R^dim a random n_layers-deep LeakyReLU MLP

    All 7 singles (A..G) and all 21 doubles are generated.

    Args:
      key: JAX PRNG key (or int seed). Same key, same screen.
      n_per_condition: observations per single and double (static). The paper used 20,000.
      n_control: control observations (static); default ``n_per_condition``.
      dim: output dimension (static, >= 1). Default 8.
      n_layers: depth of ``g`` (paper: 10).
      negative_slope: LeakyReLU slope of ``g``.
      rows_per_chunk: rows pushed through ``g`` per chunk (static; formerly ``chunk_size``);
        bounds working memory.
      map_key: optional key for ``g`` alone; default: derived from ``key``.
      return_latents: also return :class:`~pairint_jax.synthetic.Latents` with
        ``z [N, 1]``, ``component [N]`` (0..5) and ``mixing``.

    Returns:
      ``(screen, truth)`` or ``(screen, truth, latents)``: ``screen.x`` is ``[N, dim]``
      float32 with ``N = n_control + 28 * n_per_condition``; ``truth`` ``[7, 7]`` bool,
      True for D-E and F-G.

    Example:
      >>> screen, truth = disjointedness_mixture(jax.random.key(0), n_per_condition=50)
      >>> screen.x.shape, int(truth.sum()) // 2
      ((1450, 8), 2)
    """
    key = as_key(key, default_seed=None)
    n_per_condition = positive_int("n_per_condition", n_per_condition, minimum=MIN_OBSERVATIONS)
    n_control = n_per_condition if n_control is None else positive_int("n_control", n_control, minimum=MIN_OBSERVATIONS)
    dim = positive_int("dim", dim)
    n_layers = positive_int("n_layers", n_layers)
    rows_per_chunk = positive_int("rows_per_chunk", rows_per_chunk)
    names = list(D13_SINGLES)
    k_map, k_data = jax.random.split(key)
    if map_key is not None:
        k_map = as_key(map_key, name="map_key")
    mixing = random_mlp(k_map, 1, dim, n_layers=n_layers, negative_slope=negative_slope)
    labels, members = condition_table(names, all_doubles(len(names)))
    loc, scale, cauchy = _component_table(names, members)
    log_w = jnp.log(jnp.asarray(D13_WEIGHTS, jnp.float32))
    x, z, comp = _sample(
        k_data,
        mixing,
        log_w,
        jnp.asarray(loc),
        jnp.asarray(scale),
        jnp.asarray(cauchy),
        n_control=n_control,
        n_per_condition=n_per_condition,
        rows_per_chunk=rows_per_chunk,
    )
    screen = build_screen(x, labels, n_control, n_per_condition, names)
    truth = np.zeros((len(names), len(names)), bool)
    for a, b in D13_DOUBLES:
        i, j = names.index(a), names.index(b)
        truth[i, j] = truth[j, i] = True
    if return_latents:
        return screen, truth, Latents(z=np.asarray(z), component=np.asarray(comp), mixing=mixing)
    return screen, truth
