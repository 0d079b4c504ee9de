"""Warnings where a result would mislead (issue 15).

* The k-NN KL warns when a sample it uses has fewer than ``KNN_MIN_OBS_PER_DIM * d``
  observations (noisy estimates), and stays quiet when every sample is large enough.
* Every test of ``pj.scores`` that reports permutation (or bootstrap) p-values warns
  (:class:`~pairint_jax.multitest.PValueFloorWarning`) when pairs sit at the floor
  ``1 / (B + 1)`` and the number of pairs needs more draws; the table is generic, so a
  new test with p-values is checked as soon as it is exported from ``pj.scores``.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax.multitest import PValueFloorWarning
from pairint_jax.scores.separability import KNN_MIN_OBS_PER_DIM


def _screen(n_per: int, d: int, *, shift: float = 0.0, seed: int = 0):
    conds = ["ctrl", "A", "B", "C", "A+B", "A+C", "B+C"]
    labels = [c for c in conds for _ in range(n_per)]
    x = np.random.default_rng(seed).normal(size=(len(labels), d))
    x[[("+" in lab) for lab in labels]] += shift  # every double departs from its singles
    return pj.Screen.from_arrays(x, labels, warn=False)


def _knn_warnings(screen):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pj.separability_scores(screen)
    return [str(w.message) for w in caught if "few observations" in str(w.message)]


@pytest.mark.parametrize("d", [4, 10])
def test_knn_warns_when_samples_are_small_for_the_dimension(d):
    n = KNN_MIN_OBS_PER_DIM * d
    assert _knn_warnings(_screen(n, d)) == []  # exactly at the rule: quiet
    (message,) = _knn_warnings(_screen(n - 1, d))
    assert f"k-NN KL on {d} features" in message and f"fewer than {KNN_MIN_OBS_PER_DIM} x {d} = {n}" in message
    assert "7 of 7 conditions" in message and f"'ctrl': {n - 1}" in message


def _tests_with_p_values():
    out = []
    for name in pj.scores.__all__:
        fn = getattr(pj.scores, name)
        params = inspect.signature(fn).parameters
        # interaction_types returns a plain DataFrame whose p-values are additivity_scores' additive-null
        # test, which is checked here through additivity_scores itself
        if name in ("condition_kls", "interaction_types") or "screen" not in params:
            continue
        kwargs = {"n_permutations": 9} if "n_permutations" in params else {}
        out.append(pytest.param(fn, kwargs, id=name))
        if "null" in params:
            out.append(pytest.param(fn, {**kwargs, "null": "bootstrap"}, id=f"{name}-bootstrap"))
    return out


@pytest.mark.parametrize("fn,kwargs", _tests_with_p_values())
def test_every_test_with_permutation_p_values_warns_at_the_floor(fn, kwargs):
    screen = _screen(20, 3, shift=6.0)  # strong effects: every pair beats all 9 draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fn(screen, **kwargs)
    if "p_value" not in res.columns:
        pytest.skip(f"{fn.__name__} reports no p-values")
    b = res.settings.get("n_permutations")
    assert b == 9, "a test with p-values must record n_permutations, or its floor cannot be checked"
    with pytest.warns(PValueFloorWarning, match=r"rerun with n_permutations >= \d+"):
        df = res.to_frame()
    assert df.p_floor.all()  # 1/(9+1) for every pair
