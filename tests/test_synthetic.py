"""Tests of the synthetic screens (``pj.synthetic``): shapes, seeds, truth, latents, jit hygiene.

References are written here from the digest's tables (section 5) and the documented
formulas, never taken from the generators. Statistical checks use fixed seeds and
tolerances of 5 standard errors unless stated (false-failure rate below 1e-6 per check
for means; a few in 1e5 for the quantile checks), so a failing check means a real bug.
"""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

import pairint_jax as pj
from _compiles import compile_log

# Small, fixed static sizes: each generator compiles once for these and is reused.
SMALL = {
    "separability_tabular": dict(n_per_condition=8, n_control=12),
    "balls": dict(n_per_condition=2, n_control=3, size=64, n_background=3),
    "disjointedness_mixture": dict(n_per_condition=8, n_control=12),
    "latent_factor": dict(n_per_condition=8, n_control=12, n_perturbations=6, dim=5),
}
# The jitted programs behind each generator (names as JAX logs their compilation).
PROGRAMS = {
    "separability_tabular": ("_sample",),
    "balls": ("_scenes", "_render_block"),
    "disjointedness_mixture": ("_sample",),
    "latent_factor": ("_sample",),
}


def _compiled(log, name):
    return sum(log.count(program) for program in PROGRAMS[name])
EXPECTED = {  # (perturbations, feature shape, truly interacting pairs): from the digest / our design
    "separability_tabular": ("ABCD", (16,), {("A", "B"), ("C", "D")}),
    "balls": ("ABCD", (3, 64, 64), {("A", "B"), ("C", "D")}),
    "disjointedness_mixture": ("ABCDEFG", (8,), {("D", "E"), ("F", "G")}),
    "latent_factor": (None, (5,), None),
}
GENERATORS = list(SMALL)


def _make(name, key, **kw):
    return getattr(pj.synthetic, name)(key, **{**SMALL[name], **kw})


def _pairs_of(truth, names):
    return {(names[i], names[j]) for i, j in zip(*np.nonzero(np.triu(truth)))}


# ----------------------------------------------------------------------------- shapes, labels
@pytest.mark.parametrize("name", GENERATORS)
def test_shapes_dtypes_labels_and_truth(name):
    screen, truth = _make(name, jax.random.key(0))
    names, feat, pairs = EXPECTED[name]
    n = len(names) if names else SMALL[name]["n_perturbations"]
    if names:
        assert screen.perturbations == tuple(names)
    assert isinstance(screen, pj.Screen)
    assert screen.x.dtype == np.float32 and screen.feature_shape == feat
    assert np.isfinite(screen.x).all()
    perts = screen.perturbations
    want = ["ctrl"] + list(perts) + [f"{perts[i]}+{perts[j]}" for i, j in itertools.combinations(range(n), 2)]
    assert list(screen.conditions) == want
    assert screen.counts[0] == SMALL[name]["n_control"]
    assert (screen.counts[1:] == SMALL[name]["n_per_condition"]).all()
    assert len(screen.pairs) == n * (n - 1) // 2 and not screen.unscorable
    assert truth.dtype == bool and truth.shape == (n, n)
    assert (truth == truth.T).all() and not truth.diagonal().any()
    if pairs is not None:
        assert _pairs_of(truth, perts) == pairs


def test_labels_are_ctrl_single_double_strings():
    screen, _ = _make("separability_tabular", 3)
    labs = set(screen.labels)
    assert labs == {"ctrl", "A", "B", "C", "D", "A+B", "A+C", "A+D", "B+C", "B+D", "C+D"}


# ----------------------------------------------------------------------------- seeds and jit
@pytest.mark.parametrize("name", GENERATORS)
def test_same_key_identical_different_key_differs_no_recompile(name):
    a, ta = _make(name, jax.random.key(1))  # compiles at most once for these sizes
    with compile_log() as log:
        b, tb = _make(name, jax.random.key(1))
        c, _ = _make(name, jax.random.key(2))
        d, _ = _make(name, 1)  # an int seed means jax.random.key(seed)
    assert _compiled(log, name) == 0, "a second call with the same shapes recompiled"
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(a.x, d.x)
    assert a.x.shape == c.x.shape
    assert (a.x != c.x).reshape(len(a.x), -1).any(axis=1).all()  # a different key: every row differs


