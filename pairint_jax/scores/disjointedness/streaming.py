"""Host side of the streamed disjointedness: the doubles stay in host memory, sent per block.

Used by :func:`~pairint_jax.disjointedness_scores` with ``stream=True``, for a screen
whose observations do not fit on the device (``screen.x`` may be a NumPy array or a
``np.memmap`` of an ``.npy`` file: it is only ever read in row blocks). This module only
reads and arranges host rows; centring and scoring happen in the runners
(:mod:`~pairint_jax.scores.disjointedness.runners`).

* **Device-resident** (needed by every pair): the control and the singles, and the
  shared blocks computed from them.
* **Streamed**: the doubles. Pairs are taken in blocks of ``block`` pairs; for each block
  the host gathers the block's double rows into a fixed layout ``[control | double 1 |
  double 2 | ...]`` (each double padded to ``m_d`` rows), sends it, and the same compiled
  per-pair program as the in-memory path scores the block. The next block is gathered
  while the device works on the current one (JAX dispatch is asynchronous).

Device memory: control + singles (``(n_0 + sum_i n_i) d`` floats) + the shared blocks
(as in memory) + two blocks of doubles (``2 (n_0 + block m_d) d`` floats) + one chunk's
intermediates. Host memory: the screen (or its memmap) + two blocks.

The results equal the in-memory ones: the same centred values (the centring mean is
computed on the device from the same control rows), the same per-pair program and keys
(``fold_in(key, pair index)``), and the same float-bit grid for the medians (its top edge
uses the largest centred row norm of the whole screen: that row, found on the host, is
sent along with the singles).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import round_up

#: Bytes of one streamed block of doubles when ``stream_block`` is automatic.
_BLOCK_BYTES = {"cpu": 64 << 20}
_BLOCK_BYTES_DEFAULT = 1 << 30
_ROWS_PER_READ = 1 << 16


def host_rows(screen) -> np.ndarray:
    """``screen.x`` as a host ``[N, D]`` view (no copy for NumPy arrays and memmaps)."""
    x = screen.x
    if isinstance(x, jax.Array):
        x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def largest_row(x_host, n0: int) -> int:
    """The row with the largest squared norm after centring on the control mean (one pass
    over the rows in blocks, float64 on the host; a screen's rows are finite)."""
    mean = np.asarray(x_host[:n0], np.float64).mean(axis=0)
    best, best_row = -1.0, 0
    step = max(1, min(_ROWS_PER_READ, (64 << 20) // (8 * x_host.shape[1])))  # <= 64 MiB of float64 per read
    for lo in range(0, x_host.shape[0], step):
        nrm = np.sum((np.asarray(x_host[lo: lo + step], np.float64) - mean) ** 2, axis=1)
        r = int(np.argmax(nrm))
        if nrm[r] > best:
            best, best_row = float(nrm[r]), lo + r
    return best_row


def resident_rows(x_host, *, n0, singles, offsets, counts, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The raw device-resident rows ``[control | singles | largest-norm row]`` and each
    single's start in them (the caller centres and pads them)."""
    top_row = largest_row(x_host, n0)
    pieces = [np.asarray(x_host[:n0])]
    starts = []
    pos = n0
    for g in singles:
        lo, c = int(offsets[g]), int(counts[g])
        pieces.append(np.asarray(x_host[lo: lo + c]))
        starts.append(pos)
        pos += c
    pieces.append(np.asarray(x_host[top_row: top_row + 1]))
    return np.concatenate(pieces).astype(dtype, copy=False), np.asarray(starts, np.int32)


def auto_block(n_pairs: int, n0: int, m_d: int, d: int, itemsize: int, multiple: int) -> int:
    """Pairs per streamed block: about 64 MiB (CPU) or 1 GiB (accelerators) of doubles, a
    multiple of ``multiple`` (the chunk size times the number of devices)."""
    budget = _BLOCK_BYTES.get(jax.default_backend(), _BLOCK_BYTES_DEFAULT)
    per_pair = max(1, m_d * d * itemsize)
    block = max(1, (budget - n0 * d * itemsize) // per_pair)
    block = max(multiple, block // multiple * multiple)
    return int(min(block, round_up(n_pairs, multiple)))


class BlockLayout:
    """Gathers the rows of a block of doubles into ``[control | double 0 | double 1 | ...]``."""

    def __init__(self, x_host, n0: int, m_d: int, block: int, dtype):
        self.x, self.n0, self.m_d, self.block, self.dtype = x_host, n0, m_d, block, dtype
        self.control = np.asarray(x_host[:n0]).astype(dtype, copy=False)
        self.starts = (n0 + np.arange(block) * m_d).astype(np.int32)

    def gather(self, d_starts: np.ndarray, d_counts: np.ndarray) -> np.ndarray:
        k = len(d_starts)
        buf = np.zeros((self.n0 + self.block * self.m_d, self.x.shape[1]), self.dtype)
        buf[: self.n0] = self.control
        counts = np.asarray(d_counts, np.int64)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        src = np.repeat(np.asarray(d_starts, np.int64), counts) + within
        dst = self.n0 + np.repeat(np.arange(k) * self.m_d, counts) + within
        order = np.argsort(src, kind="stable")  # read the host rows in order (memmaps)
        buf[dst[order]] = np.asarray(self.x[src[order]])
        return buf


def run_blocks(layout: BlockLayout, pairs, call, *, progress_bar=None):
    """Score every pair block by block.

    ``call(x_block, pairs_block)`` returns the device outputs (a pytree) of one block,
    where ``pairs_block`` is ``pairs`` (a NamedTuple of ``[P]`` arrays whose first two
    fields are the doubles' host starts and counts) restricted to the block, with the
    starts pointing into ``x_block``. Calls are dispatched asynchronously; the previous
    block's results are fetched after the next block is sent.
    """
    n = len(pairs[0])
    block = layout.block
    pieces, pending = [], None
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        take = np.minimum(np.arange(lo, lo + block), n - 1)  # pad the last block by repetition
        xb = layout.gather(pairs[0][lo:hi], pairs[1][lo:hi])
        local = type(pairs)(layout.starts, *(a[take] for a in pairs[1:]))
        out = call(jnp.asarray(xb), local)
        if pending is not None:
            pieces.append(fetch(*pending))
        pending = (out, hi - lo)
        if progress_bar is not None:
            progress_bar.update(hi - lo)
    if pending is not None:
        pieces.append(fetch(*pending))
    return concatenate(pieces)


def fetch(out, keep: int):
    """The first ``keep`` items of every leaf of ``out``, as writable host arrays."""
    return jax.tree.map(lambda v: np.array(v)[:keep], out)


def concatenate(pieces):
    """Leaf-wise concatenation of the host results of several blocks."""
    return jax.tree.map(lambda *p: np.concatenate(p), *pieces)


def global_rows(x_host, key, n_rows: int, n_sample: int, dtype) -> np.ndarray:
    """The rows the ``"global"`` bandwidth samples, in an order such that the in-memory
    program's own draw (``choice(key, n, n_sample)`` applied to these ``n_sample`` rows)
    visits them exactly as it visits the full screen's rows."""
    idx = np.asarray(jax.random.choice(key, n_rows, (n_sample,), replace=False))
    perm = np.asarray(jax.random.choice(key, n_sample, (n_sample,), replace=False))
    rows = np.asarray(x_host[np.sort(idx)])[np.searchsorted(np.sort(idx), idx)]  # rows in draw order
    out = np.empty_like(rows)
    out[perm] = rows  # out[perm[t]] = rows[t]: the inner draw out[perm] gives rows back
    return out.astype(dtype, copy=False)
