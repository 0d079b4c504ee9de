"""The posterior's main effects and side features (issue 12): recovery of a planted
``a_i + a_j + low rank`` matrix, the augmented-factor identity, features that help (and
noise features that do not hurt), NaN features, and older states without the new fields."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.discovery import posterior as P


def all_pairs(n):
    i, j = np.triu_indices(n, 1)
    return np.stack([i, j], 1)


def planted_main(seed, n=60, rank=2, noise=0.1):
    """``a_i + a_j + 1/2 (u_i.v_j + v_i.u_j) + noise``, ``a ~ N(0, 1)``, factor entries N(0, 0.7^2)
    (off the diagonal: sd of the truth about 1.2, of its low-rank part about 0.5)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    u, v = 0.7 * rng.normal(size=(n, rank)), 0.7 * rng.normal(size=(n, rank))
    clean = a[:, None] + a[None, :] + 0.5 * (u @ v.T + v @ u.T)
    e = rng.normal(size=(n, n))
    return clean, clean + noise * (e + e.T) / np.sqrt(2), a


def held_out_error(truth, noisy, frac, seed, *, features=None, steps=2000, **kw):
    """Relative error ``||mean - truth|| / ||truth - mean(truth)||`` of the posterior mean on the
    unobserved pairs, after observing a random ``frac`` of the pairs of ``noisy``."""
    n = truth.shape[0]
    pairs = all_pairs(n)
    sel = np.random.default_rng(100 + seed).random(len(pairs)) < frac
    model = P.LowRankModel(n=n, rank=kw.pop("rank", 3), steps=steps, **kw)
    obs = P.Observations.from_pairs(pairs[sel], noisy[pairs[sel, 0], pairs[sel, 1]], capacity=len(pairs))
    state = P.init(jax.random.key(seed), model, features=features)
    state, info = P.fit_jit(jax.random.key(seed + 1), state, obs, model=model)
    assert bool(info.finite)
    mean = np.asarray(P.mean_matrix(state, model=model), np.float64)
    h = pairs[~sel]
    t = truth[h[:, 0], h[:, 1]]
    return np.linalg.norm(mean[h[:, 0], h[:, 1]] - t) / np.linalg.norm(t - t.mean())


def test_recovers_planted_main_effects_from_30_percent():
    """From 30% of the pairs of a planted ``a_i + a_j + rank-2`` 60 x 60 matrix (noise sd 0.1,
    truth sd about 1.2), the held-out relative error of the posterior mean against the
    noise-free truth is below 0.15 with main effects (it is about 0.11; ignoring the low-rank
    part alone would give about 0.4). The model without main effects (same rank) does worse
    (about 0.13)."""
    truth, noisy, _ = planted_main(0)
    err_main = held_out_error(truth, noisy, 0.3, 0)
    err_none = held_out_error(truth, noisy, 0.3, 0, main_effects=False)
    assert err_main < 0.15, err_main
    assert err_main < err_none, (err_main, err_none)


def test_augmented_factors_equal_the_main_effect_model_float64():
    """``sample`` folds the main effects into ``u' = [u, a, 1]``, ``v' = [v, 1, a]``: every dense
    sample equals ``shift + scale * (b + a_i + a_j + 1/2 (u_i.v_j + v_i.u_j))`` computed in float64
    from the drawn ``u, v, a, b`` (rtol 1e-5), and ``block`` agrees with ``dense``."""
    n, m = 9, 3
    model = P.LowRankModel(n=n, rank=m)
    st = P.init(jax.random.key(0), model, init_loc_scale=1.0)
    p = {**st.params, "a_loc": jnp.linspace(-1.0, 2.0, n), "a_scale": jnp.full((n,), 0.3)}
    st = st._replace(params=p, shift=jnp.float32(0.5), scale=jnp.float32(2.0))
    s = P.sample(jax.random.key(1), st, model=model, num_samples=6)
    assert s.u.shape == (6, n, m + 2)
    u, v = np.asarray(s.u, np.float64), np.asarray(s.v, np.float64)
    a = u[..., m]
    np.testing.assert_array_equal(u[..., m + 1], 1.0)
    np.testing.assert_array_equal(v[..., m], 1.0)
    np.testing.assert_array_equal(v[..., m + 1], a)
    uu, vv, b = u[..., :m], v[..., :m], np.asarray(s.offset, np.float64)
    f = b[:, None, None] + a[:, :, None] + a[:, None, :] + 0.5 * (uu @ vv.transpose(0, 2, 1) + vv @ uu.transpose(0, 2, 1))
    np.testing.assert_allclose(np.asarray(s.dense(), np.float64), 0.5 + 2.0 * f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(s.block(3, 4)), np.asarray(s.dense())[:, 3:7], rtol=1e-6, atol=1e-6)


