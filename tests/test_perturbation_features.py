"""pj.perturbation_features (shift, k-NN KL, MMD^2 of each single against the control) against
float64 NumPy references; the features CSV reader/writer; the ``pairint features`` command."""

from __future__ import annotations

import re

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import pairint_jax as pj
from pairint_jax.discovery.features_csv import FeaturesFileError, read_features, read_features_frame, write_features
from pairint_jax.scores.features import FEATURES, standardize_columns
from pairint_jax.stats import mmd2_two_sample


# ----------------------------------------------------------------------------- references
def _ref_shift(x0, xi):
    return np.linalg.norm(xi.mean(0) - x0.mean(0))


def _ref_knn_kl(x0, xi, k=1):
    """Brute-force k-NN KL(p_0 || p_i) (Wang, Kulkarni & Verdu 2009), float64."""
    n, d = x0.shape
    m = xi.shape[0]
    d00 = np.sqrt(((x0[:, None] - x0[None]) ** 2).sum(-1))
    np.fill_diagonal(d00, np.inf)
    d0i = np.sqrt(((x0[:, None] - xi[None]) ** 2).sum(-1))
    rho = np.sort(d00, axis=1)[:, k - 1]
    nu = np.sort(d0i, axis=1)[:, k - 1]
    return d / n * np.log(nu / rho).sum() + np.log(m / (n - 1))


def _ref_mmd2(xi, x0, s):
    def kmat(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * s * s))

    n, m = len(xi), len(x0)
    kii, k00 = kmat(xi, xi), kmat(x0, x0)
    return (kii.sum() - n) / (n * (n - 1)) + (k00.sum() - m) / (m * (m - 1)) - 2 * kmat(xi, x0).mean()


def _ref_global_bandwidth(rows):
    d = np.sqrt(((rows[:, None] - rows[None]) ** 2).sum(-1))
    return np.median(d[np.triu_indices(len(rows), 1)])


def _singles_screen(rng, *, n0=90, sizes=(23, 31, 17, 40), d=3, dtype=np.float64, doubles=()):
    """A control, singles S0.. of the given sizes with growing shifts, and optional doubles."""
    blocks, labels = [rng.normal(size=(n0, d))], ["ctrl"] * n0
    for t, m in enumerate(sizes):
        blocks.append(rng.normal(size=(m, d)) * (1 + 0.2 * t) + 0.4 * t)
        labels += [f"S{t}"] * m
    for lab in doubles:
        blocks.append(rng.normal(size=(20, d)) + 1.0)
        labels += [lab] * 20
    return np.concatenate(blocks).astype(dtype), np.asarray(labels)


def _reference(x, labels, names, bandwidth):
    x0 = x[labels == "ctrl"].astype(np.float64)
    out = {}
    for name in names:
        xi = x[labels == name].astype(np.float64)
        out[name] = (_ref_shift(x0, xi), _ref_knn_kl(x0, xi), _ref_mmd2(xi, x0, bandwidth))
    return pd.DataFrame(out, index=list(FEATURES)).T


# ----------------------------------------------------------------------------- features
def test_each_feature_equals_a_float64_reference(x64, rng):
    x, labels = _singles_screen(rng)
    screen = pj.Screen.from_arrays(x, labels)
    # global_sample >= every control + single row: the bandwidth is the median of all their distances
    df = pj.perturbation_features(screen, standardize=False, global_sample=10_000, control_block=32)
    rows = x[np.isin(labels, ["ctrl", "S0", "S1", "S2", "S3"])]
    bw = _ref_global_bandwidth(rows)
    np.testing.assert_allclose(df.attrs["bandwidth"], bw, rtol=1e-9)
    ref = _reference(x, labels, ["S0", "S1", "S2", "S3"], bw)
    np.testing.assert_allclose(df.to_numpy(), ref.loc[list(df.index)].to_numpy(), rtol=1e-8, atol=1e-10)
    assert list(df.columns) == list(FEATURES) and df.index.name == "perturbation" and df.attrs["reason"] == {}


