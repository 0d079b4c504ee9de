"""Small Perturb-seq screens for the additive-null and interaction-type tests (cached per process)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import scipy.sparse as sp

import pairint_jax as pj


def normalise_log1p(x, library=None):
    """Counts -> ``log1p(counts * median library / library)``, sparse in, sparse out.

    ``library``: each cell's size factor; default its observed total count (as scanpy's
    ``normalize_total``). Pass the generator's ``truth.library_size`` for an exact additive
    null: the observed total moves with the perturbation's programme, so dividing by it makes
    a double that is additive in log-mean slightly non-additive (a real effect of the
    normalisation, not an error of the test), while the true size is drawn independently of
    the condition.
    """
    total = np.asarray(x.sum(axis=1)).ravel() if library is None else np.asarray(library, np.float64)
    out = sp.csr_matrix(sp.diags(np.median(total) / total) @ x, dtype=np.float32)
    out.data = np.log1p(out.data)
    return out


def pca_basis(x, n_components: int, rows_per_chunk: int = 4096):
    """``(mean [d], top [d, k])``: the mean and the top eigenvectors of the gene covariance of
    a sparse (or dense) matrix; the Gram matrix is summed over dense float64 row chunks (a
    sparse ``x.T @ x`` is slow at single-cell densities)."""
    mean = np.asarray(x.mean(axis=0), np.float64).ravel()
    gram = np.zeros((x.shape[1], x.shape[1]))
    for lo in range(0, x.shape[0], rows_per_chunk):
        block = x[lo:lo + rows_per_chunk]
        block = (block.toarray() if sp.issparse(block) else np.asarray(block)).astype(np.float64) - mean
        gram += block.T @ block
    _, vecs = np.linalg.eigh(gram / x.shape[0])
    return mean, vecs[:, ::-1][:, :n_components]


def pca(x, n_components: int):
    """Scores of the top principal components of a sparse matrix (eigenvectors of the gene covariance)."""
    mean, top = pca_basis(x, n_components)
    return (np.asarray(x @ top) - mean @ top).astype(np.float32)


@functools.lru_cache(maxsize=8)
def screens(seed: int, cells: int, *, n_genes=400, n_single=8, n_double=20, additive_only=False, n_pcs=20,
            programme_size=30, n_control=None):
    """``({"X_pca": screen, "X": screen}, truth.pairs)`` of one generated screen.

    ``additive_only``: every double additive, with disjoint programmes, and the counts
    normalised by the true library sizes: the doubles are then exactly additive in ``log1p`` of
    normalised counts too, not only in log-mean (see :func:`normalise_log1p`).
    """
    adata, truth = pj.synthetic.perturbseq(
        jax.random.key(seed), n_genes=n_genes, n_single=n_single, n_double=n_double, cells_per_group=cells,
        kinds={} if additive_only else None, programme_size=programme_size, disjoint_programmes=additive_only,
        n_control=n_control,
    )
    adata.X = normalise_log1p(adata.X, truth.library_size if additive_only else None)
    adata.obsm["X_pca"] = pca(adata.X, n_pcs)
    out = {rep: pj.io.from_anndata(adata, groupby="perturbation", use_rep=rep) for rep in ("X_pca", "X")}
    return out, truth.pairs