def test_continuous_hyperparameters_do_not_recompile():
    _make("separability_tabular", 0, shift=3.0)
    with compile_log() as log:
        s1, _ = _make("separability_tabular", 0, shift=2.0, map_key=5)
        s2, _ = _make("separability_tabular", 0, shift=2.0, map_key=6)
    assert _compiled(log, "separability_tabular") == 0
    assert not np.array_equal(s1.x, s2.x)  # map_key changes the map g only
    _make("latent_factor", 0)
    with compile_log() as log:
        _make("latent_factor", 0, noise=0.5, effect=1.0, epistasis=2.0)
    assert _compiled(log, "latent_factor") == 0


def test_map_key_keeps_the_map_fixed_across_data_seeds():
    _, _, la = _make("separability_tabular", 1, map_key=9, return_latents=True)
    _, _, lb = _make("separability_tabular", 2, map_key=9, return_latents=True)
    for wa, wb in zip(la.mixing.weights, lb.mixing.weights):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(la.z, lb.z)


# ----------------------------------------------------------------------------- the random map g
def _np_leaky_mlp(mixing, z, slope=0.5):
    """float64 NumPy reference of the documented map (gain sqrt(2/(1+a^2)) between layers)."""
    h = np.asarray(z, np.float64)
    gain = np.sqrt(2.0 / (1.0 + slope**2))
    layers = list(zip(mixing.weights, mixing.biases))
    for k, (w, b) in enumerate(layers):
        h = h @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
        if k < len(layers) - 1:
            h = gain * np.where(h >= 0, h, slope * h)
    return float(mixing.scale) * h


