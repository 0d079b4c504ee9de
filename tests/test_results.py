"""PairScores out: measured pairs ranked, labelled matrices, BH / Holm q-values, significant, p_floor, provenance.

References are brute-force float64 NumPy/SciPy computations written here (Benjamini-Hochberg as
``min_{l >= k} m p_(l) / l``, Holm as the step-down rule applied one p-value at a time).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control

import pairint_jax as pj
from pairint_jax.multitest import PValueFloorWarning, adjust_p_values, p_floor, permutations_needed
from pairint_jax.results import PairScores, TEST_QUESTIONS, score_label


def _bh_reference(p):
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    for rank, idx in enumerate(order, start=1):
        q[idx] = min(1.0, min(m * p[order[l - 1]] / l for l in range(rank, m + 1)))
    return q


def _holm_reference(p, alpha):
    """Holm's step-down test: reject p_(1), p_(2), ... while p_(k) <= alpha / (m - k + 1)."""
    p = np.asarray(p, float)
    m = len(p)
    reject = np.zeros(m, bool)
    for k, idx in enumerate(np.argsort(p, kind="stable")):
        if p[idx] > alpha / (m - k):
            break
        reject[idx] = True
    return reject


def _scores(n=6, *, seed=0, measured_fraction=0.6, with_p=True, b=99):
    rng = np.random.default_rng(seed)
    names = tuple(f"g{k}" for k in range(n))
    iu, ju = np.triu_indices(n, 1)
    P = len(iu)
    measured = rng.random(P) < measured_fraction
    measured[:2] = True
    score = np.where(measured, rng.normal(size=P), np.nan)
    score[np.flatnonzero(measured)[0]] = np.nan  # measured, not scorable
    reason = np.where(measured, "", "double not in screen").astype(object)
    reason[np.flatnonzero(measured)[0]] = "too few observations"
    cols = {}
    if with_p:
        k = rng.integers(0, b + 1, size=P)  # permutation p-values (1 + k) / (1 + B)
        k[np.flatnonzero(measured)[1:4]] = 0  # three pairs at the floor
        cols["p_value"] = np.where(np.isfinite(score), (1.0 + k) / (1.0 + b), np.nan)
    settings = {"n_permutations": b} if with_p else {}
    return PairScores(names, np.stack([iu, ju], 1), score, reason, cols, test="disjointedness", settings=settings,
                      measured=measured)


def test_to_frame_lists_measured_pairs_best_first_nan_last():
    res = _scores(with_p=False)
    df = res.to_frame()
    assert len(df) == int(res.measured.sum())
    s = df.score.to_numpy()
    finite = np.isfinite(s)
    assert finite[: finite.sum()].all() and not finite[finite.sum():].any()  # NaN last
    assert (np.diff(s[finite]) <= 0).all()  # best first
    assert df.reason.iloc[-1] == "too few observations"
    full = res.to_frame(all_pairs=True)
    assert len(full) == len(res.score) == 15
    assert set(full.reason) >= {"double not in screen"}
    assert list(df.columns) == ["a", "b", "score", "reason"]


def test_to_frame_ties_keep_pair_order():
    names = ("A", "B", "C")
    res = PairScores(names, np.array([[0, 1], [0, 2], [1, 2]]), np.array([1.0, 2.0, 1.0]), np.array(["", "", ""], object))
    df = res.to_frame()
    assert list(zip(df.a, df.b)) == [("A", "C"), ("A", "B"), ("B", "C")]


def test_to_matrix_frame_is_labelled_and_symmetric():
    res = _scores()
    m = res.to_matrix_frame()
    assert list(m.index) == list(m.columns) == list(res.perturbations)
    np.testing.assert_array_equal(m.to_numpy(), res.matrix)
    a, b = res.perturbations[res.pairs[1, 0]], res.perturbations[res.pairs[1, 1]]
    assert m.loc[a, b] == m.loc[b, a] == res.score[1]
    q = res.to_matrix_frame("q_value")
    assert q.loc[a, b] == res.columns["q_value"][1]
    with pytest.raises(KeyError, match="kl_a"):
        res.to_matrix_frame("kl_a")


def test_bh_matches_scipy_and_brute_force_and_ignores_nan():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=40) ** 3
    p[[3, 17]] = np.nan
    q = adjust_p_values(p, method="bh")
    ok = np.isfinite(p)
    np.testing.assert_allclose(q[ok], _bh_reference(p[ok]), rtol=1e-12)
    np.testing.assert_allclose(q[ok], false_discovery_control(p[ok], method="bh"), rtol=1e-12)
    assert np.isnan(q[~ok]).all()
    assert np.isnan(adjust_p_values([np.nan, np.nan])).all()


