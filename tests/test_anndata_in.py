"""AnnData in: separators, two guide columns, drops, sparse data read group by group, score_adata.

Every check is deterministic (fixed seeds, no statistical decision), so none can fail by chance.
"""

from __future__ import annotations

import tracemalloc
import warnings

import anndata
import jax
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import pairint_jax as pj
from pairint_jax.cli import main

SIZES = {"ctrl": 12, "A": 8, "B": 8, "C": 8, "A+B": 8, "A+C": 8}


def _labels(sizes=SIZES, sep="+"):
    return [lab.replace("+", sep) for lab, m in sizes.items() for _ in range(m)]


def _adata(x, obs: dict):
    n = x.shape[0]
    return anndata.AnnData(X=x, obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(n)]))


def _counts(n, d, *, density=0.1, seed=0):
    """Sparse counts with an effect on the double A+B (so scores are not all alike)."""
    rng = np.random.default_rng(seed)
    m = sp.random(n, d, density=density, format="csr", dtype=np.float32, random_state=rng)
    m.data = np.floor(m.data * 5) + 1
    return m


def _same_screen(a: pj.Screen, b: pj.Screen):
    assert a.perturbations == b.perturbations and a.conditions == b.conditions and a.offsets == b.offsets
    np.testing.assert_array_equal(a.x[:], b.x[:])


# ----------------------------------------------------------------- separators
def test_wrong_separator_raises_and_proposes_the_right_one():
    labels = ["ctrl"] * 4 + ["A_ctrl"] * 3 + ["B_ctrl"] * 3 + ["A_B"] * 3
    x = np.random.default_rng(0).normal(size=(len(labels), 3))
    with pytest.raises(ValueError, match=r"no label parses as a double with sep='\+'.*Pass sep='_'"):
        pj.Screen.from_arrays(x, labels)
    with pytest.raises(ValueError, match="sep='_'"):
        pj.Screen.from_anndata(_adata(x, {"perturbation": labels}))
    s = pj.Screen.from_arrays(x, labels, sep="_")
    assert s.conditions == ("ctrl", "A", "B", "A_B")
    # singles only, with nothing another separator would explain: a screen, no error
    assert pj.Screen.from_arrays(x[:10], labels[:10], sep="_").n_groups == 3


def test_cli_exits_non_zero_on_a_wrong_separator_and_writes_nothing(tmp_path):
    labels = ["ctrl"] * 4 + ["A_ctrl"] * 3 + ["B_ctrl"] * 3 + ["A_B"] * 3
    x = np.random.default_rng(0).normal(size=(len(labels), 3)).astype(np.float32)
    path = tmp_path / "s.h5ad"
    _adata(x, {"perturbation": labels}).write_h5ad(path)
    runner = CliRunner()
    res = runner.invoke(main, ["info", str(path)])
    assert res.exit_code != 0 and "sep='_'" in res.output
    out = tmp_path / "out"
    res = runner.invoke(main, ["score", str(path), "--test", "additivity", "--out", str(out), "--no-progress"])
    assert res.exit_code != 0 and "sep='_'" in res.output
    assert not out.exists() or not any(out.iterdir())
    # no doubles and no separator that would make some: still an error for the CLI
    only = tmp_path / "singles.h5ad"
    _adata(x[:10], {"perturbation": labels[:10]}).write_h5ad(only)
    res = runner.invoke(main, ["info", str(only), "--sep", "_"])
    assert res.exit_code != 0 and "no double perturbations" in res.output
    res = runner.invoke(main, ["info", str(path), "--sep", "_"])
    assert res.exit_code == 0, res.output
    assert "readout: X" in res.output


