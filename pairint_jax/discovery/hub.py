"""The *hub* heuristic: a model-free baseline that ranks pairs by their members' observed means.

On real interaction maps a few perturbations interact with many partners ("hubs"). The hub
score of perturbation ``i`` is the mean of its observed scores, shrunk toward a prior mean
``m_i`` by one pseudo-observation::

    h_i = (sum_obs_i + m_i) / (count_i + 1)

where ``sum_obs_i`` and ``count_i`` run over the observed pairs that contain ``i``. The batch
is the ``b`` remaining pairs with the largest ``h_i + h_j`` (ties: the lower pair index).

**Prior mean.** Without features, ``m_i = m``, the mean of all observed scores (``m = 0``
before any observation). With per-perturbation features ``x [n, f]`` (NaN allowed), the
prior mean is ``m_i = m + z_i . beta``, where ``z`` are the features standardised per column
(mean 0, std 1 over the finite values; a NaN becomes 0, the column mean; a constant column
becomes 0) and ``beta`` is the ridge fit of the perturbations' observed mean deviations on
them, weighted by their counts::

    beta = (Z^T C Z + I)^-1 Z^T C (ybar - m),   C = diag(count),   ybar_i = sum_obs_i / count_i

so a feature that predicts which perturbations score high moves the unobserved ones up,
and with few observations ``beta`` stays near 0 (the plain hub score).

Jittable, static shapes (the observation buffer's capacity and ``f``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pairint_jax.discovery.selection import Batch, top_b, upper_mask

__all__ = ["hub", "hub_scores", "standardise_features"]


def standardise_features(features) -> jax.Array:
    """Columns of ``features [n, f]`` standardised over their finite values; NaN -> 0.

    A column with fewer than two finite values or zero spread becomes all zeros.

    Example:
      >>> standardise_features(jnp.array([[1.0], [3.0], [jnp.nan]])).ravel().tolist()
      [-1.0, 1.0, 0.0]
    """
    x = jnp.asarray(features, jnp.float32)
    fin = jnp.isfinite(x)
    cnt = jnp.sum(fin, 0)
    xz = jnp.where(fin, x, 0.0)
    mean = jnp.sum(xz, 0) / jnp.maximum(cnt, 1)
    var = jnp.sum(jnp.where(fin, (x - mean) ** 2, 0.0), 0) / jnp.maximum(cnt, 1)
    std = jnp.sqrt(var)
    ok = (cnt >= 2) & (std > 0)
    z = jnp.where(fin, (x - mean) / jnp.where(ok, std, 1.0), 0.0)
    return jnp.where(ok[None, :], z, 0.0)


def hub_scores(observations, n: int, *, features=None) -> jax.Array:
    """The hub score ``h [n]`` of every perturbation (module docstring).

    Args:
      observations: :class:`~pairint_jax.discovery.posterior.Observations` (any capacity).
      n: number of perturbations (static).
      features: optional ``[n, f]`` float features (NaN = missing).

    Returns:
      ``[n]`` float32.
    """
    w = observations.mask.astype(jnp.float32)
    y = jnp.where(observations.mask, observations.values, 0.0)
    sums = jnp.zeros(n, jnp.float32).at[observations.rows].add(w * y).at[observations.cols].add(w * y)
    counts = jnp.zeros(n, jnp.float32).at[observations.rows].add(w).at[observations.cols].add(w)
    m = jnp.sum(w * y) / jnp.maximum(jnp.sum(w), 1.0)
    prior = jnp.full((n,), m)
    if features is not None and jnp.shape(features)[-1] > 0:
        z = standardise_features(features)
        resid = jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0) - m, 0.0)
        zc = z * counts[:, None]
        gram = z.T @ zc + jnp.eye(z.shape[1], dtype=jnp.float32)
        beta = jnp.linalg.solve(gram, zc.T @ resid)
        prior = m + z @ beta
    return (sums + prior) / (counts + 1.0)


def hub(observations, remaining, key=None, *, batch: int, features=None) -> Batch:
    """The ``batch`` remaining pairs with the largest ``h_i + h_j`` (model-free, deterministic).

    Args:
      observations: :class:`~pairint_jax.discovery.posterior.Observations`, every score so far.
      remaining: ``[n, n]`` bool (entries on and below the diagonal are ignored).
      key: unused (every policy takes one).
      batch: ``b`` (static).
      features: optional ``[n, f]`` per-perturbation features for the prior mean.

    Returns:
      :class:`~pairint_jax.discovery.selection.Batch` with ``score = h_i + h_j``,
      ``n_valid = 0`` and ``fallback = False``.

    Example:
      >>> from pairint_jax.discovery.posterior import Observations
      >>> obs = Observations.from_pairs([[0, 1], [0, 2]], [3.0, 1.0], capacity=8)
      >>> rem = jnp.ones((4, 4), bool).at[0, 1].set(False).at[0, 2].set(False)
      >>> hub(obs, rem, batch=1).pairs.tolist()  # m = 2: h = (6/3, 5/2, 3/2, 2/1); best h_1 + h_3
      [[1, 3]]
    """
    del key
    remaining = jnp.asarray(remaining, bool)
    n = remaining.shape[0]
    rem = upper_mask(remaining, n)
    h = hub_scores(observations, n, features=features)
    pairs, valid, vals = top_b(h[:, None] + h[None, :], rem, batch)
    pairs = jnp.where(valid[:, None], pairs, 0)
    return Batch(pairs, valid, jnp.where(valid, vals, 0.0).astype(jnp.float32), jnp.int32(0), jnp.bool_(False))
