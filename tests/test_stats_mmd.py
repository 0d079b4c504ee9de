"""The functional core ``pj.stats.mixture_mmd2``: exactness, padding, jit/vmap/grad, nulls, BH."""

from __future__ import annotations

import sys
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pairint_jax as pj

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _disj_data import brute_mmd2, exact_cross_median  # noqa: E402

SIZES = (7, 11, 5, 9)  # n_ij, n_0, n_i, n_j: unequal on purpose

# jit once per (kernel, bandwidth): eager dispatch of the many small ops would dominate the test time
_mmd = jax.jit(pj.stats.mixture_mmd2, static_argnames=("kernel", "bandwidth"))


def _groups(rng, sizes=SIZES, d=3, shift=(0.6, 0.0, 0.3, 0.1)):
    return [rng.normal(size=(n, d)) + s for n, s in zip(sizes, shift)]


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_block_form_equals_float64_brute_force(kernel, x64, rng):
    """Block form == the digest's formula evaluated by a double loop, rtol 1e-6 (float64)."""
    xs = _groups(rng)
    for bw in (0.7, 2.3):
        got = float(_mmd(*xs, kernel=kernel, bandwidth=bw))
        np.testing.assert_allclose(got, brute_mmd2(xs, bw, kernel), rtol=1e-6)
    # bandwidth="pair": the exact median of the cross distances ij u 0 vs i u j
    got = float(_mmd(*xs, kernel=kernel, bandwidth="pair"))
    np.testing.assert_allclose(got, brute_mmd2(xs, exact_cross_median(xs), kernel), rtol=1e-6)


