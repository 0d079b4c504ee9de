"""Shared fixtures.

* ``x64``: run a test with 64-bit JAX (float64 references, rtol 1e-6 comparisons),
  restoring 32-bit afterwards so the rest of the suite is unaffected.
* ``rng``: a seeded NumPy generator.
* ``shared_dir``: the read-only ``../shared`` folder (paper, data); tests that
  need it are skipped when it is not present.
* After every test module, JAX's in-memory caches are cleared, so the process does not carry
  the compiled programs of the whole suite at once (XLA's CPU compiler crashed late in long
  runs that kept them all).
"""

from __future__ import annotations

import gc
import os
import pathlib

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _shared() -> pathlib.Path | None:
    env = os.environ.get("PAIRINT_SHARED")
    for cand in ([pathlib.Path(env)] if env else []) + [ROOT.parent / "shared", pathlib.Path("/work/shared")]:
        if (cand / "data").is_dir():
            return cand
    return None


@pytest.fixture
def shared_dir() -> pathlib.Path:
    path = _shared()
    if path is None:
        pytest.skip("../shared (paper data) is not available on this machine")
    return path