def test_gene_name_containing_the_separator_is_named():
    labels = ["ctrl"] * 3 + ["FOXA1"] * 3 + ["SOX2"] * 3 + ["SOX2_FOXA1"] * 3 + ["NKX2_1_FOXA1"] * 2
    x = np.random.default_rng(0).normal(size=(len(labels), 2))
    with pytest.raises(ValueError, match=r"3 perturbations.*'NKX2_1' looks like one gene name that contains the separator '_'"):
        pj.Screen.from_arrays(x, labels, sep="_", max_order=None)
    with pytest.warns(pj.DroppedObservationsWarning, match=r"2 observation\(s\): more than two.*'NKX2_1' looks like one gene"):
        s = pj.Screen.from_arrays(x, labels, sep="_")
    assert s.conditions == ("ctrl", "FOXA1", "SOX2", "FOXA1_SOX2")


# ----------------------------------------------------------------- labels
@pytest.mark.filterwarnings("ignore::pairint_jax.UnscorableWarning")  # A+C has one cell, on purpose
def test_two_guide_columns():
    g1 = ["ctrl", "ctrl", "ctrl", "A", "A", "ctrl", "A", "B", "B", "A", "A", None, "C", "C", "ctrl", "A"]
    g2 = ["ctrl", "ctrl", "ctrl", "ctrl", "ctrl", "B", "B", "ctrl", "A", "B", "", "B", "ctrl", "ctrl", "C", "C"]
    want = ["ctrl", "ctrl", "ctrl", "A", "A", "B", "A+B", "B", "A+B", "A+B", None, None, "C", "C", "C", "A+C"]
    x = np.random.default_rng(1).normal(size=(len(g1), 3)).astype(np.float32)
    adata = _adata(x, {"guide_1": g1, "guide_2": g2})
    with pytest.warns(pj.DroppedObservationsWarning, match=r"dropped 2 observation\(s\): unassigned"):
        s = pj.Screen.from_anndata(adata, groupby=["guide_1", "guide_2"])
    keep = [w is not None for w in want]
    _same_screen(s, pj.Screen.from_arrays(x[keep], [w for w in want if w is not None]))
    assert dict((r, c) for r, c, _ in s.dropped) == {"unassigned (empty or NaN label)": 2}
    # a guide name containing the separator is named with its column
    bad = _adata(x, {"guide_1": ["A+1" if v == "A" else v for v in g1], "guide_2": g2})
    with pytest.raises(ValueError, match=r"column 'guide_1' has guide names containing the separator '\+'.*'A\+1'"):
        pj.Screen.from_anndata(bad, groupby=["guide_1", "guide_2"])
    with pytest.raises(ValueError, match="column 'guide_3' is not in the table.*guide_1"):
        pj.Screen.from_anndata(adata, groupby=["guide_1", "guide_3"])
    with pytest.raises(ValueError, match="two guide columns"):
        pj.Screen.from_anndata(adata, groupby=["guide_1", "guide_2", "guide_1"])


def test_two_guide_columns_from_the_cli(tmp_path):
    g1 = ["ctrl"] * 4 + ["A"] * 3 + ["ctrl"] * 3 + ["B"] * 3
    g2 = ["ctrl"] * 4 + ["ctrl"] * 3 + ["B"] * 3 + ["A"] * 3
    x = np.random.default_rng(2).normal(size=(len(g1), 3)).astype(np.float32)
    path = tmp_path / "g.h5ad"
    _adata(x, {"guide_1": g1, "guide_2": g2}).write_h5ad(path)
    res = CliRunner().invoke(main, ["info", str(path), "--groupby", "guide_1,guide_2"])
    assert res.exit_code == 0, res.output
    assert "1 doubles" in res.output and "scorable pairs: 1 of 1" in res.output


def test_drops_are_counted_warned_and_optional():
    labels = _labels() + [np.nan, None, "", "A+B+C", "B+C+A"]
    x = np.random.default_rng(3).normal(size=(len(labels), 4))
    with pytest.warns(pj.DroppedObservationsWarning) as rec:
        s = pj.Screen.from_arrays(x, labels)
    text = str(rec[0].message)
    assert "dropped 3 observation(s): unassigned" in text and "dropped 2 observation(s): more than two" in text
    assert {r: c for r, c, _ in s.dropped} == {"unassigned (empty or NaN label)": 3, "more than two perturbations": 2}
    n = len(_labels())
    _same_screen(s, pj.Screen.from_arrays(x[:n], labels[:n]))
    assert "dropped 3 observation(s)" in s.summary()
    with pytest.raises(ValueError, match=r"3 observation\(s\) have an empty condition label.*drop_unassigned=True"):
        pj.Screen.from_arrays(x, labels, drop_unassigned=False)
    with pytest.raises(ValueError, match="3 perturbations.*max_order=2"):
        pj.Screen.from_arrays(np.delete(x, [n, n + 1, n + 2], 0), labels[:n] + labels[-2:], max_order=None)
    with pytest.raises(ValueError, match="max_order must be 2"):
        pj.Screen.from_arrays(x, labels, max_order=3)


