"""The additive-null test of ``pj.additivity_scores(n_permutations=...)``.

Exactness against a float64 NumPy reference (given the same signs), padding, chunking,
sparse storage and compilation hygiene, bad inputs, and the level and power of the test
on simulated screens.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.sparse as sp

import pairint_jax as pj
from pairint_jax.scores.additive_null import contrast_statistic, null_draws
from pairint_jax.scores.group_draws import group_draws, run_pairs, signs
from tests._compiles import compile_log

B = 99


def _screen(rng, sizes=None, d=6, dtype=np.float64, shift=None):
    sizes = sizes or {"ctrl": 23, "A": 11, "B": 9, "C": 14, "A+B": 7, "A+C": 13, "B+C": 10}
    scale = {lab: 0.5 + k * 0.3 for k, lab in enumerate(sizes)}  # unequal covariances
    xs, labels = [], []
    for lab, n in sizes.items():
        mu = (shift or {}).get(lab, 0.0)
        xs.append(rng.normal(size=(n, d)) * scale[lab] + mu + 3.0)
        labels += [lab] * n
    return pj.Screen.from_arrays(np.concatenate(xs).astype(dtype), labels)


def _stat_and_null(dij, d0, di, dj, options):
    groups = (dij, d0, di, dj)
    return contrast_statistic(groups), null_draws(groups)


def _reference(rows, eps):
    """T and T* of four groups ``(ij, 0, i, j)`` from their U-statistic definitions, float64."""
    s = (1.0, 1.0, -1.0, -1.0)
    means = [r.mean(0) for r in rows]
    res = [(r - m) * np.sqrt(len(r) / (len(r) - 1.0)) for r, m in zip(rows, means)]
    t, t_null = 0.0, np.zeros(eps[0].shape[0])
    for a in range(4):
        for b in range(4):
            na, nb = len(rows[a]), len(rows[b])
            if a == b:  # only r != s within a group
                g = rows[a] @ rows[a].T
                t += (g.sum() - np.trace(g)) / (na * (na - 1))
                h = res[a] @ res[a].T
                np.fill_diagonal(h, 0.0)
                t_null += np.einsum("br,rs,bs->b", eps[a], h, eps[a]) / (na * (na - 1))
            else:
                t += s[a] * s[b] * means[a] @ means[b]
                t_null += s[a] * s[b] * np.einsum("br,rs,bs->b", eps[a], res[a] @ res[b].T, eps[b]) / (na * nb)
    return t, t_null


def test_statistic_and_null_match_numpy_float64(x64, rng):
    screen = _screen(rng)
    key = jax.random.key(3)
    t, t_null = run_pairs(screen, _stat_and_null, n_draws=B, key=key, chunk=None)
    for k, groups in enumerate(screen.pair_groups):
        rows = [np.asarray(screen.group(int(g)), np.float64) for g in groups]
        eps = [np.asarray(signs(jax.random.fold_in(key, int(g)), len(r), B, np.float64)) for g, r in zip(groups, rows)]
        ref_t, ref_null = _reference(rows, eps)
        np.testing.assert_allclose(t[k], ref_t, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(t_null[k], ref_null, rtol=1e-10, atol=1e-12)
    res = pj.additivity_scores(screen, n_permutations=B, key=key)
    p = res.column_matrix("p_value")[screen.pairs[:, 0], screen.pairs[:, 1]]
    np.testing.assert_array_equal(p, (1.0 + (t_null >= t[:, None]).sum(1)) / (B + 1.0))


def test_draws_are_pad_invariant(rng):
    rows = rng.normal(size=(9, 4)).astype(np.float32)
    key = jax.random.key(1)
    eps_small, eps_big = signs(key, 9, 20, np.float32), signs(key, 16, 20, np.float32)
    np.testing.assert_array_equal(eps_small, eps_big[:, :9])
    padded = np.concatenate([rows, rng.normal(size=(7, 4)).astype(np.float32)])  # garbage padding rows
    a, b = group_draws(rows, 9, eps_small), group_draws(padded, 9, eps_big)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


def test_chunked_sparse_and_recompilation(rng):
    screen = _screen(rng, d=5, dtype=np.float32)
    ref = pj.additivity_scores(screen, n_permutations=B, key=0, pairs_per_chunk=None).to_frame()
    for chunk in (1, 2, "auto"):
        got = pj.additivity_scores(screen, n_permutations=B, key=0, pairs_per_chunk=chunk).to_frame()
        np.testing.assert_allclose(got.statistic, ref.statistic, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.p_value, ref.p_value)
    sparse = pj.Screen.from_arrays(sp.csr_matrix(np.asarray(screen.x)), screen.labels)
    got = pj.additivity_scores(sparse, n_permutations=B, key=0, pairs_per_chunk=None).to_frame()
    np.testing.assert_allclose(got.statistic, ref.statistic, rtol=1e-6)
    np.testing.assert_array_equal(got.p_value, ref.p_value)
    with compile_log() as log:
        pj.additivity_scores(screen, n_permutations=B, key=1, pairs_per_chunk=None)
    assert log.count("_block") == 0 and log.count("shared_draws") == 0, log.names


def test_blocks_and_minimum_chunk(rng, monkeypatch):
    """Many host blocks (outputs copied after the loop, last block padded) equal one block;
    the automatic chunk never falls below 2 pairs (nor above the number of pairs)."""
    from pairint_jax.scores import group_draws as gd

    screen = _screen(rng, d=5, dtype=np.float32)
    ref = pj.additivity_scores(screen, n_permutations=B, key=0, pairs_per_chunk=None).to_frame()
    monkeypatch.setattr(gd, "_BLOCK_BYTES", 1)  # one pair per block: 3 blocks, 2 in flight
    for chunk in (None, 1):
        got = pj.additivity_scores(screen, n_permutations=B, key=0, pairs_per_chunk=chunk).to_frame()
        np.testing.assert_allclose(got.statistic, ref.statistic, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.p_value, ref.p_value)
    assert gd.auto_chunk(1225, 200, 2000, 999, 4) == gd.MIN_CHUNK == 2  # one pair alone is over the budget
    assert gd.auto_chunk(1, 200, 2000, 999, 4) == 1
    assert gd.auto_chunk(3, 8, 5, 99, 4) == 3  # small pairs: all at once


def test_no_permutations_keeps_the_plain_scores(rng):
    screen = _screen(rng)
    plain = pj.additivity_scores(screen)
    assert list(plain.columns) == [] and pj.additivity_scores(screen, n_permutations=0).columns == {}
    tested = pj.additivity_scores(screen, n_permutations=B)
    np.testing.assert_array_equal(tested.score, plain.score)
    assert list(tested.columns) == ["statistic", "p_value", "q_value"]


def test_small_groups_get_nan_with_a_reason(rng):
    screen = _screen(rng, sizes={"ctrl": 20, "A": 10, "B": 4, "C": 10, "A+B": 8, "A+C": 8})
    df = pj.additivity_scores(screen, n_permutations=B).to_frame().set_index(["a", "b"])
    assert np.isnan(df.loc[("A", "B"), "p_value"]) and np.isfinite(df.loc[("A", "B"), "score"])
    assert "B has 4" in df.loc[("A", "B"), "reason"] and ">= 5" in df.loc[("A", "B"), "reason"]
    assert np.isfinite(df.loc[("A", "C"), "p_value"]) and df.loc[("A", "C"), "reason"] == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_permutations": -1}, ValueError, "n_permutations"),
        ({"n_permutations": 2.5}, TypeError, "n_permutations"),
        ({"n_permutations": 9, "key": "seed"}, TypeError, "key"),
        ({"n_permutations": 9, "pairs_per_chunk": 0}, ValueError, "pairs_per_chunk"),
    ],
)
def test_bad_inputs(rng, kwargs, error, match):
    screen = _screen(rng)
    with pytest.raises(error, match=match):
        pj.additivity_scores(screen, **kwargs)
    with pytest.raises(TypeError, match="expects a Screen"):
        pj.additivity_scores(np.zeros((3, 2)), n_permutations=9)
