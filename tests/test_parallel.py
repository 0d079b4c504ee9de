"""chunked_vmap: chunked == unchunked == a Python loop, under jit, with pytrees; check_mesh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.parallel import check_mesh, chunked_vmap


def _f(a, tree):
    return {"dot": a @ tree["b"], "max": jnp.max(a) + tree["c"]}


@pytest.mark.parametrize("chunk_size", [None, 1, 3, 7, 10, 64])
def test_chunked_equals_loop(chunk_size):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(10, 4)), jnp.float32)
    tree = {"b": jnp.asarray(rng.normal(size=(10, 4)), jnp.float32), "c": jnp.arange(10.0)}
    out = jax.jit(lambda a, t: chunked_vmap(_f, a, t, chunk_size=chunk_size))(a, tree)
    for i in range(10):
        ref = _f(a[i], {"b": tree["b"][i], "c": tree["c"][i]})
        np.testing.assert_allclose(out["dot"][i], ref["dot"], rtol=1e-6)
        np.testing.assert_allclose(out["max"][i], ref["max"], rtol=1e-6)


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_vmap(lambda a: a, jnp.ones(3), chunk_size=0)


@pytest.mark.skipif(not hasattr(jax.sharding, "AxisType"), reason="this jax has no mesh axis types")
def test_check_mesh_turns_explicit_axes_into_auto_ones():
    explicit = jax.make_mesh((1,), ("pairs",), axis_types=(jax.sharding.AxisType.Explicit,))
    out = check_mesh(explicit)
    assert out.axis_types == (jax.sharding.AxisType.Auto,)
    assert out.axis_names == ("pairs",) and list(out.devices.flat) == list(explicit.devices.flat)
    assert check_mesh(out) is out and check_mesh(None) is None
    # a one-device explicit mesh through a sharded pass gives the unsharded numbers
    a = jnp.arange(5.0)
    np.testing.assert_array_equal(chunked_vmap(lambda v: 2 * v, a, mesh=explicit), 2 * a)


def test_check_mesh_rejects_what_is_not_a_mesh():
    with pytest.raises(TypeError, match="jax.sharding.Mesh.*got list"):
        check_mesh([jax.devices()[0]])
