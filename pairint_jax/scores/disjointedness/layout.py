"""Host layout and preparation: where every group's rows sit, centred and padded.

The observations are centred on the control mean (distances are unchanged; float32 and
TF32 matmul distances get more accurate) and flattened to ``[N, D]``. The *singles*
are padded to one size ``m_s`` and each double to ``m_d`` (multiples of 8). The control
is never padded with the other groups: it is the first ``n_0`` rows, a static-shape
block of its own, so a control 50x larger than the other groups costs only its own size.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import round_up
from pairint_jax.scores.disjointedness import streaming


class PairTable(NamedTuple):
    """One row per scorable pair (host arrays ``[P]``, in ``screen.pairs`` order)."""

    d_starts: np.ndarray  # first row of the double in x (in memory) or in the host rows (streamed)
    d_counts: np.ndarray  # rows of the double
    slot_i: np.ndarray  # index of single i among the singles in use
    slot_j: np.ndarray  # index of single j
    index: np.ndarray  # the pair's index (its key is fold_in(key, index))

    def take(self, rows) -> PairTable:
        """The pairs at ``rows`` (an index array)."""
        return PairTable(*(a[rows] for a in self))


class Prepared(NamedTuple):
    """The device-resident rows and the static sizes of the compiled programs."""

    x: jax.Array  # [rows + pad, D] centred, flattened observations; the control first
    n0: int  # rows of the control
    s_starts: np.ndarray  # [n_s] first row of each single in use
    s_counts: np.ndarray  # [n_s] rows of each single
    m_s: int  # padded size of a single
    m_d: int  # padded size of a double
    pairs: PairTable


class _Groups(NamedTuple):
    offsets: np.ndarray  # [G + 1] row offsets of the groups
    counts: np.ndarray  # [G]
    n0: int
    singles: np.ndarray  # [n_s] group ids of the singles that some pair uses
    m_s: int
    m_d: int
    dtype: type


def pad_size(m: int) -> int:
    """Rows a group of ``m`` is padded to: a multiple of 8. Not the coarser bucket ladder
    of :func:`~pairint_jax.bucket_size`: every padded row of a double costs a row of each
    per-pair block, so tight padding pays more than program reuse."""
    return round_up(m, 8)


def compute_dtype(screen) -> type:
    """float64 only for float64 data with ``jax_enable_x64``; float32 otherwise."""
    return np.float64 if (screen.x.dtype == np.float64 and jax.config.jax_enable_x64) else np.float32


def _groups(screen) -> _Groups:
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    counts = screen.counts
    singles = np.unique(pg[:, 2:4].reshape(-1))
    return _Groups(
        offsets=np.asarray(screen.offsets, dtype=np.int64),
        counts=counts,
        n0=int(counts[0]),
        singles=singles,
        m_s=pad_size(int(counts[singles].max())),
        m_d=pad_size(int(counts[pg[:, 0]].max())),
        dtype=compute_dtype(screen),
    )


def _prepared(screen, grp: _Groups, x, s_starts, d_starts) -> Prepared:
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    slot = {int(g): k for k, g in enumerate(grp.singles)}
    pairs = PairTable(
        d_starts=d_starts,
        d_counts=grp.counts[pg[:, 0]].astype(np.int32),
        slot_i=np.asarray([slot[int(g)] for g in pg[:, 2]], np.int32),
        slot_j=np.asarray([slot[int(g)] for g in pg[:, 3]], np.int32),
        index=np.arange(len(pg), dtype=np.int32),
    )
    return Prepared(x, grp.n0, s_starts, grp.counts[grp.singles].astype(np.int32), grp.m_s, grp.m_d, pairs)


def prepare(screen) -> Prepared:
    """Every row on the device, centred, with ``max(m_s, m_d)`` zero rows appended (so a
    fixed-size slice at any group's start stays in bounds)."""
    grp = _groups(screen)
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    # jnp.asarray, not np.asarray: a screen whose x already lives on the device (a Screen is a
    # pytree; replace its leaf with jax.device_put(screen.x)) is used in place, not re-sent.
    x = centre_and_pad(jnp.asarray(screen.x, grp.dtype), n0=grp.n0, pad=max(grp.m_s, grp.m_d))
    s_starts = grp.offsets[grp.singles].astype(np.int32)
    return _prepared(screen, grp, x, s_starts, grp.offsets[pg[:, 0]].astype(np.int32))


def prepare_streamed(screen) -> tuple[Prepared, np.ndarray]:
    """:func:`prepare` with only the control and the singles on the device; the pairs'
    ``d_starts`` index the host rows (returned too, ``[N, D]``)."""
    grp = _groups(screen)
    pg = np.asarray(screen.pair_groups, dtype=np.int64)
    x_host = streaming.host_rows(screen)
    rows, s_starts = streaming.resident_rows(
        x_host, n0=grp.n0, singles=grp.singles, offsets=grp.offsets, counts=grp.counts, dtype=grp.dtype
    )
    x = centre_and_pad(jnp.asarray(rows), n0=grp.n0, pad=max(grp.m_s, grp.m_d))
    return _prepared(screen, grp, x, s_starts, grp.offsets[pg[:, 0]].astype(np.int64)), x_host


def global_sample(prep: Prepared, x_host, key, *, n_rows: int, n_sample: int) -> tuple[jax.Array, int]:
    """The rows the ``"global"`` bandwidth draws from, centred, and how many there are.

    In memory these are all ``n_rows`` rows of ``prep.x``; streamed, only the
    ``n_sample`` drawn rows are read from the host, ordered so that the same draw
    visits them in the same order (:func:`streaming.global_rows`).
    """
    if x_host is None:
        return prep.x, n_rows
    rows = streaming.global_rows(x_host, key, n_rows, n_sample, prep.x.dtype)
    both = np.concatenate([np.asarray(x_host[: prep.n0], rows.dtype), rows])
    return centre_and_pad(jnp.asarray(both), n0=prep.n0, pad=0)[prep.n0:], n_sample


def centre_and_pad(x, *, n0: int, pad: int) -> jax.Array:
    """Rows ``x`` (control first) flattened, minus the mean of the first ``n0`` rows, with
    ``pad`` zero rows appended.

    The control mean is its own program (one shape, ``[n0, D]``) and enters the centring
    as an input, so every caller (in memory, streamed blocks) subtracts the identical vector.
    """
    x = x.reshape(x.shape[0], -1)
    return _subtract_and_pad(x, _control_mean(x[:n0]), pad=pad)


@jax.jit
def _control_mean(x0):
    return jnp.mean(x0, axis=0)


@functools.partial(jax.jit, static_argnames=("pad",))
def _subtract_and_pad(x, mean, *, pad):
    return jnp.concatenate([x - mean, jnp.zeros((pad, x.shape[1]), x.dtype)])
