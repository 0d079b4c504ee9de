"""``pj.additivity_scores`` against a float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import pairint_jax as pj


def _screen(rng, offset=0.0, dtype=np.float64):
    sizes = {"ctrl": 40, "A": 12, "B": 9, "C": 15, "A+B": 7, "A+C": 11, "B+C": 1}
    xs, labels = [], []
    for lab, n in sizes.items():
        xs.append(rng.normal(size=(n, 6)) + offset + (2.0 if lab == "A+B" else 0.0))
        labels += [lab] * n
    with pytest.warns(pj.UnscorableWarning):
        return pj.Screen.from_arrays(np.concatenate(xs).astype(dtype), labels)


def _reference(screen, a, b):
    g = lambda c: np.asarray(screen.group(c), np.float64).mean(0)  # noqa: E731
    mu0 = g("ctrl")
    return float(np.linalg.norm((g(f"{a}+{b}") - mu0) - (g(a) - mu0) - (g(b) - mu0)))


def test_additivity_matches_numpy_float64(x64, rng):
    screen = _screen(rng)
    res = pj.additivity_scores(screen)
    df = res.to_frame().set_index(["a", "b"])
    for a, b in [("A", "B"), ("A", "C")]:
        np.testing.assert_allclose(df.loc[(a, b), "score"], _reference(screen, a, b), rtol=1e-12)
    assert res.rank("A", "B") == 1
    assert np.isnan(df.loc[("B", "C"), "score"]) and "1 observation" in df.loc[("B", "C"), "reason"]


def test_additivity_float32_with_a_large_offset(rng):
    """Centring on the control first keeps float32 accurate when the data sit far from 0."""
    screen = _screen(rng, offset=1e3, dtype=np.float32)
    res = pj.additivity_scores(screen)
    got = res.matrix[0, 1]
    np.testing.assert_allclose(got, _reference(screen, "A", "B"), rtol=1e-3)
