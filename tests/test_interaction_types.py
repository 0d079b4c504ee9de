"""``pj.interaction_types`` and the level/power of the additive-null test on Perturb-seq-like screens."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import pairint_jax as pj
from pairint_jax.scores.interaction_types import _ITERATIONS, HUBER_K, TYPES, huber_fit
from tests._perturbseq import screens

ALPHA = 0.05


def _numpy_huber(y, a, b, keep, se2):
    """Float64 reference of :func:`huber_fit`: OLS, then two rounds of (MAD scale, IRLS steps),
    every weighted least-squares solve with the regressors' noise moments subtracted."""
    x = np.stack([a, b], 1)[keep]
    yk = y[keep]
    s_ij, s_0, s_i, s_j = (s[keep] for s in se2)

    def wls(w):
        xtx, xty = (x * w[:, None]).T @ x, (x * w[:, None]).T @ yk
        noise_xx = np.array([[w @ (s_i + s_0), w @ s_0], [w @ s_0, w @ (s_j + s_0)]])
        noise_xy = np.array([w @ s_0, w @ s_0])
        xtx_c, xty_c = xtx - noise_xx, xty - noise_xy
        if np.linalg.det(xtx_c) > 0.1 * np.linalg.det(xtx) and np.all(np.diag(xtx_c) > 0):
            xtx, xty = xtx_c, xty_c
        return np.linalg.solve(xtx, xty)

    c = wls(np.ones(len(yk)))
    for _ in range(2):
        scale = np.median(np.abs(yk - x @ c)) / 0.6745
        for _ in range(_ITERATIONS):
            r = np.abs(yk - x @ c)
            c = wls(np.where(r <= HUBER_K * scale, 1.0, HUBER_K * scale / r))
    r = yk - x @ c
    ss_res = max(np.sum(r**2) - np.sum(s_ij + c[0] ** 2 * s_i + c[1] ** 2 * s_j + (c.sum() - 1) ** 2 * s_0), 0.0)
    ss_tot = np.sum(yk**2) - np.sum(s_ij + s_0)
    return c, 1.0 - ss_res / max(ss_tot, ss_res)


def test_huber_fit_matches_numpy_float64(x64, rng):
    d = 60
    a, b = rng.normal(size=d), rng.normal(size=d)
    y = 1.5 * a + 0.5 * b + 0.1 * rng.normal(size=d)
    y[:4] += 5.0  # outlying features
    keep = rng.random(d) < 0.8
    se2 = tuple(rng.uniform(0.0, 0.01, size=d) for _ in range(4))
    c, fit = huber_fit(*(jnp.asarray(v) for v in (y, a, b, keep)), tuple(map(jnp.asarray, se2)))
    ref_c, ref_fit = _numpy_huber(y, a, b, keep, se2)
    np.testing.assert_allclose(c, ref_c, rtol=1e-8)
    np.testing.assert_allclose(fit, ref_fit, rtol=1e-8)
    assert abs(float(c[0]) - 1.5) < 0.1 and abs(float(c[1]) - 0.5) < 0.1  # the outliers do not drag the fit


@pytest.fixture(scope="module")
def planted():
    return screens(0, 50, n_genes=2000, n_single=8, n_double=12, programme_size=50)


def test_types_of_planted_kinds(planted):
    """Log-normalised X, 50 cells: each planted kind is named and detected (q < 0.05)."""
    sc, truth = planted
    df = pj.interaction_types(sc["X"], key=1, n_permutations=299, n_bootstrap=50)
    m = df.merge(truth[["a", "b", "kind"]], on=["a", "b"])
    hit = m[m.kind != "additive"]
    assert (hit.type == hit.kind).all(), hit[["kind", "type", "c1", "c2", "model_fit", "q_value"]]
    assert (hit.q_value < ALPHA).all()
    assert (m[m.kind == "additive"].type == "additive").mean() >= 0.8
    assert (df.magnitude_lo <= df.magnitude_hi).all() and (df.model_fit_lo <= df.model_fit_hi).all()