# ----------------------------------------------------------------- sparse
def _sparse_adata(seed=0, d=30):
    labels = _labels()
    m = _counts(len(labels), d, density=0.3, seed=seed)
    m = sp.csr_matrix(m.toarray() + 2.0 * np.asarray([lab == "A+B" for lab in labels], np.float32)[:, None] * (np.arange(d) < 3))
    order = np.random.default_rng(seed).permutation(len(labels))  # files are not sorted by group
    return _adata(m[order], {"perturbation": np.asarray(labels, dtype=object)[order]})


def test_sparse_x_stays_sparse_and_its_accessors_match_the_dense_screen():
    adata = _sparse_adata()
    s = pj.Screen.from_anndata(adata)
    dense = pj.Screen.from_arrays(adata.X.toarray(), adata.obs["perturbation"].to_numpy())
    assert s.is_sparse and not dense.is_sparse and isinstance(s.x, pj.sparse.SparseRows)
    assert "sparse" in repr(s)
    with pytest.raises(TypeError, match="never made silently.*to_dense"):
        np.asarray(s.x)
    for g in range(s.n_groups):
        np.testing.assert_array_equal(s.group(g), dense.group(g))
    groups = [1, 3, 5, 3]
    for a, b in zip(s.padded(groups), dense.padded(groups)):
        np.testing.assert_array_equal(a, b)
    ref = np.stack([dense.x[a:b].astype(np.float64).mean(0) for a, b in zip(dense.offsets[:-1], dense.offsets[1:])])
    np.testing.assert_allclose(s.group_means(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dense.group_means(), ref, rtol=1e-12, atol=1e-12)
    _same_screen(s.to_dense(), dense)
    sub = s.select(["A", "B", "A+B"])
    assert sub.is_sparse and sub.conditions == ("ctrl", "A", "B", "A+B")
    with pytest.raises(ValueError, match=r"sparse screen is written to \.h5ad only"):
        pj.write_screen(s, "x.npz")


def test_scores_on_a_sparse_screen_equal_the_dense_ones(monkeypatch):
    adata = _sparse_adata(seed=4)
    s = pj.Screen.from_anndata(adata)
    dense = s.to_dense()
    # additivity: float64 NumPy reference from the group means
    mu = dense.group_means().astype(np.float64)
    pg = s.pair_groups
    ref = np.linalg.norm(mu[pg[:, 0]] - mu[pg[:, 2]] - mu[pg[:, 3]] + mu[pg[:, 1]], axis=1)
    add = pj.additivity_scores(s)
    np.testing.assert_allclose(add.score[np.isfinite(add.score)], ref, rtol=1e-10)
    np.testing.assert_allclose(pj.additivity_scores(dense).matrix, add.matrix, rtol=1e-4)  # float32 dense path
    # disjointedness: the sparse screen takes the streamed path (whose scores equal the in-memory
    # ones: test_disjointedness_stream.py), fed from sparse rows exactly as from dense ones
    d_sparse = pj.disjointedness_scores(s, n_permutations=19)
    d_dense = pj.disjointedness_scores(dense, n_permutations=19, stream=True)
    np.testing.assert_array_equal(d_sparse.score, d_dense.score)
    np.testing.assert_array_equal(d_sparse.columns["p_value"], d_dense.columns["p_value"])
    # k-NN separability reads padded groups; from a sparse screen one block of groups at a time
    monkeypatch.setattr(pj.scores.separability, "_SPARSE_BLOCK_BYTES", 1)  # one group per block
    k_sparse = pj.separability_scores(s, estimator="knn")
    np.testing.assert_allclose(k_sparse.score, pj.separability_scores(dense, estimator="knn").score, rtol=1e-6, equal_nan=True)
    with pytest.raises(ValueError, match="NRE trains on every observation.*to_dense"):
        pj.separability_scores(s, estimator="nre")


def test_sparse_read_memory_stays_near_the_sparse_matrix():
    """Reading and scoring a sparse screen allocates at most one more sparse matrix plus one dense
    group (plus 128 bytes per row for labels and row orders), far below the dense matrix."""
    rng = np.random.default_rng(0)
    n_groups, d = 40, 400
    labels = np.asarray(["ctrl"] * 4000 + [f"P{g}" for g in range(n_groups) for _ in range(300)]
                        + [f"P{2 * g}+P{2 * g + 1}" for g in range(n_groups // 2) for _ in range(300)], dtype=object)
    n = len(labels)
    m = _counts(n, d, density=0.02, seed=1)
    adata = _adata(m[rng.permutation(n)], {"perturbation": labels})
    sparse_bytes = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    dense_bytes = n * d * 4
    tracemalloc.start()
    try:
        s = pj.Screen.from_anndata(adata)
        s.group(0)  # the largest group, dense
        s.padded([1, 2, 41])  # a single and a double, padded
        pj.additivity_scores(s)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    budget = sparse_bytes + 4000 * d * 4 + 128 * n  # one sparse copy + the largest group + rows
    assert budget < dense_bytes / 3  # the check can fail: densifying the matrix would break it
    assert s.is_sparse
    assert peak < budget, (peak, budget, sparse_bytes, dense_bytes)


# ----------------------------------------------------------------- k-NN dimension guard
def test_knn_warns_in_high_dimension_and_refuses_above_4096():
    labels = _labels({"ctrl": 6, "A": 4, "B": 4, "A+B": 4})
    rng = np.random.default_rng(5)
    s600 = pj.Screen.from_arrays(rng.normal(size=(len(labels), 600)), labels)
    with pytest.warns(UserWarning, match="k-NN KL on 600 features.*use_rep='X_pca'"):
        pj.separability_scores(s600, estimator="knn")
    s5k = pj.Screen.from_arrays(rng.normal(size=(len(labels), 4100)), labels)
    with pytest.raises(ValueError, match="k-NN KL on 4100 features.*force_high_dim=True"):
        pj.separability_scores(s5k, estimator="knn")
    with pytest.warns(UserWarning, match="4100 features"):
        res = pj.separability_scores(s5k, estimator="knn", force_high_dim=True)
    assert np.isfinite(res.score[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 4 observations per condition for 512 features: only the sample-size warning applies
        warnings.filterwarnings("ignore", message=r"k-NN KL on 512 features with few observations")
        pj.separability_scores(pj.Screen.from_arrays(rng.normal(size=(len(labels), 512)), labels), estimator="knn")


# ----------------------------------------------------------------- score_adata
def _assert_nested_equal(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_nested_equal(a[k], b[k])
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b, (a, b)


def test_score_adata_round_trips_through_h5ad(tmp_path):
    adata = _sparse_adata(seed=6)
    adata.obsm["X_pca"] = np.random.default_rng(7).normal(size=(adata.n_obs, 5)).astype(np.float32)
    adata.obs.loc[adata.obs.index[:2], "perturbation"] = np.nan  # two unassigned cells
    with pytest.warns(pj.DroppedObservationsWarning):
        df = pj.score_adata(adata, n_permutations=19, key=3)
    out = adata.uns["pairint"]
    prov = out["provenance"]
    assert prov["representation"] == "obsm['X_pca']" and "default" in prov["representation_reason"]
    assert prov["groupby"] == "perturbation" and prov["sep"] == "+" and prov["n_permutations"] == 19
    assert prov["dropped"] == {"unassigned (empty or NaN label)": 2} and prov["n_obs_used"] == adata.n_obs - 2
    assert prov["pairint_jax_version"] == pj.__version__ and prov["key"] == "seed 3" and prov["time"]
    assert out["settings"]["disjointedness"]["n_permutations"] == 19
    # the tables are the library's own, computed on the same screen
    with pytest.warns(pj.DroppedObservationsWarning):
        screen = pj.io.from_anndata(adata)
    ref = pj.disjointedness_scores(screen, n_permutations=19, key=jax.random.key(3)).to_frame()
    got = out["disjointedness"]
    np.testing.assert_array_equal(got["score"].to_numpy(), ref["score"].to_numpy())
    assert list(got.columns) == list(ref.columns)
    # the combined table: a "test" column, then the union of the tables' columns in order of appearance
    # (the additivity table adds its additive-null "statistic" column)
    union = list(dict.fromkeys([*ref.columns, *out["additivity"].columns]))
    assert list(df.columns) == ["test", *union] and set(df["test"]) == {"disjointedness", "additivity"}
    assert len(df) == len(got) + len(out["additivity"])
    path = tmp_path / "scored.h5ad"
    adata.write_h5ad(path)
    back = anndata.read_h5ad(path)
    _assert_nested_equal(adata.uns["pairint"], back.uns["pairint"])
    # explicit representation: the sparse X, recorded as such
    df_x = pj.score_adata(adata, use_rep="X", tests="additivity", key_added="pairint_x")
    assert adata.uns["pairint_x"]["provenance"]["representation"] == "X"
    assert bool(adata.uns["pairint_x"]["provenance"]["sparse"]) and set(df_x["test"]) == {"additivity"}


def test_score_adata_errors_name_what_is_wrong():
    adata = _sparse_adata()
    with pytest.raises(ValueError, match="column 'condition' is not in the table.*perturbation"):
        pj.score_adata(adata, groupby="condition")
    with pytest.raises(ValueError, match=r"use_rep='X_umap' not found.*available: \[\]"):
        pj.score_adata(adata, use_rep="X_umap")
    with pytest.raises(ValueError, match=r"layer 'counts' not found.*available: \[\]"):
        pj.score_adata(adata, layer="counts")
    with pytest.raises(TypeError, match=r"\['n_perms'\] are not taken.*n_permutations"):
        pj.score_adata(adata, n_perms=10)
    with pytest.raises(ValueError, match="tests"):
        pj.score_adata(adata, tests=("mmd",))
    one_sep = _adata(adata.X, {"perturbation": [v.replace("+", "_") for v in adata.obs["perturbation"]]})
    with pytest.raises(ValueError, match="Pass sep='_'"):
        pj.score_adata(one_sep)


def test_read_screen_options(tmp_path):
    adata = _sparse_adata(seed=8)
    adata.layers["counts"] = adata.X.copy()
    adata.X = np.zeros(adata.shape, np.float32)
    path = tmp_path / "l.h5ad"
    adata.write_h5ad(path)
    s = pj.read_screen(path, layer="counts")
    assert s.is_sparse
    _same_screen(s, pj.Screen.from_anndata(adata, layer="counts"))
    with pytest.raises(ValueError, match="not both"):
        pj.read_screen(path, layer="counts", use_rep="X_pca")
    res = CliRunner().invoke(main, ["info", str(path), "--layer", "counts"])
    assert res.exit_code == 0 and "readout: layers['counts'] (requested (layer=))" in res.output, res.output
    res = CliRunner().invoke(main, ["info", str(path), "--use-rep", "X_umap"])
    assert res.exit_code != 0 and "use_rep='X_umap' not found" in res.output
    with pytest.raises(TypeError, match="key= is now groupby="):
        pj.Screen.from_anndata(adata, key="perturbation")
    npz = tmp_path / "s.npz"
    pj.write_screen(s.to_dense(), npz)
    with pytest.raises(ValueError, match=r"use_rep= and layer= apply to \.h5ad files only"):
        pj.read_screen(npz, use_rep="X_pca")
