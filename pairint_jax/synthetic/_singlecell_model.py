"""The drawn parameters and the truth of a Perturb-seq-like screen (host NumPy, float64).

Everything here is small (``[n_conditions, n_genes]`` at most) and drawn once per screen on
the host from the generator's key; the counts themselves are sampled in JAX
(:mod:`pairint_jax.synthetic.singlecell`). See :func:`~pairint_jax.synthetic.perturbseq`
for the model.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

__all__ = ["KINDS", "COEFFICIENTS", "DEFAULT_KINDS", "PerturbseqTruth"]

#: Interaction kinds, in the order the planted pairs are assigned.
KINDS = ("synergy", "buffering", "epistasis", "suppression", "neomorphic")
#: ``(c1, c2)`` of each kind in ``delta_ab = c1 delta_a + c2 delta_b`` (programme part; the
#: neomorphic double adds a new programme on top). For epistasis and suppression the
#: surviving single is drawn at random, so the truth may list ``(0, 1)``/``(0, 0.2)``.
COEFFICIENTS = {
    "additive": (1.0, 1.0),
    "synergy": (2.0, 2.0),
    "buffering": (0.4, 0.4),
    "epistasis": (1.0, 0.0),
    "suppression": (0.2, 0.0),
    "neomorphic": (0.5, 0.5),
}
#: Planted pairs per kind at the defaults: 6 interactions among 40 doubles.
DEFAULT_KINDS = {"synergy": 2, "buffering": 1, "epistasis": 1, "suppression": 1, "neomorphic": 1}


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not truths
class PerturbseqTruth:
    """What :func:`~pairint_jax.synthetic.perturbseq` planted, row-aligned with its AnnData.

    All shifts are natural-log fold changes of the *per-cell mean* count of a cell in which
    the perturbation works (not escaping), before library size and nuisance.

    Attributes:
      pairs: one row per double (``n_double`` rows, in condition order) with columns
        ``a``, ``b`` (single names, ``a`` listed first), ``label`` (``"a+b"``), ``kind``
        (``"additive"`` or one of :data:`KINDS`), ``c1``, ``c2`` (the exact coefficients of
        ``delta_ab = c1 delta_a + c2 delta_b`` on every gene but the two targets),
        ``interacting`` (``kind != "additive"``) and ``poor_fit`` (True for neomorphic).
      perturbations: ``[n_single]`` single names (each the name of its target gene).
      conditions: ``[n_conditions]`` labels: ``ctrl``, the singles, the doubles.
      log_fold_change: ``[n_conditions, n_genes]`` the full shift of each condition
        (programmes, knock-downs, neomorphic programme); row 0 (control) is 0.
      programmes: ``[n_single, n_genes]`` each single's programme (knock-down excluded).
      targets: ``[n_single]`` gene index each single knocks down.
      knockdown: ``[n_single]`` log fold change of each target (``log(1 - knockdown)``).
      neomorphic: ``[n_double, n_genes]`` the new programme of each neomorphic double (0 else).
      base_log_mean: ``[n_genes]`` log of each gene's share of the library (sums to 1 in
        the control, ``logsumexp = 0``).
      theta: ``[n_genes]`` negative-binomial size; ``Var = mu + mu^2 / theta``.
      nuisance_loadings: ``[2, n_genes]`` the cell-cycle-like programme: a cell with
        phase ``phi`` gets ``cos(phi) L[0] + sin(phi) L[1]`` added to its log-means.
      group: ``[N]`` condition index of every cell (into ``conditions``).
      library_size: ``[N]`` the cell's library size (a log-normal draw).
      escaped: ``[N]`` bool, True where the cell's perturbation(s) had no effect.
      phase: ``[N]`` nuisance phase in ``[0, 2 pi)``.
      escape: the escape probability of a perturbed cell.
    """

    pairs: pd.DataFrame
    perturbations: tuple[str, ...]
    conditions: tuple[str, ...]
    log_fold_change: np.ndarray
    programmes: np.ndarray
    targets: np.ndarray
    knockdown: np.ndarray
    neomorphic: np.ndarray
    base_log_mean: np.ndarray
    theta: np.ndarray
    nuisance_loadings: np.ndarray
    group: np.ndarray
    library_size: np.ndarray
    escaped: np.ndarray
    phase: np.ndarray
    escape: float

    def log_mean(self, rows=None) -> np.ndarray:
        """``[len(rows), n_genes]`` float64 log of the negative-binomial mean of each cell.

        ``log mu = log library + base_log_mean + (not escaped) * log_fold_change[group]
        + cos(phase) L[0] + sin(phase) L[1]``: the exact mean the counts were drawn with.

        Args:
          rows: cell indices (default: all ``N`` cells; ``N x n_genes`` floats, so select).
        """
        rows = np.arange(self.group.shape[0]) if rows is None else np.asarray(rows)
        lfc = np.where(self.escaped[rows, None], 0.0, self.log_fold_change[self.group[rows]])
        nuis = np.cos(self.phase[rows])[:, None] * self.nuisance_loadings[0] + np.sin(self.phase[rows])[
            :, None
        ] * self.nuisance_loadings[1]
        return np.log(self.library_size[rows])[:, None] + self.base_log_mean + lfc + nuis

    def expected_shift(self, label: str) -> np.ndarray:
        """``[n_genes]`` the condition's mean log-mean shift over its cells: ``(1 - escape) * lfc``.

        A whole cell escapes (all its guides fail together), so every condition's expected
        shift is the same fraction of its programme and the ``(c1, c2)`` of :attr:`pairs`
        hold for these expected shifts too.
        """
        return (1.0 - self.escape) * self.log_fold_change[self.conditions.index(label)]


def _signed_effects(rng, size, effect):
    """``size`` log fold changes with random sign and magnitude ``effect * U(0.5, 1.5)``."""
    return rng.choice([-1.0, 1.0], size) * effect * rng.uniform(0.5, 1.5, size)


def draw_genes(rng, n_genes, *, expression_sd, dispersion, dispersion_sd, nuisance, nuisance_size):
    """Base log-shares ``[n_genes]``, NB sizes ``[n_genes]`` and nuisance loadings ``[2, n_genes]``."""
    raw = expression_sd * rng.standard_normal(n_genes)
    base = raw - (np.log(np.sum(np.exp(raw - raw.max()))) + raw.max())
    theta = 1.0 / (dispersion * np.exp(dispersion_sd * rng.standard_normal(n_genes)))
    loadings = np.zeros((2, n_genes))
    genes = rng.choice(n_genes, nuisance_size, replace=False)
    loadings[:, genes] = nuisance * rng.standard_normal((2, nuisance_size))
    return base, theta, loadings


def draw_singles(rng, base, n_single, *, programme_size, effect, knockdown, disjoint=False):
    """Targets ``[n]`` (among the better-expressed half of genes) and programmes ``[n, n_genes]``.

    With ``disjoint``, the programmes are consecutive blocks of one random permutation of the
    non-target genes (no gene in two programmes); otherwise each is drawn independently.
    """
    n_genes = base.shape[0]
    expressed = np.argsort(-base)[: max(n_single, n_genes // 2)]
    targets = np.sort(rng.choice(expressed, n_single, replace=False))  # names sort like indices
    programmes = np.zeros((n_single, n_genes))
    others = np.setdiff1d(np.arange(n_genes), targets)  # programmes never touch a target
    blocks = rng.permutation(others)[: n_single * programme_size].reshape(n_single, -1) if disjoint else None
    for i in range(n_single):  # host loop over singles (not pairs): tiny draws
        genes = blocks[i] if disjoint else rng.choice(others, programme_size, replace=False)
        programmes[i, genes] = _signed_effects(rng, programme_size, effect)
    kd = np.full(n_single, np.log1p(-knockdown))
    return targets, programmes, kd


def draw_doubles(rng, n_single, n_double, kinds):
    """``n_double`` distinct pairs ``(i, j)``, ``i < j``, sorted, and the kind of each."""
    every = list(itertools.combinations(range(n_single), 2))
    chosen = sorted(every[k] for k in rng.choice(len(every), n_double, replace=False))
    planted = [k for k in KINDS for _ in range(kinds.get(k, 0))]
    kind = np.array(["additive"] * n_double, dtype=object)
    kind[rng.choice(n_double, len(planted), replace=False)] = planted
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2), kind


def double_shifts(rng, doubles, kind, programmes, targets, kd, *, programme_size, effect, coefficients):
    """Coefficients ``[P, 2]``, neomorphic programmes ``[P, n_genes]`` and shifts ``[P, n_genes]``."""
    n_genes = programmes.shape[1]
    coef = np.array([coefficients[k] for k in kind], dtype=np.float64).reshape(-1, 2)
    flip = np.array([k in ("epistasis", "suppression") for k in kind]) & (rng.random(len(kind)) < 0.5)
    coef[flip] = coef[flip, ::-1]  # which single survives is random
    neo = np.zeros((len(kind), n_genes))
    for p in np.flatnonzero(kind == "neomorphic"):  # host loop over the few neomorphic pairs only
        i, j = doubles[p]
        used = (programmes[i] != 0) | (programmes[j] != 0)
        used[targets] = True
        genes = rng.choice(np.flatnonzero(~used), programme_size, replace=False)
        neo[p, genes] = _signed_effects(rng, programme_size, effect)
    i, j = doubles[:, 0], doubles[:, 1]
    onehot = np.eye(n_genes)
    shift = coef[:, :1] * programmes[i] + coef[:, 1:] * programmes[j] + neo
    shift += kd[i, None] * onehot[targets[i]] + kd[j, None] * onehot[targets[j]]
    return coef, neo, shift


def pairs_frame(names, doubles, kind, coef) -> pd.DataFrame:
    """The tidy truth table: one row per double."""
    a = [names[i] for i in doubles[:, 0]]
    b = [names[j] for j in doubles[:, 1]]
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "label": [f"{x}+{y}" for x, y in zip(a, b)],
            "kind": pd.Categorical(kind, categories=("additive", *KINDS)),
            "c1": coef[:, 0],
            "c2": coef[:, 1],
            "interacting": kind != "additive",
            "poor_fit": kind == "neomorphic",
        }
    )
