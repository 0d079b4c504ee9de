"""The Screen data model: label parsing, grouping, pairs and reasons, padding, bad input."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.screen import MIN_OBSERVATIONS, bucket_size


def _labels(sizes: dict[str, int]) -> list[str]:
    return [lab for lab, m in sizes.items() for _ in range(m)]


def _screen(sizes, d=3, seed=0, **kw):
    labels = _labels(sizes)
    x = np.random.default_rng(seed).normal(size=(len(labels), d))
    return x, labels, pj.Screen.from_arrays(x, labels, **kw)


# ---------------------------------------------------------------- labels
@pytest.mark.parametrize(
    "label, expected",
    [
        ("ctrl", ()),
        ("A", ("A",)),
        ("A+B", ("A", "B")),
        ("B+A", ("A", "B")),
        (" B + A ", ("A", "B")),
        ("A+ctrl", ("A",)),
        ("ctrl+ctrl", ()),
    ],
)
def test_parse_label(label, expected):
    assert pj.parse_label(label) == expected


def test_parse_label_custom_separator_and_control():
    assert pj.parse_label("KRAS_TP53", sep="_", control="NT") == ("KRAS", "TP53")
    assert pj.parse_label("NT", sep="_", control="NT") == ()
    assert pj.parse_label("safe|MYC", sep="|", control=("safe", "NT")) == ("MYC",)


@pytest.mark.parametrize(
    "label, match",
    [
        ("", "empty condition label"),
        ("   ", "empty condition label"),
        (None, "empty condition label"),
        ("A+A", "repeats perturbation 'A'"),
        ("A+", "empty perturbation name"),
        ("A+B+C", "3 perturbations"),
    ],
)
def test_parse_label_errors(label, match):
    with pytest.raises(ValueError, match=match):
        pj.parse_label(label)


# ---------------------------------------------------------------- grouping
def test_grouping_order_and_canonical_labels():
    sizes = {"ctrl": 5, "B": 3, "A": 4, "B+A": 2, "A+B": 1, "C+ctrl": 2, "C+A": 3}
    x, labels, s = _screen(sizes)
    assert s.perturbations == ("A", "B", "C")
    assert s.conditions == ("ctrl", "A", "B", "C", "A+B", "A+C")
    assert s.members == ((), (0,), (1,), (2,), (0, 1), (0, 2))
    # B+A and A+B are one condition; A+ctrl style labels are singles.
    np.testing.assert_array_equal(s.counts, [5, 4, 3, 2, 3, 3])
    np.testing.assert_array_equal(s.kinds, [0, 1, 1, 1, 2, 2])
    # Every row keeps its data: group g holds exactly the rows labelled with condition g.
    canon = {lab: pj.parse_label(lab) for lab in set(labels)}
    for g, cond in enumerate(s.conditions):
        want = x[[i for i, lab in enumerate(labels) if canon[lab] == pj.parse_label(cond)]]
        np.testing.assert_array_equal(s.group(g), want)
    np.testing.assert_array_equal(s.group("B+A"), s.group("A+B"))
    assert list(s.labels[:5]) == ["ctrl"] * 5


def test_explicit_perturbation_order():
    sizes = {"ctrl": 3, "A": 2, "B": 2, "A+B": 2}
    _, _, s = _screen(sizes, perturbations=["B", "A", "Z"])
    assert s.perturbations == ("B", "A", "Z")
    assert s.conditions == ("ctrl", "B", "A", "B+A")
    np.testing.assert_array_equal(s.pairs, [[0, 1]])
    with pytest.raises(ValueError, match="does not list"):
        _screen(sizes, perturbations=["A"])


def test_float64_kept_and_other_dtypes_become_float32():
    labels = _labels({"ctrl": 2, "A": 2})
    assert pj.Screen.from_arrays(np.zeros((4, 2)), labels).x.dtype == np.float64
    assert pj.Screen.from_arrays(np.zeros((4, 2), np.float16), labels).x.dtype == np.float32
    assert pj.Screen.from_arrays(np.zeros((4, 2), np.int64), labels).x.dtype == np.float32
    assert pj.Screen.from_arrays(jnp.zeros((4, 2)), labels).x.dtype == np.float32


def test_images_are_supported():
    labels = _labels({"ctrl": 2, "A": 2, "B": 2, "A+B": 2})
    x = np.random.default_rng(1).normal(size=(8, 3, 5, 4))
    s = pj.Screen.from_arrays(x, labels)
    assert s.feature_shape == (3, 5, 4)
    xp, mask = s.padded([1, 3])
    assert xp.shape == (2, 8, 3, 5, 4) and mask.sum() == 4


# ---------------------------------------------------------------- pairs and reasons
def test_pairs_and_unscorable_reasons():
    sizes = {"ctrl": 4, "A": 3, "B": 3, "C": 1, "A+B": 3, "A+C": 3, "B+D": 3, "A+E": 1, "E": 2}
    with pytest.warns(pj.UnscorableWarning, match="3 measured pair"):
        _, _, s = _screen(sizes)
    names = s.perturbations
    assert names == ("A", "B", "C", "D", "E")
    np.testing.assert_array_equal(s.pairs, [[0, 1]])
    np.testing.assert_array_equal(s.pair_groups, [[s.group_index("A+B"), 0, 1, 2]])
    un = s.unscorable
    assert set(un) == {(0, 2), (1, 3), (0, 4)}
    assert "single 'C' has 1 observation" in un[(0, 2)]
    assert "single 'D' not in screen" in un[(1, 3)]
    assert "double 'A+E' has 1 observation" in un[(0, 4)]
    assert s.reason("A", "B") == ""
    assert s.reason("C", "D") == "double 'C+D' not in screen"
    allp, index, reasons = s.all_pairs()
    assert len(allp) == 10
    assert (index >= 0).sum() == 1 and reasons[index >= 0][0] == ""
    assert all(r for r in reasons[index < 0])
    for (i, j), r in zip(allp, reasons):
        assert r == s.reason(int(i), int(j))


def test_no_warning_when_everything_is_scorable():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, s = _screen({"ctrl": 3, "A": 2, "B": 2, "A+B": 2})
    assert s.unscorable == {}


# ---------------------------------------------------------------- padding
def test_bucket_sizes():
    assert [bucket_size(m) for m in (1, 8, 9, 64, 65, 96, 97, 129, 1000, 1024, 1025)] == [
        8, 8, 16, 64, 96, 96, 128, 192, 1024, 1024, 1536,
    ]
    for m in range(1, 3000, 7):
        b = bucket_size(m)
        assert b >= m and (m <= 64 or b <= 1.5 * m + 1)


def test_padded_masked_statistic_equals_unpadded():
    sizes = {"ctrl": 200, "A": 4, "B": 7, "A+B": 5, "C": 3, "A+C": 6}
    _, _, s = _screen(sizes, d=4)
    groups = np.arange(1, s.n_groups)
    xp, mask = s.padded(groups)
    assert xp.shape[1] == bucket_size(int(s.counts[1:].max()))
    assert not np.any(xp[~mask]), "padding rows must be zero"

    @jax.jit
    def masked_mean_and_var(xg, m):
        w = m.astype(xg.dtype)[:, None]
        n = w.sum()
        mu = (w * xg).sum(0) / n
        var = (w * (xg - mu) ** 2).sum(0) / (n - 1)
        return mu, var

    mus, vars_ = jax.vmap(masked_mean_and_var)(jnp.asarray(xp), jnp.asarray(mask))
    for k, g in enumerate(groups):
        raw = s.group(int(g)).astype(np.float64)
        np.testing.assert_allclose(mus[k], raw.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(vars_[k], raw.var(0, ddof=1), rtol=1e-4, atol=1e-6)
    # A larger static size changes nothing.
    xp2, mask2 = s.padded(groups, size=64)
    mus2, _ = jax.vmap(masked_mean_and_var)(jnp.asarray(xp2), jnp.asarray(mask2))
    np.testing.assert_allclose(mus2, mus, rtol=1e-6)
    with pytest.raises(ValueError, match="more than size"):
        s.padded(groups, size=4)


def test_control_fifty_times_larger_is_not_padded_with_the_rest():
    sizes = {"ctrl": 500, "A": 10, "B": 10, "A+B": 10}
    _, _, s = _screen(sizes)
    xp, mask = s.padded(s.pair_groups[0][[0, 2, 3]])  # double and singles only
    assert xp.shape[1] == 16  # bucket of 10, not of 500
    assert s.group(0).shape == (500, 3)


def test_screen_is_a_pytree_and_jits_without_retracing():
    _, _, s = _screen({"ctrl": 3, "A": 2, "B": 2, "A+B": 2})
    leaves, treedef = jax.tree.flatten(s)
    assert len(leaves) == 1 and leaves[0] is s.x
    doubled = jax.tree.map(lambda a: 2 * a, s)
    np.testing.assert_allclose(doubled.x, 2 * s.x)
    assert doubled.conditions == s.conditions
    traces = []

    @jax.jit
    def total(screen):
        traces.append(1)
        return screen.x.sum() * screen.n_groups

    np.testing.assert_allclose(total(s), s.x.sum() * 4, rtol=1e-6)
    total(jax.tree.map(lambda a: a + 1, s))
    assert len(traces) == 1


# ---------------------------------------------------------------- bad input
def test_non_finite_values_name_the_condition():
    labels = _labels({"ctrl": 3, "A": 2, "B": 2, "A+B": 3})
    x = np.zeros((10, 2))
    x[8, 1] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 observation\(s\) with non-finite.*'A'.*input row 3.*'A\+B'.*input row 8"):
        pj.Screen.from_arrays(x, labels)


@pytest.mark.parametrize("block_bytes", [64 << 20, 16])  # one read, and one row per read (as for a memmap)
def test_with_x_keeps_the_finite_invariant(tmp_path, monkeypatch, block_bytes):
    from pairint_jax import _observations as screen_mod

    monkeypatch.setattr(screen_mod, "_CHECK_BYTES", block_bytes)
    s = pj.Screen.from_arrays(np.zeros((10, 2)), _labels({"ctrl": 3, "A": 2, "B": 2, "A+B": 3}))
    x = np.ones((10, 2), np.float32)
    x[5, 1] = np.nan  # row 5: condition 'B'
    path = tmp_path / "x.npy"
    np.save(path, x)
    for bad in (x, np.load(path, mmap_mode="r")):
        with pytest.raises(ValueError, match=r"1 observation\(s\) with non-finite.*'B'.*input row 5"):
            s.with_x(bad)
    x[5, 1] = 1.0
    np.save(path, x)
    assert np.isfinite(s.with_x(np.load(path, mmap_mode="r")).x).all()


LIMIT = 2.0**60  # the largest row norm a screen accepts (pairint_jax._observations.MAX_ROW_NORM)


@pytest.mark.parametrize(
    "dtype,value",
    [(np.float32, 1e20), (np.float64, 1e300), (np.float64, -3e18), (np.float32, 3.0e38)],
)
def test_values_too_large_for_float32_are_refused_naming_row_and_condition(dtype, value):
    """A finite value whose square overflows float32 is named as such, not as NaN/inf or 'constant'."""
    labels = _labels({"ctrl": 3, "A": 2, "B": 2, "A+B": 3})
    x = np.zeros((10, 2), dtype)
    x[[0, 3, 4], 0] = [1.0, 2.0, 3.0]
    x[6, 1] = value  # input row 6: condition 'B'
    shown = re.escape(f"{abs(value):.3g}")
    with pytest.raises(ValueError, match=r"1 observation\(s\) too large for float32.*condition 'B': "
                                         rf"1 row\(s\) \(e\.g\. input row 6, largest \|value\| {shown}\)"):
        pj.Screen.from_arrays(x, labels)


def test_the_row_norm_limit_is_exact_and_applies_to_sparse_rows_and_with_x():
    import scipy.sparse as sp

    labels = _labels({"ctrl": 3, "A": 2, "B": 2, "A+B": 3})
    # a row of norm exactly 2**60 is accepted; 1% more is refused
    x = np.zeros((10, 2))
    x[4] = [0.6 * LIMIT, 0.8 * LIMIT]
    assert np.linalg.norm(x[4]) <= LIMIT
    s = pj.Screen.from_arrays(x, labels)
    big = x.copy()
    big[4] *= 1.01
    with pytest.raises(ValueError, match=r"too large for float32.*condition 'A'.*input row 4"):
        pj.Screen.from_arrays(big, labels)
    with pytest.raises(ValueError, match=r"too large for float32.*condition 'A'.*input row 4"):
        pj.Screen.from_arrays(sp.csr_matrix(big), labels)
    with pytest.raises(ValueError, match=r"too large for float32.*condition 'A'.*input row 4"):
        s.with_x(big.astype(np.float32))
    # NaN and inf are still reported as non-finite (first), not as too large
    big[7, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite.*input row 7"):
        pj.Screen.from_arrays(big, labels)


def test_sparse_row_norms_match_dense():
    import scipy.sparse as sp

    x = np.random.default_rng(0).normal(size=(50, 7)) * (np.random.default_rng(1).random((50, 7)) < 0.3)
    x[3] = 0.0  # an empty row
    rows = pj.sparse.SparseRows(sp.csr_matrix(x))
    np.testing.assert_allclose(rows.row_sq_norms(), np.sum(x * x, axis=1), rtol=1e-12)


def test_large_but_accepted_values_give_the_same_scores_as_rescaled_ones():
    """Just under the limit the scores are finite and scale as they should (float32, rtol 1e-3)."""
    rng = np.random.default_rng(1)
    labels = _labels({"ctrl": 30, "A": 30, "B": 30, "A+B": 30})
    x = rng.normal(size=(120, 3))
    x[60:90] += 2.0
    scale = 1e17
    small = pj.disjointedness_scores(pj.Screen.from_arrays(x, labels), n_permutations=0)
    large = pj.disjointedness_scores(pj.Screen.from_arrays(x * scale, labels), n_permutations=0)
    # the MMD with the median-heuristic bandwidth is scale-free
    np.testing.assert_allclose(large.score, small.score, rtol=1e-3)
    knn_small = pj.separability_scores(pj.Screen.from_arrays(x, labels))
    knn_large = pj.separability_scores(pj.Screen.from_arrays(x * scale, labels))
    np.testing.assert_allclose(knn_large.score, knn_small.score, rtol=1e-3)  # KL is scale-free too


def test_missing_or_tiny_control():
    with pytest.raises(ValueError, match="no control observations.*control="):
        pj.Screen.from_arrays(np.zeros((4, 2)), ["A", "A", "B", "B"])
    with pytest.raises(ValueError, match="control 'ctrl' has 1 observation"):
        pj.Screen.from_arrays(np.zeros((3, 2)), ["ctrl", "A", "A"])
    # A custom control label works.
    s = pj.Screen.from_arrays(np.zeros((4, 2)), ["NT", "NT", "A", "A"], control="NT")
    assert s.control == "NT" and s.counts[0] == 2


def test_inconsistent_dimensions():
    with pytest.raises(ValueError, match="x has 4 rows but 3 labels"):
        pj.Screen.from_arrays(np.zeros((4, 2)), ["ctrl", "ctrl", "A"])
    with pytest.raises(ValueError, match="observation 0 has shape \\(2,\\) but observation 2 has shape \\(3,\\)"):
        pj.Screen.from_arrays([np.zeros(2), np.zeros(2), np.zeros(3)], ["ctrl", "ctrl", "A"])
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        pj.Screen.from_arrays(np.zeros(4), ["ctrl"] * 4)
    with pytest.raises(TypeError, match="numeric"):
        pj.Screen.from_arrays(np.asarray([["a"], ["b"]]), ["ctrl", "ctrl"])


def test_empty_and_repeated_labels():
    with pytest.raises(ValueError, match=r"1 observation\(s\) have an empty condition label \(rows \[2\].*drop_unassigned"):
        pj.Screen.from_arrays(np.zeros((4, 2)), ["ctrl", "ctrl", "", "A"], drop_unassigned=False)
    with pytest.raises(ValueError, match="repeats perturbation 'A'"):
        pj.Screen.from_arrays(np.zeros((4, 2)), ["ctrl", "ctrl", "A+A", "A"])
    with pytest.raises(TypeError, match="not a single string"):
        pj.Screen.from_arrays(np.zeros((4, 2)), "ctrl")


def test_min_observations_constant():
    assert MIN_OBSERVATIONS == 2


# ---------------------------------------------------------------- results
def test_pair_scores_from_screen_spreads_scores_and_reasons():
    sizes = {"ctrl": 4, "A": 3, "B": 3, "C": 3, "A+B": 3, "B+C": 3, "A+C": 1}
    with pytest.warns(pj.UnscorableWarning):
        _, _, s = _screen(sizes)
    np.testing.assert_array_equal(s.pairs, [[0, 1], [1, 2]])
    res = pj.results.pair_scores_from_screen(
        s, [2.0, np.nan], columns={"p_value": [0.01, 0.5], "tag": np.asarray(["x", "y"], dtype=object)}, test="t"
    )
    m = res.matrix
    assert m.shape == (3, 3) and np.isnan(np.diag(m)).all()
    assert m[0, 1] == m[1, 0] == 2.0 and np.isnan(m[0, 2])
    df = res.to_frame()
    # q_value follows p_value (BH by default); significant = q <= alpha; no p_floor without n_permutations
    assert list(df.columns) == ["a", "b", "score", "p_value", "q_value", "tag", "significant", "reason"]
    assert list(zip(df.a, df.b)) == [("A", "B"), ("A", "C"), ("B", "C")]  # measured pairs, best first, NaN last
    row = df[(df.a == "B") & (df.b == "C")].iloc[0]
    assert row.reason == "score is not finite (numerical failure)"
    assert "1 observation" in df[(df.a == "A") & (df.b == "C")].iloc[0].reason
    assert res.rank("B", "A") == 1 and res.rank("A", "C") is None
    assert res.top(5).shape[0] == 1
    np.testing.assert_allclose(res.column_matrix("p_value")[1, 0], 0.01)