def test_float32_matches_the_reference_within_float32_rounding(rng):
    x, labels = _singles_screen(rng, dtype=np.float32)
    screen = pj.Screen.from_arrays(x, labels)
    df = pj.perturbation_features(screen, standardize=False, bandwidth=1.7, singles_per_chunk=1, control_block=16)
    ref = _reference(x, labels, ["S0", "S1", "S2", "S3"], 1.7)
    np.testing.assert_allclose(df.to_numpy(), ref.loc[list(df.index)].to_numpy(), rtol=2e-4, atol=2e-5)


def test_chunking_and_control_blocks_do_not_change_the_values(x64, rng):
    x, labels = _singles_screen(rng)
    screen = pj.Screen.from_arrays(x, labels)
    a = pj.perturbation_features(screen, standardize=False, bandwidth=1.3, singles_per_chunk=None, control_block=512)
    b = pj.perturbation_features(screen, standardize=False, bandwidth=1.3, singles_per_chunk=1, control_block=8)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-10)


def test_a_control_50x_larger_than_the_singles(x64, rng):
    x, labels = _singles_screen(rng, n0=1500, sizes=(30, 12, 25), d=2)
    screen = pj.Screen.from_arrays(x, labels)
    df = pj.perturbation_features(screen, standardize=False, bandwidth=0.8, control_block=128)
    ref = _reference(x, labels, ["S0", "S1", "S2"], 0.8)
    np.testing.assert_allclose(df.to_numpy(), ref.loc[list(df.index)].to_numpy(), rtol=1e-8, atol=1e-10)


def test_a_second_call_with_the_same_shapes_compiles_nothing(rng):
    from _compiles import compile_log

    x, labels = _singles_screen(rng, dtype=np.float32)
    screen = pj.Screen.from_arrays(x, labels)
    pj.perturbation_features(screen, bandwidth=1.0)
    pj.perturbation_features(screen)
    with compile_log() as log:
        pj.perturbation_features(screen, bandwidth=2.0)  # the bandwidth is traced
        pj.perturbation_features(screen, key=5)
    assert log.count() == 0, log.names


def test_standardisation_is_a_nan_aware_z_score(x64, rng):
    x, labels = _singles_screen(rng, doubles=("S0+T",))
    screen = pj.Screen.from_arrays(x, labels, warn=False)
    raw = pj.perturbation_features(screen, standardize=False, bandwidth=1.0)
    z = pj.perturbation_features(screen, bandwidth=1.0)
    assert np.isnan(z.loc["T"]).all() and np.isfinite(z.drop(index="T")).all().all()
    for col in FEATURES:
        v = raw[col].dropna().to_numpy()
        np.testing.assert_allclose(z[col].dropna().to_numpy(), (v - v.mean()) / v.std(), rtol=1e-10)
        assert z.attrs["center"][col] == pytest.approx(v.mean()) and z.attrs["scale"][col] == pytest.approx(v.std())
        np.testing.assert_allclose(z[col].dropna() * z.attrs["scale"][col] + z.attrs["center"][col], v, rtol=1e-10)


def test_a_constant_column_standardises_to_zero():
    frame = pd.DataFrame({"a": [2.0, 2.0, np.nan], "b": [1.0, np.nan, np.nan]})
    out, center, scale = standardize_columns(frame)
    np.testing.assert_array_equal(out["a"].to_numpy(), [0.0, 0.0, np.nan])
    np.testing.assert_array_equal(out["b"].to_numpy(), [0.0, np.nan, np.nan])
    assert scale == {"a": 1.0, "b": 1.0} and center == {"a": 2.0, "b": 1.0}


def test_a_perturbation_without_a_single_is_a_nan_row_with_a_reason(rng):
    x, labels = _singles_screen(rng, doubles=("S0+T", "S1+U"))
    screen = pj.Screen.from_arrays(x, labels, warn=False)
    df = pj.perturbation_features(screen)
    assert list(df.index) == list(screen.perturbations) == ["S0", "S1", "S2", "S3", "T", "U"]
    assert df.loc[["T", "U"]].isna().all().all() and df.loc[["S0", "S1", "S2", "S3"]].notna().all().all()
    assert set(df.attrs["reason"]) == {"T", "U"} and "no single" in df.attrs["reason"]["T"]