def test_holm_rejections_match_the_step_down_rule():
    rng = np.random.default_rng(2)
    for trial in range(20):
        p = np.concatenate([rng.uniform(size=30), rng.uniform(size=5) * 1e-3])
        q = adjust_p_values(p, method="holm")
        for alpha in (0.01, 0.05, 0.2):
            np.testing.assert_array_equal(q <= alpha, _holm_reference(p, alpha), err_msg=f"trial {trial}, alpha {alpha}")
        assert (q >= p).all() and (q <= 1).all()


def test_bad_p_values_and_methods_are_clear_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_p_values([0.5, 1.5])
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values([0.5], method="bonferroni")
    with pytest.raises(ValueError, match="alpha"):
        _scores().to_frame(alpha=1.5)


def test_significant_column_and_holm_correction():
    res = _scores(n=12, measured_fraction=0.9, b=4999)
    p = res.columns["p_value"]
    ok = np.isfinite(p)
    for correction in ("bh", "holm"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", PValueFloorWarning)  # B is large enough: no warning
            df = res.to_frame(alpha=0.1, correction=correction, all_pairs=True).set_index(["a", "b"])
        q_ref = np.full(len(p), np.nan)
        q_ref[ok] = _bh_reference(p[ok]) if correction == "bh" else np.nan
        names = np.asarray(res.perturbations)
        keys = list(zip(names[res.pairs[:, 0]], names[res.pairs[:, 1]]))
        got_q = df.loc[keys, "q_value"].to_numpy()
        got_sig = df.loc[keys, "significant"].to_numpy()
        if correction == "bh":
            np.testing.assert_allclose(got_q[ok], q_ref[ok], rtol=1e-12)
            np.testing.assert_array_equal(got_sig[ok], q_ref[ok] <= 0.1)
        else:
            np.testing.assert_array_equal(got_sig[ok], _holm_reference(p[ok], 0.1))
        assert not got_sig[~ok].any()
    holm = res.with_correction("holm")
    assert holm.correction == "holm" and holm.settings["correction"] == "holm" and res.correction == "bh"
    assert list(holm.columns) == ["p_value", "q_value"]


def test_p_floor_column_and_the_permutations_warning():
    b = 99
    res = _scores(n=10, measured_fraction=0.9, b=b)
    p = res.columns["p_value"]
    with pytest.warns(PValueFloorWarning) as rec:
        df = res.to_frame(all_pairs=True)
    m = int(np.isfinite(p).sum())
    need = math.ceil(m / 0.05) - 1
    assert 1 / (need + 1) <= 0.05 / m < 1 / need  # the smallest B whose floor reaches alpha / m
    assert permutations_needed(m, 0.05) == need
    message = str(rec[0].message)
    assert f"n_permutations >= {need}" in message and f"{m} tested pair" in message
    names = np.asarray(res.perturbations)
    want = {(names[i], names[j]): bool(np.isclose(v, 1 / (b + 1))) for (i, j), v in zip(res.pairs, p)}
    assert dict(zip(zip(df.a, df.b), df.p_floor)) == want
    assert df.p_floor.sum() >= 3
    # float32 permutation p-values still sit at the floor
    np.testing.assert_array_equal(p_floor(np.float32([1 / 100, 2 / 100, np.nan]), 99), [True, False, False])


def test_top_and_rank_use_the_ranked_measured_pairs():
    res = _scores(with_p=False)
    top = res.top(3)
    assert list(top["rank"]) == [1, 2, 3] and np.isfinite(top.score).all()
    assert res.rank(top.a[0], top.b[0]) == 1


def test_pair_scores_from_screen_records_measured_pairs_and_provenance():
    rng = np.random.default_rng(0)
    labels = ["ctrl"] * 6 + ["A"] * 4 + ["B"] * 4 + ["C"] * 4 + ["A+B"] * 4 + ["A+C"] * 1
    with pytest.warns(pj.UnscorableWarning):
        screen = pj.Screen.from_arrays(rng.normal(size=(len(labels), 3)), labels)
    res = pj.additivity_scores(screen)
    df = res.to_frame()
    assert sorted(zip(df.a, df.b)) == [("A", "B"), ("A", "C")]  # B+C was never measured
    prov = res.settings["provenance"]
    assert prov["screen"]["n_perturbations"] == 3 and prov["screen"]["n_doubles"] == 2
    assert prov["screen"]["n_scorable_pairs"] == 1 and prov["jax"] and prov["created"]


def test_score_labels_and_questions_cover_every_test():
    for test in ("disjointedness", "additivity", "separability"):
        assert test in score_label(test) and TEST_QUESTIONS[test].endswith(".")
    assert score_label("disjointedness", "q_value") == "q-value"