def test_mean_matrix_is_the_guide_mean_float64():
    """``mean_matrix`` equals ``shift + scale * (mu_b + mu_a_i + mu_a_j + 1/2 (mu_u mu_v^T + mu_v mu_u^T))``
    in float64 (rtol 1e-5), and the mean of 20,000 samples off the diagonal within 5 standard errors."""
    n = 6
    model = P.LowRankModel(n=n, rank=2)
    st = P.init(jax.random.key(2), model, init_loc_scale=1.0)
    p = {**st.params, "a_loc": jnp.linspace(-1.0, 1.0, n), "a_scale": jnp.full((n,), 0.4), "offset_loc": jnp.float32(0.3)}
    st = st._replace(params=p, shift=jnp.float32(1.0), scale=jnp.float32(3.0))
    g = {k: np.asarray(v, np.float64) for k, v in p.items()}
    want = 1.0 + 3.0 * (g["offset_loc"] + np.add.outer(g["a_loc"], g["a_loc"])
                        + 0.5 * (g["U_loc"] @ g["V_loc"].T + g["V_loc"] @ g["U_loc"].T))
    got = np.asarray(P.mean_matrix(st, model=model))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    d = np.asarray(P.sample(jax.random.key(3), st, model=model, num_samples=20000).dense(), np.float64)
    off = ~np.eye(n, dtype=bool)
    se = d.std(0) / np.sqrt(len(d))
    assert np.all(np.abs(d.mean(0) - want)[off] < 5 * se[off])


def test_informative_features_help_and_noise_features_do_no_harm():
    """At 8% of the pairs of a planted ``a_i + a_j + rank-2`` 60 x 60 matrix (a perturbation
    is seen in about 5 pairs), over 3 datasets (fixed seeds): features ``a + N(0, 0.3^2)``
    lower the mean held-out relative error by at least 0.04 (they lower it by about 0.08,
    from about 0.50); two pure-noise features raise it by at most 0.03 (seed noise; they
    change it by about 0.01)."""
    errs = {"none": [], "info": [], "noise": []}
    for seed in range(3):
        truth, noisy, a = planted_main(seed)
        rng = np.random.default_rng(50 + seed)
        errs["none"].append(held_out_error(truth, noisy, 0.08, seed))
        errs["info"].append(held_out_error(truth, noisy, 0.08, seed, features=(a + 0.3 * rng.normal(size=60))[:, None]))
        errs["noise"].append(held_out_error(truth, noisy, 0.08, seed, features=rng.normal(size=(60, 2))))
    mean = {k: float(np.mean(v)) for k, v in errs.items()}
    assert mean["info"] < mean["none"] - 0.04, mean
    assert mean["noise"] < mean["none"] + 0.03, mean


