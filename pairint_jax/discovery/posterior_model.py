"""The numpyro model and mean-field guide of the low-rank posterior, its closed-form ELBO, and
the SVI object; see :mod:`pairint_jax.discovery.posterior` for the model in formulas.

Every function takes the model arguments ``(pairs_data, features, sigma_scale, offset_scale)``
built by :func:`model_data`: ``pairs_data`` is ``(Y [n, n], M [n, n])`` (dense layout) or
``(rows, cols, y, mask)`` (gather layout), ``features`` the processed ``[n, f']`` covariates.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pairint_jax.discovery.links import NONNEGATIVE_LINKS
from pairint_jax.discovery.posterior_types import LowRankModel, Observations, _link

#: Initial value of the learned prior scale ``tau_w`` of the feature weights ``w`` (features
#: are standardised; ``a`` is in standardised score units).
W_SCALE = 0.5
#: Initial value of the learned main-effect prior scale ``tau_a`` (standardised units).
A_TAU0 = 0.5
#: Initial value of the learned prior scale ``tau_B`` of the feature-interaction matrix ``B``.
B_TAU0 = 0.25
#: Initial guide scale of every Gaussian latent.
GUIDE_SCALE0 = 0.1


def factor_scale_shape(model: LowRankModel) -> tuple:
    """Shape of the learned factor prior scale: ``()`` shared, ``(m,)`` ARD."""
    return (model.rank,) if model.factor_prior == "ard" else ()


def factor_scale(learned, model: LowRankModel):
    """The prior scale ``lambda`` of the factors: 1 (``"unit"``), else the learned point
    estimate bounded below by ``model.factor_scale_min``."""
    if model.factor_prior == "unit":
        return 1.0
    return jnp.maximum(learned, model.factor_scale_min)


def main_effect_scale(learned, model: LowRankModel):
    """The prior scale ``tau_a`` of the main effects: the learned point estimate bounded below by
    ``model.main_effect_scale_min``."""
    return jnp.maximum(learned, model.main_effect_scale_min)


def interaction_scale(learned, model: LowRankModel):
    """The prior scale ``tau_B`` of the feature-interaction matrix: the learned point estimate
    bounded below by ``model.interaction_scale_min``."""
    return jnp.maximum(learned, model.interaction_scale_min)


def standardise(obs: Observations, enabled: bool, link: str = "identity"):
    """(shift, scale) from the observed values.

    The identity link centres and scales: mean and std (std := 1 when < 2 values or 0). A
    non-negative link (``"abs"``, ``"softplus"``) only scales: shift 0 and the root mean square
    (:= 1 when there is no value or it is 0), since ``shift + scale * g(F)`` cannot go below
    ``shift`` and a centred fit would lose every score under the mean."""
    if not enabled:
        return jnp.float32(0.0), jnp.float32(1.0)
    w = obs.mask.astype(jnp.float32)
    cnt = jnp.sum(w)
    if link in NONNEGATIVE_LINKS:
        rms = jnp.sqrt(jnp.sum(w * obs.values**2) / jnp.maximum(cnt, 1.0))
        return jnp.float32(0.0), jnp.where((cnt >= 1) & (rms > 0) & jnp.isfinite(rms), rms, 1.0)
    mean = jnp.sum(w * obs.values) / jnp.maximum(cnt, 1.0)
    var = jnp.sum(w * (obs.values - mean) ** 2) / jnp.maximum(cnt, 1.0)
    std = jnp.sqrt(var)
    std = jnp.where((cnt >= 2) & (std > 0) & jnp.isfinite(std), std, 1.0)
    mean = jnp.where(jnp.isfinite(mean), mean, 0.0)
    return mean, std


def is_dense(model: LowRankModel, capacity: int) -> bool:
    """Layout of the likelihood: dense ``[n, n]`` matrices (matmuls) or a gather over the
    ``C`` buffer slots. ``"auto"`` takes dense when ``n^2 <= 8 C``: matmuls over every entry
    then cost less than gathers and their scatter-add gradients (about 5x on CPU at n = 50,
    C = 512), and the gather wins for sparse buffers (n = 1,000 with a few hundred pairs)."""
    if model.layout == "auto":
        return model.n * model.n <= 8 * capacity
    return model.layout == "dense"


def model_data(obs: Observations, features, shift, scale, sigma_scale, offset_scale, *, model: LowRankModel):
    """Model arguments ``(pairs_data, features, sigma_scale, offset_scale)`` for ``obs``."""
    y = jnp.where(obs.mask, (obs.values - shift) / scale, 0.0)
    if is_dense(model, obs.rows.shape[-1]):
        n = model.n
        big_y = jnp.zeros((n, n), jnp.float32).at[obs.rows, obs.cols].add(y)
        big_m = jnp.zeros((n, n), bool).at[obs.rows, obs.cols].max(obs.mask)
        return ((big_y, big_m), features, sigma_scale, offset_scale)
    return ((obs.rows, obs.cols, y, obs.mask), features, sigma_scale, offset_scale)


def _pair_sym(u, v, pairs_data):
    """``1/2 (u v^T + v u^T)`` at the observed entries: ``[C]`` (gather) or ``[n, n]`` (dense)."""
    if len(pairs_data) == 2:
        a = u @ v.T
        return 0.5 * (a + a.T)
    rows, cols = pairs_data[0], pairs_data[1]
    return 0.5 * (jnp.sum(u[rows] * v[cols], -1) + jnp.sum(v[rows] * u[cols], -1))


def uses_feature_pairs(model: LowRankModel, num_features: int) -> bool:
    """Whether the model has the feature-interaction term ``x_i^T B x_j`` (features given and
    ``model.feature_interactions``)."""
    return bool(model.feature_interactions and num_features)


def _pair_sym_var(x, s2, pairs_data):
    """``Var_q`` of ``1/2 (x_i^T B x_j + x_j^T B x_i)`` for independent ``B_kl`` of variance
    ``s2 [f, f]``: ``1/4 sum_kl s2_kl (x_ik x_jl + x_jk x_il)^2``, ``[C]`` or ``[n, n]``."""
    x2 = x * x
    q = jnp.einsum("ik,il->ikl", x, x).reshape(x.shape[0], -1)
    if len(pairs_data) == 2:
        t = x2 @ s2 @ x2.T
        return 0.25 * (t + t.T + 2.0 * (q * s2.reshape(-1)) @ q.T)
    rows, cols = pairs_data[0], pairs_data[1]
    xs = x2 @ s2
    t = jnp.sum(xs[rows] * x2[cols], -1) + jnp.sum(xs[cols] * x2[rows], -1)
    return 0.25 * (t + 2.0 * jnp.sum(q[rows] * s2.reshape(-1) * q[cols], -1))


def _pair_sum(a, pairs_data):
    """``a_i + a_j`` at the observed entries: ``[C]`` (gather) or ``[n, n]`` (dense)."""
    if len(pairs_data) == 2:
        return a[:, None] + a[None, :]
    return a[pairs_data[0]] + a[pairs_data[1]]


def _y_mask(pairs_data):
    return (pairs_data[0], pairs_data[1]) if len(pairs_data) == 2 else (pairs_data[2], pairs_data[3])


# ----------------------------------------------------------------------------- numpyro


def numpyro_model(pairs_data, features, sigma_scale, offset_scale, *, model: LowRankModel):
    """``U, V ~ N(0, lambda^2)``, ``a ~ N(x w, tau_a^2)``, ``w ~ N(0, tau_w^2)``, ``B ~ N(0, tau_B^2)``, ``b``,
    ``sigma``, ``y``; ``tau_a`` and ``tau_B`` are the learned point estimates bounded below by
    ``model.main_effect_scale_min`` and ``model.interaction_scale_min``."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    n, m = model.n, model.rank
    pos = constraints.softplus_positive
    lam = 1.0
    if model.factor_prior != "unit":
        learned = numpyro.param("factor_scale", jnp.ones(factor_scale_shape(model)), constraint=pos)
        lam = factor_scale(learned, model)
    u = numpyro.sample("U", dist.Normal(jnp.zeros((n, m)), lam).to_event(2))
    v = numpyro.sample("V", dist.Normal(jnp.zeros((n, m)), lam).to_event(2))
    if model.nonnegative:
        u, v = jax.nn.softplus(u), jax.nn.softplus(v)
    f = _pair_sym(u, v, pairs_data)
    if model.main_effects:
        tau = main_effect_scale(numpyro.param("a_tau", jnp.full((), A_TAU0), constraint=pos), model)
        prior_mean = jnp.zeros((n,))
        if features.shape[1]:
            w_tau = numpyro.param("w_tau", jnp.full((), W_SCALE), constraint=pos)
            w = numpyro.sample("w", dist.Normal(jnp.zeros((features.shape[1],)), w_tau).to_event(1))
            prior_mean = features @ w
        f = f + _pair_sum(numpyro.sample("a", dist.Normal(prior_mean, tau).to_event(1)), pairs_data)
    if uses_feature_pairs(model, features.shape[1]):
        nf = features.shape[1]
        b_tau = interaction_scale(numpyro.param("B_tau", jnp.full((), B_TAU0), constraint=pos), model)
        big_b = numpyro.sample("B", dist.Normal(jnp.zeros((nf, nf)), b_tau).to_event(2))
        f = f + _pair_sym(features @ big_b, features, pairs_data)
    if model.offset:
        f = f + numpyro.sample("offset", dist.Normal(0.0, offset_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    y, mask = _y_mask(pairs_data)
    with numpyro.handlers.mask(mask=mask):
        numpyro.sample("y", dist.Normal(_link(model.link, f), sigma).to_event(0), obs=y)


def numpyro_guide(pairs_data, features, sigma_scale, offset_scale, *, model: LowRankModel):
    """Mean-field Gaussian guide over ``U, V, a, w, B, b`` and a log-normal over ``sigma``."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    n, m = model.n, model.rank
    pos = constraints.softplus_positive

    def normal(name, shape, event):
        loc = numpyro.param(f"{name}_loc", jnp.zeros(shape))
        scale = numpyro.param(f"{name}_scale", jnp.full(shape, GUIDE_SCALE0), constraint=pos)
        numpyro.sample(name, dist.Normal(loc, scale).to_event(event))

    normal("U", (n, m), 2)
    normal("V", (n, m), 2)
    if model.main_effects:
        if features.shape[1]:
            normal("w", (features.shape[1],), 1)
        normal("a", (n,), 1)
    if uses_feature_pairs(model, features.shape[1]):
        normal("B", (features.shape[1],) * 2, 2)
    if model.offset:
        normal("offset", (), 0)
    loc = numpyro.param("sigma_loc", jnp.zeros(()))
    scale = numpyro.param("sigma_scale", jnp.full((), GUIDE_SCALE0), constraint=pos)
    numpyro.sample("sigma", dist.LogNormal(loc, scale))


# ----------------------------------------------------------------------------- closed form


def _kl_normal(mu, s, prior_mu, prior_s):
    """``sum KL(N(mu, s^2) || N(prior_mu, prior_s^2))`` (broadcast)."""
    return jnp.sum(jnp.log(prior_s / s) + (s**2 + (mu - prior_mu) ** 2) / (2 * prior_s**2) - 0.5)


def _f_moments(params, pairs_data, features, *, model: LowRankModel):
    """``E_q f`` and ``Var_q f`` at the observed entries (see :func:`analytic_neg_elbo`)."""
    mu_u, s_u, mu_v, s_v = params["U_loc"], params["U_scale"], params["V_loc"], params["V_scale"]
    if len(pairs_data) == 2:
        a = mu_u @ mu_v.T
        mean = 0.5 * (a + a.T)
        su2, sv2 = s_u**2, s_v**2
        b = su2 @ sv2.T + su2 @ (mu_v**2).T + (mu_u**2) @ sv2.T
        var = 0.25 * (b + b.T)
    else:
        rows, cols = pairs_data[0], pairs_data[1]
        ui, uj, vi, vj = mu_u[rows], mu_u[cols], mu_v[rows], mu_v[cols]
        sui, suj, svi, svj = s_u[rows] ** 2, s_u[cols] ** 2, s_v[rows] ** 2, s_v[cols] ** 2
        mean = 0.5 * jnp.sum(ui * vj + vi * uj, -1)
        var = 0.25 * jnp.sum(sui * svj + sui * vj**2 + ui**2 * svj + svi * suj + svi * uj**2 + vi**2 * suj, -1)
    if model.main_effects:
        mean = mean + _pair_sum(params["a_loc"], pairs_data)
        var = var + _pair_sum(params["a_scale"] ** 2, pairs_data)
    if uses_feature_pairs(model, features.shape[1]):
        mean = mean + _pair_sym(features @ params["B_loc"], features, pairs_data)
        var = var + _pair_sym_var(features, params["B_scale"] ** 2, pairs_data)
    if model.offset:
        mean = mean + params["offset_loc"]
        var = var + params["offset_scale"] ** 2
    return mean, var


def _kl_terms(params, features, sigma_scale, offset_scale, *, model: LowRankModel):
    """``KL(q || p)`` of every latent (expected over ``q(w)`` for the main effects' prior)."""
    lam = factor_scale(params.get("factor_scale"), model)
    kl = _kl_normal(params["U_loc"], params["U_scale"], 0.0, lam)
    kl = kl + _kl_normal(params["V_loc"], params["V_scale"], 0.0, lam)
    if model.main_effects:
        tau = main_effect_scale(params["a_tau"], model)
        prior_mean, extra = 0.0, 0.0
        if features.shape[1]:
            mw, sw = params["w_loc"], params["w_scale"]
            prior_mean = features @ mw
            extra = jnp.sum((features**2) @ (sw**2)) / (2 * tau**2)
            kl = kl + _kl_normal(mw, sw, 0.0, params["w_tau"])
        kl = kl + _kl_normal(params["a_loc"], params["a_scale"], prior_mean, tau) + extra
    if uses_feature_pairs(model, features.shape[1]):
        kl = kl + _kl_normal(params["B_loc"], params["B_scale"], 0.0, interaction_scale(params["B_tau"], model))
    if model.offset:
        kl = kl + _kl_normal(params["offset_loc"], params["offset_scale"], 0.0, offset_scale)
    ms, ts = params["sigma_loc"], params["sigma_scale"]
    return kl + (
        -ms - jnp.log(ts) - 0.5 * jnp.log(2 * jnp.pi) - 0.5 - 0.5 * jnp.log(2 / jnp.pi)
        + jnp.log(sigma_scale) + jnp.exp(2 * ms + 2 * ts**2) / (2 * sigma_scale**2)
    )


def analytic_neg_elbo(params, pairs_data, features, sigma_scale, offset_scale, *, model: LowRankModel):
    """Closed-form negative ELBO of the identity-link model under the mean-field guide.

    For an observed pair ``(i, j)``, ``i != j``, the Gaussians ``u_ik, v_jk, v_ik, u_jk, a_i,
    a_j, b`` are independent under ``q``, so ``f_ij`` has

    * ``E f = 1/2 sum_k (mu_u_ik mu_v_jk + mu_v_ik mu_u_jk) + mu_a_i + mu_a_j + mu_b``;
    * ``Var f = 1/4 sum_k (Var(u_ik v_jk) + Var(v_ik u_jk)) + s_a_i^2 + s_a_j^2 + s_b^2`` with
      ``Var(x y) = s_x^2 s_y^2 + s_x^2 mu_y^2 + mu_x^2 s_y^2``;

    plus, with feature interactions, ``1/2 (x_i^T mu_B x_j + x_j^T mu_B x_i)`` in the mean and
    ``1/4 sum_kl s_B_kl^2 (x_ik x_jl + x_jk x_il)^2`` in the variance (``B`` is linear in ``f``);
    and with ``log sigma ~ N(mu_s, t^2)``: ``E log sigma = mu_s``, ``E sigma^-2 = exp(-2 mu_s + 2 t^2)``,
    ``E sigma^2 = exp(2 mu_s + 2 t^2)``. Then

    ``E log N(y | f, sigma^2) = -1/2 log 2pi - mu_s - 1/2 E[sigma^-2] ((y - E f)^2 + Var f)``.

    The Normal-Normal KLs are ``log(p/s) + (s^2 + (mu - m)^2) / (2 p^2) - 1/2``; for the main
    effects, whose prior mean ``x_i . w`` is random, ``E_q(w)`` adds
    ``sum_k x_ik^2 s_w_k^2 / (2 tau_a^2)``. ``KL(LogNormal || HalfNormal(c)) = -mu_s - log t
    - 1/2 log 2pi - 1/2 - 1/2 log(2/pi) + log c + E[sigma^2] / (2 c^2)``. Point estimates
    (``tau_a``, ``tau_w``, the factor scales ``lambda``) enter only through these priors.

    Dense layout: the same sums as matrices, ``E F = 1/2 (A + A^T)`` with ``A = mu_u mu_v^T`` and
    ``Var F = 1/4 (B + B^T)`` with ``B = s_u^2 (s_v^2)^T + s_u^2 (mu_v^2)^T + mu_u^2 (s_v^2)^T``.
    """
    mean, var = _f_moments(params, pairs_data, features, model=model)
    y, mask = _y_mask(pairs_data)
    ms, ts = params["sigma_loc"], params["sigma_scale"]
    inv_var = jnp.exp(-2 * ms + 2 * ts**2)
    ell = -0.5 * jnp.log(2 * jnp.pi) - ms - 0.5 * inv_var * ((y - mean) ** 2 + var)
    ell = jnp.sum(jnp.where(mask, ell, 0.0))
    return _kl_terms(params, features, sigma_scale, offset_scale, model=model) - ell


class _AnalyticELBO:
    """A numpyro ELBO object whose ``loss`` is :func:`analytic_neg_elbo` (no Monte Carlo)."""

    can_infer_discrete = False

    def __init__(self, model: LowRankModel):
        self.model = model

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        del rng_key, model, guide, kwargs
        return analytic_neg_elbo(param_map, *args, model=self.model)


def make_svi(model: LowRankModel, lr=0.01):
    """The numpyro ``SVI`` object: model, mean-field guide, optax Adam(``lr``) and the ELBO.

    ``model.elbo == "analytic"``: the closed-form ELBO of :func:`analytic_neg_elbo` (exact
    gradients, identity link only). ``"mc"``: numpyro's ``TraceMeanField_ELBO`` (one
    reparameterised draw per step, analytic Normal KLs). Both optimise the same objective.
    ``lr`` may be a traced scalar. Its methods take ``(pairs_data, features, sigma_scale,
    offset_scale)`` as data arguments; :func:`~pairint_jax.discovery.posterior.fit` builds
    them from :class:`Observations`.
    """
    import optax
    from numpyro.infer import SVI, TraceMeanField_ELBO

    loss = _AnalyticELBO(model) if model.elbo == "analytic" else TraceMeanField_ELBO()
    return SVI(
        functools.partial(numpyro_model, model=model),
        functools.partial(numpyro_guide, model=model),
        optax.adam(lr),
        loss,
    )
