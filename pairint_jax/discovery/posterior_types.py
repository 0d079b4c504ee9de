"""The data types of the low-rank posterior: its static settings, the observation buffer, the
fitted guide, the fit diagnostics and the posterior samples (kept as factors).

Public names are re-exported by :mod:`pairint_jax.discovery.posterior`; see its docstring for
the model.
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

ELBOS = ("analytic", "mc")
FACTOR_PRIORS = ("shared", "ard", "unit")
#: Default rank ``m`` of every entry point (``LowRankModel``, ``simulate``, ``Campaign``, the CLI).
#: The digest's default is 5; with the identity link's floor, 8 finds the blocks of a
#: block-structured map (synthetic (b)) that rank 5 misses, and is within seed noise of rank 5 on
#: the hub-driven real maps (benchmarks/RESULTS.md, "Rank 8 and the identity link's floor").
DEFAULT_RANK = 8
#: Default ``factor_scale_min`` per link, in standardised units of the scores. Identity: 1.0, the
#: digest's standard-normal factor prior as a floor (the scores are centred and of unit variance,
#: and a smaller learned scale prunes the factors of maps whose top pairs are blocks). Magnitude
#: links: 0.5 (the scores are only scaled, and a unit floor swamps the main effects of
#: hub-driven maps such as Norman's |GI|).
DEFAULT_FACTOR_SCALE_MIN = {"identity": 1.0, "abs": 0.5, "softplus": 0.5}


@dataclasses.dataclass(frozen=True)
class LowRankModel:
    """Static settings of the low-rank posterior (hashable: a ``jit`` static argument).

    Attributes:
      n: number of perturbations (rows of ``R``).
      rank: ``m``, the number of columns of ``U`` and ``V`` (default :data:`DEFAULT_RANK`, 8; the
        digest's default is 5, the paper's grid 3, 5, 7, 10, 12).
      offset: include the global offset ``b``.
      link: ``"identity"`` (default), ``"abs"`` or ``"softplus"``; see the module docstring of
        :mod:`~pairint_jax.discovery.posterior`. (``"auto"`` is resolved to one of them before a
        model is built: :func:`~pairint_jax.discovery.links.resolve_link`.)
      standardize: fit on standardised scores (default True).
      steps: SVI steps per fit (default 5000).
      num_samples: ``K``, posterior samples drawn per round (default 1000).
      elbo: ``"analytic"`` (closed form; identity link and real factors only) or ``"mc"``
        (numpyro's ``TraceMeanField_ELBO``); None picks ``"analytic"`` when it applies.
      nonnegative: non-negative factors ``U = softplus(Z_U)``, ``V = softplus(Z_V)`` with
        ``Z ~ N(0, 1)`` entries (the guide is Gaussian over ``Z``), so without main effects
        ``F >= offset``.
      layout: how the likelihood visits the observations: ``"dense"`` (``[n, n]`` matmuls
        and a mask), ``"gather"`` (the ``C`` buffer slots) or ``"auto"`` (dense when
        ``n^2 <= 8 C``). The same numbers either way; only speed differs.
      main_effects: per-perturbation main effects ``a_i`` (default True):
        ``F_ij = b + a_i + a_j + 1/2 (u_i.v_j + v_i.u_j)``, with ``a_i ~ N(x_i . w, tau_a^2)``
        (``x_i`` the perturbation's features, if any; ``w`` and ``tau_a`` learned).
      factor_prior: the prior scale ``lambda`` of the factors, ``U, V ~ N(0, lambda^2)``:
        ``"shared"`` (default: one scale for every entry, a point estimate learned with the
        fit), ``"ard"`` (one learned scale per rank component, automatic relevance
        determination) or ``"unit"`` (``lambda = 1``, the model before issue 12). A learned
        scale shrinks the factors that the data do not support instead of leaving them at
        the unit prior, whose variance otherwise swamps the main effects at small budgets;
        per-component ARD can prune a needed component early (benchmarks/RESULTS.md).
      factor_scale_min: lower bound on a learned factor scale, ``lambda >= factor_scale_min``
        (ignored with ``factor_prior="unit"``; 0 = unbounded). None (default) picks it from
        the link, :data:`DEFAULT_FACTOR_SCALE_MIN`: 1.0 for ``"identity"``, 0.5 for the
        magnitude links. The learned scale alone shrinks the factors to nothing on maps whose
        top pairs are blocks (pairs of modules) rather than rows of hub genes, and the floor
        keeps them able to represent those blocks; at 0.5 under the magnitude link the
        hub-driven Norman map keeps its gain from the main effects (the studies are in
        benchmarks/RESULTS.md, "Choosing the factor prior" and "Rank 8 and the identity
        link's floor").
      feature_interactions: with features, add ``1/2 (x_i^T B x_j + x_j^T B x_i)`` to ``F`` with
        ``B ~ N(0, tau_B^2)^{f' x f'}`` (``tau_B`` learned; no effect without features). It
        lets the singles predict pair structure, not only each perturbation's main effect, and
        finds more top pairs in the first rounds on every real map; off by default because by
        round 50 it finds no more (fewer on Norman |GI| with the full fit, on SLKB |SL| with a
        short one; benchmarks/RESULTS.md, "Feature interactions").
      main_effect_scale_min: lower bound on the learned main-effect prior scale,
        ``tau_a >= main_effect_scale_min`` (standardised units; default 0, unbounded).
      interaction_scale_min: lower bound on the learned prior scale of ``B``,
        ``tau_B >= interaction_scale_min`` (default 0, unbounded). Like the factor floor, these
        bounds stop the mean-field fit from shrinking a prior scale to nearly nothing: on Norman's
        |GI| it learns ``tau_a`` near 0.2 and ``tau_B`` near 0.03. With the other settings of
        :data:`~pairint_jax.discovery.model_options.HUB_MODEL` they take IDS to 0.31 of Norman's
        top pairs by round 50; they are off by default because they cost synthetic (b) its blocks
        (benchmarks/RESULTS.md, "A model for hub-driven maps").
    """

    n: int
    rank: int = DEFAULT_RANK
    offset: bool = True
    link: str = "identity"
    standardize: bool = True
    steps: int = 5000
    num_samples: int = 1000
    elbo: str | None = None
    nonnegative: bool = False
    layout: str = "auto"
    main_effects: bool = True
    factor_prior: str = "shared"
    factor_scale_min: float | None = None
    feature_interactions: bool = False
    main_effect_scale_min: float = 0.0
    interaction_scale_min: float = 0.0

    def __post_init__(self):
        for name in ("n", "rank", "steps", "num_samples"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"LowRankModel.{name} must be a positive int, got {val!r}.")
        if self.n < 2:
            raise ValueError(f"LowRankModel.n must be at least 2 (one pair), got {self.n}.")
        for name in ("main_effects", "feature_interactions"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"LowRankModel.{name} must be True or False, got {getattr(self, name)!r}.")
        if self.factor_prior not in FACTOR_PRIORS:
            raise ValueError(f"LowRankModel.factor_prior must be one of {FACTOR_PRIORS}, got {self.factor_prior!r}.")
        if self.link not in LINKS:
            raise ValueError(f"LowRankModel.link must be one of {LINKS}, got {self.link!r}.")
        if self.factor_scale_min is None:
            object.__setattr__(self, "factor_scale_min", DEFAULT_FACTOR_SCALE_MIN[self.link])
        for name in ("factor_scale_min", "main_effect_scale_min", "interaction_scale_min"):  # the floors
            val = getattr(self, name)
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(val) or val < 0:
                none = " or None" if name == "factor_scale_min" else ""
                raise ValueError(f"LowRankModel.{name} must be a finite number >= 0{none}, got {val!r}.")
            object.__setattr__(self, name, float(val))
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
    """The fitted guide: its (constrained) parameters, the standardisation used and the features.

    Attributes:
      params: dict of parameters: guide ``U_loc, U_scale, V_loc, V_scale [n, m]``,
        ``offset_loc, offset_scale []`` (when ``offset``), ``sigma_loc, sigma_scale []``
        (log-normal over ``sigma``); with main effects ``a_loc, a_scale [n]``,
        ``w_loc, w_scale [f']`` and the point estimates ``a_tau, w_tau []``; with feature
        interactions ``B_loc, B_scale [f', f']`` and the point estimate ``B_tau []``; the point
        estimate ``factor_scale`` (``[]`` shared, ``[m]`` ARD; absent for ``"unit"``). A dict
        missing some of them (an older state file) is completed with their initial values
        by the next fit.
      shift: ``[]`` the mean subtracted from the scores (0 without standardisation or with a non-negative link).
      scale: ``[]`` the std (a non-negative link: the root mean square) the scores were divided by (1 without standardisation).
      features: ``[n, f']`` float32, the processed per-perturbation features (standardised,
        imputed, with missing-value indicators; see :func:`~pairint_jax.discovery.posterior.init`);
        ``[n, 0]`` without features. ``None`` (an older state) means ``[n, 0]``.
    """

    params: dict
    shift: jax.Array
    scale: jax.Array
    features: jax.Array | None = None


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

    Main effects are folded into the factors: a model with main effects ``a`` and rank
    ``m`` returns ``u' = [u, a, 1]`` and ``v' = [v, 1, a]`` (``m + 2`` columns), for which
    ``1/2 (u'_i.v'_j + v'_i.u'_j) = 1/2 (u_i.v_j + v_i.u_j) + a_i + a_j`` exactly. Feature
    interactions append ``x`` to ``u'`` and ``x B`` to ``v'`` (``f'`` more columns), which adds
    ``1/2 (x_i^T B x_j + x_j^T B x_i)``. Every consumer of the factors (acquisition, the tiled
    IDS) is unchanged.

    Attributes:
      u: ``[K, n, m']`` (``m' = m``, plus 2 with main effects, plus ``f'`` with feature interactions).
      v: ``[K, n, m']``.
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
