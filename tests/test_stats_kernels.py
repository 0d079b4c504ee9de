"""Kernels, squared distances and the certified medians of ``pj.stats`` against float64 NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.stats import bracket_median, grid_histogram, grid_median, grid_spec, sq_distances


def test_sq_distances_match_numpy_with_exact_zero_diagonal(x64, rng):
    x = rng.normal(size=(13, 5)) + 100.0  # a large offset: the matmul form cancels badly
    y = rng.normal(size=(7, 5)) + 100.0
    ref = ((x[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(sq_distances(jnp.asarray(x), jnp.asarray(y))), ref, rtol=1e-9)
    d_self = np.asarray(sq_distances(jnp.asarray(x)))
    assert np.all(np.diag(d_self) == 0.0)  # exact, not ~1e-12
    assert np.all(d_self >= 0.0)
    np.testing.assert_allclose(d_self, ((x[:, None] - x[None]) ** 2).sum(-1), rtol=1e-9, atol=1e-9)


def test_sq_distances_float32_clamped_and_exact_diagonal(rng):
    x = (rng.normal(size=(50, 8)) * 1e-3 + 10.0).astype(np.float32)  # tiny distances, huge norms
    d = np.asarray(sq_distances(jnp.asarray(x)))
    assert (d >= 0).all() and (np.diag(d) == 0).all()


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_kernels_closed_form(kernel, x64):
    sq = np.linspace(0.0, 30.0, 61)
    s = 1.7
    r = np.sqrt(sq)
    if kernel == "rbf":
        ref = np.exp(-sq / (2 * s * s))
    else:
        u = np.sqrt(5) * r / s
        ref = (1 + u + u * u / 3) * np.exp(-u)
    got = np.asarray(pj.stats.kernel_from_sq(kernel, jnp.asarray(sq), s))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert got[0] == 1.0
    # the Matern gradient at r = 0 is finite (the where-guarded sqrt)
    g = jax.grad(lambda q: pj.stats.kernel_from_sq(kernel, q, s))(0.0)
    assert np.isfinite(float(g))


def test_sq_distances_from_precomputed_norms_equal_the_plain_call(x64, rng):
    x, y = rng.normal(size=(9, 4)) + 3.0, rng.normal(size=(6, 4))
    ref = ((x[:, None] - y[None]) ** 2).sum(-1)
    nx, ny = (x * x).sum(-1), (y * y).sum(-1)
    got = sq_distances(jnp.asarray(x), jnp.asarray(y), x_sq_norms=jnp.asarray(nx), y_sq_norms=jnp.asarray(ny))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(sq_distances(jnp.asarray(x), jnp.asarray(y))))
    # the norms really are read: wrong norms give wrong distances
    off = sq_distances(jnp.asarray(x), jnp.asarray(y), x_sq_norms=jnp.asarray(nx + 1.0), y_sq_norms=jnp.asarray(ny))
    np.testing.assert_allclose(np.asarray(off), ref + 1.0, rtol=1e-12)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_kernel_fn_equals_the_closed_form(kernel, x64):
    sq = np.linspace(0.0, 30.0, 61)
    s = 1.7
    u = np.sqrt(5) * np.sqrt(sq) / s
    ref = np.exp(-sq / (2 * s * s)) if kernel == "rbf" else (1 + u + u * u / 3) * np.exp(-u)
    k = pj.stats.kernel_fn(kernel, jnp.asarray(s))
    np.testing.assert_allclose(np.asarray(k(jnp.asarray(sq))), ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda q, b: pj.stats.kernel_fn(kernel, b)(q))(sq, s)), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="kernel must be one of"):
        pj.stats.kernel_fn("gauss", 1.0)


def _cases(rng):
    """Distance blocks of several shapes of distribution (row masks, col masks)."""
    out = {}
    for name, gen in {
        "gauss64": lambda n: rng.normal(size=(n, 64)),
        "line": lambda n: rng.normal(size=(n, 1)),
        "cauchy": lambda n: rng.standard_cauchy(size=(n, 2)),
        "ties": lambda n: rng.integers(0, 3, size=(n, 1)).astype(float),
        "gap": lambda n: np.concatenate([rng.normal(size=(n // 2, 1)), 100 + rng.normal(size=(n - n // 2, 1))]),
    }.items():
        a, b, c = gen(160), gen(120), gen(40)
        d1 = ((a[:, None] - b[None]) ** 2).sum(-1).astype(np.float32)
        d2 = ((c[:, None] - b[None]) ** 2).sum(-1).astype(np.float32)
        rm, cm = np.arange(160) < 131, np.arange(120) < 117
        vals = np.concatenate([np.sqrt(d1[:131, :117].astype(np.float64)).ravel(), np.sqrt(d2[:, :117].astype(np.float64)).ravel()])
        out[name] = ([(d1, rm, cm), (d2, np.ones(40, bool), cm)], float(np.median(vals)))
    return out


def test_certified_medians_within_half_percent(rng):
    """Both certified medians are within rtol = 1e-3 (hence within 0.5%) of np.median, on
    Gaussian (64-d), 1-d, heavy-tailed, tied and gapped distance distributions."""
    f_bracket = jax.jit(lambda blocks, key: bracket_median(blocks, key=key, rtol=1e-3))

    @jax.jit
    def grid_jit(own, extra, hist, base, shift, top):
        spec = pj.stats.GridSpec(base=base, shift=shift, n_grid=4096)
        return grid_median(own, spec=spec, extra_hist=hist, extra_blocks=extra, rtol=1e-3, upper_bound=top)

    def f_grid(blocks):  # the second block plays a shared block whose grid histogram is precomputed
        d0, r0, c0 = blocks[1]
        top = max(float(np.max(b[0])) for b in blocks)
        spec = grid_spec(jnp.float32(np.median(np.asarray(d0)) * 2.0**-8 + 1e-30), jnp.float32(top), n_grid=4096)
        hist = grid_histogram(d0, r0[:, None] & c0[None, :], spec)
        return grid_jit([blocks[0]], [blocks[1]], hist, spec.base, spec.shift, jnp.float32(top))

    for name, (blocks, exact) in _cases(rng).items():
        blocks_j = [tuple(jnp.asarray(v) for v in b) for b in blocks]
        for res in (f_bracket(blocks_j, jax.random.key(0)), f_grid(blocks_j)):
            assert bool(res.converged), name
            rel = abs(float(res.median) / exact - 1.0)
            assert rel <= 1e-3 + 1e-6, (name, rel)
            assert float(res.lower) <= exact * (1 + 1e-6) and float(res.upper) >= exact * (1 - 1e-6), name


def test_median_zero_flag_and_exactness_in_float64(x64, rng):
    x = np.zeros((30, 3))
    x[:4] = rng.normal(size=(4, 3))  # most distances are exact zeros
    d = np.asarray(sq_distances(jnp.asarray(x), jnp.asarray(x[::-1].copy())))
    f = jax.jit(lambda blocks, key, rtol: bracket_median(blocks, key=key, rtol=rtol))
    res = f([(jnp.asarray(d), jnp.ones(30, bool), jnp.ones(30, bool))], jax.random.key(0), 1e-3)
    assert bool(res.zero) and float(res.median) == 0.0
    # tight tolerance in float64: the certified median equals np.median to 1e-9
    y = rng.normal(size=(101, 4))
    dd = ((y[:, None] - y[None, :60]) ** 2).sum(-1)
    res = f([(jnp.asarray(dd), jnp.ones(101, bool), jnp.ones(60, bool))], jax.random.key(1), 1e-10)
    np.testing.assert_allclose(float(res.median), np.median(np.sqrt(dd)), rtol=1e-9)


def test_median_heuristic_is_exact_masked_median(x64, rng):
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(12, 3))
    mx, my = np.arange(9) < 7, np.arange(12) < 10
    ref = np.median(np.sqrt(((x[:7, None] - y[None, :10]) ** 2).sum(-1)))
    got = pj.stats.median_heuristic(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mx), jnp.asarray(my))
    np.testing.assert_allclose(float(got), ref, rtol=1e-12)


def test_grid_histogram_batched_equals_looped_and_numpy(rng):
    """vmap (and nested vmap) of the histogram, which uses a flat-scatter batching rule,
    equals the per-item histogram, which equals np.histogram-style counting of the bins."""
    spec = grid_spec(jnp.float32(0.05), jnp.float32(50.0), n_grid=512)
    d = jnp.asarray(rng.exponential(size=(3, 2, 20, 30)).astype(np.float32)) * 3.0
    d = d.at[0, 0, :2].set(0.0).at[1, 1, 3].set(1e-3).at[2, 0, 4].set(1e4)  # zero, underflow, overflow bins
    mask = jnp.asarray(rng.random(size=(3, 2, 20, 30)) < 0.8)
    f = lambda a, m: grid_histogram(a, m, spec)  # noqa: E731
    nested = jax.jit(jax.vmap(jax.vmap(f)))(d, mask)
    for a in range(3):
        for b in range(2):
            one = np.asarray(f(d[a, b], mask[a, b]))
            np.testing.assert_array_equal(np.asarray(nested[a, b]), one)
            # reference: the bin of each valid value by its float bits, in NumPy
            v = np.asarray(d[a, b])[np.asarray(mask[a, b])]
            bits = v.view(np.int32).astype(np.int64)
            base, shift = int(spec.base), int(spec.shift)
            idx = np.where(v <= 0, 0, np.where(bits < base, 1, np.clip((bits - base) >> shift, 0, 512) + 2))
            np.testing.assert_array_equal(one, np.bincount(idx, minlength=515))
