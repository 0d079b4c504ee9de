"""The low-rank SVI posterior: closed-form ELBO vs numpyro's Monte-Carlo ELBO, recovery of a
planted matrix, shrinking uncertainty, JAX hygiene (jit, vmap, no recompilation)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.discovery import posterior as P

from _compiles import compile_log


def planted(n, rank, rng):
    a = rng.normal(size=(n, rank))
    return a @ a.T


def all_pairs(n):
    i, j = np.triu_indices(n, 1)
    return np.stack([i, j], 1)


@pytest.mark.parametrize("variant", ["factors", "main+features+ard", "main+shared"])
def test_analytic_elbo_equals_numpyro_monte_carlo(rng, variant):
    """The closed-form negative ELBO equals the mean of numpyro's Trace_ELBO estimates
    (20,000 single-particle draws) within 4 standard errors, at arbitrary guide parameters,
    in both likelihood layouts (dense [n, n] and gather over buffer slots), which agree to
    float32 rounding; without main effects, with main effects, features (a NaN
    included), the feature-interaction term ``x_i^T B x_j`` and ARD scales, and with main
    effects and a shared factor scale."""
    from numpyro.infer import Trace_ELBO

    from pairint_jax.discovery import posterior_model as PM

    n = 7
    pairs = all_pairs(n)[:15]
    obs = P.Observations.from_pairs(pairs, rng.normal(size=15), capacity=20)  # 5 masked slots
    full = variant != "factors"
    feats = np.stack([rng.normal(size=n), rng.normal(size=n)], 1) if variant == "main+features+ard" else None
    if feats is not None:
        feats[2, 1] = np.nan
    exact = {}
    for layout in ("dense", "gather"):
        prior = {"factors": "unit", "main+features+ard": "ard", "main+shared": "shared"}[variant]
        model = P.LowRankModel(n=n, rank=3, offset=True, layout=layout, main_effects=full, factor_prior=prior,
                               feature_interactions=feats is not None)
        state = P.init(jax.random.key(0), model, features=feats, init_loc_scale=0.8)
        p = dict(state.params)
        p["U_scale"] = jnp.asarray(np.linspace(0.1, 0.8, n * 3).reshape(n, 3), jnp.float32)
        p["V_scale"] = jnp.asarray(np.linspace(0.7, 0.2, n * 3).reshape(n, 3), jnp.float32)
        p["offset_loc"], p["offset_scale"] = jnp.float32(0.4), jnp.float32(0.3)
        p["sigma_loc"], p["sigma_scale"] = jnp.float32(-0.2), jnp.float32(0.25)
        if full:
            p["a_loc"] = jnp.asarray(np.linspace(-0.5, 0.7, n), jnp.float32)
            p["a_scale"] = jnp.asarray(np.linspace(0.2, 0.4, n), jnp.float32)
            p["a_tau"], p["factor_scale"] = jnp.float32(0.7), jnp.float32(0.8)
        if feats is not None:
            assert state.features.shape == (n, 3)  # 2 features + 1 missing-value flag
            p["w_loc"], p["w_scale"] = jnp.asarray([0.3, -0.2, 0.1]), jnp.asarray([0.2, 0.3, 0.1])
            p["factor_scale"] = jnp.asarray([0.5, 1.2, 0.9])
            # the feature-interaction matrix B (on by default): an asymmetric mean, unequal scales
            p["B_loc"] = jnp.asarray(np.linspace(-0.6, 0.5, 9).reshape(3, 3), jnp.float32)
            p["B_scale"] = jnp.asarray(np.linspace(0.1, 0.5, 9).reshape(3, 3).T, jnp.float32)
            p["B_tau"] = jnp.float32(0.6)
        data = PM.model_data(obs, state.features, 0.0, 1.0, 0.8, 1.5, model=model)
        assert len(data[0]) == (2 if layout == "dense" else 4)
        exact[layout] = float(P._analytic_neg_elbo(p, *data, model=model))
        m = functools.partial(P._numpyro_model, model=model)
        g = functools.partial(P._numpyro_guide, model=model)
        one = lambda k: Trace_ELBO().loss(k, p, m, g, *data)
        draws = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), 20000)), np.float64)
        se = draws.std() / np.sqrt(len(draws))
        assert abs(draws.mean() - exact[layout]) < 4 * se, (layout, exact[layout], draws.mean(), se)
    assert exact["dense"] == pytest.approx(exact["gather"], rel=1e-5)


def test_recovers_planted_rank2_from_60_percent(rng):
    """Posterior mean of a planted rank-2 30x30 matrix from 60% of its pairs: relative error
    (Frobenius, off-diagonal) below 5% on the unobserved pairs (about 1.5% seen) and below 2%
    on the observed ones; the posterior std on the observed pairs is far below the prior's."""
    n = 30
    r = planted(n, 2, rng)
    pairs = all_pairs(n)
    sel = rng.random(len(pairs)) < 0.6
    model = P.LowRankModel(n=n, rank=5, steps=3000)
    cap = len(pairs)
    obs = P.Observations.from_pairs(pairs[sel], r[pairs[sel, 0], pairs[sel, 1]], capacity=cap)
    state, info = P.fit_jit(jax.random.key(1), P.init(jax.random.key(0), model), obs, model=model)
    assert bool(info.finite) and int(info.skipped) == 0
    mean, std = map(np.asarray, P.posterior_mean_std(P.sample(jax.random.key(2), state, model=model, num_samples=500)))
    seen = np.zeros((n, n), bool)
    seen[pairs[sel, 0], pairs[sel, 1]] = True
    seen |= seen.T
    unseen = ~seen & ~np.eye(n, dtype=bool)
    rel = lambda m: np.linalg.norm((mean - r)[m]) / np.linalg.norm(r[m])
    assert rel(unseen) < 0.05, rel(unseen)
    assert rel(seen) < 0.02, rel(seen)

    # std shrinks where data are. Prior std of R (standardised units): 1/2 (u.v' + v.u') with
    # m = 5 standard-normal columns has variance 2m/4 = 2.5, plus 1 for the offset; times scale.
    prior_std = np.sqrt(3.5) * float(state.scale)
    assert std[seen].mean() < 0.01 * prior_std
    assert std[seen].mean() < std[unseen].mean()
    # with 30% of the pairs observed (same compiled program: no retrace) the std on the
    # observed pairs is below that on the unobserved ones, and above the 60% fit's
    part = sel & (rng.random(len(pairs)) < 0.5)
    obs2 = P.Observations.from_pairs(pairs[part], r[pairs[part, 0], pairs[part, 1]], capacity=cap)
    with compile_log() as log:
        state2, _ = P.fit_jit(jax.random.key(1), P.init(jax.random.key(0), model), obs2, model=model)
    assert log.count("_fit_jit") == 0
    _, std2 = map(np.asarray, P.posterior_mean_std(P.sample(jax.random.key(2), state2, model=model, num_samples=500)))
    seen2 = np.zeros((n, n), bool)
    seen2[pairs[part, 0], pairs[part, 1]] = True
    seen2 |= seen2.T
    assert std2[seen2].mean() < std2[~seen2 & ~np.eye(n, dtype=bool)].mean()
    assert std[seen2].mean() < 0.1 * std2[seen2].mean()


