"""A Perturb-seq-like AnnData of raw counts with planted genetic interactions of known kind.

Our own design (not in the paper), for the additive-null test, the interaction types and
notebook 06. It mimics a single-cell CRISPR screen (Norman et al. 2019) closely enough to
exercise the whole AnnData path: raw negative-binomial counts in a sparse ``X``, per-cell
library sizes, knocked-down targets, escaping cells and a nuisance programme shared by all
cells, and doubles that are additive in log-expression except for planted interactions.

**Model.** Gene ``g`` of cell ``c`` in condition ``k`` is drawn as

    x_cg ~ NegBinomial(mean mu_cg, size theta_g)    (gamma-Poisson: Var = mu + mu^2 / theta_g)
    log mu_cg = log L_c + b_g + (1 - e_c) delta_kg + cos(phi_c) u_g + sin(phi_c) v_g

* ``b_g`` - each gene's log share of the library, ``b = log softmax(N(0, expression_sd^2))``;
* ``theta_g`` - per-gene size, ``1 / theta_g = dispersion * exp(dispersion_sd * N(0, 1))``;
* ``L_c = library_size * exp(library_sd * N(0, 1))`` - log-normal library size;
* ``phi_c ~ U(0, 2 pi)`` and ``(u, v)`` - a cell-cycle-like nuisance programme on
  ``nuisance_size`` genes (loadings ``nuisance * N(0, 1)``), in every cell, control included;
* ``e_c ~ Bernoulli(escape)`` for perturbed cells - an *escaping* cell shows no effect at
  all (all its guides fail together, so the expected shift of every condition is
  ``(1 - escape) delta_k`` and the coefficients below hold for the expected shifts too);
* ``delta_k`` - the condition's log fold change (0 for the control).

**Singles.** Single ``i`` knocks down its target gene (log fold change ``log(1 - knockdown)``;
targets are drawn among the better-expressed half of the genes and named after the
perturbation) and moves a programme of ``programme_size`` other genes by
``± effect * U(0.5, 1.5)`` each (random signs; programmes never include a target). Programmes
may overlap unless ``disjoint_programmes=True``, which makes additive doubles additive in
``log1p`` of normalised counts too (see :func:`perturbseq`).

**Doubles.** A double ``a+b`` keeps both knock-downs and moves the programmes by
``c1 delta_a + c2 delta_b`` (Norman 2019 / GEARS: ``delta_ab ~ c1 delta_a + c2 delta_b``),
exactly on every gene but the two targets:

=============  ============  ==============================================================
 kind           (c1, c2)      what the double does
=============  ============  ==============================================================
 additive       (1, 1)        the sum of the singles' shifts (the genetic-interaction null)
 synergy        (2, 2)        more than additive: magnitude ``sqrt(c1^2+c2^2)`` 2.8 vs 1.4
 buffering      (0.4, 0.4)    less than additive, both singles contribute equally
 epistasis      (1, 0)        the double *is* one single (that one dominates; which is random)
 suppression    (0.2, 0)      one single is cancelled and the other shrunk to 0.2: the double
                              is far below either single's own effect (unlike epistasis, where
                              one survives whole, and buffering, where both do, reduced)
 neomorphic     (0.5, 0.5)    half the additive shift plus a *new* programme on
                              ``programme_size`` genes outside both singles' programmes: the
                              linear model fits poorly (R^2 about 1/3 on the true shifts)
=============  ============  ==============================================================

Only neomorphic pairs have a poor model fit; every other kind is fitted exactly. The truth
lists ``(c1, c2)`` in the order of its ``a``, ``b`` columns, so an epistatic pair dominated
by ``b`` reads ``(0, 1)``. Override the values with ``coefficients=``.

**Sizes and speed.** ``N = n_control + (n_single + n_double) * cells_per_group`` cells. The
model is drawn on the host from ``key`` and the counts are sampled with NumPy streams
seeded from ``key`` (deterministic), ``rows_per_chunk`` cells at a time, each chunk going
straight into CSR; the counts do not depend on the chunking. NumPy, not JAX, because JAX's
rejection samplers for the gamma and the Poisson are an order of magnitude slower on a CPU
(about 30 s against 3 s at the defaults: 2,000 genes, 12,200 cells, about half the
entries non-zero). This is a data generator, not a hot path of the scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import numpy as np
import scipy.sparse as sp

from pairint_jax._validate import as_key, float_in_range, positive_float, positive_int
from pairint_jax.screen import MIN_OBSERVATIONS
from pairint_jax.synthetic import _singlecell_model as model
from pairint_jax.synthetic._common import CONTROL, condition_table, host_rng
from pairint_jax.synthetic._singlecell_model import COEFFICIENTS, DEFAULT_KINDS, KINDS, PerturbseqTruth

__all__ = ["perturbseq", "PerturbseqTruth", "KINDS", "COEFFICIENTS", "DEFAULT_KINDS"]


def _sample_csr(key, truth: PerturbseqTruth, rows_per_chunk: int) -> sp.csr_matrix:
    """``[N, n_genes]`` float32 gamma-Poisson counts, ``rows_per_chunk`` cells at a time, as CSR.

    Two NumPy streams seeded from ``key`` (gamma, Poisson) are consumed in cell order, so
    the counts do not depend on the chunking.
    """
    k_gamma, k_poisson = jax.random.split(key)
    rng_gamma, rng_poisson = host_rng(k_gamma), host_rng(k_poisson)
    n = truth.group.shape[0]
    blocks = []
    for start in range(0, n, rows_per_chunk):  # host loop over chunks of cells: bounded memory
        rows = np.arange(start, min(start + rows_per_chunk, n))
        mu = np.exp(truth.log_mean(rows))
        rate = mu * rng_gamma.gamma(truth.theta, 1.0 / truth.theta, size=mu.shape)
        blocks.append(sp.csr_matrix(rng_poisson.poisson(rate).astype(np.float32)))
    return sp.vstack(blocks, format="csr")


def _check_kinds(kinds, n_double: int) -> dict[str, int]:
    kinds = dict(DEFAULT_KINDS) if kinds is None else kinds
    if not isinstance(kinds, Mapping):
        raise TypeError(f"kinds must be a dict kind -> count (kinds: {', '.join(KINDS)}), got {type(kinds).__name__}.")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds: unknown kind(s) {unknown}; choose from {', '.join(KINDS)}.")
    out = {k: positive_int(f"kinds[{k!r}]", v, minimum=0) for k, v in kinds.items()}
    if sum(out.values()) > n_double:
        raise ValueError(
            f"kinds: {sum(out.values())} planted interactions do not fit in n_double={n_double} doubles; "
            "plant fewer or ask for more doubles."
        )
    return out


def _check_coefficients(coefficients) -> dict[str, tuple[float, float]]:
    out = dict(COEFFICIENTS)
    if coefficients is None:
        return out
    if not isinstance(coefficients, Mapping):
        raise TypeError(f"coefficients must be a dict kind -> (c1, c2), got {type(coefficients).__name__}.")
    for k, c in coefficients.items():
        if k not in KINDS:
            raise ValueError(f"coefficients: unknown kind {k!r}; choose from {', '.join(KINDS)} (additive is (1, 1)).")
        if not (isinstance(c, (tuple, list)) and len(c) == 2):
            raise ValueError(f"coefficients[{k!r}] must be a pair (c1, c2), got {c!r}.")
        out[k] = tuple(float_in_range(f"coefficients[{k!r}][{t}]", v) for t, v in enumerate(c))
    return out


def _check_sizes(n_genes, n_single, n_double, programme_size, nuisance_size, disjoint):
    n_single = positive_int("n_single", n_single, minimum=2)
    n_double = positive_int("n_double", n_double)
    if n_double > math.comb(n_single, 2):
        raise ValueError(
            f"n_double={n_double} exceeds the {math.comb(n_single, 2)} pairs of n_single={n_single} perturbations."
        )
    programme_size = positive_int("programme_size", programme_size)
    n_genes = positive_int("n_genes", n_genes, minimum=2)
    need = n_single + 3 * programme_size
    if n_genes < need:
        raise ValueError(
            f"n_genes={n_genes} is too small: it must be >= n_single + 3 * programme_size = {need} "
            "(targets, two singles' programmes and a neomorphic programme must fit side by side)."
        )
    if disjoint and n_genes < n_single * (1 + programme_size):
        raise ValueError(
            f"n_genes={n_genes} is too small for disjoint_programmes=True: it must be >= n_single * "
            f"(1 + programme_size) = {n_single * (1 + programme_size)} (a target and a programme of its own per "
            "single); ask for more genes, fewer singles or smaller programmes, or pass disjoint_programmes=False."
        )
    nuisance_size = positive_int("nuisance_size", nuisance_size, minimum=0)
    if nuisance_size > n_genes:
        raise ValueError(f"nuisance_size={nuisance_size} exceeds n_genes={n_genes}.")
    return n_genes, n_single, n_double, programme_size, nuisance_size


def perturbseq(
    key,
    *,
    n_genes: int = 2000,
    n_single: int = 20,
    n_double: int = 40,
    cells_per_group: int = 200,
    n_control: int | None = None,
    kinds: Mapping[str, int] | None = None,
    coefficients: Mapping[str, tuple[float, float]] | None = None,
    programme_size: int = 50,
    disjoint_programmes: bool = False,
    effect: float = 1.0,
    knockdown: float = 0.8,
    escape: float = 0.1,
    library_size: float = 5000.0,
    library_sd: float = 0.3,
    expression_sd: float = 1.5,
    dispersion: float = 0.2,
    dispersion_sd: float = 0.5,
    nuisance: float = 0.5,
    nuisance_size: int = 100,
    rows_per_chunk: int = 2048,
):
    """A Perturb-seq-like AnnData of raw counts and the interactions planted in it.

    See the module docstring for the model and the table of kinds and ``(c1, c2)``.

    Args:
      key: JAX PRNG key (or int seed). Same key, same AnnData and truth.
      n_genes: genes (``var``); default 2,000.
      n_single: perturbations, each measured alone (>= 2); default 20.
      n_double: doubles, a seeded random subset of the ``n_single (n_single - 1) / 2`` pairs.
      cells_per_group: cells per single and per double (>= 2); default 200.
      n_control: control cells; default ``cells_per_group``.
      kinds: planted pairs per kind, a dict over :data:`KINDS`; default
        :data:`DEFAULT_KINDS` (2 synergy and one of each other kind); ``{}`` makes every
        double additive. The kinds go to random doubles.
      coefficients: override ``(c1, c2)`` per kind (default :data:`COEFFICIENTS`).
      programme_size: genes in each single's (and each neomorphic) programme.
      disjoint_programmes: give the singles non-overlapping programmes (default False:
        each programme is drawn independently, so two may share genes). With overlaps, a
        double that is additive in log-mean is *not* additive after normalisation and
        ``log1p`` (Jensen: ``E log1p(e^(a+b) y) != E log1p(e^a y) + E log1p(e^b y) -
        E log1p(y)`` on a gene both singles move), so an additive-null test rightly rejects
        it. With disjoint programmes every gene is moved by at most one single of a pair, the
        double's distribution of each gene equals that single's, and the additive doubles
        stay additive in ``log1p`` of normalised counts up to the small change of each
        cell's total count that normalisation divides by. Use it to measure the level of
        a test in that representation. Needs ``n_genes >= n_single * (1 + programme_size)``.
      effect: programme log fold changes are ``± effect * U(0.5, 1.5)``.
      knockdown: fraction of the target's mRNA removed, in ``[0, 1)``; default 0.8.
      escape: probability that a perturbed cell shows no effect, in ``[0, 1)``.
      library_size: median library size (the library is log-normal around it).
      library_sd: standard deviation of the log library size.
      expression_sd: spread of the genes' log expression levels.
      dispersion: median ``1 / theta_g`` of the genes (``Var = mu + dispersion mu^2``).
      dispersion_sd: spread of ``log(1 / theta_g)`` across genes.
      nuisance: loading scale of the cell-cycle-like programme (0 switches it off).
      nuisance_size: genes it touches.
      rows_per_chunk: cells sampled per chunk (bounds memory; the counts do not
        depend on it).

    Returns:
      ``(adata, truth)``: ``adata`` an ``anndata.AnnData`` with ``X`` a
      ``scipy.sparse.csr_matrix`` ``[N, n_genes]`` of float32 integer counts, cells
      grouped by condition; ``obs["perturbation"]`` categorical labels ``ctrl``, ``A``,
      ``A+B`` (read it with ``groupby="perturbation"``, control ``"ctrl"``, ``sep="+"``);
      ``var_names`` gene names (a single's target carries its name). ``truth`` a
      :class:`PerturbseqTruth`: ``truth.pairs`` has one row per double with ``a``, ``b``,
      ``kind``, ``c1``, ``c2``.

    Raises:
      ValueError, TypeError: a parameter out of range, naming it.

    Example:
      >>> adata, truth = perturbseq(jax.random.key(0), n_genes=300, cells_per_group=20)
      >>> adata.shape, int(truth.pairs.interacting.sum())
      ((1220, 300), 6)
    """
    key = as_key(key, default_seed=None)
    if not isinstance(disjoint_programmes, (bool, np.bool_)):
        raise TypeError(f"disjoint_programmes must be a bool, got {disjoint_programmes!r}.")
    n_genes, n_single, n_double, programme_size, nuisance_size = _check_sizes(
        n_genes, n_single, n_double, programme_size, nuisance_size, bool(disjoint_programmes)
    )
    cells = positive_int("cells_per_group", cells_per_group, minimum=MIN_OBSERVATIONS)
    n_control = cells if n_control is None else positive_int("n_control", n_control, minimum=MIN_OBSERVATIONS)
    kinds = _check_kinds(kinds, n_double)
    coefficients = _check_coefficients(coefficients)
    effect = float_in_range("effect", effect, low=0.0)
    knockdown = float_in_range("knockdown", knockdown, low=0.0, high=1.0, high_open=True)
    escape = float_in_range("escape", escape, low=0.0, high=1.0, high_open=True)
    library_size = positive_float("library_size", library_size)
    spreads = {n: float_in_range(n, v, low=0.0) for n, v in
               [("library_sd", library_sd), ("expression_sd", expression_sd), ("dispersion_sd", dispersion_sd),
                ("nuisance", nuisance)]}
    dispersion = positive_float("dispersion", dispersion)
    rows_per_chunk = positive_int("rows_per_chunk", rows_per_chunk)

    k_model, k_counts = jax.random.split(key)
    rng = host_rng(k_model)
    base, theta, loadings = model.draw_genes(
        rng, n_genes, expression_sd=spreads["expression_sd"], dispersion=dispersion,
        dispersion_sd=spreads["dispersion_sd"], nuisance=spreads["nuisance"], nuisance_size=nuisance_size,
    )
    targets, programmes, kd = model.draw_singles(
        rng, base, n_single, programme_size=programme_size, effect=effect, knockdown=knockdown,
        disjoint=bool(disjoint_programmes),
    )
    doubles, kind = model.draw_doubles(rng, n_single, n_double, kinds)
    coef, neo, dshift = model.double_shifts(
        rng, doubles, kind, programmes, targets, kd, programme_size=programme_size, effect=effect,
        coefficients=coefficients,
    )
    genes = np.array([f"G{g:0{len(str(n_genes - 1))}d}" for g in range(n_genes)], dtype=object)
    names = [str(genes[t]) for t in targets]
    labels, _ = condition_table(names, [tuple(p) for p in doubles])
    singles = programmes + kd[:, None] * np.eye(n_genes)[targets]
    lfc = np.concatenate([np.zeros((1, n_genes)), singles, dshift])
    counts = np.full(len(labels), cells)
    counts[0] = n_control
    group = np.repeat(np.arange(len(labels)), counts)
    truth = PerturbseqTruth(
        pairs=model.pairs_frame(names, doubles, kind, coef), perturbations=tuple(names), conditions=tuple(labels),
        log_fold_change=lfc, programmes=programmes, targets=targets, knockdown=kd, neomorphic=neo,
        base_log_mean=base, theta=theta, nuisance_loadings=loadings, group=group,
        library_size=library_size * np.exp(spreads["library_sd"] * rng.standard_normal(group.shape[0])),
        escaped=(group > 0) & (rng.random(group.shape[0]) < escape),
        phase=rng.uniform(0.0, 2 * np.pi, group.shape[0]), escape=escape,
    )
    x = _sample_csr(k_counts, truth, rows_per_chunk)
    return _anndata(x, truth, genes), truth


def _anndata(x, truth: PerturbseqTruth, genes):
    import anndata
    import pandas as pd

    n = x.shape[0]
    obs = pd.DataFrame(
        {"perturbation": pd.Categorical.from_codes(truth.group, categories=list(truth.conditions))},
        index=pd.Index([f"cell{c:0{len(str(n - 1))}d}" for c in range(n)]),
    )
    var = pd.DataFrame(index=pd.Index(genes.tolist()))
    adata = anndata.AnnData(X=x, obs=obs, var=var)
    adata.uns["perturbseq"] = {"control": CONTROL, "sep": "+"}
    return adata
