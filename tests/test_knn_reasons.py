"""k-NN reasons name the condition at fault and the true cause (issue 15: extreme values).

* only the control is constant: the reason names the control, not the other conditions;
* a condition holding many copies of a control point: the reason names that condition;
* values so small that float32 distances underflow: the reason says so and does not
  blame duplicates.

Also :func:`pairint_jax.stats.knn_distances` against a float64 brute force.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.stats import knn_distances

LABELS = [c for c in ("ctrl", "A", "B", "C", "A+B", "A+C") for _ in range(12)]


def _scores(x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pj.separability_scores(pj.Screen.from_arrays(x, LABELS, warn=False), **kw)


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(len(LABELS), 3)).astype(np.float32)


def test_a_constant_control_is_named_and_no_other_condition(x):
    x[:12] = 1.0
    res = _scores(x)
    measured = res.measured
    assert np.isnan(res.score[measured]).all()
    for reason in res.reason[measured]:
        assert "because of the control: the control 'ctrl' holds 11 exact copies" in reason
        assert "max_duplicates=11" in reason  # the fix
        assert "condition 'A'" not in reason and "condition 'B'" not in reason
        assert reason.count("the control 'ctrl'") == 1  # said once per pair, not once per condition


def test_a_condition_holding_copies_of_a_control_point_is_named(x):
    x[12:24] = x[0]  # every row of 'A' is a copy of control row 0
    res = _scores(x)
    frame = res.to_frame()
    with_a = frame[(frame.a == "A") | (frame.b == "A")]
    assert with_a.score.isna().all()
    for reason in with_a.reason:
        assert reason.startswith("k-NN KL of condition 'A' could not be computed: condition 'A' holds 12 exact copies")
        assert "control 'ctrl' holds" not in reason
    assert np.isfinite(res.settings["condition_kl"]["B"])  # the other conditions are fine


def test_underflowing_distances_are_not_blamed_on_duplicates(x):
    res = _scores(x * np.float32(1e-25))  # every difference squares to 0 in float32; no two rows are equal
    assert len(np.unique(x * np.float32(1e-25), axis=0)) == len(x)
    for reason in res.reason[res.measured]:
        assert "underflow to 0 in float32" in reason and "rescale x" in reason
        assert "copies" not in reason


def test_knn_distances_match_a_float64_brute_force():
    rng = np.random.default_rng(1)
    xp = rng.normal(size=(40, 3))
    xq = rng.normal(size=(25, 3))
    for k in (1, 3):
        own = np.sqrt(((xp[:, None] - xp[None]) ** 2).sum(-1))
        np.fill_diagonal(own, np.inf)
        want = np.sort(own, axis=1)[:, k - 1]
        got = np.asarray(knn_distances(xp, k=k)[0])
        np.testing.assert_allclose(got, want, rtol=1e-5)  # float32 round-off
        cross = np.sqrt(((xp[:, None] - xq[None]) ** 2).sum(-1))
        mask = np.arange(25) < 20  # the last 5 rows of xq are padding
        want_q = np.sort(cross[:, mask], axis=1)[:, k - 1]
        got_q = np.asarray(knn_distances(xp, xq, k=k, mask_q=mask)[0])
        np.testing.assert_allclose(got_q, want_q, rtol=1e-5)


def test_knn_distances_skip_duplicates_up_to_the_limit():
    x = np.array([[0.0], [0.0], [0.0], [5.0], [7.0]], np.float32)
    dist, dup = (np.asarray(v) for v in knn_distances(x, k=1, max_duplicates=2))
    np.testing.assert_allclose(dist, [5.0, 5.0, 5.0, 2.0, 2.0])  # the copies are skipped
    np.testing.assert_array_equal(dup, [True, True, True, False, False])
    dist1 = np.asarray(knn_distances(x, k=1, max_duplicates=1)[0])
    assert np.isinf(dist1[:3]).all() and np.isfinite(dist1[3:]).all()  # 2 copies, 1 allowed