def test_types_in_pca_space_except_neomorphic(planted):
    """X_pca: the same calls, neomorphic aside: its new programme moves genes in one group
    of cells only, so whether the top PCs hold it depends on the screen (here, with 20 PCs,
    they do; in the 20-single screen of ``benchmarks/gi_test.py`` with 50 PCs they may not)."""
    sc, truth = planted
    df = pj.interaction_types(sc["X_pca"], key=1, n_permutations=299, n_bootstrap=50)
    m = df.merge(truth[["a", "b", "kind"]], on=["a", "b"])
    hit = m[~m.kind.isin(["additive", "neomorphic"])]
    assert (hit.type == hit.kind).all(), hit[["kind", "type", "c1", "c2", "model_fit", "q_value"]]


def test_chunked_equals_unchunked_and_sparse(rng):
    shift = {"ctrl": 0.0, "A": 1.0, "B": -1.0, "C": 0.5, "A+B": 0.5, "A+C": 3.0, "B+C": -0.5}
    d = 12
    pattern = {k: rng.normal(size=d) for k in ("A", "B", "C")}
    xs, labels = [], []
    for lab, s in shift.items():
        mu = sum(pattern[p] for p in lab.split("+") if p in pattern) * (1.0 if "+" not in lab else 1.5)
        xs.append(rng.normal(size=(20, d)) + mu)
        labels += [lab] * 20
    screen = pj.Screen.from_arrays(np.concatenate(xs).astype(np.float32), labels)
    ref = pj.interaction_types(screen, n_permutations=49, n_bootstrap=20, pairs_per_chunk=None)
    got = pj.interaction_types(screen, n_permutations=49, n_bootstrap=20, pairs_per_chunk=1)
    np.testing.assert_allclose(got.c1, ref.c1, rtol=1e-5)
    np.testing.assert_allclose(got.model_fit_hi, ref.model_fit_hi, rtol=1e-5)
    assert (got.type == ref.type).all()
    import scipy.sparse as sp

    sparse = pj.Screen.from_arrays(sp.csr_matrix(np.asarray(screen.x)), screen.labels)
    np.testing.assert_allclose(pj.interaction_types(sparse, n_permutations=49, n_bootstrap=20).c2, ref.c2, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_bootstrap": 1}, ValueError, "n_bootstrap"),
        ({"n_bootstrap": 100, "n_permutations": 50}, ValueError, "n_permutations"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"confidence": 0.0}, ValueError, "confidence"),
        ({"min_fit": "high"}, TypeError, "min_fit"),
        ({"key": 1.5}, TypeError, "key"),
    ],
)
def test_bad_inputs(planted, kwargs, error, match):
    with pytest.raises(error, match=match):
        pj.interaction_types(planted[0]["X_pca"], **kwargs)


