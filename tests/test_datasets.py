"""Tests of the real-data loaders (``pj.datasets``).

Values are checked against independent recomputations from the raw files in
``../shared/data`` (plain pandas/NumPy formulas written here, not the loaders' code);
those tests use the ``shared_dir`` fixture and skip where the folder is absent. Shape
and error tests use only the bundled files.
"""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest

import pairint_jax as pj
from pairint_jax.datasets import _prepare

SLKB_GENES = (
    "AKT3 AR AURKA BMP6 CCNE2 CDC6 CDK2 CTNNB1 DHFR ETF1 EZH2 GART GRB2 HDAC1 HPRT1 HSP90AA1 HSP90B1 IGF1R "
    "IGFBP5 INSR IRS1 JUN LIMK1 MAP2K1 MAP3K1 MAPK1 MAPK13 MAPK3 MAPK8 MTOR MYC NRAS NXF2 NXF2B PARP1 PIK3CA "
    "PLD1 PLK1 POLD1 PSMB2 PSMB5 RHEB TGFBR2 TOP2A TRIB2 TRIM25 ULK1 UPF2 UPF3A WNT5A"
).split()
BIGPAPI_GENES = (
    "AKT1 AKT2 AKT3 BCL2 BCL2A1 BCL2L1 BCL2L10 BCL2L2 BRCA1 BRCA2 CHEK1 CHEK2 EEF2 HSP90AA1 IMPDH1 MAP2K1 "
    "MAP2K2 MAPK1 MAPK3 MCL1 MTOR PARP1 PARP2 UBB UBC WEE1"
).split()


def _means(screen) -> np.ndarray:
    return np.stack([screen.group(g).astype(np.float64).mean(0) for g in range(screen.n_groups)])


def _additivity(screen) -> np.ndarray:
    """Float64 NumPy reference of the digest's additivity score over screen.pairs."""
    mu = _means(screen)
    ij, c0, i, j = screen.pair_groups.T
    return np.linalg.norm(mu[ij] - mu[i] - mu[j] + mu[c0], axis=1)


# ----------------------------------------------------------------------------- SLKB
def test_slkb_22rv1_shapes_and_groups():
    screen = pj.datasets.slkb_22rv1()
    assert screen.x.dtype == np.float32
    assert screen.feature_shape == (2,)
    assert screen.perturbations == tuple(SLKB_GENES)
    assert screen.conditions[0] == "ctrl"
    assert len(screen.pairs) == 1225 and not screen.unscorable
    c, k = screen.counts, screen.kinds
    assert c[0] == 614  # safe x safe guide pairs
    assert c[k == 1].min() == 100 and c[k == 1].max() == 200
    assert c[k == 2].min() == 12 and c[k == 2].max() == 32
    assert screen.x.shape[0] == 48931 - 772  # all rows but the same-gene pairs
    # Normalised to the safe-targeting controls: the control median is 0 per replicate.
    np.testing.assert_allclose(np.median(screen.group(0), axis=0), 0.0, atol=1e-6)


def _slkb_reference(raw: pd.DataFrame, pseudocount: float) -> pd.DataFrame:
    """Independent recomputation of the documented SLKB formula from the raw table."""
    t0_1, t0_2, t12_1, t12_2 = (raw["count_replicates"].str.split(";", expand=True).astype(float)[k] for k in range(4))
    r1 = np.log2(t12_1 + pseudocount) - np.log2(t0_1 + pseudocount)
    r2 = np.log2(t12_2 + pseudocount) - np.log2(t0_2 + pseudocount)
    safe = lambda g: g.str.contains("Safe")  # noqa: E731
    ctrl = safe(raw.gene_1) & safe(raw.gene_2)
    out = raw[["guide_1", "guide_2", "gene_1", "gene_2"]].copy()
    out["lfc1"] = r1 - r1[ctrl].median()
    out["lfc2"] = r2 - r2[ctrl].median()

    def label(a, b):
        genes = sorted(g for g in (a, b) if "Safe" not in g)
        return "+".join(genes) if genes else "ctrl"

    out["label"] = [label(a, b) for a, b in zip(raw.gene_1, raw.gene_2)]
    return out[~((raw.gene_1 == raw.gene_2) & ~safe(raw.gene_1))]


