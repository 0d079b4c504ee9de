"""Low-rank symmetric posterior over the reward matrix, fitted by compiled SVI (numpyro).

The model (Xu et al., App. D.3, after the symmetric low-rank completion of Sec. 4, plus
per-perturbation main effects). For ``n`` perturbations and rank ``m``::

    U, V ~ N(0, lambda^2)^{n x m}     (lambda learned, >= factor_scale_min: shared, or per column with ARD;
                                      the floor is 1.0 under the identity link, 0.5 under a magnitude link)
    w    ~ N(0, tau_w^2)^{f'}         (weights of the features, when given; tau_w learned)
    a_i  ~ N(x_i . w, tau_a^2)        (main effects, ``main_effects=True``; tau_a learned)
    B    ~ N(0, tau_B^2)^{f' x f'}    (feature interactions, with features and ``feature_interactions=True``)
    b    ~ N(0, offset_scale^2)       (optional global offset, ``offset=True``)
    sigma ~ HalfNormal(sigma_scale)
    F_ij = b + a_i + a_j + 1/2 (u_i . v_j + v_i . u_j) + 1/2 (x_i^T B x_j + x_j^T B x_i)
    y_ij ~ N(g(F_ij), sigma^2)        for every observed pair i < j

``x_i`` are the perturbation's side features (``init(..., features=)``: standardised,
imputed, with missing-value flags; see :func:`~pairint_jax.discovery.posterior_features.prepare_features`).
``tau_a``, ``tau_w``, ``tau_B`` and the factor scales ``lambda`` are point estimates (empirical
Bayes: they maximise the same ELBO). Main effects carry the "hub" structure of real maps (genes
that interact with many partners), which a mean-field fit of the factors alone shrinks to
nothing when few pairs are observed. The feature interactions carry pair structure that the
singles predict, such as Norman's map, where a strong single interacts most with a weak one:
``B`` has ``f'^2`` entries, so it is learned from a few pairs, where the factors need
several pairs per perturbation.

``g`` is the *link*: ``"identity"`` (the digest's model, the default of ``LowRankModel``), ``"abs"``
(``g(F) = |F|``: a non-negative matrix that is the magnitude of a signed low-rank one)
or ``"softplus"`` (``g(F) = log(1 + e^F)``: a smooth non-negative map). With
``nonnegative=True`` the factors are ``softplus`` of Gaussian latents (a non-negative
low-rank matrix such as ``W W^T`` with ``W >= 0``). With
``standardize=True`` (default) the observed scores are first mapped to
``(y - mean) / std`` over the observed entries so that the unit priors suit any score
scale; posterior samples are mapped back, ``R = mean + std * g(F)``. A non-negative link
only scales, ``y / rms(y)`` and ``R = rms * g(F)``: centred scores fall below 0, where ``g``
cannot follow. (``simulate`` and ``Campaign`` default to ``link="auto"``, which picks ``"abs"``
for a score that is never negative: :func:`~pairint_jax.discovery.links.resolve_link`.)

The guide is mean-field Gaussian (hand-written, equivalent to numpyro's ``AutoNormal``):
independent ``Normal(loc, scale)`` for every entry of ``U``, ``V``, ``a``, ``w``, ``B`` and ``b``,
and a log-normal for ``sigma``. The ELBO is closed-form (``elbo="analytic"``, identity link)
or numpyro's ``TraceMeanField_ELBO`` (analytic Normal-Normal KLs, a Monte-Carlo likelihood),
optimised with optax Adam (``lr=0.01``, ``steps=5000``). Both live in
:mod:`~pairint_jax.discovery.posterior_model`.

Static shapes: observations live in a fixed-capacity buffer (:class:`Observations`:
rows, cols, values and a mask), so a campaign or a simulation that adds a batch every
round calls the same compiled program every round. The whole fit is one
``lax.scan`` over ``svi.stable_update`` (a step whose loss or update is not finite is
skipped), warm-started from the previous round's guide parameters. Adam's moments
restart every fit.

The functional pattern: ``init(key, model) -> state``, ``step(svi, svi_state, obs) -> (svi_state,
loss)`` and ``fit(key, state, obs, model=) -> (state, info)``; ``sample`` draws ``K``
posterior samples of the *factors* (:class:`FactorSamples`, main effects folded in),
never ``K x n x n`` unless asked (:meth:`FactorSamples.block`, :meth:`FactorSamples.dense`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pairint_jax.discovery.posterior_features import prepare_features
from pairint_jax.discovery.posterior_model import (
    A_TAU0,
    B_TAU0,
    GUIDE_SCALE0,
    W_SCALE,
    factor_scale_shape,
    uses_feature_pairs,
    analytic_neg_elbo as _analytic_neg_elbo,
    make_svi,
    model_data,
    numpyro_guide as _numpyro_guide,
    numpyro_model as _numpyro_model,
    standardise as _standardise,
)
from pairint_jax.discovery.posterior_types import (
    DEFAULT_FACTOR_SCALE_MIN,
    DEFAULT_RANK,
    ELBOS,
    FACTOR_PRIORS,
    LINKS,
    FactorSamples,
    FitInfo,
    LowRankModel,
    Observations,
    PosteriorState,
    _link,
)

__all__ = [
    "DEFAULT_FACTOR_SCALE_MIN",
    "DEFAULT_RANK",
    "ELBOS",
    "FACTOR_PRIORS",
    "LINKS",
    "FactorSamples",
    "FitInfo",
    "LowRankModel",
    "Observations",
    "PosteriorState",
    "fit",
    "fit_jit",
    "init",
    "make_svi",
    "mean_matrix",
    "posterior_mean_std",
    "prepare_features",
    "sample",
    "step",
]

# private names kept importable for older callers and tests
_PRIVATE = (_analytic_neg_elbo, _numpyro_guide, _numpyro_model, _standardise, _link)


def _default_params(key, model: LowRankModel, num_features: int, init_loc_scale) -> dict:
    ku, kv = jax.random.split(key)
    n, m = model.n, model.rank
    f32 = jnp.float32
    params = {
        "U_loc": init_loc_scale * jax.random.normal(ku, (n, m)),
        "U_scale": jnp.full((n, m), GUIDE_SCALE0, f32),
        "V_loc": init_loc_scale * jax.random.normal(kv, (n, m)),
        "V_scale": jnp.full((n, m), GUIDE_SCALE0, f32),
        "sigma_loc": jnp.zeros((), f32),
        "sigma_scale": jnp.full((), GUIDE_SCALE0, f32),
    }
    if model.offset:
        params["offset_loc"] = jnp.zeros((), f32)
        params["offset_scale"] = jnp.full((), GUIDE_SCALE0, f32)
    if model.main_effects:
        params["a_loc"] = jnp.zeros((n,), f32)
        params["a_scale"] = jnp.full((n,), GUIDE_SCALE0, f32)
        params["a_tau"] = jnp.full((), A_TAU0, f32)
        if num_features:
            params["w_loc"] = jnp.zeros((num_features,), f32)
            params["w_scale"] = jnp.full((num_features,), GUIDE_SCALE0, f32)
            params["w_tau"] = jnp.full((), W_SCALE, f32)
    if uses_feature_pairs(model, num_features):
        params["B_loc"] = jnp.zeros((num_features, num_features), f32)
        params["B_scale"] = jnp.full((num_features, num_features), GUIDE_SCALE0, f32)
        params["B_tau"] = jnp.full((), B_TAU0, f32)
    if model.factor_prior != "unit":
        params["factor_scale"] = jnp.ones(factor_scale_shape(model), f32)
    return params


def init(key: jax.Array, model: LowRankModel, *, features=None, init_loc_scale: float = 0.1) -> PosteriorState:
    """Initial guide parameters (before any data).

    ``U_loc, V_loc ~ init_loc_scale * N(0, 1)`` (small, to break the symmetry between
    columns), main effects and feature weights at 0, every guide scale 0.1, ``sigma``'s
    log-location 0 (``sigma ~ 1``), ``tau_a = tau_w = 0.5``, factor scales 1 (the data-free
    initialisation: initialising ``a`` from the hub estimate and the factors from an SVD was
    tried and did not help; benchmarks/RESULTS.md).

    Args:
      key: a PRNG key.
      model: the static :class:`LowRankModel`.
      features: optional ``[n, f]`` per-perturbation covariates (NaN = missing), concrete
        (not traced); processed by :func:`prepare_features` into ``[n, f']`` and kept in the
        state (``fit`` and ``sample`` read them there). They inform the main effects' prior
        and, with ``model.feature_interactions``, add the term ``1/2 (x_i^T B x_j + x_j^T B x_i)``
        (with ``main_effects=False`` and ``feature_interactions=False`` they are kept but unused).
      init_loc_scale: spread of the initial factor locations.

    Returns:
      :class:`PosteriorState` with ``shift = 0``, ``scale = 1`` and ``features [n, f']``.

    Example:
      >>> state = init(jax.random.key(0), LowRankModel(n=10, rank=3), features=np.ones((10, 2)))
      >>> state.params["U_loc"].shape, state.features.shape
      ((10, 3), (10, 2))
    """
    x = prepare_features(features, model.n)
    params = _default_params(key, model, x.shape[1], init_loc_scale)
    return PosteriorState(params, jnp.float32(0.0), jnp.float32(1.0), jnp.asarray(x))


def _features_of(state: PosteriorState, model: LowRankModel):
    """``state.features``, or ``[n, 0]`` for an older state without them."""
    if state.features is None:
        return jnp.zeros((model.n, 0), jnp.float32)
    return jnp.asarray(state.features, jnp.float32)


def _complete(params: dict, model: LowRankModel, num_features: int) -> dict:
    """``params`` plus the initial value of every parameter it lacks (an older state file)."""
    missing = [k for k in _default_params(jax.random.key(0), model, num_features, 0.1) if k not in params]
    if not missing:
        return params
    defaults = _default_params(jax.random.key(0), model, num_features, 0.1)
    return {**{k: defaults[k] for k in missing}, **params}


def step(svi, svi_state, data):
    """One SVI update (a step with a non-finite loss or update is skipped).

    Args:
      svi: from :func:`make_svi`.
      svi_state: numpyro ``SVIState`` (holds its own PRNG key, split every step).
      data: the tuple of model arguments built by :func:`fit`.

    Returns:
      ``(svi_state, loss)``; ``loss`` is the negative ELBO estimate ``[]``.
    """
    return svi.stable_update(svi_state, *data)


def _fit(key, state: PosteriorState, obs: Observations, lr, sigma_scale, offset_scale, *, model: LowRankModel):
    feats = _features_of(state, model)
    shift, scale = _standardise(obs, model.standardize, model.link)
    data = model_data(obs, feats, shift, scale, sigma_scale, offset_scale, model=model)
    svi = make_svi(model, lr)
    svi_state = svi.init(key, *data, init_params=_complete(state.params, model, feats.shape[1]))

    def body(s, _):
        s, loss = step(svi, s, data)
        return s, loss

    svi_state, losses = jax.lax.scan(body, svi_state, None, length=model.steps)
    params = svi.get_params(svi_state)
    tail = max(1, model.steps // 10)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
    info = FitInfo(
        loss=jnp.mean(losses[-tail:]),
        first_loss=losses[0],
        finite=finite,
        skipped=jnp.sum(~jnp.isfinite(losses)).astype(jnp.int32),
    )
    return PosteriorState(params, shift, scale, feats), info


def fit(
    key: jax.Array,
    state: PosteriorState,
    obs: Observations,
    *,
    model: LowRankModel,
    lr=0.01,
    sigma_scale=1.0,
    offset_scale=1.0,
) -> tuple[PosteriorState, FitInfo]:
    """Fit the mean-field guide to ``obs`` by ``model.steps`` Adam steps in one compiled loop.

    Maximises the ELBO ``E_q[log p(y | U, V, a, b, sigma)] - KL(q || p)`` of the model in the
    module docstring (with the features held in ``state.features``), starting from
    ``state.params`` (warm start: pass the previous round's state). Pure and jittable; ``model`` is static, ``lr``, ``sigma_scale``
    and ``offset_scale`` are traced. The jitted entry point is :func:`fit_jit`.

    Args:
      key: PRNG key for the ELBO's Monte-Carlo draws.
      state: the starting guide, from :func:`init` or a previous :func:`fit`.
      obs: :class:`Observations` with capacity ``C`` (static).
      model: the static :class:`LowRankModel`.
      lr: Adam learning rate (digest default 0.01).
      sigma_scale: scale of the ``HalfNormal`` prior on ``sigma`` (standardised units).
      offset_scale: scale of the ``Normal`` prior on the offset.

    Returns:
      ``(state, info)``: the fitted :class:`PosteriorState` and :class:`FitInfo`.

    Example:
      >>> model = LowRankModel(n=20, rank=2, steps=500)
      >>> obs = Observations.from_pairs([[0, 1], [2, 3]], [1.0, -1.0], capacity=64)
      >>> state, info = fit_jit(jax.random.key(1), init(jax.random.key(0), model), obs, model=model)
    """
    return _fit(key, state, obs, lr, sigma_scale, offset_scale, model=model)


@functools.partial(jax.jit, static_argnames=("model",))
def _fit_jit(key, state, obs, lr, sigma_scale, offset_scale, *, model):
    return _fit(key, state, obs, lr, sigma_scale, offset_scale, model=model)


def fit_jit(key, state, obs, *, model: LowRankModel, lr=0.01, sigma_scale=1.0, offset_scale=1.0):
    """:func:`fit` under ``jax.jit`` (``model`` static; one compile per model and buffer capacity)."""
    f32 = jnp.float32
    state = state._replace(features=_features_of(state, model))
    return _fit_jit(key, state, obs, f32(lr), f32(sigma_scale), f32(offset_scale), model=model)


def sample(key: jax.Array, state: PosteriorState, *, model: LowRankModel, num_samples: int | None = None) -> FactorSamples:
    """Draw ``K`` samples of the factors from the guide.

    ``u_s = U_loc + U_scale * eps`` (then ``softplus`` if ``model.nonnegative``), likewise
    ``v_s``, ``a_s``, ``B_s`` and ``offset_s``. With main effects the factors are augmented,
    ``u' = [u, a, 1]`` and ``v' = [v, 1, a]``, and with feature interactions by
    ``[.., x]`` and ``[.., x B_s]`` (``x`` the ``[n, f']`` features), so that the reward
    matrix of sample ``s`` is always ``shift + scale * g(1/2 (u'_s v'_s^T + v'_s u'_s^T) + offset_s)`` (no observation
    noise: it is a sample of ``R``, not of ``y``).

    Args:
      key: PRNG key.
      state: a fitted :class:`PosteriorState`.
      model: the static :class:`LowRankModel`.
      num_samples: ``K`` (static); defaults to ``model.num_samples``.

    Returns:
      :class:`FactorSamples` with ``u, v [K, n, m']`` (``m' = m``, plus 2 with main effects, plus
      ``f'`` with feature interactions), ``offset [K]``.

    Example:
      >>> model = LowRankModel(n=10, rank=2)
      >>> s = sample(jax.random.key(0), init(jax.random.key(1), model), model=model, num_samples=8)
      >>> s.dense().shape
      (8, 10, 10)
    """
    k = model.num_samples if num_samples is None else int(num_samples)
    x = _features_of(state, model)
    p = _complete(state.params, model, x.shape[1])
    ku, kv, kb, ka = jax.random.split(key, 4)
    n, m = model.n, model.rank
    u = p["U_loc"] + p["U_scale"] * jax.random.normal(ku, (k, n, m))
    v = p["V_loc"] + p["V_scale"] * jax.random.normal(kv, (k, n, m))
    if model.nonnegative:
        u, v = jax.nn.softplus(u), jax.nn.softplus(v)
    if model.main_effects:
        a = (p["a_loc"] + p["a_scale"] * jax.random.normal(ka, (k, n)))[..., None]
        one = jnp.ones_like(a)
        u, v = jnp.concatenate([u, a, one], -1), jnp.concatenate([v, one, a], -1)
    if uses_feature_pairs(model, x.shape[1]):
        big_b = p["B_loc"] + p["B_scale"] * jax.random.normal(jax.random.fold_in(ka, 1), (k, *p["B_loc"].shape))
        u = jnp.concatenate([u, jnp.broadcast_to(x, (k, *x.shape))], -1)
        v = jnp.concatenate([v, jnp.einsum("nf,kfg->kng", x, big_b)], -1)
    if model.offset:
        b = p["offset_loc"] + p["offset_scale"] * jax.random.normal(kb, (k,))
    else:
        b = jnp.zeros((k,))
    return FactorSamples(u, v, b, jnp.asarray(state.shift, jnp.float32), jnp.asarray(state.scale, jnp.float32), model.link)


def posterior_mean_std(samples: FactorSamples) -> tuple[jax.Array, jax.Array]:
    """Sample mean and std (``ddof=0``) of ``R`` over the ``K`` samples: ``([n, n], [n, n])``.

    Materialises ``[K, n, n]``: meant for small ``n`` and for tests.
    """
    r = samples.dense()
    return jnp.mean(r, 0), jnp.std(r, 0)


def mean_matrix(state: PosteriorState, *, model: LowRankModel) -> jax.Array:
    """The reward matrix at the guide's means: ``shift + scale * g(E_q F)``, ``[n, n]``.

    ``E_q F_ij = mu_b + mu_a_i + mu_a_j + 1/2 (mu_u_i . mu_v_j + mu_v_i . mu_u_j)
    + 1/2 (x_i^T mu_B x_j + x_j^T mu_B x_i)`` (the factors
    are independent under the guide). With the identity link and real factors this is the
    exact posterior mean of ``R`` off the diagonal (no sampling noise); otherwise it is the
    plug-in ``g(E F)``. Jittable; the diagonal is computed like any other entry.
    """
    x = _features_of(state, model)
    p = _complete(state.params, model, x.shape[1])
    u, v = p["U_loc"], p["V_loc"]
    if model.nonnegative:
        u, v = jax.nn.softplus(u), jax.nn.softplus(v)
    a = u @ v.T
    f = 0.5 * (a + a.T)
    if model.main_effects:
        f = f + p["a_loc"][:, None] + p["a_loc"][None, :]
    if uses_feature_pairs(model, x.shape[1]):
        q = x @ p["B_loc"] @ x.T
        f = f + 0.5 * (q + q.T)
    if model.offset:
        f = f + p["offset_loc"]
    return state.shift + state.scale * _link(model.link, f)
