"""The shared boundary checks (pairint_jax._validate) and the compile-count test helper."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax import _validate as V
from _compiles import compile_log


@pytest.mark.parametrize("a,b", [(0, 3), (1, 3), (3, 3), (10, 4), (12, 4), (7, 1)])
def test_ceil_div_and_round_up_match_math(a, b):
    assert V.ceil_div(a, b) == int(np.ceil(a / b))
    assert V.round_up(a, b) == int(np.ceil(a / b)) * b


@pytest.mark.parametrize(
    "value,exc",
    [(0, ValueError), (-3, ValueError), (True, TypeError), (1.0, TypeError), ("5", TypeError), (None, TypeError)],
)
def test_positive_int_refuses_with_the_parameter_name(value, exc):
    with pytest.raises(exc, match="n_permutations"):
        V.positive_int("n_permutations", value)


def test_renamed_keywords_forward_old_names_with_a_warning():
    @V.renamed_keywords(chunk_size="pairs_per_chunk")
    def f(x, *, pairs_per_chunk=1):
        return x, pairs_per_chunk

    assert f(0, pairs_per_chunk=3) == (0, 3)
    with pytest.warns(DeprecationWarning, match="pairs_per_chunk"):
        assert f(0, chunk_size=4) == (0, 4)
    with pytest.raises(TypeError, match="only"):
        f(0, chunk_size=4, pairs_per_chunk=3)


def test_positive_int_accepts_numpy_ints():
    assert V.positive_int("k", np.int64(4)) == 4 and type(V.positive_int("k", np.int64(4))) is int


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_positive_float_refuses(value):
    with pytest.raises((ValueError, TypeError), match="tau"):
        V.positive_float("tau", value)


def test_positive_float_allows_inf_when_asked():
    assert V.positive_float("tau", float("inf"), allow_inf=True) == float("inf")


def test_one_of_lists_the_options():
    with pytest.raises(ValueError, match="'rbf', 'matern52'"):
        V.one_of("kernel", "gauss", ("rbf", "matern52"))
    with pytest.raises(ValueError):
        V.one_of("kernel", ["unhashable"], ("rbf",))


def test_as_key_accepts_keys_and_int_seeds_with_the_same_stream():
    ref = jax.random.normal(jax.random.key(3))
    for key in (jax.random.key(3), jax.random.PRNGKey(3), 3, np.int32(3)):
        assert float(jax.random.normal(V.as_key(key))) == float(ref)
    assert float(jax.random.normal(V.as_key(None))) == float(jax.random.normal(jax.random.key(0)))


@pytest.mark.parametrize("bad", ["0", 1.5, jnp.ones(3), -1, 2**64])
def test_as_key_refuses_with_a_recipe(bad):
    with pytest.raises((TypeError, ValueError), match=r"jax\.random\.key"):
        V.as_key(bad)


def test_as_key_can_require_a_key():
    with pytest.raises(TypeError, match="required"):
        V.as_key(None, default_seed=None)


def test_compile_log_counts_recompilation_only():
    def doubled(x):
        return 2 * x

    f = jax.jit(doubled)
    with compile_log() as log:
        f(jnp.ones(3))
        f(jnp.ones(3))
    assert log.count("doubled") == 1
    with compile_log() as log:
        f(jnp.ones(3))
        f(jnp.ones(5))
    assert log.count("doubled") == 1


def test_seed_is_an_int_in_0_to_2_32_because_jax_keeps_32_bits():
    assert V.seed("seed", 0) == 0 and V.seed("seed", np.uint32(2**32 - 1)) == 2**32 - 1
    # the reason for the bound: with 64-bit mode off, seed 2**32 gives the key of seed 0
    same = jax.random.key_data(jax.random.key(2**32)) == jax.random.key_data(jax.random.key(0))
    assert bool(np.all(np.asarray(same))) or jax.config.jax_enable_x64
    for bad, exc in [(-1, ValueError), (2**32, ValueError), (10**23, ValueError), (1.0, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="seed"):
            V.seed("seed", bad)


@pytest.mark.parametrize(
    "kw,value,ok",
    [
        (dict(low=1.0), 1.0, True),
        (dict(low=1.0, low_open=True), 1.0, False),
        (dict(low=1.0), 0.999, False),
        (dict(high=2.0), 2.0, True),
        (dict(high=2.0, high_open=True), 2.0, False),
        (dict(low=0.0, high=1.0), 0.5, True),
        (dict(low=0.0, high=1.0), 1.5, False),
        (dict(), -1e300, True),
    ],
)
def test_float_in_range_bounds(kw, value, ok):
    if ok:
        assert V.float_in_range("dim", value, **kw) == value
    else:
        with pytest.raises(ValueError, match=r"dim must lie in [\[\(]"):
            V.float_in_range("dim", value, **kw)


def test_float_in_range_refuses_non_numbers_and_non_finite():
    with pytest.raises(TypeError, match="dim"):
        V.float_in_range("dim", "3", low=1.0)
    with pytest.raises(ValueError, match="dim must be finite"):
        V.float_in_range("dim", float("nan"), low=1.0)


def test_as_screen_says_how_to_build_a_screen():
    import pairint_jax as pj

    screen = pj.Screen.from_arrays(np.zeros((4, 2)) + np.arange(4)[:, None], ["ctrl", "ctrl", "A", "A"], warn=False)
    assert V.as_screen(screen, caller="f") is screen
    with pytest.raises(TypeError, match=r"f expects a Screen as screen, got ndarray of shape \(3, 2\); .*from_arrays"):
        V.as_screen(np.zeros((3, 2)), caller="f")
    with pytest.raises(TypeError, match=r"read_screen\(path\)"):
        V.as_screen("screen.h5ad", caller="f")


def test_moved_keywords_refuse_old_names_naming_the_new_one():
    @V.moved_keywords(key="groupby", obsm="use_rep")
    def f(*, groupby="perturbation", use_rep=None):
        return groupby, use_rep

    assert f(groupby="g", use_rep="X") == ("g", "X")
    with pytest.raises(TypeError, match=r"^f: key= is now groupby= \(key= only ever means a PRNG key\)\.$"):
        f(key="g")
    with pytest.raises(TypeError, match=r"^f: obsm= is now use_rep=\.$"):
        f(obsm="X_pca")


def test_as_screen_hints_for_results_and_generator_tuples():
    import pairint_jax as pj

    screen = pj.Screen.from_arrays(np.zeros((4, 2)) + np.arange(4)[:, None], ["ctrl", "ctrl", "A", "A"], warn=False)
    with pytest.raises(TypeError, match=r"got tuple; the generators return \(screen, truth\)"):
        V.as_screen((screen, {}), caller="f")
    res = pj.results.PairScores(perturbations=("A", "B"), pairs=np.array([[0, 1]]), score=np.zeros(1),
                                reason=np.array([""], object))
    with pytest.raises(TypeError, match=r"got PairScores; that is a result"):
        V.as_screen(res, caller="f")


def test_as_anndata_accepts_anndata_and_explains_the_rest():
    import anndata

    import pairint_jax as pj

    adata = anndata.AnnData(X=np.zeros((3, 2), np.float32))
    assert V.as_anndata(adata, caller="g") is adata
    with pytest.raises(TypeError, match=r"g expects an AnnData as adata, got ndarray of shape \(3, 2\); .*anndata"):
        V.as_anndata(np.zeros((3, 2)), caller="g")
    with pytest.raises(TypeError, match=r"anndata\.read_h5ad\(path\)"):
        V.as_anndata("cells.h5ad", caller="g")
    screen = pj.Screen.from_arrays(np.zeros((4, 2)) + np.arange(4)[:, None], ["ctrl", "ctrl", "A", "A"], warn=False)
    with pytest.raises(TypeError, match=r"already a Screen"):
        V.as_anndata(screen, caller="g")
