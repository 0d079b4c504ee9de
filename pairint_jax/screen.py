"""The screen data model: observations grouped into control, singles and doubles.

Layout (see ``ARCHITECTURE.md``):

* ``x`` holds every observation once, rows sorted by group: ``[N, *feature_shape]``.
  Group ``g`` is the row slice ``offsets[g]:offsets[g + 1]``.
* Group 0 is the control, then the singles in ``perturbations`` order, then the
  doubles ordered by ``(i, j)``.
* Ragged groups become static shapes through :meth:`Screen.padded`, which pads the
  requested groups to one bucketed size and returns a boolean mask. The control is
  never padded together with the other groups: real controls are often 10-100x
  larger than any double, so scorers take it separately with :meth:`Screen.group`
  (it is one array, static shape) and pad only the small groups.
* Sizes are bucketed (:func:`bucket_size`) so that screens of slightly different
  sizes reuse the same compiled program, while wasting at most a third of the memory.

A ``Screen`` is a JAX pytree whose only leaf is ``x``; everything else is static
metadata, so it can be passed straight into ``jax.jit`` (shapes stay static).

The checks of the observations live in :mod:`pairint_jax._observations`, the grouping
of labels in :mod:`pairint_jax.labels` and the pair table (scorable pairs and reasons)
in :mod:`pairint_jax.pair_table`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterable, Sequence

import jax
import numpy as np

from pairint_jax import pair_table as _pairs
from pairint_jax._observations import as_label_list, as_observations, check_observations, take_rows
from pairint_jax._validate import round_up
from pairint_jax.labels import (
    as_control_set,
    drop_message,
    group_rows,
    parse_label,
    parse_labels,
    perturbation_order,
)
from pairint_jax.pair_table import MIN_OBSERVATIONS
from pairint_jax.sparse import SparseRows

__all__ = ["Screen", "UnscorableWarning", "DroppedObservationsWarning", "bucket_size", "MIN_OBSERVATIONS"]


class UnscorableWarning(UserWarning):
    """Some pairs of the screen cannot be scored; the reasons are on the screen."""


class DroppedObservationsWarning(UserWarning):
    """Observations were dropped while building a screen (counts in ``Screen.dropped``)."""


def bucket_size(m: int, *, multiple: int = 8) -> int:
    """Round a group size up to a static bucket size.

    Sizes up to 64 round up to a multiple of ``multiple``; larger sizes round up to
    the next value of the ladder ``2^k, 1.5 * 2^k``, so at most a third is padding
    and the number of distinct compiled shapes grows only logarithmically.

    Example:
      >>> [bucket_size(m) for m in (1, 9, 64, 65, 100, 1000)]
      [8, 16, 64, 96, 128, 1024]
    """
    if m <= 0:
        return multiple
    if m <= 64:
        return round_up(m, multiple)
    k = int(np.floor(np.log2(m)))
    for cand in (2**k, 3 * 2 ** (k - 1), 2 ** (k + 1)):
        if cand >= m:
            return int(cand)
    raise AssertionError("unreachable")  # pragma: no cover


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["x"],
    meta_fields=["conditions", "members", "offsets", "perturbations", "control", "sep", "dropped"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Screen:
    """Observations of a perturbation screen, grouped by condition.

    Build one with :meth:`from_arrays`, :func:`pairint_jax.io.from_anndata` or
    :func:`pairint_jax.read_screen`; the constructor itself does no validation.

    Invariant: the observations of a screen built by :meth:`from_arrays` or
    :meth:`with_x` (and so by every reader and generator) are all finite, and no row's
    norm exceeds ``2**60`` (about 1.2e18), so that squared distances cannot overflow
    float32 (:mod:`pairint_jax._observations`). The scorers rely on it and do not check
    again.

    Attributes:
      x: ``[N, *feature_shape]`` observations, rows sorted by group: a NumPy array, or
        for sparse input a :class:`~pairint_jax.sparse.SparseRows` (``[N, d]``, CSR)
        whose indexing densifies only the rows asked for (see :attr:`is_sparse`).
      conditions: ``G`` canonical condition labels; ``conditions[0]`` is the control.
      members: per group, the perturbation indices: ``()``, ``(i,)`` or ``(i, j)``, ``i < j``.
      offsets: ``G + 1`` row offsets; group ``g`` is ``x[offsets[g]:offsets[g + 1]]``.
      perturbations: the ``n`` single perturbations, in a stable order (sorted unless
        given explicitly).
      control: the canonical control label.
      sep: the separator used in double labels.
      dropped: what the builder dropped, ``((reason, n_observations, example labels), ...)``
        (unassigned labels, higher-order conditions); empty when nothing was.
    """

    x: np.ndarray
    conditions: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    perturbations: tuple[str, ...]
    control: str = "ctrl"
    sep: str = "+"
    dropped: tuple = ()

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_arrays(
        cls,
        x,
        labels: Sequence,
        *,
        control: str | Iterable[str] = "ctrl",
        sep: str = "+",
        perturbations: Sequence[str] | None = None,
        drop_unassigned: bool = True,
        max_order: int | None = 2,
        warn: bool = True,
    ) -> Screen:
        """Build a screen from an observation array and one label per row.

        Args:
          x: ``[N, ...]`` numeric array (NumPy or JAX): embeddings ``[N, d]`` or
            images ``[N, C, H, W]``; or a 2-D ``scipy.sparse`` matrix ``[N, d]`` (e.g.
            counts), which stays sparse (``screen.x`` is then a
            :class:`~pairint_jax.sparse.SparseRows`; see :attr:`is_sparse`). float64
            input stays float64; anything else becomes float32.
          labels: ``N`` condition labels (``"ctrl"``, ``"A"``, ``"A+B"``; ``"B+A"``
            and ``"A+ctrl"`` are understood).
          control: the control label, or several labels that all mean control.
          sep: the separator between the two perturbations of a double.
          perturbations: optional explicit order of the single perturbations. It
            must contain every perturbation named in ``labels``; extra names are
            allowed (they simply have no data).
          drop_unassigned: drop observations whose label is NaN, None or blank (e.g.
            cells without a guide call); False raises instead.
          max_order: ``2`` (default) drops conditions with more than two perturbations
            (triples and up); ``None`` raises on them.
          warn: emit a :class:`DroppedObservationsWarning` for what was dropped and an
            :class:`UnscorableWarning` listing unscorable pairs. What was dropped is
            always recorded in :attr:`dropped`.

        Returns:
          A validated :class:`Screen`.

        Raises:
          ValueError: non-finite values, values too large for float32 distances (a row norm
            above ``2**60``, e.g. one entry of 1e20), no control or a control with fewer than 2
            observations, a label/row count mismatch, ragged rows, labels that repeat a
            perturbation (``A+A``), a label column with no double that another separator
            would parse (the message proposes it), and (when not dropped) empty or
            higher-order labels. The message names the condition, row and count involved.

        Example:
          >>> x = np.random.default_rng(0).normal(size=(8, 3))
          >>> s = Screen.from_arrays(x, ["ctrl"] * 2 + ["A"] * 2 + ["B"] * 2 + ["B+A"] * 2)
          >>> s.perturbations, s.conditions
          (('A', 'B'), ('ctrl', 'A', 'B', 'A+B'))
        """
        controls = as_control_set(control)
        x = as_observations(x)
        labels = as_label_list(labels)
        if len(labels) != x.shape[0]:
            raise ValueError(
                f"inconsistent dimensions: x has {x.shape[0]} rows but {len(labels)} labels "
                "were given; pass exactly one condition label per observation row."
            )
        # Each distinct label is parsed once (hash-based factorisation, O(N)).
        parsed = parse_labels(labels, control=controls, sep=sep, drop_unassigned=drop_unassigned, max_order=max_order)
        perts = perturbation_order(parsed.names, perturbations, controls=controls, sep=sep)
        keys, conditions, order, counts, offsets = group_rows(parsed, perts, controls=controls, sep=sep)
        xs = take_rows(x, order)
        check_observations(xs, conditions, offsets, order)
        if counts[0] < MIN_OBSERVATIONS:
            raise ValueError(
                f"the control {controls[0]!r} has {counts[0]} observation(s); at least "
                f"{MIN_OBSERVATIONS} are needed to estimate any score."
            )
        screen = cls(
            x=xs,
            conditions=conditions,
            members=keys,
            offsets=offsets,
            perturbations=perts,
            control=controls[0],
            sep=sep,
            dropped=parsed.dropped,
        )
        if warn:
            if parsed.dropped:
                warnings.warn(
                    drop_message(parsed.dropped, sep) + " See screen.dropped.", DroppedObservationsWarning, stacklevel=2
                )
            screen._warn_unscorable()
        return screen

    @classmethod
    def from_anndata(cls, adata, **kwargs) -> Screen:
        """Build a screen from an AnnData object: :func:`pairint_jax.io.from_anndata`, same arguments."""
        from pairint_jax.io import from_anndata  # the readers live in io.py; this delegate keeps the API

        return from_anndata(adata, **kwargs)  # refuses the old key=/obsm= with the new names

    # ------------------------------------------------------------------ basic views
    @property
    def n_perturbations(self) -> int:
        """Number of single perturbations ``n``."""
        return len(self.perturbations)

    @property
    def n_groups(self) -> int:
        """Number of conditions ``G`` present (control, singles and doubles)."""
        return len(self.conditions)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one observation, e.g. ``(d,)`` or ``(3, 128, 128)``."""
        return tuple(self.x.shape[1:])

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """``[G]`` observations per group."""
        return np.diff(np.asarray(self.offsets, dtype=np.int64))

    @functools.cached_property
    def group_ids(self) -> np.ndarray:
        """``[N]`` group id of every row of ``x``."""
        return np.repeat(np.arange(self.n_groups), self.counts)

    @property
    def labels(self) -> np.ndarray:
        """``[N]`` canonical condition label of every row of ``x``."""
        return np.asarray(self.conditions, dtype=object)[self.group_ids]

    @functools.cached_property
    def kinds(self) -> np.ndarray:
        """``[G]`` 0 for the control, 1 for a single, 2 for a double."""
        return np.asarray([len(m) for m in self.members], dtype=np.int64)

    @functools.cached_property
    def _group_of(self) -> dict[tuple[int, ...], int]:
        return {m: g for g, m in enumerate(self.members)}

    @functools.cached_property
    def single_groups(self) -> np.ndarray:
        """``[n]`` group id of each perturbation's single, ``-1`` where it is absent."""
        return np.asarray([self._group_of.get((i,), -1) for i in range(self.n_perturbations)], dtype=np.int64)

    def group_index(self, condition: str | tuple[int, ...]) -> int:
        """Group id of a condition, given as a label (any order) or as member indices."""
        if isinstance(condition, str):
            names = parse_label(condition, control=self.control, sep=self.sep)
            try:
                condition = tuple(sorted(self.perturbations.index(n) for n in names))
            except ValueError as err:
                raise KeyError(f"condition {condition!r} names a perturbation not in the screen") from err
        try:
            return self._group_of[tuple(condition)]
        except KeyError as err:
            raise KeyError(f"condition {condition!r} is not in the screen") from err

    @property
    def is_sparse(self) -> bool:
        """True when :attr:`x` is sparse (:class:`~pairint_jax.sparse.SparseRows`).

        A sparse screen is read through its accessors (:meth:`group`, :meth:`padded`,
        :meth:`group_means`, or ``x[rows]``), each densifying only the rows it returns;
        ``np.asarray(screen.x)`` raises rather than densify every row (see
        :meth:`to_dense`). Scores that need every row on the device at once use their
        host-streamed path or refuse with a message.
        """
        return isinstance(self.x, SparseRows)

    def group(self, g: int | str) -> np.ndarray:
        """Rows of one group, dense: ``[counts[g], *feature_shape]``."""
        if isinstance(g, str):
            g = self.group_index(g)
        return self.x[self.offsets[g] : self.offsets[g + 1]]

    def group_means(self, groups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Mean observation of each group, accumulated in float64.

        Args:
          groups: ``[k]`` group ids; default all ``G`` groups.

        Returns:
          ``[k, *feature_shape]`` float64. For a sparse screen only this result is dense.
        """
        groups = np.arange(self.n_groups) if groups is None else np.asarray(groups, np.int64).reshape(-1)
        off = np.asarray(self.offsets, np.int64)
        if self.is_sparse:
            return self.x.segment_means(off[groups], off[groups + 1])
        out = np.empty((len(groups),) + self.feature_shape)
        for t, g in enumerate(groups):
            out[t] = np.asarray(self.x[off[g] : off[g + 1]]).mean(axis=0, dtype=np.float64)
        return out

    def padded(self, groups: Sequence[int] | np.ndarray, *, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pad several groups to one static size.

        Args:
          groups: ``[k]`` group ids (repeats allowed).
          size: the padded size; default ``bucket_size(max count)``. Groups larger
            than ``size`` raise.

        Returns:
          ``(x_pad, mask)`` with ``x_pad: [k, size, *feature_shape]`` (padding rows are
          zero) and ``mask: [k, size]`` boolean, True on real rows.
        """
        groups = np.asarray(groups, dtype=np.int64).reshape(-1)
        counts = self.counts[groups] if len(groups) else np.zeros(0, np.int64)
        need = int(counts.max()) if len(groups) else 0
        if size is None:
            size = bucket_size(need)
        elif need > size:
            raise ValueError(f"a requested group has {need} rows, more than size={size}.")
        starts = np.asarray(self.offsets, dtype=np.int64)[groups]
        cols = np.arange(size)
        mask = cols[None, :] < counts[:, None]
        rows = starts[:, None] + cols[None, :]
        x_pad = np.zeros((len(groups), size) + self.feature_shape, self.x.dtype)
        if mask.any():  # only the real rows are read (and, for sparse x, densified)
            x_pad[mask] = np.asarray(self.x[rows[mask]])
        return x_pad, mask

    # ------------------------------------------------------------------ pairs
    @functools.cached_property
    def _pair_table(self) -> _pairs.PairTable:
        return _pairs.pair_table(self.members, self.counts, self.single_groups, self.perturbations, self.conditions)

    @property
    def pairs(self) -> np.ndarray:
        """``[P, 2]`` perturbation indices ``(i, j)``, ``i < j``, of every scorable pair."""
        return self._pair_table.pairs

    @property
    def pair_groups(self) -> np.ndarray:
        """``[P, 4]`` group ids ``(i+j, control, i, j)`` of every scorable pair."""
        return self._pair_table.groups

    @property
    def unscorable(self) -> dict[tuple[int, int], str]:
        """Reason for every measured double that cannot be scored, keyed by ``(i, j)``.

        Pairs whose double was never measured are not listed here; see :meth:`reason`.
        """
        return dict(self._pair_table.reasons)

    def reason(self, i: int | str, j: int | str) -> str:
        """Why pair ``(i, j)`` is not scorable, or ``""`` if it is."""
        i = self.perturbations.index(i) if isinstance(i, str) else int(i)
        j = self.perturbations.index(j) if isinstance(j, str) else int(j)
        if i == j:
            return "a perturbation paired with itself is not a pair"
        i, j = min(i, j), max(i, j)
        return _pairs.pair_reason(self._pair_table, (i, j) in self._group_of, self.perturbations, self.sep, i, j)

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every unordered pair ``i < j`` with its scorable index and reason.

        Returns:
          ``(pairs, index, reasons)``: ``pairs [n(n-1)/2, 2]`` in row-major ``(i, j)``
          order; ``index [n(n-1)/2]`` the row of :attr:`pairs` for scorable pairs and
          ``-1`` otherwise; ``reasons [n(n-1)/2]`` (object) ``""`` for scorable pairs.
        """
        return _pairs.all_pairs(self._pair_table, self.perturbations, self.sep)

    def _warn_unscorable(self) -> None:
        message = _pairs.unscorable_message(self._pair_table, self.perturbations, self.sep)
        if message:
            warnings.warn(message, UnscorableWarning, stacklevel=3)

    # ------------------------------------------------------------------ transforms
    def with_x(self, x) -> Screen:
        """The same grouping with new observations (same row order), e.g. embeddings.

        ``x`` is validated like the observations of :meth:`from_arrays` (numeric, one row
        per observation, every value finite, no row norm above ``2**60``). It may be dense,
        a ``np.memmap`` (checked in row blocks, not copied) or a 2-D ``scipy.sparse`` matrix
        (kept sparse).

        Raises:
          ValueError: a different number of rows, non-finite values or values too large
            for float32 distances (the message names the conditions and rows).
        """
        x = as_observations(x)
        if isinstance(x, SparseRows):
            x = take_rows(x, np.arange(x.shape[0]))  # float32 unless float64, no copy otherwise
        if x.shape[0] != self.x.shape[0]:
            raise ValueError(f"with_x needs {self.x.shape[0]} rows, got {x.shape[0]}.")
        check_observations(x, self.conditions, self.offsets)
        return dataclasses.replace(self, x=x)

    def select(self, conditions: Iterable[str]) -> Screen:
        """A sub-screen holding the control plus the listed conditions (labels)."""
        keep = {0} | {self.group_index(c) for c in conditions}
        keep = sorted(keep)
        rows = np.concatenate([np.arange(self.offsets[g], self.offsets[g + 1]) for g in keep])
        return Screen.from_arrays(
            take_rows(self.x, rows),
            self.labels[rows],
            control=self.control,
            sep=self.sep,
            perturbations=self.perturbations,
            warn=False,
        )

    def summary(self) -> str:
        """One paragraph describing the screen."""
        k = self.kinds
        c = self.counts
        n_pairs = self.n_perturbations * (self.n_perturbations - 1) // 2
        parts = [
            f"Screen: {self.x.shape[0]} observations of shape {self.feature_shape}, "
            f"{self.n_perturbations} perturbations, {int((k == 1).sum())} singles, {int((k == 2).sum())} doubles.",
            f"control {self.control!r}: {int(c[0])} obs; singles: {_range(c[k == 1])}; doubles: {_range(c[k == 2])}.",
            f"scorable pairs: {len(self.pairs)} of {n_pairs}; measured but unscorable: {len(self._pair_table.reasons)}.",
        ]
        if self.is_sparse:
            parts.append(f"observations are sparse: {self.x!r}, read one group at a time.")
        if self.dropped:
            parts.append(drop_message(self.dropped, self.sep))
        return "\n".join(parts)

    def to_dense(self) -> Screen:
        """The same screen with dense observations (a sparse ``x`` is densified: all ``N x d`` of it)."""
        return dataclasses.replace(self, x=self.x.toarray()) if self.is_sparse else self

    def __repr__(self) -> str:
        return (
            f"Screen(n_obs={self.x.shape[0]}, feature_shape={self.feature_shape}, "
            f"n_perturbations={self.n_perturbations}, n_groups={self.n_groups}, "
            f"n_scorable_pairs={len(self.pairs)}{', sparse' if self.is_sparse else ''})"
        )


# ---------------------------------------------------------------------- helpers
def _range(c: np.ndarray) -> str:
    if len(c) == 0:
        return "none"
    return f"{int(c.min())}-{int(c.max())} obs" if c.min() != c.max() else f"{int(c.min())} obs each"
