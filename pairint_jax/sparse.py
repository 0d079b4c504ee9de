"""Sparse observations that are densified only where they are read.

A :class:`~pairint_jax.Screen` built from a ``scipy.sparse`` matrix (sparse ``X`` or a
layer of an AnnData, e.g. counts with 2,000 genes) keeps it sparse: ``screen.x`` is then
a :class:`SparseRows`, a read-only view of a CSR matrix whose rows are sorted by group.

* Indexing it (``x[lo:hi]``, ``x[rows]``, ``x[rows_2d]``) returns a **dense** NumPy array
  of the requested rows only, so the screen's accessors (``group``, ``padded``) and the
  host-streamed scores read one group (or one block of groups) at a time.
* Turning the whole of it into a dense array (``np.asarray(x)``, ``jnp.asarray(x)``)
  raises a ``TypeError`` that says how large it would be: a whole sparse matrix is never
  densified silently. :meth:`pairint_jax.Screen.to_dense` does it on request.
* :meth:`SparseRows.segment_means` gives per-group means without densifying anything.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["SparseRows", "issparse"]


def issparse(x) -> bool:
    """True for a ``scipy.sparse`` matrix or array and for a :class:`SparseRows`."""
    return isinstance(x, SparseRows) or sp.issparse(x)


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class SparseRows:
    """Read-only ``[N, d]`` rows of a CSR matrix; indexing densifies only the rows asked for.

    Args:
      matrix: a 2-D ``scipy.sparse`` matrix or array (converted to CSR if needed; a CSR
        input is used as is, without a copy).

    Attributes:
      csr: the underlying ``scipy.sparse`` CSR matrix (``[N, d]``).
      shape, dtype, ndim: as for the dense array it stands for.
      nbytes: bytes held by the sparse matrix (data, indices and row pointers).
      dense_nbytes: bytes the dense ``[N, d]`` array would take.

    Example:
      >>> import scipy.sparse as sp
      >>> x = SparseRows(sp.csr_matrix(np.eye(3, dtype=np.float32)))
      >>> x[1:3]
      array([[0., 1., 0.],
             [0., 0., 1.]], dtype=float32)
      >>> x[np.array([[0, 2]])].shape
      (1, 2, 3)
    """

    __array_priority__ = 100

    def __init__(self, matrix):
        if isinstance(matrix, SparseRows):
            matrix = matrix.csr
        if not sp.issparse(matrix) or matrix.ndim != 2:
            raise TypeError(f"SparseRows needs a 2-D scipy.sparse matrix, got {type(matrix).__name__}.")
        self.csr = matrix if matrix.format == "csr" else matrix.tocsr()

    # ------------------------------------------------------------- array protocol
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.csr.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.csr.dtype

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nnz(self) -> int:
        return int(self.csr.nnz)

    @property
    def nbytes(self) -> int:
        c = self.csr
        return int(c.data.nbytes + c.indices.nbytes + c.indptr.nbytes)

    @property
    def dense_nbytes(self) -> int:
        return int(self.shape[0] * self.shape[1] * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def reshape(self, *shape):
        """``reshape(N, -1)`` or ``reshape(N, d)`` returns ``self``; other shapes raise."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        n, d = self.shape
        if len(shape) == 2 and shape[0] == n and shape[1] in (-1, d):
            return self
        raise ValueError(f"sparse observations [{n}, {d}] can only be viewed as [N, d], not {shape}.")

    def astype(self, dtype, copy: bool = True) -> SparseRows:
        """The same rows with values of another dtype."""
        if np.dtype(dtype) == self.dtype and not copy:
            return self
        return SparseRows(self.csr.astype(dtype))

    def __getitem__(self, index) -> np.ndarray:
        cols = slice(None)
        if isinstance(index, tuple):
            if len(index) == 0:
                index = slice(None)
            elif len(index) > 2:
                raise IndexError(f"too many indices for [N, d] observations: {index!r}")
            else:
                index, cols = index[0], (index[1] if len(index) == 2 else slice(None))
        if isinstance(index, (int, np.integer)):
            out = self._rows(np.asarray([index]))[0]
        elif isinstance(index, slice):
            lo, hi, step = index.indices(self.shape[0])
            out = self._block(lo, max(lo, hi)) if step == 1 else self._rows(np.arange(lo, hi, step))
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            out = self._rows(idx.reshape(-1)).reshape(idx.shape + (self.shape[1],))
        return out if isinstance(cols, slice) and cols == slice(None) else out[..., cols]

    def _block(self, lo: int, hi: int) -> np.ndarray:
        # rows lo:hi through views of the stored values: only the dense result is allocated
        c = self.csr
        a, b = int(c.indptr[lo]), int(c.indptr[hi])
        view = sp.csr_matrix((hi - lo, self.shape[1]), dtype=c.dtype)
        # assigned, not passed to the constructor, which copies slices of a larger array
        view.data, view.indices = c.data[a:b], c.indices[a:b]
        view.indptr = (c.indptr[lo : hi + 1] - a).astype(c.indices.dtype, copy=False)
        return view.toarray()

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros((0, self.shape[1]), self.dtype)
        return self.csr[rows.astype(np.int64)].toarray()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"these observations are sparse ({self.shape[0]} x {self.shape[1]}, {self.nnz} non-zeros, "
            f"{_human(self.nbytes)}); a dense copy of all of them would take {_human(self.dense_nbytes)}, so it is "
            "never made silently. Read rows with screen.group(g), screen.padded(groups) or screen.x[rows]; "
            "score from a low-dimensional representation (use_rep='X_pca'); or call screen.to_dense() if you "
            "mean it."
        )

    def toarray(self) -> np.ndarray:
        """The dense ``[N, d]`` array (explicit; may be large)."""
        return self.csr.toarray()

    # ------------------------------------------------------------- reductions
    def segment_means(self, starts, stops) -> np.ndarray:
        """Mean row of each row range ``starts[g]:stops[g]``, in float64.

        Args:
          starts, stops: ``[G]`` row ranges (each non-empty).

        Returns:
          ``[G, d]`` float64; only this ``G x d`` result is dense (one ``bincount``
          over each range's stored values).
        """
        c = self.csr
        d = self.shape[1]
        starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        out = np.empty((len(starts), d))
        for g, (lo, hi) in enumerate(zip(starts, stops)):
            a, b = c.indptr[lo], c.indptr[hi]
            out[g] = np.bincount(c.indices[a:b], weights=c.data[a:b], minlength=d) / (hi - lo)
        return out

    def nonfinite_rows(self) -> np.ndarray:
        """Rows holding a NaN or infinite stored value."""
        c = self.csr
        step = 1 << 20  # checked in slices: no nnz-sized temporary
        bad = [lo + np.flatnonzero(~np.isfinite(c.data[lo : lo + step])) for lo in range(0, len(c.data), step)]
        bad = np.concatenate(bad) if bad else np.zeros(0, np.int64)
        if not len(bad):
            return np.zeros(0, np.int64)
        return np.unique(np.searchsorted(c.indptr, bad, side="right") - 1)

    def row_sq_norms(self) -> np.ndarray:
        """``[N]`` float64 squared Euclidean norm of every row (inf where even float64 overflows)."""
        c = self.csr
        out = np.zeros(self.shape[0])
        step = 1 << 20  # in slices of stored values: no nnz-sized float64 temporary
        with np.errstate(over="ignore"):
            for lo in range(0, len(c.data), step):
                v = c.data[lo : lo + step].astype(np.float64)
                rows = np.searchsorted(c.indptr, np.arange(lo, lo + len(v)), side="right") - 1
                out += np.bincount(rows, weights=v * v, minlength=self.shape[0])
        return out

    def __repr__(self) -> str:
        n, d = self.shape
        return f"SparseRows({n} x {d}, nnz={self.nnz}, dtype={self.dtype}, {_human(self.nbytes)})"
