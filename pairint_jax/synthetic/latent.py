"""A scalable latent-factor screen with a known, block-structured set of interactions.

Our own design (not in the paper), for tests and benchmarks that scale the number of
perturbations ``n``, the dimension ``d`` and the observations per condition.

**Model.** Cells are a mixture of ``K`` latent *programs* (cell states) with fixed
weights ``w_c``. In program ``c`` a cell has a latent factor vector
``z ~ N(mu_c + delta_c(g), I_k)`` in ``R^k`` (``k = latent_dim``), and the observation is

    x = g(z) + noise * eps,   eps ~ N(0, I_d),

with ``g`` a random LeakyReLU MLP ``R^k -> R^d`` (``n_layers`` deep, orthogonal layers of
hidden width ``min(d, 128)``, output scaled by ``sqrt(d / k)`` so each coordinate has about the latent's variance;
see :func:`~pairint_jax.synthetic.random_mlp`). The program means are
``mu_c ~ N(0, spread^2 I_k)``; ``delta_c(g)`` is what condition ``g`` does to program ``c``.

**Perturbations and programs.** Each perturbation targets exactly one program:

* ``n_modules`` modules of ``module_size`` perturbations each (a seeded random
  assignment) share one *module program* per module;
* the remaining ``n - n_modules * module_size`` perturbations are *loners*, each with a
  private program;
* program 0 is a baseline that nothing targets.

So ``K = 1 + n_modules + n_loners``. Weights: ``baseline_weight`` for program 0,
``loner_weight`` split equally among the loner programs, and the rest split equally
among the module programs (program weights, hence effect sizes, do not shrink as ``n``
grows when only the module size grows, which is the default).

A single ``i`` shifts its program ``c_i`` by ``delta_i = effect * u_i`` (``u_i`` a random
unit vector). A double ``i+j``

* on a program targeted by only one of them applies that one's shift;
* on a program targeted by both (same module) applies
  ``delta_i + delta_j + epistasis * a_ij * v_ij`` with ``v_ij`` a random unit vector and
  ``a_ij ~ U(0.75, 1.25)``, so interaction strengths are graded.

**Truth.** ``i`` and ``j`` truly interact iff they share a program, i.e. belong to the same
module: the truth is block diagonal after sorting by module, a rank-``n_modules``
structure, and the score matrices are roughly low rank with the same blocks (what the
active-discovery code exploits). There are ``n_modules * C(module_size, 2)`` interacting pairs.

**For which scores the truth is exact.** Because the conditions are mixtures over
programs and a non-interacting double changes disjoint programs,

* *disjointedness*: for non-interacting pairs ``1/2 (p_ij + p_0) = 1/2 (p_i + p_j)``
  exactly, so the population ``MMD^2`` is 0 for any kernel and any map ``g``; for
  interacting pairs it is positive (almost surely over the random draws);
* *additivity*: means are linear in the mixture, so for non-interacting pairs
  ``mu_ij - mu_i - mu_j + mu_0 = 0`` exactly, even after the nonlinear ``g`` and the
  noise; for interacting pairs it is non-zero (through the epistatic term and the
  nonlinearity of ``g``). With ``epistasis = 0`` interacting pairs still fail the
  disjointedness null, but their additivity comes only from the curvature of ``g``;
* *separability* asks a different question (do the perturbations act on independent
  latent coordinates of a product distribution, as in D.1.1): its KL identity does not
  hold for mixtures, so non-interacting pairs here do not score zero there. Use D.1.1/D.1.2
  to validate separability.

**Defaults and detectability.** ``n = 20``, 200 observations per condition, ``d = 32``,
``k = 4``: 4 modules of 4 (24 interacting pairs out of 190) and 4 loners; weights 0.1
(baseline), 0.025 per loner, 0.2 per module program; ``effect = 3``, ``epistasis = 10``,
``spread = 1``, ``noise = 0.1``. In our float64 checks at these defaults (3 seeds), the
additivity score and the block-form ``MMD^2`` (RBF, pair median bandwidth) both separated
interacting from non-interacting pairs with AUROC >= 0.998; at ``n = 50`` (4 modules of
10, 180 interacting pairs; 2 seeds) also AUROC >= 0.999. Larger ``n`` with the default 4
modules keeps the module weights, so effect sizes do not shrink; more modules split the
mass and weaken every interaction.

**Sizes.** ``G = 1 + n + P`` conditions (``P = n(n-1)/2`` doubles by default, or a seeded
random fraction with ``double_fraction``), ``N = n_control + (G - 1) * n_per_condition``
rows of dimension ``d``. Sampling is one jit-compiled call over all rows at once (each row
gathers its condition's parameters); the map ``g`` runs over chunks of ``rows_per_chunk`` rows
(``lax.map``) so the working memory of its hidden layers stays bounded.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, positive_int, renamed_keywords
from pairint_jax.screen import MIN_OBSERVATIONS
from pairint_jax.synthetic._common import (
    Latents,
    build_screen,
    check_real,
    condition_table,
    host_rng,
    pad_name,
    row_groups,
)
from pairint_jax.synthetic._mlp import mlp_apply_chunked, random_mlp

__all__ = ["latent_factor", "LatentFactorModel", "latent_factor_model"]


class LatentFactorModel(NamedTuple):
    """The drawn parameters of a latent-factor screen (host NumPy arrays, float64).

    Attributes:
      program: ``[n]`` int, the program each perturbation targets (1..K-1).
      module: ``[n]`` int, the module of each perturbation, -1 for loners.
      weights: ``[K]`` mixture weights of the programs (program 0 is the baseline).
      means: ``[K, k]`` program means ``mu_c`` in the control.
      shifts: ``[n, k]`` latent shift ``delta_i`` of each single on its program.
      epistasis_amp: ``[n(n-1)/2]`` epistatic amplitude ``epistasis * a_ij`` per pair
        (row-major ``(i, j)``, ``i < j``; used only for pairs sharing a program).
      epistasis_dir: ``[n(n-1)/2, k]`` unit directions ``v_ij``.
      truth: ``[n, n]`` bool, True for pairs sharing a program.
    """

    program: np.ndarray
    module: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    shifts: np.ndarray
    epistasis_amp: np.ndarray
    epistasis_dir: np.ndarray
    truth: np.ndarray


def _default_modules(n: int, n_modules, module_size):
    if n_modules is None:
        n_modules = min(4, n // 2)
    n_modules = positive_int("n_modules", n_modules, minimum=0)
    if module_size is None:
        module_size = max(2, n // (n_modules + 1)) if n_modules else 2
    module_size = positive_int("module_size", module_size, minimum=2)
    if n_modules * module_size > n:
        raise ValueError(
            f"n_modules * module_size = {n_modules} * {module_size} = {n_modules * module_size} exceeds "
            f"n_perturbations = {n}; use fewer or smaller modules."
        )
    return n_modules, module_size


def latent_factor_model(
    key,
    n_perturbations: int = 20,
    *,
    latent_dim: int = 4,
    n_modules: int | None = None,
    module_size: int | None = None,
    effect: float = 3.0,
    epistasis: float = 10.0,
    spread: float = 1.0,
    baseline_weight: float = 0.1,
    loner_weight: float = 0.1,
) -> LatentFactorModel:
    """Draw the programs, modules, shifts and epistatic terms (host side, no data).

    Args: as in :func:`latent_factor`.

    Returns:
      A :class:`LatentFactorModel`.
    """
    n = positive_int("n_perturbations", n_perturbations, minimum=MIN_OBSERVATIONS)
    k = positive_int("latent_dim", latent_dim)
    n_modules, module_size = _default_modules(n, n_modules, module_size)
    effect = check_real("effect", effect, low=0.0)
    epistasis = check_real("epistasis", epistasis, low=0.0)
    spread = check_real("spread", spread, low=0.0)
    baseline_weight = check_real("baseline_weight", baseline_weight, low=0.0, high=1.0)
    loner_weight = check_real("loner_weight", loner_weight, low=0.0, high=1.0)
    n_in_modules = n_modules * module_size
    n_loners = n - n_in_modules
    if baseline_weight + (loner_weight if n_loners and n_modules else 0.0) >= 1.0:
        raise ValueError(
            f"baseline_weight + loner_weight = {baseline_weight + loner_weight} leaves no mass for the "
            "module programs; keep their sum below 1."
        )
    n_programs = 1 + n_modules + n_loners
    rng = host_rng(key)
    perm = rng.permutation(n)
    mu = rng.standard_normal((n_programs, k))
    u = rng.standard_normal((n, k))
    n_pairs = n * (n - 1) // 2
    a = rng.uniform(0.75, 1.25, n_pairs)
    v = rng.standard_normal((n_pairs, k))
    module = np.full(n, -1, np.int64)
    module[perm[:n_in_modules]] = np.arange(n_in_modules) // module_size
    program = np.empty(n, np.int64)
    program[perm[:n_in_modules]] = 1 + module[perm[:n_in_modules]]
    program[perm[n_in_modules:]] = 1 + n_modules + np.arange(n_loners)
    rest = 1.0 - baseline_weight
    if n_modules and n_loners:
        w_loner, w_module = loner_weight / n_loners, (rest - loner_weight) / n_modules
    elif n_modules:
        w_loner, w_module = 0.0, rest / n_modules
    else:
        w_loner, w_module = rest / n_loners, 0.0
    weights = np.concatenate([[baseline_weight], np.full(n_modules, w_module), np.full(n_loners, w_loner)])
    means = spread * mu
    shifts = effect * u / np.linalg.norm(u, axis=1, keepdims=True)
    amp = epistasis * a
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    truth = (program[:, None] == program[None, :]) & ~np.eye(n, dtype=bool)
    return LatentFactorModel(
        program=program,
        module=module,
        weights=weights,
        means=means,
        shifts=shifts,
        epistasis_amp=amp,
        epistasis_dir=v,
        truth=truth,
    )


def _pair_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Row-major index of pair ``(i, j)``, ``i < j``, among the ``n(n-1)/2`` pairs."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def _condition_effects(model: LatentFactorModel, doubles: np.ndarray):
    """Per condition (control, singles, doubles): two (program, shift) slots.

    Returns ``prog [G, 2]`` (-1 = empty slot) and ``shift [G, 2, k]``.
    """
    n, k = model.shifts.shape
    g = 1 + n + len(doubles)
    prog = np.full((g, 2), -1, np.int64)
    shift = np.zeros((g, 2, k), np.float64)
    prog[1 : n + 1, 0] = model.program
    shift[1 : n + 1, 0] = model.shifts
    if len(doubles):
        i, j = doubles[:, 0], doubles[:, 1]
        rows = np.arange(n + 1, g)
        same = model.program[i] == model.program[j]
        eps = model.epistasis_amp[_pair_index(i, j, n), None] * model.epistasis_dir[_pair_index(i, j, n)]
        prog[rows, 0] = model.program[i]
        shift[rows, 0] = model.shifts[i] + np.where(same[:, None], model.shifts[j] + eps, 0.0)
        prog[rows, 1] = np.where(same, -1, model.program[j])
        shift[rows, 1] = np.where(same[:, None], 0.0, model.shifts[j])
    return prog, shift


@functools.partial(jax.jit, static_argnames=("n_control", "n_per_condition", "rows_per_chunk"))
def _sample(key, mixing, log_w, means, prog, shift, noise, *, n_control, n_per_condition, rows_per_chunk):
    k = means.shape[1]
    d = mixing.weights[-1].shape[0]
    gid = row_groups(prog.shape[0], n_control, n_per_condition)
    n = gid.shape[0]
    kc, kz, kn = jax.random.split(key, 3)
    c = jax.random.categorical(kc, log_w, shape=(n,))
    hit = (c[:, None] == prog[gid]).astype(shift.dtype)  # [N, 2]: the row's program is in slot t
    z = means[c] + jax.random.normal(kz, (n, k)) + jnp.sum(hit[:, :, None] * shift[gid], axis=1)
    x = mlp_apply_chunked(mixing, z, rows_per_chunk) + noise * jax.random.normal(kn, (n, d))
    return x, z, c


@renamed_keywords(chunk_size="rows_per_chunk")
def latent_factor(
    key,
    n_perturbations: int = 20,
    *,
    n_per_condition: int = 200,
    n_control: int | None = None,
    dim: int = 32,
    latent_dim: int = 4,
    n_modules: int | None = None,
    module_size: int | None = None,
    effect: float = 3.0,
    epistasis: float = 10.0,
    spread: float = 1.0,
    baseline_weight: float = 0.1,
    loner_weight: float = 0.1,
    noise: float = 0.1,
    n_layers: int = 3,
    hidden_dim: int | None = None,
    negative_slope: float = 0.5,
    double_fraction: float = 1.0,
    rows_per_chunk: int = 65536,
    names: list[str] | None = None,
    map_key=None,
    return_latents: bool = False,
    return_model: bool = False,
):
    """A latent-factor screen: a mixture of programs, modules of interacting perturbations.

    See the module docstring for the model. Per observation of condition ``g``::

        c ~ Categorical(w)
        z ~ N(mu_c + delta_c(g), I_k)
        x = g(z) + noise * N(0, I_d)

    Args:
      key: JAX PRNG key (or int seed). Same key, same screen (model, map and data).
      n_perturbations: ``n`` (>= 2). Names ``P00, P01, ...`` unless ``names=`` is given.
      n_per_condition: observations per single and double (static).
      n_control: control observations (static); default ``n_per_condition``.
      dim: observation dimension ``d`` (static).
      latent_dim: factor dimension ``k`` (static).
      n_modules: modules of interacting perturbations; default ``min(4, n // 2)``.
      module_size: perturbations per module (>= 2); default ``max(2, n // (n_modules + 1))``
        (4 for ``n = 20``: 16 perturbations in modules, 4 loners, 24 interacting pairs).
      effect: norm of a single's latent shift (latent noise has unit variance).
      epistasis: scale of the epistatic shift of interacting doubles (0 allowed).
      spread: standard deviation of the program means.
      baseline_weight: weight of the untargeted program 0.
      loner_weight: total weight of the loners' private programs.
      noise: standard deviation of the isotropic observation noise.
      n_layers: depth of ``g``.
      hidden_dim: hidden width of ``g``; default ``min(dim, max(128, latent_dim))`` so that
        large ``dim`` stays cheap (``g`` stays injective whenever ``dim >= latent_dim``).
      negative_slope: LeakyReLU slope of ``g``.
      double_fraction: fraction of the ``n(n-1)/2`` doubles to generate, chosen at random
        from ``key`` (default 1: all doubles). The truth covers all pairs regardless.
      rows_per_chunk: rows pushed through ``g`` per chunk (static; formerly ``chunk_size``);
        bounds working memory.
      names: optional ``n`` perturbation names.
      map_key: optional key for ``g`` alone; default: derived from ``key``.
      return_latents: also return :class:`~pairint_jax.synthetic.Latents` with ``z [N, k]``,
        ``component [N]`` (the program) and ``mixing``.
      return_model: also return the :class:`LatentFactorModel` (after the latents, if both).

    Returns:
      ``(screen, truth)`` (+ ``latents``, + ``model``): ``screen.x`` is ``[N, d]`` float32;
      ``truth`` ``[n, n]`` bool, True for pairs in the same module.

    Example:
      >>> screen, truth = latent_factor(jax.random.key(0), 6, n_per_condition=20, dim=8)
      >>> screen.x.shape, screen.n_perturbations, int(truth.sum()) // 2
      ((440, 8), 6, 3)
    """
    key = as_key(key, default_seed=None)
    n = positive_int("n_perturbations", n_perturbations, minimum=MIN_OBSERVATIONS)
    n_per_condition = positive_int("n_per_condition", n_per_condition, minimum=MIN_OBSERVATIONS)
    n_control = n_per_condition if n_control is None else positive_int("n_control", n_control, minimum=MIN_OBSERVATIONS)
    dim = positive_int("dim", dim)
    latent_dim = positive_int("latent_dim", latent_dim)
    n_layers = positive_int("n_layers", n_layers)
    rows_per_chunk = positive_int("rows_per_chunk", rows_per_chunk)
    noise = check_real("noise", noise, low=0.0)
    double_fraction = check_real("double_fraction", double_fraction, low=0.0, high=1.0, open_low=True)
    if names is None:
        names = [pad_name(i, n) for i in range(n)]
    else:
        names = [str(s) for s in names]
        if len(names) != n or len(set(names)) != n:
            raise ValueError(
                f"names must be {n} distinct perturbation names, got {len(names)} ({len(set(names))} distinct)."
            )
    k_model, k_map, k_pick, k_data = jax.random.split(key, 4)
    if map_key is not None:
        k_map = as_key(map_key, name="map_key")
    model = latent_factor_model(
        k_model,
        n,
        latent_dim=latent_dim,
        n_modules=n_modules,
        module_size=module_size,
        effect=effect,
        epistasis=epistasis,
        spread=spread,
        baseline_weight=baseline_weight,
        loner_weight=loner_weight,
    )
    iu, ju = np.triu_indices(n, k=1)
    doubles = np.stack([iu, ju], axis=1)
    if double_fraction < 1.0:
        n_keep = max(1, int(round(double_fraction * len(doubles))))
        keep = np.sort(host_rng(k_pick).permutation(len(doubles))[:n_keep])
        doubles = doubles[keep]
    prog, shift = _condition_effects(model, doubles)
    labels, _ = condition_table(names, [tuple(p) for p in doubles])
    if hidden_dim is None:
        hidden_dim = min(dim, max(128, latent_dim))
    hidden_dim = positive_int("hidden_dim", hidden_dim)
    mixing = random_mlp(
        k_map,
        latent_dim,
        dim,
        n_layers=n_layers,
        hidden_dim=hidden_dim,
        negative_slope=negative_slope,
        scale=float(np.sqrt(dim / latent_dim)),
    )
    weights = model.weights
    log_w = np.where(weights > 0, np.log(np.maximum(weights, 1e-300)), -np.inf)
    x, z, c = _sample(
        k_data,
        mixing,
        jnp.asarray(log_w, jnp.float32),
        jnp.asarray(model.means, jnp.float32),
        jnp.asarray(prog, jnp.int32),
        jnp.asarray(shift, jnp.float32),
        jnp.float32(noise),
        n_control=n_control,
        n_per_condition=n_per_condition,
        rows_per_chunk=rows_per_chunk,
    )
    screen = build_screen(x, labels, n_control, n_per_condition, names)
    out = (screen, model.truth.copy())
    if return_latents:
        out += (Latents(z=np.asarray(z), component=np.asarray(c), mixing=mixing),)
    if return_model:
        out += (model,)
    return out