def test_fit_no_recompilation_across_rounds_and_warm_start(rng):
    n = 12
    model = P.LowRankModel(n=n, rank=2, steps=300)
    r = planted(n, 1, rng)
    pairs = all_pairs(n)[rng.permutation(66)]
    fit = jax.jit(P.fit, static_argnames="model")
    state = P.init(jax.random.key(0), model)
    losses = []
    with compile_log() as log:
        for rnd in range(4):  # 4 rounds of 10 new pairs into a fixed 40-slot buffer
            k = 10 * (rnd + 1)
            obs = P.Observations.from_pairs(pairs[:k], r[pairs[:k, 0], pairs[:k, 1]], capacity=40)
            state, info = fit(jax.random.key(rnd), state, obs, model=model, lr=0.01 * (1 + rnd))  # lr traced
            losses.append(float(info.loss))
    assert log.count("fit") <= 1  # the first round compiles (unless cached), the next three reuse it
    # warm start: refitting the last data from the fitted state starts far lower than from init
    _, warm = fit(jax.random.key(9), state, obs, model=model)
    _, cold = fit(jax.random.key(9), P.init(jax.random.key(0), model), obs, model=model)
    assert float(warm.first_loss) < 0.5 * float(cold.first_loss)


def test_fit_jit_equals_eager_and_vmap_equals_loop(rng):
    n = 8
    model = P.LowRankModel(n=n, rank=2, steps=40)
    obs = P.Observations.from_pairs(all_pairs(n)[:12], rng.normal(size=12), capacity=16)
    s0 = P.init(jax.random.key(0), model)
    eager, _ = P.fit(jax.random.key(1), s0, obs, model=model)
    jitted, _ = P.fit_jit(jax.random.key(1), s0, obs, model=model)
    for k in eager.params:
        np.testing.assert_allclose(np.asarray(eager.params[k]), np.asarray(jitted.params[k]), rtol=1e-4, atol=1e-5)
    keys = jax.random.split(jax.random.key(3), 3)
    states = jax.vmap(lambda k: P.init(k, model))(keys)
    batched, _ = jax.jit(jax.vmap(lambda k, s: P.fit(k, s, obs, model=model)))(keys, states)
    for c in range(3):
        one, _ = P.fit_jit(keys[c], P.init(keys[c], model), obs, model=model)
        for k in one.params:
            np.testing.assert_allclose(np.asarray(batched.params[k][c]), np.asarray(one.params[k]), rtol=1e-4, atol=1e-5)