def test_a_one_observation_single_gets_nan_mmd_with_a_reason(rng):
    x, labels = _singles_screen(rng, sizes=(20, 1, 15))
    df = pj.perturbation_features(pj.Screen.from_arrays(x, labels, warn=False), standardize=False, bandwidth=1.0)
    assert np.isnan(df.loc["S1", "mmd"]) and np.isfinite(df.loc["S1", "shift"]) and np.isfinite(df.loc["S1", "knn_kl"])
    assert "mmd" in df.attrs["reason"]["S1"]


def test_sparse_equals_dense(rng):
    x, labels = _singles_screen(rng, d=6, dtype=np.float32)
    x[np.abs(x) < 0.8] = 0.0
    dense = pj.perturbation_features(pj.Screen.from_arrays(x, labels), global_sample=64, key=3)
    sparse_screen = pj.Screen.from_arrays(sp.csr_matrix(x), labels)
    assert sparse_screen.is_sparse
    sparse = pj.perturbation_features(sparse_screen, global_sample=64, key=3)
    np.testing.assert_allclose(sparse.to_numpy(), dense.to_numpy(), rtol=1e-5, atol=1e-6)
    assert sparse.attrs["bandwidth"] == pytest.approx(dense.attrs["bandwidth"], rel=1e-6)


def test_a_subset_of_features_in_the_canonical_order(rng):
    x, labels = _singles_screen(rng)
    screen = pj.Screen.from_arrays(x, labels)
    df = pj.perturbation_features(screen, features=("mmd", "shift"), bandwidth=1.0, standardize=False)
    full = pj.perturbation_features(screen, bandwidth=1.0, standardize=False)
    assert list(df.columns) == ["shift", "mmd"]
    np.testing.assert_allclose(df.to_numpy(), full[["shift", "mmd"]].to_numpy(), rtol=1e-6)
    assert list(pj.perturbation_features(screen, features="shift").columns) == ["shift"]


def test_two_sample_mmd_core_equals_the_reference(x64, rng):
    xi, x0 = rng.normal(size=(13, 2)), rng.normal(size=(21, 2)) + 0.3
    ref = _ref_mmd2(xi, x0, 0.9)
    np.testing.assert_allclose(float(mmd2_two_sample(xi, x0, bandwidth=0.9)), ref, rtol=1e-10)
    jitted = jax.jit(mmd2_two_sample, static_argnames=("kernel",))
    pad_x = np.concatenate([xi, np.full((3, 2), 7.0)])  # padded rows hold garbage, masked out
    pad_y = np.concatenate([x0, np.full((5, 2), -4.0)])
    mx, my = np.arange(16) < 13, np.arange(26) < 21
    np.testing.assert_allclose(float(jitted(pad_x, pad_y, mx, my, bandwidth=0.9)), ref, rtol=1e-10)
    assert np.isnan(float(mmd2_two_sample(xi[:1], x0, bandwidth=0.9)))  # fewer than 2 rows


def test_blocked_sums_equal_the_direct_sums(x64, rng):
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(11, 3))
    blocks = np.zeros((3, 4, 3))
    blocks.reshape(12, 3)[:11] = y
    masks = (np.arange(12) < 11).reshape(3, 4)
    kmat = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / 2.0)  # noqa: E731
    cross = pj.stats.blocked_kernel_sum(x, blocks, np.ones(6, bool), masks, kernel="rbf", bandwidth=1.0)
    own = pj.stats.blocked_self_sum(blocks, masks, kernel="rbf", bandwidth=1.0)
    np.testing.assert_allclose(float(cross), kmat(x, y).sum(), rtol=1e-12)
    np.testing.assert_allclose(float(own), kmat(y, y).sum() - 11, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": ("shift", "size")}, ValueError, "unknown: \\['size'\\]"),
        ({"features": ()}, ValueError, "non-empty subset"),
        ({"features": ("mmd", "mmd")}, ValueError, "twice"),
        ({"features": 3}, TypeError, "sequence of names"),
        ({"k": 0}, ValueError, "k"),
        ({"bandwidth": "pair"}, ValueError, "'global'"),
        ({"bandwidth": -1.0}, ValueError, "positive"),
        ({"kernel": "cosine"}, ValueError, "kernel"),
        ({"standardize": "yes"}, TypeError, "standardize"),
        ({"singles_per_chunk": 0}, ValueError, "singles_per_chunk"),
        ({"global_sample": 1}, ValueError, "global_sample"),
    ],
)
def test_bad_inputs_are_refused_at_the_boundary(rng, kwargs, error, match):
    x, labels = _singles_screen(rng)
    screen = pj.Screen.from_arrays(x, labels)
    with pytest.raises(error, match=match):
        pj.perturbation_features(screen, **kwargs)


