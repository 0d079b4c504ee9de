"""Shared plumbing of the synthetic generators: keys, condition lists, screens, truth.

Every generator follows the same recipe:

1. list the conditions on the host (control, singles, doubles in the canonical
   :class:`~pairint_jax.screen.Screen` order) and encode what each condition does as
   small per-condition arrays (``[G, ...]``);
2. sample all observations in one jit-compiled call with static sizes
   (``n_control``, ``n_per_condition``): every row gathers its condition's parameters,
   so there is no Python loop over conditions or samples; small model parameters
   (random maps, module assignments) are drawn on the host from the same key;
3. assemble the :class:`Screen` with :meth:`Screen.from_arrays` and return it with the
   boolean ``[n, n]`` truth matrix.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key
from pairint_jax.screen import Screen

CONTROL = "ctrl"
SEP = "+"


class Latents(NamedTuple):
    """The hidden variables behind a synthetic screen, row-aligned with ``screen.x``.

    Attributes:
      z: ``[N, k]`` latent values (``k = 1`` for the D.1.3 mixture).
      component: ``[N]`` int mixture component (D.1.3) or program (latent factor);
        ``None`` for generators without a mixture.
      position: ``[N, 3, 2]`` ball centres ``(row, col)`` in pixels (balls only).
      mixing: the random map ``g`` (:class:`~pairint_jax.synthetic.MixingMLP`), or
        ``None`` where there is none (balls are rendered).
    """

    z: np.ndarray
    component: np.ndarray | None = None
    position: np.ndarray | None = None
    mixing: object | None = None


def host_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by the bits of a JAX key, for small host-side draws.

    Model parameters (random maps, module assignments) are tiny and drawn once per
    screen; drawing them on the host avoids compiling a JAX program per shape.
    """
    bits = jax.random.key_data(as_key(key, default_seed=None))
    return np.random.default_rng(np.asarray(bits, dtype=np.uint32).reshape(-1).tolist())


def check_real(name: str, value, *, low: float | None = None, high: float | None = None, open_low=False) -> float:
    """A finite real hyperparameter within bounds."""
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number, got {value!r}.") from err
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if low is not None and (v < low or (open_low and v == low)):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low}, got {value!r}.")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}.")
    return v


def all_doubles(n: int) -> list[tuple[int, int]]:
    """Every unordered pair ``(i, j)``, ``i < j``, in row-major order."""
    return list(itertools.combinations(range(n), 2))


def condition_table(perturbations: Sequence[str], doubles: Sequence[tuple[int, int]]):
    """Labels and member tuples of control, singles and doubles, in canonical order.

    Returns:
      ``(labels, members)``: ``G = 1 + n + len(doubles)`` labels (``ctrl``, ``A``, ...,
      ``A+B``, ...) and member tuples (``()``, ``(i,)``, ``(i, j)``).
    """
    doubles = sorted((min(i, j), max(i, j)) for i, j in doubles)
    members = [()] + [(i,) for i in range(len(perturbations))] + [tuple(p) for p in doubles]
    labels = [CONTROL] + list(perturbations) + [perturbations[i] + SEP + perturbations[j] for i, j in doubles]
    return labels, members


def build_screen(x, labels: Sequence[str], n_control: int, n_per_condition: int, perturbations) -> Screen:
    """Assemble a :class:`Screen` from rows generated in canonical condition order."""
    counts = np.full(len(labels), n_per_condition, dtype=np.int64)
    counts[0] = n_control
    row_labels = np.repeat(np.asarray(labels, dtype=object), counts)
    screen = Screen.from_arrays(
        np.asarray(x), row_labels, control=CONTROL, sep=SEP, perturbations=tuple(perturbations), warn=False
    )
    if screen.conditions != tuple(labels):  # pragma: no cover - guards the row alignment of latents
        raise RuntimeError("internal error: synthetic conditions were not generated in canonical order.")
    return screen


def row_groups(n_groups: int, n_control: int, n_per_condition: int) -> jax.Array:
    """``[N]`` int32 condition of every row: ``n_control`` zeros, then ``n_per_condition`` per condition."""
    rest = jnp.arange((n_groups - 1) * n_per_condition, dtype=jnp.int32) // n_per_condition
    return jnp.concatenate([jnp.zeros(n_control, jnp.int32), 1 + rest])


def truth_from_targets(targets: Sequence[frozenset]) -> np.ndarray:
    """``[n, n]`` bool: True where two perturbations share a target (diagonal False)."""
    universe = sorted(set().union(*targets)) if len(targets) else []
    col = {t: c for c, t in enumerate(universe)}
    incidence = np.zeros((len(targets), len(universe)), dtype=np.int64)
    for i, tg in enumerate(targets):
        incidence[i, [col[t] for t in tg]] = 1
    truth = (incidence @ incidence.T) > 0
    np.fill_diagonal(truth, False)
    return truth


def pad_name(i: int, n: int, prefix: str = "P") -> str:
    """``P00``, ``P01``, ...: names that sort in index order."""
    return f"{prefix}{i:0{max(2, len(str(n - 1)))}d}"