@pytest.mark.parametrize("pseudocount", [1.0, 0.5])
def test_slkb_22rv1_lfc_matches_raw_recomputation(shared_dir, pseudocount):
    raw_path = shared_dir / "data" / "slkb_demo_22Rv1" / "counts_ref.csv.gz"
    ref = _slkb_reference(pd.read_csv(raw_path), pseudocount)
    screen, info = pj.datasets.slkb_22rv1(pseudocount=pseudocount, dtype=np.float64, return_info=True)
    assert len(info.obs) == screen.x.shape[0] == len(ref)
    assert info.features == ("lfc_rep1", "lfc_rep2")
    got = info.obs.assign(lfc1=screen.x[:, 0], lfc2=screen.x[:, 1])
    merged = got.merge(ref, on=["guide_1", "guide_2"], suffixes=("", "_ref"), validate="one_to_one")
    assert len(merged) == len(ref)
    assert (merged["condition"] == merged["label"]).all()
    np.testing.assert_allclose(merged["lfc1"], merged["lfc1_ref"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged["lfc2"], merged["lfc2_ref"], rtol=0, atol=1e-12)
    # One guide pair written out by hand: the first MAPK1 x MAPK3 row, replicate 1.
    raw = pd.read_csv(raw_path)
    row = raw.query("gene_1 == 'MAPK1' and gene_2 == 'MAPK3'").iloc[0]
    t0, _, t12, _ = (float(v) for v in row.count_replicates.split(";"))
    cnt = raw.count_replicates.str.split(";", expand=True).astype(float)
    ctrl = raw.gene_1.str.startswith("0Safe") & raw.gene_2.str.startswith("0Safe")
    med = np.median(np.log2((cnt[2][ctrl] + pseudocount) / (cnt[0][ctrl] + pseudocount)))
    expected = np.log2((t12 + pseudocount) / (t0 + pseudocount)) - med
    mine = merged.query("guide_1 == @row.guide_1 and guide_2 == @row.guide_2")["lfc1"].item()
    assert mine == pytest.approx(expected, abs=1e-12)


def test_slkb_22rv1_raw_path_equals_bundled(shared_dir):
    bundled = pj.datasets.slkb_22rv1(dtype=np.float64)
    raw = pj.datasets.slkb_22rv1(path=shared_dir / "data" / "slkb_demo_22Rv1" / "counts_ref.csv.gz", dtype=np.float64)
    assert raw.conditions == bundled.conditions
    np.testing.assert_array_equal(raw.x, bundled.x)


def test_slkb_22rv1_bad_arguments(tmp_path):
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="pseudocount"):
            pj.datasets.slkb_22rv1(pseudocount=bad)
    with pytest.raises(TypeError, match="float32 or float64"):
        pj.datasets.slkb_22rv1(dtype=np.int32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pj.datasets.slkb_22rv1(path=tmp_path / "nope.csv")
    bad_file = tmp_path / "bad.csv"
    pd.DataFrame({"guide_1": ["a"], "gene_1": ["A"]}).to_csv(bad_file, index=False)
    with pytest.raises(ValueError, match="guide_2"):
        pj.datasets.slkb_22rv1(path=bad_file)


# ----------------------------------------------------------------------------- Big Papi
def test_bigpapi_shapes_and_groups():
    screen = pj.datasets.bigpapi()
    assert screen.x.dtype == np.float32 and screen.feature_shape == (6,)
    assert screen.perturbations == tuple(BIGPAPI_GENES)
    assert len(screen.pairs) == 325 and not screen.unscorable
    c, k = screen.counts, screen.kinds
    assert c[0] == 323
    assert c[k == 1].min() == 107 and c[k == 1].max() == 108
    assert c[k == 2].min() == 16 and c[k == 2].max() == 18
    assert screen.x.shape[0] == 9184 - 228  # all rows but the same-gene guide pairs

    no_eef2 = pj.datasets.bigpapi(keep_eef2=False)
    assert "EEF2" not in no_eef2.perturbations and len(no_eef2.pairs) == 300
    np.testing.assert_array_equal(no_eef2.group("MAPK1+MAPK3"), screen.group("MAPK1+MAPK3"))

    two = pj.datasets.bigpapi(cell_lines=["A375", "HT29"])
    assert two.feature_shape == (2,)
    np.testing.assert_array_equal(two.x, screen.x[:, [1, 3]])
    with pytest.raises(ValueError, match="not Big Papi cell lines"):
        pj.datasets.bigpapi(cell_lines=["HeLa"])
    with pytest.raises(ValueError, match="both genes in controls"):
        pj.datasets.bigpapi(controls=["nothing"])


def test_bigpapi_matches_raw(shared_dir):
    raw = pd.read_csv(shared_dir / "data" / "najm2018_bigpapi" / "bigpapi_lfcs.csv.gz")
    cols = [c for c in raw.columns if c.startswith("Day 21_")]
    ctl = {"HPRT intron", "6T", "CD81"}
    screen, info = pj.datasets.bigpapi(dtype=np.float64, return_info=True)
    assert info.features == ("786O", "A375", "A549", "HT29", "Meljuso", "OVCAR8")
    # The control group is exactly the control x control rows.
    both = raw[raw["U6 gene"].isin(ctl) & raw["H1 gene"].isin(ctl)]
    np.testing.assert_array_equal(np.sort(screen.group("ctrl"), axis=0), np.sort(both[cols].to_numpy(), axis=0))
    # A double pools both orientations; a single pools both sides.
    dbl = raw[((raw["U6 gene"] == "MAPK1") & (raw["H1 gene"] == "MAPK3")) | ((raw["U6 gene"] == "MAPK3") & (raw["H1 gene"] == "MAPK1"))]
    np.testing.assert_allclose(screen.group("MAPK3+MAPK1").mean(0), dbl[cols].mean(0), rtol=0, atol=1e-12)
    sgl = raw[((raw["U6 gene"] == "MCL1") & raw["H1 gene"].isin(ctl)) | (raw["U6 gene"].isin(ctl) & (raw["H1 gene"] == "MCL1"))]
    assert screen.counts[screen.group_index("MCL1")] == len(sgl)
    np.testing.assert_allclose(screen.group("MCL1").mean(0), sgl[cols].mean(0), rtol=0, atol=1e-12)
    # Row alignment of info.obs: every row's readout is its raw guide pair's readout.
    got = info.obs.assign(**{c: screen.x[:, k] for k, c in enumerate(cols)})
    merged = got.merge(raw, on=["U6 Sequence", "H1 Sequence"], suffixes=("", "_raw"), validate="one_to_one")
    assert len(merged) == screen.x.shape[0]
    for c in cols:
        np.testing.assert_array_equal(merged[c], merged[c + "_raw"])


def test_bigpapi_additivity_ranks_match_the_issue_trial():
    # Issue 7: a float64 trial of the digest's additivity with guide pairs as observations
    # and the 6 cell lines as readout ranked the known SL pairs 1, 2, 5 and 11 of 325.
    screen = pj.datasets.bigpapi(dtype=np.float64)
    score = _additivity(screen)
    rank = np.empty(len(score), int)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
    names = screen.perturbations
    where = {(names[i], names[j]): r for (i, j), r in zip(screen.pairs, rank)}
    got = [where[tuple(sorted(p))] for p in pj.datasets.BIGPAPI_SYNTHETIC_LETHAL]
    assert got == [1, 2, 5, 11]


# ----------------------------------------------------------------------------- Korkut
def test_korkut2015_shapes_and_control():
    screen, info = pj.datasets.korkut2015(return_info=True)
    assert screen.feature_shape == (87,)
    assert screen.perturbations == tuple(sorted(pj.datasets.KORKUT_TARGETS.values()))
    assert len(screen.pairs) == 66 and not screen.unscorable
    assert (screen.counts == 2).all() and screen.x.shape[0] == 2 * 79
    np.testing.assert_array_equal(screen.group("ctrl"), 0.0)
    assert info.features[-5:] == ("G2M", "G1arrest", "G2arrest", "Sarrest", "cellviab")
    assert set(info.obs.loc[info.obs.condition == "MEK", "source_condition"]) == {"901|1.5"}  # not the 2x dose
    # Copies are identical, so group means are the profiles.
    for g in range(screen.n_groups):
        block = screen.group(g)
        np.testing.assert_array_equal(block, np.broadcast_to(block[0], block.shape))

    assert pj.datasets.korkut2015(phenotypes=False).feature_shape == (82,)
    assert pj.datasets.korkut2015(repeat=3).counts.tolist() == [3] * 79
    assert "901" in pj.datasets.korkut2015(names="code").perturbations
    with pytest.warns(pj.UnscorableWarning):
        one = pj.datasets.korkut2015(repeat=1)
    assert one.counts[0] == 2 and (one.counts[1:] == 1).all() and len(one.pairs) == 0
    with pytest.raises(ValueError, match="repeat"):
        pj.datasets.korkut2015(repeat=0)
    with pytest.raises(ValueError, match="names"):
        pj.datasets.korkut2015(names="drug")


def test_korkut2015_matches_raw(shared_dir):
    folder = shared_dir / "data" / "korkut2015_cellbox_rppa"
    expr = pd.read_csv(folder / "expr.csv", header=None).to_numpy()
    labels = [line.split()[0] for line in (folder / "expr_index.txt").read_text().splitlines()]
    row = {lab: expr[k, :87] for k, lab in enumerate(labels)}
    screen = pj.datasets.korkut2015(dtype=np.float64, names="code")
    np.testing.assert_array_equal(screen.group("AK+HN")[0], row["AK|5,HN|6"])
    np.testing.assert_array_equal(screen.group("901")[0], row["901|1.5"])
    # Additivity with the control at 0, written from the raw rows.
    score = dict(zip(map(tuple, screen.pairs.tolist()), _additivity(screen)))
    i, j = screen.perturbations.index("PLX"), screen.perturbations.index("ZS")
    want = np.linalg.norm(row["ZS|0.6,PLX|60"] - row["PLX|60"] - row["ZS|0.6"])
    assert score[(i, j)] == pytest.approx(want, rel=1e-12)
    # The raw CellBox folder gives the same screen as the bundled table.
    raw = pj.datasets.korkut2015(path=folder, dtype=np.float64, names="code")
    assert raw.conditions == screen.conditions
    np.testing.assert_array_equal(raw.x, screen.x)


# ----------------------------------------------------------------------------- matrices
def _check_symmetric_nan_diag(m, n):
    assert m.shape == (n, n) and m.dtype == np.float64
    assert np.isnan(np.diag(m)).all()
    off = ~np.eye(n, dtype=bool)
    assert np.isfinite(m[off]).all()
    np.testing.assert_array_equal(m, m.T)


def test_slkb_22rv1_scores_match_raw(shared_dir):
    genes, m = pj.datasets.slkb_22rv1_scores()
    assert genes == tuple(SLKB_GENES)
    _check_symmetric_nan_diag(m, 50)
    raw = pd.read_csv(shared_dir / "data" / "slkb_demo_22Rv1" / "score_ref.csv")
    i = np.asarray([genes.index(g) for g in raw.gene_1])
    j = np.asarray([genes.index(g) for g in raw.gene_2])
    np.testing.assert_array_equal(m[i, j], raw.SL_score.to_numpy())
    np.testing.assert_array_equal(m[j, i], raw.SL_score.to_numpy())
    assert pj.datasets.slkb_22rv1_scores(path=shared_dir / "data" / "slkb_demo_22Rv1" / "score_ref.csv").genes == genes


def test_norman2019_gi_matches_long_table(shared_dir):
    genes, m = pj.datasets.norman2019_gi()
    assert len(genes) == 112
    _check_symmetric_nan_diag(m, 112)
    long = pd.read_csv(shared_dir / "data" / "norman2019_crispra_gi" / "norman2019_crispra_growth_gi_long.csv")
    assert len(long) == 112 * 111 // 2
    assert set(long.gene_a) | set(long.gene_b) == set(genes)
    i = np.asarray([genes.index(g) for g in long.gene_a])
    j = np.asarray([genes.index(g) for g in long.gene_b])
    np.testing.assert_allclose(m[i, j], long.gi_score.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(m[j, i], long.gi_score.to_numpy(), rtol=0, atol=1e-9)


def test_matrix_loaders_reject_bad_tables(tmp_path):
    f = tmp_path / "s.csv"
    pd.DataFrame({"gene_1": ["A", "A"], "gene_2": ["B", "B"], "SL_score": [1.0, 2.0]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match="listed twice"):
        pj.datasets.slkb_22rv1_scores(path=f)
    pd.DataFrame({"gene_1": ["A"], "gene_2": ["A"], "SL_score": [1.0]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match="with itself"):
        pj.datasets.slkb_22rv1_scores(path=f)
    g = tmp_path / "gi.csv"
    pd.DataFrame([[0.0, 1.0], [2.0, 0.0]], index=["A", "B"], columns=["A", "B"]).to_csv(g)
    with pytest.raises(ValueError, match="not symmetric"):
        pj.datasets.norman2019_gi(path=g)
    pd.DataFrame([[0.0, 1.0], [1.0, 0.0]], index=["A", "B"], columns=["A", "C"]).to_csv(g)
    with pytest.raises(ValueError, match="square"):
        pj.datasets.norman2019_gi(path=g)


# ----------------------------------------------------------------------------- CORUM
def test_corum_pairs_on_a_tiny_file(tmp_path):
    f = tmp_path / "complexes.tsv"
    pd.DataFrame(
        {
            "ComplexID": [1, 2, 3, 4, 5],
            "Organism": ["Human", "Human", "Mouse", "Human", "Human"],
            "subunits(Gene name)": ["A;B;C", "B; A;;X", "A;D", "C;D;E;F", "E"],
        }
    ).to_csv(f, sep="\t", index=False)
    genes = ["D", "C", "B", "A"]  # indices: D0 C1 B2 A3; E, F, X are not screen genes
    got = pj.datasets.corum_pairs(f, genes)
    # complex 1: A-B, A-C, B-C; complex 2: A-B again; 3: mouse (skipped); 4: C-D; 5: single subunit.
    assert got.dtype == np.int64 and got.tolist() == [[0, 1], [1, 2], [1, 3], [2, 3]]
    assert pj.datasets.corum_pairs(f, genes, as_names=True) == [("D", "C"), ("C", "B"), ("C", "A"), ("B", "A")]
    assert [0, 3] in pj.datasets.corum_pairs(f, genes, organism=None).tolist()  # the mouse A-D
    assert [0, 1] not in pj.datasets.corum_pairs(f, genes, max_complex_size=3).tolist()  # 4-subunit complex skipped
    assert pj.datasets.corum_pairs(f, ["Q", "R"]).shape == (0, 2)
    with pytest.raises(ValueError, match="more than once"):
        pj.datasets.corum_pairs(f, ["A", "A"])
    bad = tmp_path / "bad.tsv"
    pd.DataFrame({"ComplexID": [1], "genes": ["A;B"]}).to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match="subunit gene-name column"):
        pj.datasets.corum_pairs(bad, genes)


def test_corum_pairs_real_file_bigpapi_genes(shared_dir):
    path = shared_dir / "data" / "known_interactions" / "corum_core_human_complexes.tsv"
    names = pj.datasets.corum_pairs(path, BIGPAPI_GENES, as_names=True)
    for pair in [("MAPK1", "MAPK3"), ("MAP2K1", "MAP2K2"), ("BRCA1", "BRCA2")]:
        assert pair in names
    # Independent expansion: explode the complexes into (complex, gene) rows and self-join.
    table = pd.read_csv(path, sep="\t")
    long = table.assign(gene=table["subunits(Gene name)"].str.split(";")).explode("gene")
    long["gene"] = long["gene"].str.strip()
    long = long[long.gene.isin(BIGPAPI_GENES)][["ComplexID", "gene"]].drop_duplicates()
    joined = long.merge(long, on="ComplexID")
    ref = {(a, b) for a, b in zip(joined.gene_x, joined.gene_y) if BIGPAPI_GENES.index(a) < BIGPAPI_GENES.index(b)}
    assert set(names) == ref
    # The README's count of all co-complex pairs, with every gene of the file as the "screen".
    all_genes = sorted({g.strip() for s in table["subunits(Gene name)"] for g in s.split(";")} - {""})
    assert len(pj.datasets.corum_pairs(path, all_genes)) == 38887


# ----------------------------------------------------------------------------- bundled files
def test_bundled_files_regenerate_byte_for_byte(shared_dir, tmp_path):
    written = _prepare.prepare(shared_dir / "data", tmp_path)
    assert sorted(p.name for p in written) == sorted(_prepare.BUNDLED)
    for p in written:
        assert filecmp.cmp(p, _prepare.DATA_DIR / p.name, shallow=False), p.name


def test_bundled_data_is_small_and_documented():
    sizes = {p.name: p.stat().st_size for p in _prepare.DATA_DIR.iterdir()}
    assert set(_prepare.BUNDLED) | {"README.md"} == set(sizes)
    assert sum(sizes.values()) < 3_000_000
    readme = (_prepare.DATA_DIR / "README.md").read_text()
    for name in _prepare.BUNDLED:
        assert name in readme
    assert "CORUM" in readme  # says why it is not bundled
