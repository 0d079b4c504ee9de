"""Round trips through arrays, AnnData and files (.h5ad, .npz, .parquet), and their errors."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

import pairint_jax as pj

LABELS = ["ctrl"] * 5 + ["A"] * 3 + ["B"] * 4 + ["B+A"] * 3 + ["C"] * 2 + ["A+C"] * 3


def _data(d=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(len(LABELS), d)).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    perm = rng.permutation(len(LABELS))  # rows in a shuffled order, as real files are
    return x[perm], [LABELS[i] for i in perm]


def assert_same_screen(a: pj.Screen, b: pj.Screen):
    assert a.perturbations == b.perturbations
    assert a.conditions == b.conditions
    assert a.offsets == b.offsets
    np.testing.assert_array_equal(a.x, b.x)


@pytest.mark.parametrize("suffix", ["npz", "h5ad", "parquet"])
def test_file_round_trip(tmp_path, suffix):
    x, labels = _data()
    s = pj.Screen.from_arrays(x, labels)
    path = tmp_path / f"screen.{suffix}"
    pj.write_screen(s, path)
    assert_same_screen(s, pj.read_screen(path))


def test_anndata_obs_column_and_obsm():
    x, labels = _data()
    emb = np.random.default_rng(5).normal(size=(len(labels), 2)).astype(np.float32)
    adata = anndata.AnnData(X=x, obs=pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))]))
    adata.obsm["X_emb"] = emb
    s = pj.Screen.from_anndata(adata, groupby="condition")
    assert_same_screen(s, pj.Screen.from_arrays(x, labels))
    s2 = pj.Screen.from_anndata(adata, groupby="condition", use_rep="X_emb")
    assert_same_screen(s2, pj.Screen.from_arrays(emb, labels))
    with pytest.raises(ValueError, match="column 'perturbation' is not in the table \\(adata.obs\\).*condition"):
        pj.Screen.from_anndata(adata)
    with pytest.raises(ValueError, match="use_rep='X_pca' not found.*X_emb"):
        pj.Screen.from_anndata(adata, groupby="condition", use_rep="X_pca")


def test_anndata_sparse_x_and_categorical_labels():
    import scipy.sparse as sp

    x, labels = _data()
    adata = anndata.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"perturbation": pd.Categorical(labels)}, index=[str(i) for i in range(len(labels))]))
    s = pj.Screen.from_anndata(adata)
    assert s.is_sparse  # sparse X stays sparse; rows are densified only where read
    assert_same_screen(s.to_dense(), pj.Screen.from_arrays(x, labels))


def test_h5ad_with_obsm(tmp_path):
    x, labels = _data()
    adata = anndata.AnnData(X=x, obs=pd.DataFrame({"perturbation": labels}, index=[str(i) for i in range(len(labels))]))
    adata.obsm["X_pca"] = x[:, :2] * 3
    path = tmp_path / "s.h5ad"
    adata.write_h5ad(path)
    assert_same_screen(pj.read_screen(path, use_rep="X_pca"), pj.Screen.from_arrays(x[:, :2] * 3, labels))


def test_parquet_feature_selection_and_list_column(tmp_path):
    x, labels = _data()
    df = pd.DataFrame(x, columns=["g1", "g2", "g3", "g4"])
    df["perturbation"] = labels
    df["batch"] = 1  # numeric but not a feature when features= is given
    path = tmp_path / "s.parquet"
    df.to_parquet(path)
    assert_same_screen(pj.read_screen(path, features=["g1", "g2", "g3", "g4"]), pj.Screen.from_arrays(x, labels))
    df2 = pd.DataFrame({"cond": labels, "embedding": list(x.astype(np.float64))})
    df2.to_parquet(path)
    assert_same_screen(pj.read_screen(path, groupby="cond", features="embedding"), pj.Screen.from_arrays(x, labels))
    with pytest.raises(ValueError, match="column 'perturbation' is not in"):
        pj.read_screen(path)


def test_npz_is_never_unpickled(tmp_path):
    x, labels = _data()
    path = tmp_path / "obj.npz"
    np.savez(path, x=x, labels=np.asarray(labels, dtype=object))
    with pytest.raises(ValueError, match="never unpickles"):
        pj.read_screen(path)
    np.savez(path, emb=x, labels=np.asarray(labels))
    with pytest.raises(ValueError, match="no array 'x'.*emb"):
        pj.read_screen(path)
    assert_same_screen(pj.read_screen(path, x_key="emb"), pj.Screen.from_arrays(x, labels))


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        pj.read_screen(tmp_path / "missing.h5ad")
    bad = tmp_path / "screen.csv"
    bad.write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown screen file type 'csv'"):
        pj.read_screen(bad)


def test_file_validation_errors_propagate(tmp_path):
    x, labels = _data()
    x[0, 0] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x=x, labels=np.asarray(labels))
    with pytest.raises(ValueError, match="non-finite"):
        pj.read_screen(path)