def test_not_a_screen_is_a_type_error():
    with pytest.raises(TypeError, match="perturbation_features"):
        pj.perturbation_features(np.zeros((4, 2)))


# ----------------------------------------------------------------------------- the features CSV
NAMES = ["A", "B", "NA", "null"]  # names that pandas would read as missing values stay names


def _write(tmp_path, text, name="f.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_reader_puts_rows_in_campaign_order_and_reads_empty_cells_as_nan(tmp_path):
    path = _write(tmp_path, "perturbation,a,b\nnull,4,\nA,1.5,-2\nNA,3,nan\nB,2,0.25\n")
    x = read_features(path, NAMES)
    assert x.dtype == np.float64 and x.shape == (4, 2)
    np.testing.assert_array_equal(x, [[1.5, -2.0], [2.0, 0.25], [3.0, np.nan], [4.0, np.nan]])
    assert list(read_features_frame(path, NAMES).columns) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("x,name,b\n1,A,2\n2,B,3\n3,NA,4\n4,null,5\n", "name"),  # the column called name, not the first
        ("gene,b\nA,2\nB,3\nNA,4\nnull,5\n", "first"),  # no name/perturbation column: the first one
    ],
)
def test_the_name_column(tmp_path, text, where):
    x = read_features(_write(tmp_path, text), NAMES)
    np.testing.assert_array_equal(x[:, -1], [2, 3, 4, 5])
    assert x.shape[1] == (2 if where == "name" else 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("perturbation,a\n", "header but no rows"),
        ("perturbation\nA\nB\nNA\nnull\n", "only the name column"),
        ("perturbation,a\nA,1\nB,2\nNA,3\nnull,4\nZ,5\n", r"1 name\(s\) .* not perturbations of the campaign: 'Z'"),
        ("perturbation,a\nA,1\nB,2\n", r"2 perturbation\(s\) of the campaign have no row: 'NA', 'null'"),
        ("perturbation,a\nA,1\nB,2\nA,3\nNA,3\nnull,4\n", "'A' is listed more than once"),
        ("perturbation,a,b\nA,1,x\nB,2,1\nNA,3,1\nnull,4,1\n", r"column 'b' is not numeric \(row 2: 'x'\)"),
        ("perturbation,a\nA,1\nB,inf\nNA,3\nnull,4\n", "not finite"),
        ("perturbation,a\nA,1\n,2\nNA,3\nnull,4\n", "row 3: the name"),
    ],
)
def test_a_bad_features_file_is_one_clear_line(tmp_path, text, match):
    with pytest.raises(FeaturesFileError, match=match) as err:
        read_features(_write(tmp_path, text), NAMES)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value) and "f.csv" in str(err.value)


def test_missing_perturbations_are_listed_up_to_five(tmp_path):
    names = [f"g{t}" for t in range(9)]
    with pytest.raises(FeaturesFileError, match=r"8 perturbation\(s\) .*'g1', 'g2', 'g3', 'g4', 'g5' and 3 more"):
        read_features(_write(tmp_path, "name,a\ng0,1\n"), names)


def test_write_then_read_is_exact(tmp_path, rng):
    values = rng.normal(size=(4, 3)) * 10.0 ** rng.integers(-300, 300, size=(4, 3))
    values[1, 2] = np.nan
    write_features(values, NAMES, tmp_path / "f.csv", columns=["p", "q", "r,s"])
    back = read_features_frame(tmp_path / "f.csv", NAMES)
    np.testing.assert_array_equal(back.to_numpy(), values)  # bit for bit, NaN where NaN
    assert list(back.columns) == ["p", "q", "r,s"]
    write_features(back.iloc[::-1], NAMES, tmp_path / "g.csv")  # a frame: rows written in names order
    np.testing.assert_array_equal(read_features(tmp_path / "g.csv", NAMES), values)


