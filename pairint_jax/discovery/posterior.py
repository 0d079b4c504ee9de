"""Low-rank symmetric posterior over the reward matrix, fitted by compiled SVI (numpyro).

The model (DIGEST section 4, paper App. D.3). For ``n`` perturbations and rank ``m``::

    U, V ~ N(0, 1)^{n x m}            (independent entries: Gaussian columns)
    b    ~ N(0, offset_scale^2)       (optional global offset, ``offset=True``)
    sigma ~ HalfNormal(sigma_scale)
    F    = 1/2 (U V^T + V U^T) + b    (symmetric, rank <= 2m)
    y_ij ~ N(g(F_ij), sigma^2)        for every observed pair i < j

``g`` is the *link*: ``"identity"`` (the digest's model, the default), ``"abs"``
(``g(F) = |F|``: a non-negative matrix that is the magnitude of a signed low-rank one)
or ``"softplus"`` (``g(F) = log(1 + e^F)``: a smooth non-negative map). With
``nonnegative=True`` the factors are ``softplus`` of Gaussian latents (a non-negative
low-rank matrix such as ``W W^T`` with ``W >= 0``). With
``standardize=True`` (default) the observed scores are first mapped to
``(y - mean) / std`` over the observed entries so that the unit priors suit any score
scale; posterior samples are mapped back, ``R = mean + std * g(F)``.

The guide is mean-field Gaussian (hand-written, equivalent to numpyro's ``AutoNormal``):
independent ``Normal(loc, scale)`` for every entry of ``U``, ``V`` and ``b``, and a
log-normal for ``sigma``. The ELBO is numpyro's ``TraceMeanField_ELBO`` (analytic
Normal-Normal KLs, a Monte-Carlo term for ``sigma``), optimised with optax Adam
(``lr=0.01``, ``steps=5000``).

Static shapes: observations live in a fixed-capacity buffer (:class:`Observations`:
rows, cols, values and a mask), so a campaign or a simulation that adds a batch every
round calls the same compiled program every round. The whole fit is one
``lax.scan`` over ``svi.stable_update`` (a step whose loss or update is not finite is
skipped), warm-started from the previous round's guide parameters. Adam's moments
restart every fit.

Style rule 2: ``init(key, model) -> state``, ``step(svi, svi_state, obs) -> (svi_state,
loss)`` and ``fit(key, state, obs, model=) -> (state, info)``; ``sample`` draws ``K``
posterior samples of the *factors* (:class:`FactorSamples`), never ``K x n x n``
unless asked (:meth:`FactorSamples.block`, :meth:`FactorSamples.dense`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.discovery.links import LINKS
from pairint_jax.discovery.links import apply_link as _link

__all__ = [
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
    "posterior_mean_std",
    "sample",
    "step",
]

ELBOS = ("analytic", "mc")

# Incremented when ``fit`` is traced (not when it runs): tests use it to prove that
# later rounds reuse the compiled program.
TRACE_COUNTS = {"fit": 0}


@dataclasses.dataclass(frozen=True)
class LowRankModel:
    """Static settings of the low-rank posterior (hashable: a ``jit`` static argument).

    Attributes:
      n: number of perturbations (rows of ``R``).
      rank: ``m``, the number of columns of ``U`` and ``V`` (digest default 5; paper grid
        3, 5, 7, 10, 12).
      offset: include the global offset ``b``.
      link: ``"identity"`` (default), ``"abs"`` or ``"softplus"``; see the module docstring.
      standardize: fit on standardised scores (default True).
      steps: SVI steps per fit (default 5000).
      num_samples: ``K``, posterior samples drawn per round (default 1000).
      elbo: ``"analytic"`` (closed form; identity link and real factors only) or ``"mc"``
        (numpyro's ``TraceMeanField_ELBO``); None picks ``"analytic"`` when it applies.
      nonnegative: non-negative factors ``U = softplus(Z_U)``, ``V = softplus(Z_V)`` with
        ``Z ~ N(0, 1)`` entries (the guide is Gaussian over ``Z``), so ``F >= offset``.
      layout: how the likelihood visits the observations: ``"dense"`` (``[n, n]`` matmuls
        and a mask), ``"gather"`` (the ``C`` buffer slots) or ``"auto"`` (dense when
        ``n^2 <= 8 C``). The same numbers either way; only speed differs.
    """

    n: int
    rank: int = 5
    offset: bool = True
    link: str = "identity"
    standardize: bool = True
    steps: int = 5000
    num_samples: int = 1000
    elbo: str | None = None
    nonnegative: bool = False
    layout: str = "auto"

    def __post_init__(self):
        for name in ("n", "rank", "steps", "num_samples"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"LowRankModel.{name} must be a positive int, got {val!r}.")
        if self.n < 2:
            raise ValueError(f"LowRankModel.n must be at least 2 (one pair), got {self.n}.")
        if self.link not in LINKS:
            raise ValueError(f"LowRankModel.link must be one of {LINKS}, got {self.link!r}.")
        if self.elbo is None:
            closed = self.link == "identity" and not self.nonnegative
            object.__setattr__(self, "elbo", "analytic" if closed else "mc")
        if self.layout not in ("auto", "dense", "gather"):
            raise ValueError(f"LowRankModel.layout must be 'auto', 'dense' or 'gather', got {self.layout!r}.")
        if self.elbo not in ELBOS:
            raise ValueError(f"LowRankModel.elbo must be one of {ELBOS} or None, got {self.elbo!r}.")
        if self.elbo == "analytic" and (self.link != "identity" or self.nonnegative):
            raise ValueError(
                f"LowRankModel: the closed-form ELBO needs link='identity' and real factors (got link={self.link!r}, "
                f"nonnegative={self.nonnegative}); use elbo='mc' (or leave elbo=None to pick it)."
            )


class Observations(NamedTuple):
    """A fixed-capacity buffer of observed pair scores (static shapes across rounds).

    Each pair appears at most once (the dense likelihood layout relies on it).

    Attributes:
      rows: ``[C]`` int32, ``i`` of each slot (``i < j``; 0 in empty slots).
      cols: ``[C]`` int32, ``j`` of each slot (1 in empty slots).
      values: ``[C]`` float32, the observed score (0 in empty slots).
      mask: ``[C]`` bool, which slots hold an observation.
    """

    rows: jax.Array
    cols: jax.Array
    values: jax.Array
    mask: jax.Array

    @staticmethod
    def empty(capacity: int) -> Observations:
        """An empty buffer with ``capacity`` slots."""
        return Observations(
            jnp.zeros(capacity, jnp.int32),
            jnp.ones(capacity, jnp.int32),
            jnp.zeros(capacity, jnp.float32),
            jnp.zeros(capacity, bool),
        )

    @staticmethod
    def from_pairs(pairs, values, *, capacity: int | None = None) -> Observations:
        """Buffer holding ``pairs [k, 2]`` with ``values [k]``, padded to ``capacity`` slots."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        k = len(pairs)
        if len(values) != k:
            raise ValueError(f"Observations.from_pairs: {k} pairs but {len(values)} values.")
        capacity = k if capacity is None else int(capacity)
        if capacity < k:
            raise ValueError(f"Observations.from_pairs: capacity {capacity} < {k} observations.")
        lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
        if np.any(lo == hi):
            raise ValueError("Observations.from_pairs: a pair (i, i) is on the diagonal; pairs need i != j.")
        if len(np.unique(lo * (int(hi.max(initial=0)) + 1) + hi)) != k:
            raise ValueError("Observations.from_pairs: the pairs must be distinct (each pair observed once).")
        rows = np.zeros(capacity, np.int32)
        cols = np.ones(capacity, np.int32)
        vals = np.zeros(capacity, np.float32)
        mask = np.zeros(capacity, bool)
        rows[:k], cols[:k], vals[:k], mask[:k] = lo, hi, values, True
        return Observations(jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(vals), jnp.asarray(mask))

    @property
    def capacity(self) -> int:
        return self.rows.shape[-1]


class PosteriorState(NamedTuple):
    """The fitted guide: its (constrained) parameters and the standardisation used.

    Attributes:
      params: dict of guide parameters: ``U_loc, U_scale, V_loc, V_scale [n, m]``,
        ``offset_loc, offset_scale []`` (when ``offset``), ``sigma_loc, sigma_scale []``
        (log-normal over ``sigma``).
      shift: ``[]`` the mean subtracted from the scores (0 without standardisation).
      scale: ``[]`` the std the scores were divided by (1 without standardisation).
    """

    params: dict
    shift: jax.Array
    scale: jax.Array


class FitInfo(NamedTuple):
    """Diagnostics of one fit.

    Attributes:
      loss: ``[]`` mean negative ELBO over the last 10% of steps.
      first_loss: ``[]`` the negative ELBO of the first step.
      finite: ``[]`` bool, every parameter is finite after the fit.
      skipped: ``[]`` int32, steps skipped because the loss or update was not finite.
    """

    loss: jax.Array
    first_loss: jax.Array
    finite: jax.Array
    skipped: jax.Array


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["u", "v", "offset", "shift", "scale"],
    meta_fields=["link"],
)
@dataclasses.dataclass(frozen=True)
class FactorSamples:
    """``K`` posterior samples of the reward matrix, kept as factors.

    ``R^(s) = shift + scale * g(1/2 (u_s v_s^T + v_s u_s^T) + offset_s)``.

    Attributes:
      u: ``[K, n, m]``.
      v: ``[K, n, m]``.
      offset: ``[K]`` (zeros without an offset).
      shift: ``[]``.
      scale: ``[]``.
      link: static link name.
    """

    u: jax.Array
    v: jax.Array
    offset: jax.Array
    shift: jax.Array
    scale: jax.Array
    link: str = "identity"

    @property
    def num_samples(self) -> int:
        return self.u.shape[0]

    @property
    def n(self) -> int:
        return self.u.shape[1]

    def block(self, start, size: int) -> jax.Array:
        """Rows ``start : start + size`` of every sample: ``[K, size, n]`` (``start`` may be traced;
        ``start + size <= n`` is required)."""
        ub = jax.lax.dynamic_slice_in_dim(self.u, start, size, axis=1)
        vb = jax.lax.dynamic_slice_in_dim(self.v, start, size, axis=1)
        f = 0.5 * (jnp.einsum("kbm,kjm->kbj", ub, self.v) + jnp.einsum("kbm,kjm->kbj", vb, self.u))
        f = f + self.offset[:, None, None]
        return self.shift + self.scale * _link(self.link, f)

    def sample_matrix(self, s) -> jax.Array:
        """Sample ``s`` as a dense ``[n, n]`` matrix (``s`` may be traced)."""
        u, v = self.u[s], self.v[s]
        f = 0.5 * (u @ v.T + v @ u.T) + self.offset[s]
        return self.shift + self.scale * _link(self.link, f)

    def dense(self) -> jax.Array:
        """All samples as ``[K, n, n]``: only for small problems."""
        return self.block(0, self.n)