def test_mlp_layers_are_orthogonal_slices_and_chunking_is_exact():
    g = pj.synthetic.random_mlp(jax.random.key(0), 3, 16, n_layers=7)
    assert [w.shape for w in g.weights] == [(16, 3)] + [(16, 16)] * 6
    for w in g.weights:
        w = np.asarray(w, np.float64)
        np.testing.assert_allclose(w.T @ w, np.eye(w.shape[1]), atol=1e-5)  # orthonormal columns
    z = jax.random.normal(jax.random.key(1), (37, 3))
    full = pj.synthetic.mlp_apply(g, z)
    np.testing.assert_allclose(pj.synthetic.mlp_apply_chunked(g, z, 8), full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(full, _np_leaky_mlp(g, z), rtol=1e-4, atol=1e-5)
    narrow = pj.synthetic.random_mlp(jax.random.key(2), 6, 2, n_layers=3, hidden_dim=4)
    assert [w.shape for w in narrow.weights] == [(4, 6), (4, 4), (2, 4)]
    for w in narrow.weights:
        w = np.asarray(w, np.float64)
        np.testing.assert_allclose(w @ w.T, np.eye(w.shape[0]), atol=1e-5)  # orthonormal rows
    wide = pj.synthetic.random_mlp(jax.random.key(3), 3, 40, n_layers=2, hidden_dim=8)
    assert [w.shape for w in wide.weights] == [(8, 3), (40, 8)]
    w = np.asarray(wide.weights[1], np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)
    with pytest.raises(ValueError, match="negative_slope"):
        pj.synthetic.random_mlp(jax.random.key(0), 3, 16, n_layers=2, negative_slope=0.0)


# ----------------------------------------------------------------------------- D.1.1
D11_SPEC = {"A": {0}, "B": {0, 1}, "C": {2}, "D": {2}}  # digest: A->Z1, B->Z1,Z2, C->Z3, D->Z3


@pytest.fixture(scope="module")
def d11():
    return pj.synthetic.separability_tabular(jax.random.key(11), n_per_condition=2000, return_latents=True)


def test_d11_latents_follow_the_digest(d11):
    screen, truth, lat = d11
    m = 2000
    assert lat.z.shape == (screen.x.shape[0], 3)
    se_mean, se_var = 1 / np.sqrt(m), np.sqrt(2 / m)  # N(mu, 1) with m draws
    for g, cond in enumerate(screen.conditions):
        z = lat.z[screen.offsets[g] : screen.offsets[g + 1]].astype(np.float64)
        moved = set().union(*(D11_SPEC[p] for p in cond.split("+") if p != "ctrl")) if cond != "ctrl" else set()
        want_mean = np.array([3.0 if l in moved else 0.0 for l in range(3)])
        np.testing.assert_allclose(z.mean(0), want_mean, atol=5 * se_mean, err_msg=cond)
        np.testing.assert_allclose(z.var(0, ddof=1), 1.0, atol=5 * se_var, err_msg=cond)
        corr = np.corrcoef(z.T)[np.triu_indices(3, 1)]
        assert np.abs(corr).max() < 5 * se_mean, cond  # independent latents


def test_d11_observations_are_g_of_latents_and_g_is_injective(d11):
    screen, _, lat = d11
    idx = np.arange(0, screen.x.shape[0], 97)
    np.testing.assert_allclose(screen.x[idx], _np_leaky_mlp(lat.mixing, lat.z[idx]), rtol=1e-4, atol=1e-4)
    # Injective and well conditioned: orthonormal-column layers and LeakyReLU slopes in
    # {a, 1} (times gain) bound every local Jacobian's singular values by
    # (gain * a)^6 and gain^6 for 7 layers, a = 0.5.
    jac = jax.vmap(jax.jacfwd(lambda z: pj.synthetic.mlp_apply(lat.mixing, z)))(lat.z[idx[:200]])
    sv = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
    gain = np.sqrt(2 / (1 + 0.5**2))
    assert sv.min() >= (gain * 0.5) ** 6 * (1 - 1e-4), sv.min()
    assert sv.max() <= gain**6 * (1 + 1e-4), sv.max()


# ----------------------------------------------------------------------------- D.1.3
D13_SINGLE = {  # digest: component -> (family, loc, scale)
    "A": {1: ("normal", 5, 1)},
    "B": {2: ("normal", 10, 1)},
    "C": {3: ("normal", -5, 5)},
    "D": {4: ("normal", 0, 5)},
    "E": {4: ("normal", -10, 5)},
    "F": {5: ("cauchy", 15, 1)},
    "G": {5: ("cauchy", -15, 1)},
}
D13_DOUBLE = {"D+E": {4: ("normal", 10, 5)}, "F+G": {5: ("cauchy", 20, 1)}}
D13_W = np.array([1, 1, 1, 1, 2, 2]) / 8


def _d13_spec(cond):
    spec = {c: ("normal", 0, 1) for c in range(6)}
    if cond in D13_DOUBLE:
        spec.update(D13_DOUBLE[cond])
    elif cond != "ctrl":
        for p in cond.split("+"):
            spec.update(D13_SINGLE[p])
    return spec


@pytest.fixture(scope="module")
def d13():
    return pj.synthetic.disjointedness_mixture(jax.random.key(13), n_per_condition=6000, return_latents=True)


def test_d13_component_weights(d13):
    screen, _, lat = d13
    freq = np.bincount(lat.component, minlength=6) / len(lat.component)
    se = np.sqrt(D13_W * (1 - D13_W) / len(lat.component))
    assert (np.abs(freq - D13_W) < 5 * se).all(), (freq, D13_W)


def test_d13_latents_follow_the_digest(d13):
    screen, truth, lat = d13
    assert lat.z.shape == (screen.x.shape[0], 1)
    # Pool the draws of every (condition, component) by the distribution the digest assigns.
    pooled: dict = {}
    for g, cond in enumerate(screen.conditions):
        rows = slice(screen.offsets[g], screen.offsets[g + 1])
        z, comp = lat.z[rows, 0].astype(np.float64), lat.component[rows]
        for c, spec in _d13_spec(cond).items():
            pooled.setdefault(spec, []).append(z[comp == c])
    assert len(pooled) == 10  # N(0,1) plus the 9 distributions of the table
    for (family, loc, scale), parts in pooled.items():
        z = np.concatenate(parts)
        n = len(z)
        if family == "normal":
            np.testing.assert_allclose(z.mean(), loc, atol=5 * scale / np.sqrt(n), err_msg=str((loc, scale)))
            np.testing.assert_allclose(z.std(ddof=1), scale, atol=5 * scale / np.sqrt(2 * n), err_msg=str((loc, scale)))
        else:
            # Cauchy(loc, scale): median loc, quartiles loc -/+ scale; the sample quantile at p
            # has standard error sqrt(p(1-p)/n) / f(q_p), with f(q_p) = 1/(2 pi scale) at the
            # quartiles and 1/(pi scale) at the median.
            q1, med, q3 = np.quantile(z, [0.25, 0.5, 0.75])
            np.testing.assert_allclose(med, loc, atol=5 * np.pi * scale / (2 * np.sqrt(n)))
            se_q = np.sqrt(3 / 16 / n) * 2 * np.pi * scale
            np.testing.assert_allclose([q1, q3], [loc - scale, loc + scale], atol=5 * se_q)


def test_d13_observations_are_g_of_latents(d13):
    screen, _, lat = d13
    idx = np.arange(0, screen.x.shape[0], 101)
    idx = idx[np.abs(lat.z[idx, 0]) < 1e3]  # Cauchy tails: compare where float32 keeps 1e-4 relative
    assert len(lat.mixing.weights) == 10
    np.testing.assert_allclose(screen.x[idx], _np_leaky_mlp(lat.mixing, lat.z[idx]), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- D.1.2 balls
STARTS = np.array([[0.0625, 0.4375], [0.25, 0.25], [0.4375, 0.0625]])  # documented segment starts
COLOURS = np.array([[0.10, 0.20, 0.95], [0.60, 0.10, 0.80], [0.95, 0.10, 0.10]])  # blue, purple, red


@pytest.fixture(scope="module")
def ball_screen():
    return pj.synthetic.balls(jax.random.key(12), n_per_condition=3, n_control=4, return_latents=True)


def test_balls_are_at_the_latent_positions(ball_screen):
    screen, truth, lat = ball_screen
    size = 128
    assert screen.x.shape == (4 + 10 * 3, 3, size, size)
    assert screen.x.min() >= 0.0 and screen.x.max() <= 1.0
    # The documented map from latents to pixel centres (row, col).
    t = 1.0 / (1.0 + np.exp(-(lat.z.astype(np.float64) - 1.5) / 1.5))
    want = size * (STARTS[None] + 0.5 * t[..., None])
    np.testing.assert_allclose(lat.position, want, atol=1e-3)
    rows, cols = np.mgrid[0:size, 0:size]
    for n in range(screen.x.shape[0]):
        img = screen.x[n]
        for b in range(3):
            mask = np.abs(img - COLOURS[b][:, None, None]).max(axis=0) < 0.02  # fully covered pixels
            # A disc of radius 6 has about 95 fully covered pixels; their centroid is the centre
            # up to the pixel grid (< 0.5 px for a symmetric, unoccluded disc).
            assert 70 < mask.sum() < 130, (n, b, mask.sum())
            centroid = np.array([rows[mask].mean(), cols[mask].mean()])
            np.testing.assert_allclose(centroid, want[n, b], atol=0.5, err_msg=f"image {n}, ball {b}")


def test_balls_latents_follow_d11_structure():
    # Large latent sample through the same code path with tiny images: perturbed balls move.
    screen, _, lat = pj.synthetic.balls(jax.random.key(5), n_per_condition=400, size=32, n_background=0,
                                        return_latents=True)
    se = 1 / np.sqrt(400)
    for g, cond in enumerate(screen.conditions):
        z = lat.z[screen.offsets[g] : screen.offsets[g + 1]]
        moved = set().union(*(D11_SPEC[p] for p in cond.split("+"))) if cond != "ctrl" else set()
        np.testing.assert_allclose(z.mean(0), [3.0 if l in moved else 0.0 for l in range(3)], atol=5 * se)


def test_balls_blocked_and_chunked_rendering_equal_one_pass():
    one, _ = _make("balls", 4, noise=0.05)
    split, _ = _make("balls", 4, noise=0.05, block_size=5, images_per_chunk=3)  # 23 images: 5 blocks, last padded
    np.testing.assert_allclose(split.x, one.x, rtol=0, atol=1e-6)
    clean, _ = _make("balls", 4)
    resid = (one.x - clean.x).astype(np.float64)
    assert abs(resid.std() - 0.05) < 0.001  # i.i.d. pixel noise, 280k pixels: se of the std ~7e-5


# ----------------------------------------------------------------------------- latent factor
@pytest.fixture(scope="module")
def lf_large():
    return pj.synthetic.latent_factor(
        jax.random.key(7), 8, n_per_condition=4000, dim=8, n_modules=2, module_size=3,
        return_latents=True, return_model=True,
    )


def test_latent_factor_truth_is_the_modules(lf_large):
    screen, truth, lat, model = lf_large
    mod = model.module
    assert sorted(np.bincount(mod[mod >= 0])) == [3, 3] and (mod < 0).sum() == 2
    want = (mod[:, None] == mod[None, :]) & (mod[:, None] >= 0) & ~np.eye(8, dtype=bool)
    np.testing.assert_array_equal(truth, want)
    assert truth.sum() // 2 == 2 * 3
    np.testing.assert_allclose(model.weights.sum(), 1.0)


def test_latent_factor_additivity_zero_exactly_for_non_interacting_pairs(lf_large):
    """float64 group means: A_ij = ||mu_ij - mu_i - mu_j + mu_0||, against its standard error.

    For non-interacting pairs the population A_ij is exactly 0 (means are linear in the
    mixture), so A_ij^2 / se^2 is a weighted chi-square with mean about 1; the threshold 4
    (in se units) fails with probability below 1e-4 per pair even in the worst case of one
    dominant coordinate (chi-square_1 > 16). Interacting pairs must clear 8 se.
    """
    screen, truth, _, _ = lf_large
    x = screen.x.astype(np.float64)
    groups = [x[screen.offsets[g] : screen.offsets[g + 1]] for g in range(screen.n_groups)]
    mu = np.stack([v.mean(0) for v in groups])
    var = np.array([v.var(0, ddof=1).sum() / len(v) for v in groups])
    zs = {}
    for (i, j), (gij, g0, gi, gj) in zip(screen.pairs, screen.pair_groups):
        a = np.linalg.norm(mu[gij] - mu[gi] - mu[gj] + mu[g0])
        zs[(i, j)] = a / np.sqrt(var[[gij, g0, gi, gj]].sum())
    null = [z for p, z in zs.items() if not truth[p]]
    hit = [z for p, z in zs.items() if truth[p]]
    assert len(null) == 22 and len(hit) == 6
    assert max(null) < 4.0, sorted(null)
    assert min(hit) > 8.0, sorted(hit)


def test_latent_factor_programs_follow_the_construction(lf_large):
    """Per program, a non-interacting double has the latent law of the single that targets it."""
    screen, truth, lat, model = lf_large
    se = 5 / np.sqrt(4000 * model.weights.min())  # 5 se of a per-program mean, unit variance
    for (i, j), (gij, g0, gi, gj) in zip(screen.pairs, screen.pair_groups):
        if truth[i, j]:
            continue
        rows = slice(screen.offsets[gij], screen.offsets[gij + 1])
        z, c = lat.z[rows], lat.component[rows]
        for prog in range(len(model.weights)):
            want = model.means[prog].copy()
            want += model.shifts[i] if model.program[i] == prog else 0.0
            want += model.shifts[j] if model.program[j] == prog else 0.0
            np.testing.assert_allclose(z[c == prog].mean(0), want, atol=se)


def test_latent_factor_double_fraction_and_names():
    screen, truth = pj.synthetic.latent_factor(
        3, 6, n_per_condition=8, n_control=12, dim=5, double_fraction=0.4, names=list("UVWXYZ")
    )
    assert screen.perturbations == tuple("UVWXYZ")
    assert (screen.kinds == 1).sum() == 6 and (screen.kinds == 2).sum() == round(0.4 * 15)
    assert truth.shape == (6, 6) and truth.sum() > 0
    full, truth_full = pj.synthetic.latent_factor(3, 6, n_per_condition=8, n_control=12, dim=5)
    np.testing.assert_array_equal(truth, truth_full)  # truth covers all pairs regardless


def test_latent_factor_default_sizes():
    screen, truth = pj.synthetic.latent_factor(0, n_per_condition=2, dim=4)
    assert screen.n_perturbations == 20 and screen.n_groups == 1 + 20 + 190
    assert truth.sum() // 2 == 4 * 6  # 4 modules of 4: 24 interacting pairs


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: pj.synthetic.separability_tabular(0, n_per_condition=1), ValueError, "n_per_condition"),
        (lambda: pj.synthetic.separability_tabular(0, dim=2), ValueError, "injective"),
        (lambda: pj.synthetic.separability_tabular("seed"), TypeError, "key"),
        (lambda: pj.synthetic.disjointedness_mixture(0, n_per_condition=2.5), TypeError, "n_per_condition"),
        (lambda: pj.synthetic.balls(0, size=8), ValueError, "size"),
        (lambda: pj.synthetic.balls(0, noise=-1.0), ValueError, "noise"),
        (lambda: pj.synthetic.latent_factor(0, 6, n_modules=2, module_size=4), ValueError, "exceeds"),
        (lambda: pj.synthetic.latent_factor(0, 6, double_fraction=0.0), ValueError, "double_fraction"),
        (lambda: pj.synthetic.latent_factor(0, 3, names=["a", "a", "b"]), ValueError, "distinct"),
    ],
)
def test_bad_input_is_caught_at_the_boundary(call, err, match):
    with pytest.raises(err, match=match):
        call()
