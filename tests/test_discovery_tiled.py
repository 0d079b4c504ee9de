"""ids_tiled (streamed, two-pass IDS) against the in-memory ids: chunked == unchunked.

Every test compares against :func:`pairint_jax.discovery.acquisition.ids`, whose own
tests check it against a NumPy brute force. The batch (every pick, in order) must be
identical and each pick's ``Psi`` equal to ``rtol = 1e-5`` (float32 round-off of two
different summation orders: row blocks + segment sums there, tiles + one-hot matmul here).
Sharded == single-device runs with 8 virtual devices in ``tests/mesh_cases.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.discovery import acquisition as acq
from pairint_jax.discovery import tiled
from pairint_jax.discovery.posterior import FactorSamples
from pairint_jax.discovery.tiled import ids_tiled, tile_plan
from pairint_jax.parallel import check_mesh, make_mesh, mesh_size, pad_leading

from _compiles import compile_log

RTOL = 1e-5


def _factors(n, k, m=3, seed=0, link="identity"):
    rng = np.random.default_rng(seed)
    loc_u, loc_v = rng.normal(size=(n, m)), rng.normal(size=(n, m))
    u = loc_u + 0.8 * rng.normal(size=(k, n, m))
    v = loc_v + 0.8 * rng.normal(size=(k, n, m))
    off = 0.1 * rng.normal(size=k)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return FactorSamples(f32(u), f32(v), f32(off), jnp.float32(0.3), jnp.float32(2.0), link)


def _observed(n, k_obs, seed=1):
    rng = np.random.default_rng(seed)
    iu = np.stack(np.triu_indices(n, 1), 1)
    obs = iu[rng.choice(len(iu), k_obs, replace=False)]
    rem = np.triu(np.ones((n, n), bool), 1)
    rem[obs[:, 0], obs[:, 1]] = False
    return obs, rem


def _assert_same(ref, out):
    np.testing.assert_array_equal(out.pairs, np.asarray(ref.pairs))
    np.testing.assert_array_equal(out.valid, np.asarray(ref.valid))
    np.testing.assert_allclose(out.score, np.asarray(ref.score), rtol=RTOL, atol=0)
    assert out.n_valid == int(ref.n_valid)
    assert out.fallback == bool(ref.fallback)


@pytest.mark.parametrize("tile_size", [8, 40])
def test_tiled_equals_in_memory_every_pick(tile_size):
    # b = every remaining pair: the whole (Psi, Delta, index) order is compared.
    n, k = 27, 48
    s = _factors(n, k)
    obs, rem = _observed(n, 60)
    ref = acq.ids(s, jnp.asarray(rem), jax.random.key(0), batch=int(rem.sum()))
    out = ids_tiled(s, batch=int(rem.sum()), exclude=obs, tile_size=tile_size)
    _assert_same(ref, out)
    # both kinds of groups occur: one-sample groups (elementwise) and larger ones (one-hot product)
    assert out.tile_size == min(tile_size, 32) and out.n_groups > out.n_columns > 1


def test_remaining_mask_and_exclude_agree_and_combine():
    n, k = 21, 32
    s = _factors(n, k, seed=3, link="softplus")
    obs, rem = _observed(n, 30, seed=4)
    a = ids_tiled(s, batch=12, exclude=obs, tile_size=8)
    b = ids_tiled(s, batch=12, remaining=rem, tile_size=8)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    _assert_same(acq.ids(s, jnp.asarray(rem), jax.random.key(0), batch=12), a)
    more = obs[:5] + 0  # both given: a pair must pass both
    rem2 = rem.copy()
    rem2[0, 1:] = False
    c = ids_tiled(s, batch=12, exclude=more, remaining=rem2, tile_size=8)
    rem2[more[:, 0], more[:, 1]] = False
    _assert_same(acq.ids(s, jnp.asarray(rem2), jax.random.key(0), batch=12), c)


def test_dense_samples_ties_and_one_group():
    # Every sample identical: one group, v = 0 everywhere, Psi = inf except the optimum (0),
    # so the order is by Delta then index: the tie rules are exercised exactly.
    n = 19
    base = np.round(np.random.default_rng(5).normal(size=(n, n)), 1)
    base = (base + base.T) / 2
    dense = jnp.broadcast_to(jnp.asarray(base, jnp.float32), (12, n, n))
    _, rem = _observed(n, 20, seed=6)
    ref = acq.ids(dense, jnp.asarray(rem), jax.random.key(0), batch=40)
    out = ids_tiled(dense, batch=40, remaining=rem, tile_size=8)
    _assert_same(ref, out)
    assert out.n_groups == 1 and out.score[0] == 0 and np.isinf(out.score[1:]).all()


def test_fewer_remaining_than_batch_and_fallback():
    n = 10
    s = _factors(n, 16, seed=7)
    iu = np.stack(np.triu_indices(n, 1), 1)
    out = ids_tiled(s, batch=8, exclude=iu[3:], tile_size=8)  # 3 pairs left
    assert out.valid.tolist() == [True] * 3 + [False] * 5
    assert sorted(map(tuple, out.pairs[:3].tolist())) == [tuple(p) for p in iu[:3].tolist()]
    assert (out.pairs[3:] == 0).all()
    # every sample non-finite on a remaining pair: random fallback among the remaining pairs
    bad = jnp.full((4, n, n), jnp.nan)
    fb = ids_tiled(bad, jax.random.key(3), batch=5, exclude=iu[:30], tile_size=8)
    assert fb.fallback and fb.n_valid == 0 and fb.valid.all()
    assert {tuple(p) for p in fb.pairs.tolist()} <= {tuple(p) for p in iu[30:].tolist()}
    assert len({tuple(p) for p in fb.pairs.tolist()}) == 5


def test_second_round_does_not_recompile():
    # Shapes depend on n, K, T, b and two power-of-two buckets (distinct optimal actions B,
    # excluded pairs per tile): a later round with more observations and another lambda reuses
    # the compiled passes.
    n, k = 20, 16
    s = _factors(n, k, seed=9)
    obs, _ = _observed(n, 10, seed=8)
    ids_tiled(s, batch=4, exclude=obs[:7], tile_size=8)
    with compile_log() as log:
        ids_tiled(s, batch=4, exclude=obs, tile_size=8, lam=3.0)
    assert log.count("pass_best") == 0 and log.count("pass_select") == 0 and log.count("final_batch") == 0


def test_progress_blocks_give_the_same_batch():
    n, k = 30, 24
    s = _factors(n, k, seed=11)
    obs, _ = _observed(n, 25, seed=12)
    a = ids_tiled(s, batch=9, exclude=obs, tile_size=8)
    b = ids_tiled(s, batch=9, exclude=obs, tile_size=8, progress=True)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.score, b.score)


def test_single_device_mesh_equals_no_mesh():
    n, k = 18, 20
    s = _factors(n, k, seed=13)
    a = ids_tiled(s, batch=6, tile_size=8)
    b = ids_tiled(s, batch=6, tile_size=8, mesh=make_mesh(jax.devices()[:1]))
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-6)


def test_tile_plan_and_bad_input():
    assert tile_plan(20000, 1000, 256) == (256, 79 * 80 // 2)
    assert tile_plan(10, 4, 64)[0] == 16  # capped at n rounded up to 8
    s = _factors(8, 4)
    with pytest.raises(ValueError, match="batch"):
        ids_tiled(s, batch=0)
    with pytest.raises(ValueError, match="lam"):
        ids_tiled(s, batch=1, lam=-1.0)
    with pytest.raises(ValueError, match="exclude"):
        ids_tiled(s, batch=1, exclude=[[0, 9]])
    with pytest.raises(ValueError, match="remaining"):
        ids_tiled(s, batch=1, remaining=np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="Mesh"):
        ids_tiled(s, batch=1, mesh="gpu")


def test_parallel_helpers_single_device():
    mesh = make_mesh()
    assert mesh_size(mesh) == len(jax.devices()) and check_mesh(None) is None
    padded, m = pad_leading({"a": jnp.arange(5), "b": np.ones((5, 2))}, 3)
    assert m == 5 and padded["a"].tolist() == [0, 1, 2, 3, 4, 4] and padded["b"].shape == (6, 2)
    same, m = pad_leading(np.arange(6), 3)
    assert m == 6 and same.shape == (6,)
