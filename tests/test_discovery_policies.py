"""The policy registry and the model-free hub policy against float64 NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.discovery import policies as P
from pairint_jax.discovery.hub import hub, hub_scores
from pairint_jax.discovery.posterior import Observations


def ref_hub(n, pairs, values, features=None):
    """The hub score, literally, in float64 (module docstring of pairint_jax.discovery.hub)."""
    sums, counts = np.zeros(n), np.zeros(n)
    for (i, j), y in zip(pairs, values):
        sums[[i, j]] += y
        counts[[i, j]] += 1
    m = float(np.mean(values)) if len(values) else 0.0
    prior = np.full(n, m)
    if features is not None:
        x = np.asarray(features, np.float64)
        z = np.zeros_like(x)
        for c in range(x.shape[1]):
            fin = np.isfinite(x[:, c])
            mu, sd = x[fin, c].mean(), x[fin, c].std()
            if fin.sum() >= 2 and sd > 0:
                z[fin, c] = (x[fin, c] - mu) / sd
        resid = np.where(counts > 0, sums / np.maximum(counts, 1) - m, 0.0)
        beta = np.linalg.solve(z.T @ np.diag(counts) @ z + np.eye(z.shape[1]), z.T @ (counts * resid))
        prior = m + z @ beta
    return (sums + prior) / (counts + 1)


def ref_batch(h, remaining, b):
    n = len(h)
    acts = [(i, j) for i in range(n) for j in range(i + 1, n) if remaining[i, j]]
    score = np.array([h[i] + h[j] for i, j in acts])
    order = np.argsort(-score, kind="stable")[:b]  # ties: the lower pair index (row-major)
    return [acts[t] for t in order], score[order]


@pytest.mark.parametrize("with_features", [False, True])
def test_hub_matches_numpy(rng, with_features):
    n = 9
    pairs = [(0, 1), (0, 2), (1, 5), (3, 4), (2, 7), (0, 8), (5, 6)]
    values = rng.normal(size=len(pairs)) + np.array([2.0, 1.5, 0.3, -1.0, 0.2, 2.5, 0.0])
    feats = None
    if with_features:
        feats = rng.normal(size=(n, 2))
        feats[4, 1] = np.nan  # missing: imputed to the column mean (0 after standardising)
    remaining = np.triu(np.ones((n, n), bool), 1)
    for i, j in pairs:
        remaining[i, j] = False
    obs = Observations.from_pairs(pairs, values, capacity=16)  # padded buffer: empty slots ignored
    h = ref_hub(n, pairs, values, feats)
    f32 = None if feats is None else jnp.asarray(feats, jnp.float32)
    np.testing.assert_allclose(np.asarray(hub_scores(obs, n, features=f32)), h, rtol=1e-5, atol=1e-6)
    want, score = ref_batch(h, remaining, 5)
    for fn in (hub, jax.jit(hub, static_argnames="batch")):
        b = fn(obs, jnp.asarray(remaining), jax.random.key(0), batch=5, features=f32)
        assert [tuple(p) for p in np.asarray(b.pairs)] == want
        np.testing.assert_allclose(np.asarray(b.score), score, rtol=1e-5, atol=1e-6)
        assert bool(jnp.all(b.valid)) and not bool(b.fallback)
    via = P.acquire_jit("hub", obs, jnp.asarray(remaining), jax.random.key(0), batch=5, features=f32)
    assert [tuple(p) for p in np.asarray(via.pairs)] == want


def test_hub_ties_and_empty_buffer():
    """No observation: every h_i = 0, the batch is the first remaining pairs in index order."""
    rem = np.triu(np.ones((5, 5), bool), 1)
    rem[0, 1] = False
    b = hub(Observations.empty(4), jnp.asarray(rem), batch=3)
    assert [tuple(p) for p in np.asarray(b.pairs)] == [(0, 2), (0, 3), (0, 4)]
    few = np.zeros((5, 5), bool)
    few[2, 4] = True
    b = hub(Observations.empty(4), jnp.asarray(few), batch=2)
    assert np.asarray(b.valid).tolist() == [True, False] and np.asarray(b.pairs).tolist() == [[2, 4], [0, 0]]


def test_registry_options_and_errors():
    assert set(P.REGISTRY) == {"ids", "ts", "ucb", "us", "greedy", "hub", "random", "ids_tiled"}
    assert P.check_policy("ids", {"lam": 3.0}) == {"lam": 3.0, "reestimate": False, "chunk_size": None}
    assert P.check_policy("uniform", {}) == {}
    assert not P.get_policy("hub").needs_posterior and P.get_policy("greedy").needs_posterior
    assert P.split_options({"lam": 2.0, "chunk_size": 4}) == ((("chunk_size", 4),), {"lam": jnp.float32(2.0)})
    with pytest.raises(ValueError, match="unknown policy 'best'"):
        P.get_policy("best")
    with pytest.raises(ValueError, match="does not take option"):
        P.check_policy("hub", {"beta": 1.0})
    with pytest.raises(ValueError, match="beta must be a finite non-negative"):
        P.check_policy("ucb", {"beta": float("nan")})
    with pytest.raises(ValueError, match="cannot be jitted"):
        P.acquire_jit("ids_tiled", None, jnp.ones((3, 3), bool), jax.random.key(0), batch=1)