# ----------------------------------------------------------------------------- model


def _standardise(obs: Observations, enabled: bool):
    """(shift, scale) from the observed values: mean and std (std := 1 when < 2 values or 0)."""
    if not enabled:
        return jnp.float32(0.0), jnp.float32(1.0)
    w = obs.mask.astype(jnp.float32)
    cnt = jnp.sum(w)
    mean = jnp.sum(w * obs.values) / jnp.maximum(cnt, 1.0)
    var = jnp.sum(w * (obs.values - mean) ** 2) / jnp.maximum(cnt, 1.0)
    std = jnp.sqrt(var)
    std = jnp.where((cnt >= 2) & (std > 0) & jnp.isfinite(std), std, 1.0)
    mean = jnp.where(jnp.isfinite(mean), mean, 0.0)
    return mean, std


def _f_at_observations(u, v, pairs_data):
    """``1/2 (u v^T + v u^T)`` at the observed entries: ``[C]`` (gather) or ``[n, n]`` (dense)."""
    if len(pairs_data) == 2:  # dense: (Y, M)
        a = u @ v.T
        return 0.5 * (a + a.T), pairs_data[0], pairs_data[1]
    rows, cols, y, mask = pairs_data
    return 0.5 * (jnp.sum(u[rows] * v[cols], -1) + jnp.sum(v[rows] * u[cols], -1)), y, mask