def test_perturbation_features_to_csv_round_trips(tmp_path, rng):
    x, labels = _singles_screen(rng, doubles=("S0+T",))
    screen = pj.Screen.from_arrays(x, labels, warn=False)
    df = pj.perturbation_features(screen)
    df.to_csv(tmp_path / "a.csv")
    write_features(df, list(screen.perturbations), tmp_path / "b.csv")
    for name in ("a.csv", "b.csv"):
        back = read_features_frame(tmp_path / name, list(screen.perturbations))
        np.testing.assert_array_equal(back.to_numpy(), df.to_numpy())
        assert list(back.columns) == list(df.columns)


@pytest.mark.parametrize(
    ("features", "names", "columns", "error", "match"),
    [
        (np.zeros((3, 2)), NAMES, None, ValueError, "shape"),
        (np.zeros((4, 2)), NAMES, ["u"], ValueError, r"1 column name\(s\) for 2"),
        (np.full((4, 1), np.inf), NAMES, None, ValueError, "infinite"),
        (np.zeros((4, 2)), "AB", None, TypeError, "not one string"),
        (np.zeros((2, 2)), ["A", "A"], None, ValueError, "distinct"),
        (pd.DataFrame({"a": [1.0]}, index=["A"]), NAMES, None, ValueError, "no row for 3"),
    ],
)
def test_bad_writer_inputs(tmp_path, features, names, columns, error, match):
    with pytest.raises(error, match=match):
        write_features(features, names, tmp_path / "x.csv", columns=columns)


# ----------------------------------------------------------------------------- pairint features
def _npz(tmp_path, x, labels, name="screen.npz"):
    path = tmp_path / name
    np.savez(path, x=x, labels=labels)
    return path


def test_the_cli_writes_a_features_csv_the_reader_reads(tmp_path, rng):
    from click.testing import CliRunner

    from pairint_jax.cli import main
    from pairint_jax.commands.features import features_from_screen_file

    x, labels = _singles_screen(rng, dtype=np.float32)
    path = _npz(tmp_path, x, labels)
    out = tmp_path / "out" / "features.csv"
    res = CliRunner().invoke(main, ["features", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 perturbation(s) x 3 feature(s)" in res.output
    names, values = features_from_screen_file(path)
    expected = pj.perturbation_features(pj.Screen.from_arrays(x, labels))
    assert names == ["S0", "S1", "S2", "S3"]
    np.testing.assert_allclose(values, expected.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(read_features(out, names), values, rtol=1e-12)
    raw = CliRunner().invoke(main, ["features", str(path), "--out", str(out), "--raw", "--only", "mmd",
                                    "--bandwidth", "1.5"])
    assert raw.exit_code == 0, raw.output
    ref = _reference(x, labels, names, 1.5)["mmd"].to_numpy()
    np.testing.assert_allclose(read_features(out, names)[:, 0], ref, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("garbage", "cannot read the screen file"),
        ("no singles", "no single perturbations"),
        ("bad feature", "unknown: \\['size'\\]"),
        ("bad bandwidth", "neither 'global' nor a number"),
    ],
)
def test_the_cli_fails_in_one_line(tmp_path, rng, case, match):
    from click.testing import CliRunner

    from pairint_jax.cli import main

    x, labels = _singles_screen(rng)
    args = []
    if case == "garbage":
        path = tmp_path / "screen.npz"
        path.write_text("not an archive")
    elif case == "no singles":
        path = _npz(tmp_path, x[:120], np.where(np.arange(120) < 90, "ctrl", "A+B"))
    else:
        path = _npz(tmp_path, x, labels)
        args = ["--only", "shift,size"] if case == "bad feature" else ["--bandwidth", "wide"]
    res = CliRunner().invoke(main, ["features", str(path), "--out", str(tmp_path / "f.csv"), *args])
    assert res.exit_code == (2 if case == "bad bandwidth" else 1), res.output
    assert re.search(match, res.output) and "Traceback" not in res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("Error")]) == 1
    assert not (tmp_path / "f.csv").exists()
