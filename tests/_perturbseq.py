"""Small Perturb-seq screens for the additive-null and interaction-type tests (cached per process)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import scipy.sparse as sp

import pairint_jax as pj


def normalise_log1p(x):
    """Counts -> ``log1p(counts * median library / library)``, sparse in, sparse out."""
    total = np.asarray(x.sum(axis=1)).ravel()
    out = sp.csr_matrix(sp.diags(np.median(total) / total) @ x, dtype=np.float32)
    out.data = np.log1p(out.data)
    return out


def pca(x, n_components: int):
    """Scores of the top principal components of a sparse matrix (eigenvectors of the gene covariance)."""
    mean = np.asarray(x.mean(axis=0)).ravel()
    gram = (x.T @ x).toarray() / x.shape[0] - np.outer(mean, mean)
    _, vecs = np.linalg.eigh(gram)
    top = vecs[:, ::-1][:, :n_components]
    return (np.asarray(x @ top) - mean @ top).astype(np.float32)


@functools.lru_cache(maxsize=8)
def screens(seed: int, cells: int, *, n_genes=400, n_single=8, n_double=20, additive_only=False, n_pcs=20,
            programme_size=30):
    """``({"X_pca": screen, "X": screen}, truth.pairs)`` of one generated screen."""
    adata, truth = pj.synthetic.perturbseq(
        jax.random.key(seed), n_genes=n_genes, n_single=n_single, n_double=n_double, cells_per_group=cells,
        kinds={} if additive_only else None, programme_size=programme_size,
    )
    adata.X = normalise_log1p(adata.X)
    adata.obsm["X_pca"] = pca(adata.X, n_pcs)
    out = {rep: pj.io.from_anndata(adata, groupby="perturbation", use_rep=rep) for rep in ("X_pca", "X")}
    return out, truth.pairs