# Level: additive-only screens (every double additive, disjoint programmes, normalised by
# the true library sizes: each double is then exactly additive in log1p of normalised
# counts; tests/_perturbseq.py), 8 independent screens at each of 50 and 300 cells per
# group, each with 10 random doubles of 10 singles and a control 10x the group size,
# tested in X_pca (20 PCs) and X: 320 tests. Pairs of one screen share the control and
# perhaps a single, and X_pca and X share the cells, so a screen's count varies more than
# a binomial count; the large control keeps the sharing small. `python
# benchmarks/gi_test.py --ci` measured the design effect (variance of a screen's count
# over both representations / its binomial variance at 0.05) over 40 screens per group
# size; _DESIGN_EFFECT rounds the larger of the two up. The bound treats the total as
# _DESIGN_EFFECT x Binomial(320 / _DESIGN_EFFECT, 0.05) (the effective number of
# independent tests): a test whose level is 0.05 fails with probability about 1e-3.
_LEVEL_SEEDS = tuple(range(1, 9))
_DESIGN_EFFECT = 3  # measured 2.49 (50 cells) and 2.58 (300 cells)
_LEVEL_TESTS = 2 * 2 * len(_LEVEL_SEEDS) * 10
_LEVEL_BOUND = math.ceil(_DESIGN_EFFECT * stats.binom.ppf(1 - 1e-3, _LEVEL_TESTS // _DESIGN_EFFECT, ALPHA))


def test_level_on_additive_pairs():
    """The additive-null test holds its level on additive-only screens (false-failure rate
    about 1e-3, see the comment above: a binomial bound on the effective number of tests)."""
    rejections, tests = 0, 0
    for cells in (50, 300):
        for seed in _LEVEL_SEEDS:
            sc, truth = screens(seed, cells, n_single=10, n_double=10, n_control=10 * cells, additive_only=True)
            assert (truth.kind == "additive").all()
            for rep in ("X_pca", "X"):
                p = pj.additivity_scores(sc[rep], n_permutations=199, key=seed).to_frame().p_value.to_numpy()
                rejections += int((p <= ALPHA).sum())
                tests += len(p)
    assert tests == _LEVEL_TESTS
    assert rejections <= _LEVEL_BOUND, (rejections, tests, _LEVEL_BOUND)


def test_score_adata_and_cli_write_the_types_table(tmp_path):
    import jax
    from click.testing import CliRunner

    from pairint_jax.cli import main
    from tests._perturbseq import normalise_log1p, pca

    adata, _ = pj.synthetic.perturbseq(jax.random.key(0), n_genes=300, n_single=5, n_double=6, cells_per_group=30,
                                       programme_size=30)
    adata.X = normalise_log1p(adata.X)
    adata.obsm["X_pca"] = pca(adata.X, 10)
    df = pj.score_adata(adata, tests=("additivity", "types"), n_permutations=299, key=3)
    types = adata.uns["pairint"]["types"]
    assert len(types) == 6 and set(types["type"]) <= set(TYPES)
    assert (df.test == "types").sum() == 6 and df[df.test == "additivity"].p_value.notna().all()
    path = tmp_path / "s.h5ad"
    adata.write_h5ad(path)
    res = CliRunner().invoke(main, ["score", str(path), "--use-rep", "X_pca", "--test", "additivity", "--types",
                                    "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    assert "type" in pd.read_csv(tmp_path / "o" / "types.csv").columns and "types:" in res.output


def _gaussian_pairs_screen(rng, n_cells, d=300, n_single=20, programme=30):
    """Gaussian cells (sd 1) around exact means: singles are sparse programmes, each double
    ``c1 delta_a + c2 delta_b`` with known ``(c1, c2)``; returns the screen and {pair: magnitude}."""
    prog = np.zeros((n_single, d))
    for s in range(n_single):
        idx = rng.choice(d, programme, replace=False)
        prog[s, idx] = rng.choice([-1.0, 1.0], programme) * rng.uniform(0.3, 1.0, programme)
    coefs = [(1.0, 1.0), (1.6, 1.4), (0.6, 0.5), (1.0, 0.2), (1.3, 1.3)]
    x, labels, truth = [rng.normal(size=(2 * n_cells, d))], ["ctrl"] * (2 * n_cells), {}
    for s in range(n_single):
        x.append(prog[s] + rng.normal(size=(n_cells, d)))
        labels += [f"g{s}"] * n_cells
    for s in range(0, n_single, 2):
        c1, c2 = coefs[(s // 2) % len(coefs)]
        x.append(c1 * prog[s] + c2 * prog[s + 1] + rng.normal(size=(n_cells, d)))
        labels += [f"g{s}+g{s + 1}"] * n_cells
        truth[(f"g{s}", f"g{s + 1}")] = math.hypot(c1, c2)
    return pj.Screen.from_arrays(np.concatenate(x).astype(np.float32), np.array(labels)), truth


def test_magnitude_is_unbiased_and_its_interval_covers_the_truth():
    """With 50 cells the noise of the singles' means attenuates a plain least-squares fit
    (errors in variables): without the moment correction the magnitude here came out
    -0.147 +- 0.016 off and the percentile interval covered the true magnitude for 5 of the
    30 pairs. The corrected fit is unbiased within 0.05 (measured +0.010 +- 0.018), and its
    95% interval covers the truth for at least 18 of the 30 pairs (measured 21; it still
    undercovers, 0.70-0.87 in our runs). Seeds are fixed; with a fresh seed and a true
    coverage of 0.75 the count falls below 18 with probability 0.02."""
    rng = np.random.default_rng(7)
    errors, covered = [], []
    for rep in range(3):
        screen, truth = _gaussian_pairs_screen(rng, 50)
        df = pj.interaction_types(screen, n_permutations=200, n_bootstrap=200, key=rep)
        for r in df.itertuples():
            true_mag = truth[(r.a, r.b)]
            errors.append(r.magnitude - true_mag)
            covered.append(r.magnitude_lo <= true_mag <= r.magnitude_hi)
    assert len(errors) == 30
    assert abs(np.mean(errors)) < 0.05, np.mean(errors)
    assert np.mean(covered) >= 0.6, np.mean(covered)
