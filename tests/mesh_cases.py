"""Sharded == single-device, on 8 virtual CPU devices.

Not collected on its own (the name does not start with ``test_``):
``tests/test_parallel_mesh.py`` runs this file in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, which must be set before JAX
starts. To run it by hand::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest tests/mesh_cases.py -q

Tolerances: chosen pairs and disjointedness scores (same chunk size) are compared
exactly: the sharded programs reproduce the single-device numbers bit for bit. Elsewhere
the float32 round-off stated at each assertion (a shard's program is compiled separately
with another batch shape, so XLA may fuse and sum in another order).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.discovery.posterior import FactorSamples
from pairint_jax.discovery.tiled import ids_tiled
from pairint_jax.parallel import chunked_vmap, make_mesh, mesh_size

N_DEVICES = 8


@pytest.fixture(scope="module")
def mesh():
    if len(jax.devices()) != N_DEVICES:
        raise RuntimeError(
            f"mesh_cases.py needs {N_DEVICES} devices, found {len(jax.devices())}: run it with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={N_DEVICES} (tests/test_parallel_mesh.py does)."
        )
    return make_mesh()


def test_chunked_vmap_sharded_equals_unsharded(mesh):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(13, 5)), jnp.float32)  # 13: not a multiple of 8 devices
    w = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)

    def f(x, i):
        return {"y": jnp.tanh(x @ w), "i": i * 2}

    ref = chunked_vmap(f, a, jnp.arange(13), chunk_size=2)
    out = jax.jit(lambda a, i: chunked_vmap(f, a, i, chunk_size=2, mesh=mesh))(a, jnp.arange(13))
    assert mesh_size(mesh) == N_DEVICES and out["y"].shape == (13, 3)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-6)
    np.testing.assert_array_equal(out["i"], ref["i"])


def test_ids_round_sharded_equals_single_device(mesh):
    # K = 60 (padded to 64 over 8 devices), n = 37 (not a multiple of the tile), 21 tiles.
    rng = np.random.default_rng(1)
    n, k, m = 37, 60, 3
    u = rng.normal(size=(n, m)) + 0.7 * rng.normal(size=(k, n, m))
    v = rng.normal(size=(n, m)) + 0.7 * rng.normal(size=(k, n, m))
    s = FactorSamples(jnp.asarray(u, jnp.float32), jnp.asarray(v, jnp.float32), jnp.zeros(k), jnp.float32(0.0),
                      jnp.float32(1.0))
    iu = np.stack(np.triu_indices(n, 1), 1)
    obs = iu[rng.choice(len(iu), 80, replace=False)]
    one = ids_tiled(s, batch=25, exclude=obs, tile_size=8)
    many = ids_tiled(s, batch=25, exclude=obs, tile_size=8, mesh=mesh)
    np.testing.assert_array_equal(many.pairs, one.pairs)
    np.testing.assert_allclose(many.score, one.score, rtol=1e-6)  # float32 round-off of the shard programs
    assert (many.n_valid, many.n_groups) == (one.n_valid, one.n_groups) and one.n_groups > 1


def test_simulate_sharded_equals_single_device(mesh):
    # 3 seeds = 3 chains (padded to 8 over the devices), IDS inside every round.
    r = np.random.default_rng(2).normal(size=(12, 2))
    reward = r @ r.T
    kw = dict(rounds=2, batch=3, seeds=3, steps=30, num_samples=16, key=jax.random.key(0))
    one = pj.simulate(reward, "ids", **kw)
    many = pj.simulate(reward, "ids", mesh=mesh, **kw)
    np.testing.assert_array_equal(many.chosen, one.chosen)
    np.testing.assert_array_equal(many.top5_fraction, one.top5_fraction)
    np.testing.assert_allclose(many.regret, one.regret, rtol=1e-6)
    # the ELBO after 30 Adam steps: float32 round-off of the vmapped batch shape
    np.testing.assert_allclose(many.fit_loss, one.fit_loss, rtol=1e-4)
    assert many.settings["devices"] == N_DEVICES


@pytest.fixture(scope="module")
def sep_screen():
    screen, _ = pj.synthetic.separability_tabular(jax.random.key(0), n_per_condition=120)
    return screen


def test_separability_knn_sharded_equals_single_device(mesh, sep_screen):
    one = pj.separability_scores(sep_screen, estimator="knn")
    many = pj.separability_scores(sep_screen, estimator="knn", mesh=mesh)
    np.testing.assert_allclose(many.score, one.score, rtol=1e-6)
    for col in ("kl_a", "kl_b", "kl_ab"):
        np.testing.assert_allclose(many.columns[col], one.columns[col], rtol=1e-6)


def test_separability_smile_readout_sharded_equals_single_device(mesh, sep_screen):
    one = pj.separability_scores(sep_screen, estimator="nre", epochs=1, batch_size=128)
    trained = one.settings["nre_model"]
    many = pj.separability_scores(sep_screen, estimator="nre", model=trained, mesh=mesh)
    # the readout's float32 matmul and sums in per-shard programs: 1e-5 relative on KLs of order 1
    np.testing.assert_allclose(many.columns["kl_ab"], one.columns["kl_ab"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(many.score, one.score, rtol=1e-5, atol=1e-5)


def test_disjointedness_sharded_equals_single_device(mesh):
    screen, _ = pj.synthetic.latent_factor(jax.random.key(4), 7, n_per_condition=30, n_control=90, dim=8)
    one = pj.disjointedness_scores(screen, n_permutations=20, pairs_per_chunk=2)
    many = pj.disjointedness_scores(screen, n_permutations=20, pairs_per_chunk=2, mesh=mesh)
    streamed = pj.disjointedness_scores(screen, n_permutations=20, pairs_per_chunk=2, mesh=mesh, stream=True, stream_block=16)
    for out in (many, streamed):
        # every device runs whole chunks of the same per-pair program: equal bit for bit
        np.testing.assert_array_equal(out.score, one.score)
        np.testing.assert_array_equal(out.columns["bandwidth"], one.columns["bandwidth"])
        np.testing.assert_array_equal(out.columns["p_value"], one.columns["p_value"])


@pytest.fixture(scope="module")
def explicit_mesh():
    """A mesh as ``jax.make_mesh`` builds it: explicit axes by default on jax >= 0.7."""
    if not hasattr(jax.sharding, "AxisType"):
        pytest.skip("this jax has no explicit mesh axes")
    mesh = jax.make_mesh((N_DEVICES,), ("pairs",), axis_types=(jax.sharding.AxisType.Explicit,))
    assert mesh.axis_types == (jax.sharding.AxisType.Explicit,)
    return mesh


def test_a_jax_make_mesh_with_explicit_axes_works_everywhere(mesh, explicit_mesh, sep_screen):
    # shard_map refuses unsharded inputs on an explicit mesh; every entry point must accept
    # the mesh a user gets from jax.make_mesh and give the same numbers as on our own mesh
    screen, _ = pj.synthetic.latent_factor(jax.random.key(4), 6, n_per_condition=30, n_control=60, dim=8)
    one = pj.disjointedness_scores(screen, n_permutations=10, pairs_per_chunk=2, mesh=mesh)
    ex = pj.disjointedness_scores(screen, n_permutations=10, pairs_per_chunk=2, mesh=explicit_mesh)
    np.testing.assert_array_equal(ex.score, one.score)
    np.testing.assert_array_equal(ex.columns["p_value"], one.columns["p_value"])

    knn = pj.separability_scores(sep_screen, estimator="knn", mesh=mesh)
    knn_ex = pj.separability_scores(sep_screen, estimator="knn", mesh=explicit_mesh)
    np.testing.assert_array_equal(knn_ex.score, knn.score)

    rng = np.random.default_rng(3)
    n, k, m = 20, 16, 2
    u = jnp.asarray(rng.normal(size=(k, n, m)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(k, n, m)), jnp.float32)
    s = FactorSamples(u, v, jnp.zeros(k), jnp.float32(0.0), jnp.float32(1.0))
    a = ids_tiled(s, batch=5, tile_size=8, mesh=mesh)
    b = ids_tiled(s, batch=5, tile_size=8, mesh=explicit_mesh)
    np.testing.assert_array_equal(b.pairs, a.pairs)

    r = rng.normal(size=(10, 2))
    kw = dict(rounds=1, batch=2, seeds=2, steps=10, num_samples=8, key=jax.random.key(0))
    np.testing.assert_array_equal(pj.simulate(r @ r.T, "ids", mesh=explicit_mesh, **kw).chosen,
                                  pj.simulate(r @ r.T, "ids", mesh=mesh, **kw).chosen)


def test_a_two_dimensional_hosts_by_gpus_mesh_splits_over_all_its_devices(mesh):
    # the layout of a multi-host run, (hosts, gpus): the items are split over both axes
    mesh2 = jax.sharding.Mesh(np.asarray(jax.devices()).reshape(2, 4), ("hosts", "gpus"))
    assert mesh_size(mesh2) == N_DEVICES
    screen, _ = pj.synthetic.latent_factor(jax.random.key(5), 6, n_per_condition=30, n_control=60, dim=8)
    one = pj.disjointedness_scores(screen, n_permutations=10, pairs_per_chunk=2)
    two_d = pj.disjointedness_scores(screen, n_permutations=10, pairs_per_chunk=2, mesh=mesh2)
    np.testing.assert_array_equal(two_d.score, one.score)
    np.testing.assert_array_equal(two_d.columns["p_value"], one.columns["p_value"])