def test_nan_features_are_imputed_flagged_and_fit():
    """NaN features: standardised over the observed values, imputed by the mean (0), a
    standardised missing flag appended (float64 reference); the fit stays finite."""
    x = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, 6.0], [5.0, np.nan], [np.nan, 0.0]])
    got = P.prepare_features(x, 5)
    assert got.shape == (5, 4) and got.dtype == np.float32
    for c in range(2):
        ok = ~np.isnan(x[:, c])
        z = (x[ok, c] - x[ok, c].mean()) / x[ok, c].std()
        np.testing.assert_allclose(got[ok, c], z, rtol=1e-6)
        np.testing.assert_array_equal(got[~ok, c], 0.0)
        flag = (~ok).astype(float)
        np.testing.assert_allclose(got[:, 2 + c], (flag - flag.mean()) / flag.std(), rtol=1e-6)
    assert P.prepare_features(np.ones((5, 1)), 5).tolist() == [[0.0]] * 5  # constant column -> 0, no flag
    model = P.LowRankModel(n=5, rank=2, steps=100)
    obs = P.Observations.from_pairs([[0, 1], [1, 2], [3, 4]], [1.0, 2.0, 0.5], capacity=8)
    st, info = P.fit_jit(jax.random.key(1), P.init(jax.random.key(0), model, features=x), obs, model=model)
    assert bool(info.finite) and st.features.shape == (5, 4)
    assert np.all(np.isfinite(np.asarray(P.mean_matrix(st, model=model))))
    mc = P.LowRankModel(n=5, rank=2, steps=100, link="abs")  # the Monte-Carlo ELBO path reads them too
    st, info = P.fit_jit(jax.random.key(1), P.init(jax.random.key(0), mc, features=x), obs, model=mc)
    assert mc.elbo == "mc" and bool(info.finite) and st.params["w_loc"].shape == (4,)
    assert np.all(np.asarray(P.sample(jax.random.key(2), st, model=mc, num_samples=8).dense()) >= 0)


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.full((5, 2), np.nan), ValueError, r"column\(s\) \[0, 1\] are entirely NaN"),
        (np.ones((4, 2)), ValueError, "n = 5 perturbations"),
        (np.ones(5), ValueError, "2-d"),
        (np.array([["a"]] * 5), TypeError, "float array"),
        (np.ones((5, 1), bool), TypeError, "float array"),
        (np.array([[np.inf]] * 5), ValueError, "infinite"),
    ],
)
def test_bad_features_get_clear_errors(bad, err, match):
    with pytest.raises(err, match=match):
        P.init(jax.random.key(0), P.LowRankModel(n=5, rank=2), features=bad)


def test_features_without_main_effects_and_model_validation():
    st = P.init(jax.random.key(0), P.LowRankModel(n=5, main_effects=False), features=np.ones((5, 1)))
    assert st.features.shape == (5, 1) and "w_loc" not in st.params  # kept, unused without main effects
    with pytest.raises(ValueError, match="main_effects must be True or False"):
        P.LowRankModel(n=5, main_effects="yes")
    with pytest.raises(ValueError, match="factor_prior must be one of"):
        P.LowRankModel(n=5, factor_prior="none")
    model = P.LowRankModel(n=4, rank=2)
    assert P.init(jax.random.key(0), model, features=jnp.ones((4, 2))).features.shape == (4, 2)  # a jax array is fine
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(TypeError, match="concrete array"):  # traced features: processed outside the transform
        jax.vmap(lambda k, x: P.init(k, model, features=x))(keys, jnp.ones((3, 4, 1)))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.5", True])
def test_factor_scale_min_is_validated(bad):
    with pytest.raises(ValueError, match="factor_scale_min must be a finite number >= 0"):
        P.LowRankModel(n=5, factor_scale_min=bad)


def test_the_default_floor_follows_the_link_and_an_explicit_one_is_kept():
    """None picks 1.0 under the identity link (the digest's unit prior as a floor) and 0.5 under
    the magnitude links; the default rank is 8 (benchmarks/RESULTS.md)."""
    assert P.DEFAULT_RANK == 8 and P.LowRankModel(n=5).rank == 8
    assert P.LowRankModel(n=5).factor_scale_min == 1.0
    assert P.LowRankModel(n=5, factor_scale_min=None, link="identity").factor_scale_min == 1.0
    assert P.LowRankModel(n=5, link="abs").factor_scale_min == 0.5
    assert P.LowRankModel(n=5, link="softplus").factor_scale_min == 0.5
    assert P.LowRankModel(n=5, link="abs", factor_scale_min=0.25).factor_scale_min == 0.25
    assert P.LowRankModel(n=5, factor_scale_min=0).factor_scale_min == 0.0
    with pytest.raises(ValueError, match="link must be one of"):
        P.LowRankModel(n=5, link="log")


