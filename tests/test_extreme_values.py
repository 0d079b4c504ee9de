"""Extreme bandwidths in the disjointedness scores (issue 15): refused at the boundary when
float32 cannot square them, and a pair whose kernel values all underflow to 0 is NaN with a
reason that says so (never "numerical failure"), in memory and streamed.

The oracle is a float64 NumPy computation of the smallest squared distance between two
distinct observations of the pair: every float32 kernel value underflows exactly when
``exp(-min_d2 / (2 s^2))`` rounds to 0 in float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.scores.disjointedness.bandwidth import BANDWIDTH_RANGE, resolve_bandwidth

LABELS = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(12)]


@pytest.fixture(scope="module")
def screen():
    x = np.random.default_rng(0).normal(size=(len(LABELS), 3)).astype(np.float32)
    return pj.Screen.from_arrays(x, LABELS, warn=False)


def _min_sq_distance(screen) -> float:
    x = np.asarray(screen.x, np.float64)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    return float(d2[~np.eye(len(x), dtype=bool)].min())


def _underflows(bandwidth: float, d2: float) -> bool:
    return bool(np.exp(np.float32(-d2 / (2.0 * bandwidth**2))) == 0.0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_bandwidth_below_every_distance_gives_nan_with_its_reason(screen, stream):
    d2 = _min_sq_distance(screen)
    tiny = float(np.sqrt(d2 / (2 * 110.0)))  # exp(-110) < float32's smallest subnormal (~1.4e-45)
    small = float(np.sqrt(d2 / (2 * 60.0)))  # exp(-60) ~ 1e-26: representable, some kernel values survive
    assert _underflows(tiny, d2) and not _underflows(small, d2)
    with pytest.warns(RuntimeWarning, match=r"1 pair\(s\) got NaN: with bandwidth=.* every kernel value underflowed"):
        res = pj.disjointedness_scores(screen, bandwidth=tiny, n_permutations=9, stream=stream)
    assert np.isnan(res.score[0]) and np.isnan(res.columns["p_value"][0])
    assert res.reason[0].startswith("every kernel value between distinct observations underflowed to 0")
    assert "numerical failure" not in res.reason[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ok = pj.disjointedness_scores(screen, bandwidth=small, n_permutations=9, stream=stream)
    assert np.isfinite(ok.score[0]) and ok.reason[0] == ""


@pytest.mark.parametrize("value", [BANDWIDTH_RANGE[0], BANDWIDTH_RANGE[1], 1.0])
def test_the_bandwidth_range_ends_are_usable_in_float32(value):
    assert resolve_bandwidth(value).value == value
    s2 = np.float32(value) * np.float32(value)
    assert np.isfinite(s2) and s2 > 0 and np.isfinite(np.float32(-0.5) / s2)  # what kernel_fn computes


@pytest.mark.parametrize("value", [BANDWIDTH_RANGE[0] / 2, BANDWIDTH_RANGE[1] * 2, 1e-30, 1e30])
def test_bandwidths_outside_the_range_are_refused(value):
    with pytest.raises(ValueError, match=r"outside the range float32 kernels can use"):
        resolve_bandwidth(value)