def test_padding_does_not_change_the_score(x64, rng):
    xs = _groups(rng)
    ref = float(_mmd(*xs, kernel="matern52", bandwidth="pair"))
    padded, masks = [], []
    for k, x in enumerate(xs):
        extra = 3 + k
        padded.append(np.concatenate([x, rng.normal(size=(extra, x.shape[1])) * 50]))  # garbage rows
        masks.append(np.arange(len(x) + extra) < len(x))
    got = float(_mmd(*padded, *masks, kernel="matern52", bandwidth="pair"))
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_jit_and_vmap_equal_the_loop(rng):
    n_pairs, m, d = 3, 12, 4
    x = rng.normal(size=(n_pairs, 4, m, d)).astype(np.float32)
    counts = rng.integers(3, m + 1, size=(n_pairs, 4))
    masks = np.arange(m)[None, None, :] < counts[..., None]

    def f(xg, mg, bw):
        return pj.stats.mixture_mmd2(xg[0], xg[1], xg[2], xg[3], mg[0], mg[1], mg[2], mg[3], kernel="rbf", bandwidth=bw)

    # float32: the statistic is a difference of O(1) kernel means, so compare with atol 1e-6
    loop = np.array([float(f(x[p], masks[p], 1.5)) for p in range(n_pairs)])  # no jit
    batched = np.asarray(jax.jit(jax.vmap(f, in_axes=(0, 0, None)))(x, masks, 1.5))
    np.testing.assert_allclose(batched, loop, rtol=1e-5, atol=1e-6)
    jitted = np.array([float(jax.jit(f)(x[p], masks[p], 1.5)) for p in range(n_pairs)])
    np.testing.assert_allclose(jitted, loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_grad_matches_finite_differences(kernel, x64, rng):
    xs = [jnp.asarray(v) for v in _groups(rng, sizes=(5, 6, 4, 5), d=2)]

    @jax.jit
    def f(x_ij, bw):
        return pj.stats.mixture_mmd2(x_ij, *xs[1:], kernel=kernel, bandwidth=bw)

    g_x, g_bw = jax.jit(jax.grad(f, argnums=(0, 1)))(xs[0], 1.3)
    eps = 1e-6
    for a, b in [(0, 0), (3, 1), (4, 0)]:
        e = np.zeros(xs[0].shape)
        e[a, b] = eps
        fd = (float(f(xs[0] + e, 1.3)) - float(f(xs[0] - e, 1.3))) / (2 * eps)
        np.testing.assert_allclose(float(g_x[a, b]), fd, rtol=1e-5, atol=1e-9)
    fd_bw = (float(f(xs[0], 1.3 + eps)) - float(f(xs[0], 1.3 - eps))) / (2 * eps)
    np.testing.assert_allclose(float(g_bw), fd_bw, rtol=1e-5, atol=1e-9)


def test_bad_inputs_raise_clear_errors(rng):
    xs = _groups(rng)
    one = [xs[0], xs[1], xs[2][:1], xs[3]]
    with pytest.raises(ValueError, match="x_i has 1 valid observation"):
        pj.stats.mixture_mmd2(*one)
    bad = [x.copy() for x in xs]
    bad[1][2, 0] = np.nan
    with pytest.raises(ValueError, match="x_0 contains non-finite"):
        pj.stats.mixture_mmd2(*bad)
    with pytest.raises(ValueError, match="positive finite"):
        pj.stats.mixture_mmd2(*xs, bandwidth=0.0)
    const = [np.ones((4, 2))] * 4
    with pytest.raises(ValueError, match="median distance .* is 0"):
        pj.stats.mixture_mmd2(*const, bandwidth="pair")
    with pytest.raises(ValueError, match="kernel must be one of"):
        pj.stats.mixture_mmd2(*xs, kernel="laplace")
    with pytest.raises(ValueError, match="same d"):
        pj.stats.mixture_mmd2(xs[0], xs[1], xs[2], xs[3][:, :2])


def test_one_pair_test_and_null_machinery(x64, rng):
    xs = _groups(rng)
    key = jax.random.key(3)
    test = jax.jit(pj.stats.mixture_mmd2_test, static_argnames=("kernel", "n_permutations", "null"))
    for null in ("permutation", "bootstrap"):
        res = test(*xs, key=key, kernel="rbf", bandwidth=1.1, n_permutations=49, null=null)
        np.testing.assert_allclose(float(res.statistic), brute_mmd2(xs, 1.1, "rbf"), rtol=1e-6)
        assert 1 / 50 <= float(res.p_value) <= 1.0
    # a permutation that keeps every label reproduces the observed statistic exactly
    z = jnp.asarray(np.concatenate(xs))
    labels = jnp.asarray(np.repeat(np.arange(4), SIZES), jnp.int32)
    kmat = pj.stats.kernel_from_sq("rbf", pj.stats.sq_distances(z), 1.1)
    onehot = jax.nn.one_hot(labels, 4)
    counts = jnp.asarray(SIZES)
    sums = onehot.T @ kmat @ onehot - jnp.diag(counts)
    np.testing.assert_allclose(float(pj.stats.mixture_mmd2_from_block_sums(sums, counts)), brute_mmd2(xs, 1.1, "rbf"), rtol=1e-6)
    # permuted statistics keep the group sizes: their labellings are permutations of the labels
    t = pj.stats.permutation_null(key, kmat, labels, n_permutations=64)
    assert t.shape == (64,) and np.isfinite(np.asarray(t)).all()
    # the bootstrap null is centred: E*[T*] = 0 exactly, so its mean is ~0 relative to its spread
    tb = np.asarray(pj.stats.bootstrap_null(key, kmat, labels, n_bootstrap=2000))
    assert abs(tb.mean()) < 4 * tb.std() / np.sqrt(len(tb))


def test_benjamini_hochberg_matches_definition(rng):
    p = rng.uniform(size=40) ** 2
    p[[3, 17]] = np.nan
    q = pj.stats.benjamini_hochberg(p)
    ok = np.isfinite(p)
    pv = p[ok]
    m = len(pv)
    ref = np.array([min(1.0, min(m * pv[pv >= v] / np.array([np.sum(pv <= w) for w in pv[pv >= v]]))) for v in pv])
    np.testing.assert_allclose(q[ok], ref, rtol=1e-12)
    assert np.isnan(q[[3, 17]]).all()


def test_permutation_null_equals_numpy_reference(x64, rng):
    """permutation_null with given base permutations, on a padded layout, equals a NumPy
    reference of its documented rule (each base permutation restricted, in order of
    appearance, to the valid rows; block-form statistic of the permuted labels; rtol 1e-10
    in float64), and the identity permutation reproduces the observed statistic."""
    sizes, pad = SIZES, (2, 0, 3, 1)  # padding rows after each group, as in the screen layout
    xs = _groups(rng)
    z = np.concatenate([np.concatenate([x, np.zeros((p, 3))]) for x, p in zip(xs, pad)])
    labels = np.concatenate([np.r_[np.full(n, g), np.full(p, -1)] for g, (n, p) in enumerate(zip(sizes, pad))])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    kmat = np.exp(-d2 / (2 * 1.1**2))
    n = len(labels)
    base = np.stack([np.arange(n)] + [rng.permutation(n) for _ in range(5)])
    got = np.asarray(pj.stats.permutation_null(jax.random.key(0), jnp.asarray(kmat), jnp.asarray(labels), n_permutations=6, base_permutations=jnp.asarray(base)))
    valid = np.flatnonzero(labels >= 0)

    def stat(lab):
        groups = [z[lab == g] for g in range(4)]
        return brute_mmd2(groups, 1.1, "rbf")

    expected = []
    for sigma in base:
        order = sigma[sigma < len(valid)]  # the valid slots in order of appearance
        lab = labels.copy()
        lab[valid] = labels[valid][order]
        expected.append(stat(lab))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(got[0], stat(labels), rtol=1e-10)