@pytest.mark.parametrize("prior", ["shared", "ard"])
def test_the_factor_scale_floor_is_exactly_a_bounded_scale(x64, prior):
    """The negative ELBO with a learned scale below the floor equals the one at the floor itself
    (and an unbounded model at the floor), and a scale above the floor is untouched; checked
    against the Normal-Normal KL of the factors written out in float64 NumPy."""
    from pairint_jax.discovery import posterior_model as PM

    n, m, floor = 6, 3, 0.5
    obs = P.Observations.from_pairs([[0, 1], [2, 3], [1, 5], [0, 4]], [1.0, -1.0, 0.5, 2.0], capacity=8)
    bounded = P.LowRankModel(n=n, rank=m, factor_prior=prior, factor_scale_min=floor)
    free = P.LowRankModel(n=n, rank=m, factor_prior=prior, factor_scale_min=0.0)
    st = P.init(jax.random.key(0), bounded)
    data = PM.model_data(obs, st.features, 0.0, 1.0, 1.0, 1.0, model=bounded)
    shape = PM.factor_scale_shape(bounded)
    params64 = {k: jnp.asarray(v, jnp.float64) for k, v in st.params.items()}  # float32 at init

    def neg_elbo(model, lam):
        params = {**params64, "factor_scale": jnp.full(shape, lam, jnp.float64)}
        return float(PM.analytic_neg_elbo(params, *data, model=model))

    def kl_factors(lam):  # sum over U and V of KL(N(mu, s^2) || N(0, lam^2)), float64
        out = 0.0
        for name in ("U", "V"):
            mu, sd = np.asarray(params64[f"{name}_loc"]), np.asarray(params64[f"{name}_scale"])
            out += np.sum(np.log(lam / sd) + (sd**2 + mu**2) / (2 * lam**2) - 0.5)
        return out

    assert neg_elbo(bounded, 0.1) == pytest.approx(neg_elbo(bounded, floor), rel=1e-12)
    assert neg_elbo(bounded, 0.1) == pytest.approx(neg_elbo(free, floor), rel=1e-12)
    assert neg_elbo(bounded, 2.0) == pytest.approx(neg_elbo(free, 2.0), rel=1e-12)
    # the only difference between two scales is the factors' KL
    assert neg_elbo(free, 0.1) - neg_elbo(free, floor) == pytest.approx(kl_factors(0.1) - kl_factors(floor), rel=1e-9)


def test_older_state_without_main_effects_or_features_still_fits():
    """A state saved before issue 12 (no ``a_*`` parameters, ``features`` absent) is completed
    with the initial values and fits; the result equals a fit from the completed state."""
    model = P.LowRankModel(n=6, rank=2, steps=50)
    obs = P.Observations.from_pairs([[0, 1], [2, 3], [1, 5]], [1.0, -1.0, 0.5], capacity=8)
    fresh = P.init(jax.random.key(0), model)
    old = P.PosteriorState({k: v for k, v in fresh.params.items() if not k.startswith(("a_", "w_"))},
                           fresh.shift, fresh.scale)
    assert old.features is None
    got, info = P.fit_jit(jax.random.key(1), old, obs, model=model)
    want, _ = P.fit_jit(jax.random.key(1), fresh, obs, model=model)
    assert bool(info.finite) and got.features.shape == (6, 0)
    for k in want.params:
        np.testing.assert_allclose(np.asarray(got.params[k]), np.asarray(want.params[k]), rtol=1e-5, atol=1e-6)


def test_campaign_schema_knows_the_new_parameters():
    """Every parameter of the posterior is a field the campaign schema knows (its shapes mirrored:
    ``[n]`` main effects, ``[f']`` weights, ``[]`` or ``[rank]`` factor scale); a saved posterior
    with them passes, a wrong shape or a non-positive scale is refused naming the field."""
    from pairint_jax.discovery import campaign_schema as CS

    x = np.array([[1.0], [2.0], [np.nan], [4.0]])
    for prior in P.FACTOR_PRIORS:
        st = P.init(jax.random.key(0), P.LowRankModel(n=4, rank=2, factor_prior=prior), features=x)
        assert set(st.params) <= set(CS.PARAMS) | set(CS.EXTRA_PARAMS), prior
        doc = {"params": {k: np.asarray(v, np.float64).tolist() for k, v in st.params.items()}, "shift": 0.0, "scale": 1.0}
        CS._posterior(doc, 4, {"offset": True, "rank": 2})
    doc["params"]["a_loc"] = [0.0, 1.0, 2.0]
    with pytest.raises(CS._Bad, match=r"must be a \[n\] = \[4\] array"):
        CS._posterior(doc, 4, {"offset": True, "rank": 2})
    doc["params"]["a_loc"], doc["params"]["a_tau"] = [0.0] * 4, -1.0
    with pytest.raises(CS._Bad, match="must be a number > 0"):
        CS._posterior(doc, 4, {"offset": True, "rank": 2})
