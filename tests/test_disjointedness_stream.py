"""Host-streamed disjointedness (``stream=True``) == in-memory scoring, bit for bit.

The streamed path sends the doubles block by block and runs the same per-pair program on
identically centred rows with the same keys, so scores, bandwidths and p-values must be
*equal* (not merely close) when both paths use the same chunk size (the vmapped batch
shape is the only thing that may change float32 round-off). The pairs (15) are a whole
number of chunks (5); the blocks (10 pairs) leave a padded last block.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import pairint_jax as pj


@pytest.fixture(scope="module")
def screen():
    screen, _ = pj.synthetic.latent_factor(jax.random.key(3), 6, n_per_condition=30, n_control=90, dim=8)
    return screen


def _same(a, b):
    np.testing.assert_array_equal(b.score, a.score)
    for col in a.columns:
        np.testing.assert_array_equal(b.columns[col], a.columns[col])
    assert list(b.reason) == list(a.reason)


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_permutations=20),  # per-pair certified median, permutation null
        dict(bandwidth="global", n_permutations=10, null="bootstrap", global_sample=200),  # sampled rows from the host
    ],
)
def test_streamed_equals_in_memory(screen, kw):
    ref = pj.disjointedness_scores(screen, pairs_per_chunk=5, **kw)
    out = pj.disjointedness_scores(screen, pairs_per_chunk=5, stream=True, stream_block=10, **kw)
    _same(ref, out)
    if kw.get("bandwidth") == "global":
        assert out.settings["global_bandwidth"] == ref.settings["global_bandwidth"]


def test_streamed_from_a_memmap(screen, tmp_path):
    # screen.x is a read-only memory map of an .npy file: only row blocks are ever read
    path = tmp_path / "x.npy"
    np.save(path, np.asarray(screen.x))
    mapped = screen.with_x(np.load(path, mmap_mode="r"))
    assert isinstance(np.asarray(mapped.x).base, np.memmap) or isinstance(mapped.x, np.memmap)
    ref = pj.disjointedness_scores(screen, pairs_per_chunk=5, n_permutations=0)
    out = pj.disjointedness_scores(mapped, pairs_per_chunk=5, n_permutations=0, stream=True, stream_block=5, progress=True)
    _same(ref, out)


def test_streamed_rejects_non_finite_rows(screen):
    x = np.array(screen.x)
    g = screen.group_index(screen.conditions[-1])
    x[screen.offsets[g] + 1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pj.disjointedness_scores(screen.with_x(x), n_permutations=0, stream=True)