def test_dense_and_gather_layouts_fit_the_same(rng):
    n = 9
    obs = P.Observations.from_pairs(all_pairs(n)[::2], rng.normal(size=18), capacity=24)
    out = {}
    for layout in ("dense", "gather"):
        model = P.LowRankModel(n=n, rank=2, steps=60, layout=layout)
        out[layout], _ = P.fit_jit(jax.random.key(1), P.init(jax.random.key(0), model), obs, model=model)
    for k in out["dense"].params:
        np.testing.assert_allclose(np.asarray(out["dense"].params[k]), np.asarray(out["gather"].params[k]), rtol=1e-3, atol=1e-4)


def test_samples_follow_the_guide(rng):
    """Sample mean/std of the factors match the guide's loc/scale (K = 4000: 5 standard errors)."""
    n = 6
    model = P.LowRankModel(n=n, rank=2)
    st = P.init(jax.random.key(0), model, init_loc_scale=1.0)
    st = st._replace(params={**st.params, "U_scale": jnp.full((n, 2), 0.5)}, shift=jnp.float32(2.0), scale=jnp.float32(3.0))
    s = P.sample(jax.random.key(1), st, model=model, num_samples=4000)
    u = np.asarray(s.u)[..., :2]  # then the main effects and a column of ones
    se = 0.5 / np.sqrt(4000)
    assert np.all(np.abs(u.mean(0) - np.asarray(st.params["U_loc"])) < 5 * se)
    assert np.all(np.abs(u.std(0) - 0.5) < 5 * 0.5 / np.sqrt(2 * 4000))
    # R from factors: shift + scale * (1/2 (u v^T + v u^T) + b), block == dense, float64 reference
    d = np.asarray(s.dense()[:3], np.float64)
    uu, vv, bb = (np.asarray(x, np.float64) for x in (s.u[:3], s.v[:3], s.offset[:3]))
    want = 2.0 + 3.0 * (0.5 * (uu @ vv.transpose(0, 2, 1) + vv @ uu.transpose(0, 2, 1)) + bb[:, None, None])
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(s.block(2, 3)[:3]), want[:, 2:5], rtol=1e-5, atol=1e-5)


def test_mc_elbo_and_links_fit(rng):
    """The Monte-Carlo ELBO path (non-identity links) runs in the same compiled loop and
    lowers the loss; the abs link maps samples to non-negative rewards."""
    n = 10
    a = rng.normal(size=(n, 1))
    r = np.abs(a @ a.T)
    pairs = all_pairs(n)
    for link in ("abs", "softplus"):
        model = P.LowRankModel(n=n, rank=2, steps=400, link=link, standardize=False)
        assert model.elbo == "mc"
        obs = P.Observations.from_pairs(pairs, r[pairs[:, 0], pairs[:, 1]])
        st, info = P.fit_jit(jax.random.key(0), P.init(jax.random.key(1), model), obs, model=model)
        assert bool(info.finite) and float(info.loss) < float(info.first_loss)
        d = np.asarray(P.sample(jax.random.key(2), st, model=model, num_samples=20).dense())
        assert np.all(d >= 0)


def test_nonfinite_observation_is_skipped_not_silent():
    model = P.LowRankModel(n=5, rank=2, steps=30)
    obs = P.Observations.from_pairs([[0, 1], [1, 2]], [1.0, np.nan], capacity=4)
    s0 = P.init(jax.random.key(0), model)
    st, info = P.fit_jit(jax.random.key(1), s0, obs, model=model)
    assert int(info.skipped) == 30 and bool(info.finite)
    np.testing.assert_array_equal(np.asarray(st.params["U_loc"]), np.asarray(s0.params["U_loc"]))


def test_model_validation():
    with pytest.raises(ValueError, match="rank must be a positive int"):
        P.LowRankModel(n=5, rank=0)
    with pytest.raises(ValueError, match="link must be one of"):
        P.LowRankModel(n=5, link="exp")
    with pytest.raises(ValueError, match="closed-form ELBO needs link='identity'"):
        P.LowRankModel(n=5, link="abs", elbo="analytic")
    with pytest.raises(ValueError, match="n must be at least 2"):
        P.LowRankModel(n=1)
    with pytest.raises(ValueError, match="capacity"):
        P.Observations.from_pairs([[0, 1], [0, 2]], [1.0, 2.0], capacity=1)
    with pytest.raises(ValueError, match="distinct"):
        P.Observations.from_pairs([[0, 1], [1, 0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="diagonal"):
        P.Observations.from_pairs([[2, 2]], [1.0])
    with pytest.raises(ValueError, match="layout must be"):
        P.LowRankModel(n=5, layout="sparse")
