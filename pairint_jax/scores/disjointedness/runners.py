"""Runners of the per-pair program: in memory, streamed from the host, sharded over a mesh.

Every runner is a function ``run(pairs, chunk, *, max_passes, n_pad=None) -> PairResult``
(host arrays) over a :class:`~pairint_jax.scores.disjointedness.layout.PairTable`:

* :func:`in_memory`: every row on the device; the pairs are padded to whole chunks
  (by repeating the last pair, whose extra results are dropped), so a remainder chunk
  never compiles the program a second time. With a mesh, whole chunks on every device
  (the sharded runner: :func:`pairint_jax.parallel.chunked_vmap` splits the pairs).
* :func:`streamed`: the doubles sent from the host block by block
  (:mod:`~pairint_jax.scores.disjointedness.streaming`), centred on the device as in memory.

:func:`score_all` drives a runner: one pass (in up to 20 blocks behind a progress bar
when asked), then a second, refining pass for the rare pairs whose median did not
certify in one histogram pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax._validate import ceil_div, round_up
from pairint_jax.parallel import mesh_size
from pairint_jax.scores.disjointedness import streaming
from pairint_jax.scores.disjointedness.layout import PairTable, Prepared, centre_and_pad
from pairint_jax.scores.disjointedness.pair import NOT_CONVERGED, PairResult, score_pairs
from pairint_jax.scores.disjointedness.shared import Shared, Statics

# Bytes of per-chunk intermediates when pairs_per_chunk="auto": on accelerators a large chunk
# keeps the device busy; on CPU a chunk that stays in cache is several times faster.
_MEMORY_BUDGET = {"cpu": 16 << 20}
_MEMORY_BUDGET_DEFAULT = 4 << 30
_GRID_RTOL = 2.5e-4  # below this median_rtol, grid bins never certify alone (see score_all)
MAX_PASSES = 48  # cap on the certified medians' refinement passes


def auto_chunk(prep: Prepared, statics: Statics, itemsize: int) -> int:
    """Pairs per chunk whose intermediates fit the backend's budget (16 MiB on CPU, 4 GiB
    elsewhere), chosen among sizes down to half of that to pad the pairs least."""
    n0, m_s, m_d = prep.n0, prep.m_s, prep.m_d
    floats = m_d * (m_d + n0 + 2 * m_s) + m_s * m_s
    if statics.per_pair:
        floats += n0 * n0 // 2 + 2 * n0 * m_s + m_s * m_s
    if statics.n_perm > 0:
        n = m_d + n0 + 2 * m_s
        floats += n * n + 2 * n * 4 * statics.n_perm
    per_pair = 3 * itemsize * floats
    budget = _MEMORY_BUDGET.get(jax.default_backend(), _MEMORY_BUDGET_DEFAULT)
    n_pairs = len(prep.pairs.index)
    c_max = int(max(1, min(n_pairs, budget // max(per_pair, 1))))
    # the pairs are padded to whole chunks: among chunk sizes down to half the budget's, take
    # the one that pads least (45 pairs: 3 x 15 rather than 4 x 12 with 3 padding pairs)
    return min(range(c_max, (c_max - 1) // 2, -1), key=lambda c: (round_up(n_pairs, c) - n_pairs, -c))


def _devices(mesh) -> int:
    return 1 if mesh is None else mesh_size(mesh)


def in_memory(x, shared: Shared, bandwidth, rtol, key, statics: Statics, mesh, pairs: PairTable, chunk, *,
              max_passes: int, n_pad: int | None = None) -> PairResult:
    """Score ``pairs`` (host arrays) with every row in ``x`` on the device."""
    n = len(pairs.index)
    n_pad = max(n if n_pad is None else n_pad, n)
    if chunk is not None and chunk < n_pad:
        n_pad = round_up(n_pad, chunk * _devices(mesh))  # whole chunks per device
    padded = PairTable(*(jnp.asarray(a) for a in pairs.take(np.minimum(np.arange(n_pad), n - 1))))
    out = score_pairs(x, shared, padded, bandwidth, rtol, key, statics=statics, chunk_size=chunk,
                      max_passes=max_passes, mesh=mesh)
    return streaming.fetch(out, n)


def streamed(layout: streaming.BlockLayout, shared: Shared, bandwidth, rtol, key, statics: Statics, mesh,
             pairs: PairTable, chunk, *, max_passes: int, n_pad: int | None = None, progress: bool = False) -> PairResult:
    """:func:`in_memory` with the doubles sent from the host block by block (``n_pad`` is
    ignored: every block is already padded to the layout's block size)."""
    del n_pad
    chunk = None if chunk is None else min(chunk, layout.block)
    bar = _progress(total=len(pairs.index), desc="disjointedness", enabled=progress, unit="pair")

    def call(x_block, local):  # the block's raw rows [control | doubles], centred as in memory
        x_block = centre_and_pad(x_block, n0=layout.n0, pad=0)
        local = PairTable(*map(jnp.asarray, local))
        return score_pairs(x_block, shared, local, bandwidth, rtol, key, statics=statics, chunk_size=chunk,
                           max_passes=max_passes, mesh=mesh)

    out = streaming.run_blocks(layout, pairs, call, progress_bar=bar)
    bar.close()
    return out


def stream_layout(prep: Prepared, x_host, chunk, mesh, stream_block) -> streaming.BlockLayout:
    """The block layout of a streamed run: blocks of whole chunks on every device."""
    step = (chunk or 1) * _devices(mesh)  # whole chunks on every device: no remainder program
    itemsize = np.dtype(prep.x.dtype).itemsize
    block = stream_block or streaming.auto_block(len(prep.pairs.index), prep.n0, prep.m_d, prep.x.shape[1], itemsize, step)
    return streaming.BlockLayout(x_host, prep.n0, prep.m_d, round_up(block, step), np.dtype(prep.x.dtype))


def _in_blocks(run, pairs: PairTable, chunk, max_passes: int) -> PairResult:
    """The same compiled pass in up to 20 equal blocks of pairs, with a progress bar."""
    n_pairs = len(pairs.index)
    step = chunk or n_pairs
    n_blocks = min(20, ceil_div(n_pairs, step))
    block = round_up(ceil_div(n_pairs, n_blocks), step)
    pieces = []
    bar = _progress(total=n_pairs, desc="disjointedness", enabled=True, unit="pair")
    for start in range(0, n_pairs, block):
        sub = pairs.take(np.arange(start, min(start + block, n_pairs)))
        pieces.append(run(sub, min(step, block), max_passes=max_passes, n_pad=block))
        bar.update(len(sub.index))
    bar.close()
    return streaming.concatenate(pieces)


def score_all(run, pairs: PairTable, chunk, statics: Statics, median_rtol: float, *, blocks: bool) -> PairResult:
    """Every pair through ``run``; ``blocks``: in up to 20 blocks behind a progress bar.

    Grid medians: one histogram pass certifies almost every pair, so the main program has
    no refinement loop (smaller, faster to compile); the rare pairs whose grid bin is
    wider than ``median_rtol`` are redone by a second program with refinement passes. (A
    grid bin is at least 2^-10 wide in squared distance, so a ``median_rtol`` below
    about 2.5e-4 always needs refinement: then the single program with the loop is used.)
    """
    one_pass = statics.per_pair and statics.median_method == "grid" and median_rtol >= _GRID_RTOL
    passes = 1 if one_pass else MAX_PASSES
    out = _in_blocks(run, pairs, chunk, passes) if blocks else run(pairs, chunk, max_passes=passes)
    redo = np.flatnonzero(out.status == NOT_CONVERGED) if one_pass else []
    if len(redo):
        bucket = 1 << (len(redo) - 1).bit_length()  # powers of two: few distinct programs
        fix = run(pairs.take(redo), min(chunk or bucket, bucket), max_passes=MAX_PASSES, n_pad=bucket)
        for mine, fixed in zip(out, fix):
            if mine is not None:
                mine[redo] = fixed
    return out


def make_runner(prep: Prepared, x_host, shared: Shared, bandwidth, rtol, key, statics: Statics, *, chunk, mesh,
                stream_block, progress: bool):
    """The runner of :func:`score_all`: :func:`streamed` when ``x_host`` is given, else
    :func:`in_memory`."""
    if x_host is None:
        return functools.partial(in_memory, prep.x, shared, bandwidth, rtol, key, statics, mesh)
    layout = stream_layout(prep, x_host, chunk, mesh, stream_block)
    return functools.partial(streamed, layout, shared, bandwidth, rtol, key, statics, mesh, progress=progress)
