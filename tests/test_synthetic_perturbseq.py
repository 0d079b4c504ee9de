"""Tests of ``pj.synthetic.perturbseq``: the Perturb-seq-like AnnData and its truth.

References are written here from the documented model (module docstring of
``pairint_jax/synthetic/perturbseq.py``), never taken from the generator: the kinds'
``(c1, c2)`` table, the negative-binomial mean, variance and zero probability, the
knock-down fraction. Statistical checks use fixed seeds and 5-standard-error bounds
(false-failure rate below 1e-6 per check for the normal approximations used).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import pairint_jax as pj

SMALL = dict(n_genes=300, n_single=8, n_double=12, cells_per_group=40, programme_size=30, nuisance_size=40)
# (c1, c2) of each kind as the docstring documents them; epistasis and suppression may be swapped.
DOCUMENTED = dict(additive=(1.0, 1.0), synergy=(2.0, 2.0), buffering=(0.4, 0.4),
                  epistasis=(1.0, 0.0), suppression=(0.2, 0.0), neomorphic=(0.5, 0.5))
ONE_OF_EACH = {"synergy": 1, "buffering": 1, "epistasis": 1, "suppression": 1, "neomorphic": 1}


@pytest.fixture(scope="module")
def small():
    return pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, **SMALL)


def _row(truth, label):
    return truth.log_fold_change[truth.conditions.index(label)]


# ----------------------------------------------------------------------------- determinism, layout
def test_same_key_same_data_other_key_other_data(small):
    adata, truth = small
    again, truth2 = pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, **SMALL)
    assert (adata.X != again.X).nnz == 0
    pd.testing.assert_frame_equal(truth.pairs, truth2.pairs)
    np.testing.assert_array_equal(truth.library_size, truth2.library_size)
    other, _ = pj.synthetic.perturbseq(jax.random.key(1), kinds=ONE_OF_EACH, **SMALL)
    assert (adata.X != other.X).nnz > 0
    as_int, _ = pj.synthetic.perturbseq(0, kinds=ONE_OF_EACH, **SMALL)  # an int seed means jax.random.key(seed)
    assert (adata.X != as_int.X).nnz == 0


def test_chunked_equals_unchunked(small):
    adata, _ = small
    chunked, _ = pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, rows_per_chunk=37, **SMALL)
    assert (adata.X != chunked.X).nnz == 0


def test_shapes_dtype_sparsity_and_labels(small):
    adata, truth = small
    n_cond = 1 + SMALL["n_single"] + SMALL["n_double"]
    assert adata.shape == (n_cond * SMALL["cells_per_group"], SMALL["n_genes"])
    assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
    data = adata.X.data
    assert np.all(data > 0) and np.all(data == np.round(data))  # stored entries: positive integer counts
    assert 0.05 < adata.X.nnz / np.prod(adata.shape) < 0.95  # sparse, but not empty
    lab = adata.obs["perturbation"]
    assert isinstance(lab.dtype, pd.CategoricalDtype) and tuple(lab.cat.categories) == truth.conditions
    assert truth.conditions[0] == "ctrl" and lab.value_counts()["ctrl"] == SMALL["cells_per_group"]
    assert (lab.value_counts() == SMALL["cells_per_group"]).all()
    assert list(truth.pairs.label) == list(truth.conditions[1 + SMALL["n_single"] :])
    assert all(f"{a}+{b}" == lab for a, b, lab in zip(truth.pairs.a, truth.pairs.b, truth.pairs.label))
    # every single is named after its target gene; doubles are pairs of singles
    assert list(adata.var_names[truth.targets]) == list(truth.perturbations)
    assert adata.var_names.is_unique and adata.obs_names.is_unique
    assert set(truth.pairs.a) | set(truth.pairs.b) <= set(truth.perturbations)
    np.testing.assert_array_equal(np.asarray(lab.cat.codes), truth.group)
    assert not truth.escaped[truth.group == 0].any()
    counts = truth.pairs.kind.value_counts()
    assert all(counts[k] == 1 for k in ONE_OF_EACH) and counts["additive"] == SMALL["n_double"] - 5


def test_defaults_plant_six_of_forty():
    # Sizes only: the defaults build 2,000 genes x 12,200 cells, so check the smaller sibling
    # with the default kinds and the default counts of singles and doubles.
    adata, truth = pj.synthetic.perturbseq(jax.random.key(2), n_genes=300, cells_per_group=4, programme_size=20)
    assert adata.shape == ((1 + 20 + 40) * 4, 300)
    assert dict(truth.pairs.kind.value_counts()) == {
        "additive": 34, "synergy": 2, "buffering": 1, "epistasis": 1, "suppression": 1, "neomorphic": 1,
    }


# ----------------------------------------------------------------------------- negative binomial
def _nb_sample(seed=3):
    kw = dict(SMALL, cells_per_group=60)
    adata, truth = pj.synthetic.perturbseq(jax.random.key(seed), kinds=ONE_OF_EACH, **kw)
    x = adata.X.toarray().astype(np.float64)
    mu = np.exp(truth.log_mean())
    return x, mu, np.broadcast_to(truth.theta, mu.shape)


def _z(observed, expected, var):
    return (observed.sum() - expected.sum()) / np.sqrt(var.sum())


def test_counts_are_negative_binomial_with_the_truth_mean_and_per_gene_dispersion():
    x, mu, theta = _nb_sample()
    var = mu + mu**2 / theta  # analytic NB variance
    # mean: sum over ~1.1e6 independent entries, exact variance
    assert abs(_z(x, mu, var)) < 5
    # variance, in the low- and high-dispersion halves of the genes: E[(x - mu)^2] = var;
    # standard error from the sample (asymptotically normal)
    low = theta[0] > np.median(theta[0])
    for half in (low, ~low):
        dev = (x[:, half] - mu[:, half]) ** 2 - var[:, half]
        assert abs(dev.mean() / (dev.std() / np.sqrt(dev.size))) < 5
    # zeros: P(x = 0) = (theta / (theta + mu))^theta, Bernoulli variance
    p0 = (theta / (theta + mu)) ** theta
    assert abs(_z(x == 0, p0, p0 * (1 - p0))) < 5
    # and the zero check has power: Poisson counts (P0 = exp(-mu)) would be far off
    q0 = np.exp(-mu)
    assert abs(_z(x == 0, q0, q0 * (1 - q0))) > 20


def test_knockdown_and_escape_as_documented():
    adata, truth = pj.synthetic.perturbseq(jax.random.key(4), kinds={}, escape=0.3, **dict(SMALL, cells_per_group=300))
    x = adata.X.tocsc()
    ratios = []
    for i, name in enumerate(truth.perturbations):
        g = truth.targets[i]
        rows = np.flatnonzero(truth.group == truth.conditions.index(name))
        baseline = np.exp(truth.log_mean(rows)[:, g] - np.where(truth.escaped[rows], 0.0, _row(truth, name)[g]))
        ok = ~truth.escaped[rows]
        ratios.append(x[rows[ok], g].sum() / baseline[ok].sum())
        # escaping cells are at baseline for the target
        assert abs(x[rows[~ok], g].sum() / baseline[~ok].sum() - 1.0) < 0.25
    np.testing.assert_allclose(ratios, 1 - 0.8, atol=0.05)  # knockdown=0.8 removes 80% of the target
    perturbed = truth.group > 0
    frac = truth.escaped[perturbed].mean()
    assert abs(frac - 0.3) < 5 * np.sqrt(0.3 * 0.7 / perturbed.sum())


# ----------------------------------------------------------------------------- truth of the doubles
def test_additive_doubles_are_exactly_additive_in_log_mean(small):
    _, truth = small
    add = truth.pairs[truth.pairs.kind == "additive"]
    assert len(add) == SMALL["n_double"] - 5
    for a, b, label in zip(add.a, add.b, add.label):
        np.testing.assert_allclose(_row(truth, label), _row(truth, a) + _row(truth, b), rtol=0, atol=1e-12)
    # the expected shift (over escaping and non-escaping cells) is additive too
    a, b, label = add.iloc[0][["a", "b", "label"]]
    np.testing.assert_allclose(
        truth.expected_shift(label), truth.expected_shift(a) + truth.expected_shift(b), rtol=0, atol=1e-12
    )


def _fit(truth, a, b, label):
    """Least-squares (c1, c2) and R^2 of delta_ab ~ c1 delta_a + c2 delta_b off the two targets."""
    keep = np.ones(truth.log_fold_change.shape[1], bool)
    keep[[truth.targets[truth.perturbations.index(p)] for p in (a, b)]] = False
    design = np.stack([_row(truth, a)[keep], _row(truth, b)[keep]], axis=1)
    y = _row(truth, label)[keep]
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    resid = y - design @ coef
    return coef, 1.0 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))


@pytest.mark.parametrize("seed", [0, 5])
def test_every_kind_has_its_documented_coefficients(seed):
    _, truth = pj.synthetic.perturbseq(jax.random.key(seed), kinds=ONE_OF_EACH, **SMALL)
    for row in truth.pairs.itertuples():
        want = DOCUMENTED[row.kind]
        assert (row.c1, row.c2) in (want, want[::-1]), row
        if row.kind not in ("epistasis", "suppression"):
            assert (row.c1, row.c2) == want
        coef, r2 = _fit(truth, row.a, row.b, row.label)
        np.testing.assert_allclose(coef, [row.c1, row.c2], rtol=0, atol=1e-10)
        if row.kind == "neomorphic":
            assert r2 < 0.6 and row.poor_fit  # a new programme the singles do not explain
        else:
            np.testing.assert_allclose(r2, 1.0, atol=1e-10)
            assert not row.poor_fit


def test_suppression_below_either_single_epistasis_equals_one_buffering_shrinks_both(small):
    _, truth = small
    rows = truth.pairs.set_index("kind")
    for kind in ("suppression", "epistasis", "buffering"):
        a, b, label = rows.loc[kind, ["a", "b", "label"]]
        keep = np.ones(truth.log_fold_change.shape[1], bool)
        keep[[truth.targets[truth.perturbations.index(p)] for p in (a, b)]] = False
        if kind == "buffering":  # both contribute, reduced
            want = 0.4 * (_row(truth, a) + _row(truth, b))
            np.testing.assert_allclose(_row(truth, label)[keep], want[keep], rtol=0, atol=1e-12)
            continue
        norms = [np.linalg.norm(_row(truth, p)[keep]) for p in (a, b, label)]
        if kind == "suppression":
            assert norms[2] < min(norms[:2])
        else:
            survivor = a if rows.loc[kind, "c1"] == 1.0 else b
            np.testing.assert_allclose(_row(truth, label)[keep], _row(truth, survivor)[keep], atol=0)


def test_coefficients_override_and_all_additive():
    _, truth = pj.synthetic.perturbseq(
        jax.random.key(6), kinds={"synergy": 3}, coefficients={"synergy": (3.0, 1.5)}, **SMALL
    )
    syn = truth.pairs[truth.pairs.kind == "synergy"]
    assert len(syn) == 3 and (syn.c1 == 3.0).all() and (syn.c2 == 1.5).all()
    _, truth = pj.synthetic.perturbseq(jax.random.key(6), kinds={}, **SMALL)
    assert not truth.pairs.interacting.any()


# ----------------------------------------------------------------------------- disjoint programmes
def _log1p_contrast(truth, label, a, b):
    """Per gene, ``f(ab) + f(0) - f(a) - f(b)`` of ``f = log1p(normalised mean counts)`` of a
    typical cell (no escape, no nuisance), and the bound that the documented model gives it
    when no gene is moved by both singles.

    With disjoint programmes, each gene's count has the same distribution in the double as
    in one single (and in the other single as in the control), so the contrast can come only
    from the cells' totals ``T`` that normalisation divides by; ``|log1p(s y) - log1p(t y)|
    <= |log s - log t|`` bounds it by ``|log T_ab - log T_a| + |log T_b - log T_0|`` (or the
    same with ``a`` and ``b`` swapped, for the genes of ``b``).
    """
    rows = [truth.conditions.index(c) for c in (label, "ctrl", a, b)]
    mean = np.exp(truth.base_log_mean + truth.log_fold_change[rows])  # per unit library
    total = mean.sum(axis=1)
    f = np.log1p(mean / total[:, None] * 1e4)
    lt = np.log(total)
    bound = max(abs(lt[0] - lt[2]) + abs(lt[3] - lt[1]), abs(lt[0] - lt[3]) + abs(lt[2] - lt[1]))
    return f[0] + f[1] - f[2] - f[3], bound


def test_disjoint_programmes_make_additive_doubles_additive_after_log1p():
    _, truth = pj.synthetic.perturbseq(jax.random.key(7), kinds={}, disjoint_programmes=True, **SMALL)
    moved = truth.programmes != 0
    assert moved.sum(axis=0).max() == 1  # no gene in two programmes
    assert (moved.sum(axis=1) == SMALL["programme_size"]).all() and not moved[:, truth.targets].any()
    for a, b, label in zip(truth.pairs.a, truth.pairs.b, truth.pairs.label):
        np.testing.assert_allclose(_row(truth, label), _row(truth, a) + _row(truth, b), rtol=0, atol=1e-12)
        contrast, bound = _log1p_contrast(truth, label, a, b)
        assert np.abs(contrast).max() <= bound + 1e-12, (label, np.abs(contrast).max(), bound)
    # the default draws programmes independently: with 8 x 30 of 292 genes some overlap, and
    # the Jensen gap of an overlapping gene breaks the bound (so the check above can fail)
    _, default = pj.synthetic.perturbseq(jax.random.key(7), kinds={}, **SMALL)
    assert ((default.programmes != 0).sum(axis=0) > 1).any()
    pairs = zip(default.pairs.a, default.pairs.b, default.pairs.label)
    gaps = [_log1p_contrast(default, lab, a, b) for a, b, lab in pairs]
    assert any(np.abs(c).max() > bound for c, bound in gaps)


def test_default_is_not_disjoint_and_unchanged():
    # disjoint_programmes=False is the default; it draws exactly what the default draws
    adata, truth = pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, **SMALL)
    again, truth2 = pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, disjoint_programmes=False, **SMALL)
    assert (adata.X != again.X).nnz == 0
    np.testing.assert_array_equal(truth.programmes, truth2.programmes)
    disjoint, truth3 = pj.synthetic.perturbseq(jax.random.key(0), kinds=ONE_OF_EACH, disjoint_programmes=True, **SMALL)
    np.testing.assert_array_equal(truth.targets, truth3.targets)  # same genes and targets, other programmes
    assert not np.array_equal(truth.programmes != 0, truth3.programmes != 0)


def test_disjoint_programmes_need_enough_genes():
    # 8 singles x (1 target + 30 programme genes) = 248 genes: 247 is one short
    pj.synthetic.perturbseq(jax.random.key(0), kinds={}, disjoint_programmes=True, **dict(SMALL, n_genes=248))
    with pytest.raises(ValueError, match="disjoint_programmes"):
        pj.synthetic.perturbseq(jax.random.key(0), kinds={}, disjoint_programmes=True, **dict(SMALL, n_genes=247))
    with pytest.raises(TypeError, match="disjoint_programmes"):
        pj.synthetic.perturbseq(jax.random.key(0), disjoint_programmes="yes", **SMALL)


# ----------------------------------------------------------------------------- the library reads it
def test_screen_and_score_adata_read_it(small, tmp_path):
    adata, truth = small
    adata.write_h5ad(tmp_path / "perturbseq.h5ad")  # h5ad round trip, read back as a sparse screen
    back = pj.read_screen(tmp_path / "perturbseq.h5ad", groupby="perturbation")
    assert back.is_sparse and back.conditions == pj.io.from_anndata(adata, groupby="perturbation").conditions
    screen = pj.io.from_anndata(adata, groupby="perturbation")
    assert screen.is_sparse and screen.perturbations == truth.perturbations
    assert len(screen.pairs) == SMALL["n_double"]
    df = pj.score_adata(adata, groupby="perturbation", tests="additivity")
    assert len(df) == SMALL["n_double"] and df.score.notna().all()
    assert {f"{a}+{b}" for a, b in zip(df.a, df.b)} == set(truth.pairs.label)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_single=1), ValueError, "n_single"),
        (dict(n_single=4, n_double=7), ValueError, "n_double"),
        (dict(n_double=0), ValueError, "n_double"),
        (dict(n_genes=50), ValueError, "n_genes"),
        (dict(cells_per_group=1), ValueError, "cells_per_group"),
        (dict(n_control=1), ValueError, "n_control"),
        (dict(kinds={"synergistic": 1}), ValueError, "kinds"),
        (dict(kinds={"synergy": 13}), ValueError, "kinds"),
        (dict(kinds={"synergy": -1}), ValueError, "kinds"),
        (dict(kinds=[("synergy", 1)]), TypeError, "kinds"),
        (dict(coefficients={"synergy": 2.0}), ValueError, "coefficients"),
        (dict(coefficients={"additive": (1, 1)}), ValueError, "coefficients"),
        (dict(coefficients={"synergy": (np.nan, 1.0)}), ValueError, "coefficients"),
        (dict(knockdown=1.0), ValueError, "knockdown"),
        (dict(escape=-0.1), ValueError, "escape"),
        (dict(library_size=0.0), ValueError, "library_size"),
        (dict(dispersion=-1.0), ValueError, "dispersion"),
        (dict(library_sd=-0.1), ValueError, "library_sd"),
        (dict(programme_size=0), ValueError, "programme_size"),
        (dict(nuisance_size=301), ValueError, "nuisance_size"),
        (dict(rows_per_chunk=0), ValueError, "rows_per_chunk"),
        (dict(n_genes=300.0), TypeError, "n_genes"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, match):
    with pytest.raises(error, match=match):
        pj.synthetic.perturbseq(jax.random.key(0), **{**SMALL, **kwargs})


def test_key_is_required():
    with pytest.raises(TypeError, match="key"):
        pj.synthetic.perturbseq(None, **SMALL)