def _numpyro_model(pairs_data, sigma_scale, offset_scale, *, model: LowRankModel):
    import numpyro
    import numpyro.distributions as dist

    n, m = model.n, model.rank
    u = numpyro.sample("U", dist.Normal(jnp.zeros((n, m)), 1.0).to_event(2))
    v = numpyro.sample("V", dist.Normal(jnp.zeros((n, m)), 1.0).to_event(2))
    if model.nonnegative:
        u, v = jax.nn.softplus(u), jax.nn.softplus(v)
    f, y, mask = _f_at_observations(u, v, pairs_data)
    if model.offset:
        f = f + numpyro.sample("offset", dist.Normal(0.0, offset_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    with numpyro.handlers.mask(mask=mask):
        numpyro.sample("y", dist.Normal(_link(model.link, f), sigma).to_event(0), obs=y)


def _numpyro_guide(pairs_data, sigma_scale, offset_scale, *, model: LowRankModel):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    n, m = model.n, model.rank
    pos = constraints.softplus_positive
    for name in ("U", "V"):
        loc = numpyro.param(f"{name}_loc", jnp.zeros((n, m)))
        scale = numpyro.param(f"{name}_scale", jnp.full((n, m), 0.1), constraint=pos)
        numpyro.sample(name, dist.Normal(loc, scale).to_event(2))
    if model.offset:
        loc = numpyro.param("offset_loc", jnp.zeros(()))
        scale = numpyro.param("offset_scale", jnp.full((), 0.1), constraint=pos)
        numpyro.sample("offset", dist.Normal(loc, scale))
    loc = numpyro.param("sigma_loc", jnp.zeros(()))
    scale = numpyro.param("sigma_scale", jnp.full((), 0.1), constraint=pos)
    numpyro.sample("sigma", dist.LogNormal(loc, scale))


def _analytic_neg_elbo(params, pairs_data, sigma_scale, offset_scale, *, model: LowRankModel):
    """Closed-form negative ELBO of the identity-link model under the mean-field guide.

    For an observed pair ``(i, j)``, ``i != j``, the four Gaussians ``u_ik, v_jk, v_ik, u_jk``
    are independent under ``q``, so ``f_ij`` has

    * ``E f = 1/2 sum_k (mu_u_ik mu_v_jk + mu_v_ik mu_u_jk) + mu_b``;
    * ``Var f = 1/4 sum_k (Var(u_ik v_jk) + Var(v_ik u_jk)) + s_b^2`` with
      ``Var(x y) = s_x^2 s_y^2 + s_x^2 mu_y^2 + mu_x^2 s_y^2``;

    and with ``log sigma ~ N(mu_s, t^2)``: ``E log sigma = mu_s``, ``E sigma^-2 = exp(-2 mu_s + 2 t^2)``,
    ``E sigma^2 = exp(2 mu_s + 2 t^2)``. Then

    ``E log N(y | f, sigma^2) = -1/2 log 2pi - mu_s - 1/2 E[sigma^-2] ((y - E f)^2 + Var f)``,

    the Normal-Normal KLs are the usual ``1/2 (s^2 + mu^2 - 1) - log s`` (scaled for the
    offset prior) and ``KL(LogNormal || HalfNormal(c)) = -mu_s - log t - 1/2 log 2pi - 1/2
    - 1/2 log(2/pi) + log c + E[sigma^2] / (2 c^2)``.

    Dense layout: the same sums as matrices, ``E F = 1/2 (A + A^T)`` with ``A = mu_u mu_v^T`` and
    ``Var F = 1/4 (B + B^T)`` with ``B = s_u^2 (s_v^2)^T + s_u^2 (mu_v^2)^T + mu_u^2 (s_v^2)^T``.
    """
    mu_u, s_u, mu_v, s_v = params["U_loc"], params["U_scale"], params["V_loc"], params["V_scale"]
    if len(pairs_data) == 2:
        y, mask = pairs_data
        a = mu_u @ mu_v.T
        mean = 0.5 * (a + a.T)
        su2, sv2 = s_u**2, s_v**2
        b = su2 @ sv2.T + su2 @ (mu_v**2).T + (mu_u**2) @ sv2.T
        var = 0.25 * (b + b.T)
    else:
        rows, cols, y, mask = pairs_data
        ui, uj, vi, vj = mu_u[rows], mu_u[cols], mu_v[rows], mu_v[cols]
        sui, suj, svi, svj = s_u[rows] ** 2, s_u[cols] ** 2, s_v[rows] ** 2, s_v[cols] ** 2
        mean = 0.5 * jnp.sum(ui * vj + vi * uj, -1)
        var = 0.25 * jnp.sum(sui * svj + sui * vj**2 + ui**2 * svj + svi * suj + svi * uj**2 + vi**2 * suj, -1)
    kl = 0.5 * jnp.sum(s_u**2 + mu_u**2 - 1.0) - jnp.sum(jnp.log(s_u))
    kl = kl + 0.5 * jnp.sum(s_v**2 + mu_v**2 - 1.0) - jnp.sum(jnp.log(s_v))
    if model.offset:
        mb, sb = params["offset_loc"], params["offset_scale"]
        mean = mean + mb
        var = var + sb**2
        kl = kl + jnp.log(offset_scale / sb) + (sb**2 + mb**2) / (2 * offset_scale**2) - 0.5
    ms, ts = params["sigma_loc"], params["sigma_scale"]
    inv_var = jnp.exp(-2 * ms + 2 * ts**2)
    ell = -0.5 * jnp.log(2 * jnp.pi) - ms - 0.5 * inv_var * ((y - mean) ** 2 + var)
    ell = jnp.sum(jnp.where(mask, ell, 0.0))
    kl = kl + (
        -ms - jnp.log(ts) - 0.5 * jnp.log(2 * jnp.pi) - 0.5 - 0.5 * jnp.log(2 / jnp.pi)
        + jnp.log(sigma_scale) + jnp.exp(2 * ms + 2 * ts**2) / (2 * sigma_scale**2)
    )
    return kl - ell


class _AnalyticELBO:
    """A numpyro ELBO object whose ``loss`` is :func:`_analytic_neg_elbo` (no Monte Carlo)."""

    can_infer_discrete = False

    def __init__(self, model: LowRankModel):
        self.model = model

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        del rng_key, model, guide, kwargs
        return _analytic_neg_elbo(param_map, *args, model=self.model)


def make_svi(model: LowRankModel, lr=0.01):
    """The numpyro ``SVI`` object: model, mean-field guide, optax Adam(``lr``) and the ELBO.

    ``model.elbo == "analytic"``: the closed-form ELBO of :func:`_analytic_neg_elbo` (exact
    gradients, identity link only). ``"mc"``: numpyro's ``TraceMeanField_ELBO`` (one
    reparameterised draw per step, analytic Normal KLs). Both optimise the same objective.
    ``lr`` may be a traced scalar. Its methods take ``(pairs_data, sigma_scale,
    offset_scale)`` as data arguments; :func:`fit` builds them from :class:`Observations`.
    """
    import optax
    from numpyro.infer import SVI, TraceMeanField_ELBO

    loss = _AnalyticELBO(model) if model.elbo == "analytic" else TraceMeanField_ELBO()
    return SVI(
        functools.partial(_numpyro_model, model=model),
        functools.partial(_numpyro_guide, model=model),
        optax.adam(lr),
        loss,
    )


def init(key: jax.Array, model: LowRankModel, *, init_loc_scale: float = 0.1) -> PosteriorState:
    """Initial guide parameters (before any data).

    ``U_loc, V_loc ~ init_loc_scale * N(0, 1)`` (small, to break the symmetry between
    columns), every guide scale 0.1, ``sigma``'s log-location 0 (``sigma ~ 1``).

    Args:
      key: a PRNG key.
      model: the static :class:`LowRankModel`.
      init_loc_scale: spread of the initial factor locations.

    Returns:
      :class:`PosteriorState` with ``shift = 0`` and ``scale = 1``.

    Example:
      >>> state = init(jax.random.key(0), LowRankModel(n=10, rank=3))
      >>> state.params["U_loc"].shape
      (10, 3)
    """
    ku, kv = jax.random.split(key)
    n, m = model.n, model.rank
    params = {
        "U_loc": init_loc_scale * jax.random.normal(ku, (n, m)),
        "U_scale": jnp.full((n, m), 0.1, jnp.float32),
        "V_loc": init_loc_scale * jax.random.normal(kv, (n, m)),
        "V_scale": jnp.full((n, m), 0.1, jnp.float32),
        "sigma_loc": jnp.zeros((), jnp.float32),
        "sigma_scale": jnp.full((), 0.1, jnp.float32),
    }
    if model.offset:
        params["offset_loc"] = jnp.zeros((), jnp.float32)
        params["offset_scale"] = jnp.full((), 0.1, jnp.float32)
    return PosteriorState(params, jnp.float32(0.0), jnp.float32(1.0))


def _dense(model: LowRankModel, capacity: int) -> bool:
    """Layout of the likelihood: dense ``[n, n]`` matrices (matmuls) or a gather over the
    ``C`` buffer slots. ``"auto"`` takes dense when ``n^2 <= 8 C``: matmuls over every entry
    then cost less than gathers and their scatter-add gradients (about 5x on CPU at n = 50,
    C = 512), and the gather wins for sparse buffers (n = 1,000 with a few hundred pairs)."""
    if model.layout == "auto":
        return model.n * model.n <= 8 * capacity
    return model.layout == "dense"


def _data(obs: Observations, shift, scale, sigma_scale, offset_scale, *, model: LowRankModel):
    """Model arguments ``(pairs_data, sigma_scale, offset_scale)``; ``pairs_data`` is
    ``(Y [n, n], M [n, n])`` (dense) or ``(rows, cols, y, mask)`` (gather)."""
    y = jnp.where(obs.mask, (obs.values - shift) / scale, 0.0)
    if _dense(model, obs.rows.shape[-1]):
        n = model.n
        big_y = jnp.zeros((n, n), jnp.float32).at[obs.rows, obs.cols].add(y)
        big_m = jnp.zeros((n, n), bool).at[obs.rows, obs.cols].max(obs.mask)
        return ((big_y, big_m), sigma_scale, offset_scale)
    return ((obs.rows, obs.cols, y, obs.mask), sigma_scale, offset_scale)


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
    TRACE_COUNTS["fit"] += 1
    shift, scale = _standardise(obs, model.standardize)
    data = _data(obs, shift, scale, sigma_scale, offset_scale, model=model)
    svi = make_svi(model, lr)
    svi_state = svi.init(key, *data, init_params=state.params)

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
    return PosteriorState(params, shift, scale), info


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

    Maximises the ELBO ``E_q[log p(y | U, V, b, sigma)] - KL(q || p)`` of the model in the
    module docstring, starting from ``state.params`` (warm start: pass the previous
    round's state). Pure and jittable; ``model`` is static, ``lr``, ``sigma_scale``
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
    return _fit_jit(key, state, obs, f32(lr), f32(sigma_scale), f32(offset_scale), model=model)


def sample(key: jax.Array, state: PosteriorState, *, model: LowRankModel, num_samples: int | None = None) -> FactorSamples:
    """Draw ``K`` samples of the factors from the guide.

    ``u_s = U_loc + U_scale * eps`` (then ``softplus`` if ``model.nonnegative``), likewise
    ``v_s`` and ``offset_s``; the reward matrix
    of sample ``s`` is ``shift + scale * g(1/2 (u_s v_s^T + v_s u_s^T) + offset_s)`` (no
    observation noise: it is a sample of ``R``, not of ``y``).

    Args:
      key: PRNG key.
      state: a fitted :class:`PosteriorState`.
      model: the static :class:`LowRankModel`.
      num_samples: ``K`` (static); defaults to ``model.num_samples``.

    Returns:
      :class:`FactorSamples` with ``u, v [K, n, m]``, ``offset [K]``.

    Example:
      >>> model = LowRankModel(n=10, rank=2)
      >>> s = sample(jax.random.key(0), init(jax.random.key(1), model), model=model, num_samples=8)
      >>> s.dense().shape
      (8, 10, 10)
    """
    k = model.num_samples if num_samples is None else int(num_samples)
    p = state.params
    ku, kv, kb = jax.random.split(key, 3)
    n, m = model.n, model.rank
    u = p["U_loc"] + p["U_scale"] * jax.random.normal(ku, (k, n, m))
    v = p["V_loc"] + p["V_scale"] * jax.random.normal(kv, (k, n, m))
    if model.nonnegative:
        u, v = jax.nn.softplus(u), jax.nn.softplus(v)
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
