"""The pairint CLI: help, info, score (CSV/PNG contents), the lab loop, the demo and its report."""

from __future__ import annotations

import json
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pairint_jax as pj
from pairint_jax.cli import main

COMMANDS = ["demo", "info", "score", "features", "campaign-init", "propose", "observe", "campaign-status"]


@pytest.fixture(scope="module")
def screen_file(tmp_path_factory):
    """A small screen with one interacting pair (A+B) and one unscorable pair (A+C: C missing)."""
    rng = np.random.default_rng(0)
    blocks, labels = [], []
    for lab, shift in [("ctrl", 0.0), ("A", 1.0), ("B", -1.0), ("D", 0.5), ("A+B", 3.0), ("A+D", 1.5), ("B+D", -0.5), ("A+C", 0.0)]:
        m = 40 if lab != "ctrl" else 80
        x = rng.normal(size=(m, 3))
        x[:, 0] += shift
        if lab == "A+B":
            x[:, 1] += 2.0  # a non-additive change
        blocks.append(x)
        labels += [lab] * m
    path = tmp_path_factory.mktemp("cli") / "screen.npz"
    np.savez(path, x=np.concatenate(blocks), labels=np.asarray(labels))
    return path


def test_help_explains_every_command():
    runner = CliRunner()
    res = runner.invoke(main, ["--help"])
    assert res.exit_code == 0
    for cmd in COMMANDS:
        assert cmd in res.output
        sub = runner.invoke(main, [cmd, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Usage:" in sub.output and len(sub.output.splitlines()) > 5


def test_info(screen_file):
    res = CliRunner().invoke(main, ["info", str(screen_file)])
    assert res.exit_code == 0, res.output
    assert "4 perturbations" in res.output
    assert "single 'C' not in screen" in res.output


def test_info_bad_file_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.ones((4, 2)), labels=np.asarray(["A", "A", "B", "B"]))
    res = CliRunner().invoke(main, ["info", str(path)])
    assert res.exit_code == 1
    assert "no control observations" in res.output and "Traceback" not in res.output


def test_score_all_tests_writes_tables_and_heatmaps(screen_file, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["score", str(screen_file), "--test", "all", "--permutations", "50", "--out", str(out), "--no-progress",
               "--highlight", "A+B"],
    )
    assert res.exit_code == 0, res.output
    expected = {
        "disjointedness": ["a", "b", "score", "p_value", "q_value", "bandwidth", "significant", "p_floor", "reason"],
        "additivity": ["a", "b", "score", "reason"],
        "separability": ["a", "b", "score", "kl_a", "kl_b", "kl_ab", "reason"],
    }
    screen = pj.read_screen(screen_file, warn=False)
    html = unescape((out / "report.html").read_text())
    for test, cols in expected.items():
        df = pd.read_csv(out / f"{test}.csv", keep_default_na=False, na_values=[""])
        assert list(df.columns) == cols
        # the measured doubles only (A+B, A+D, B+D and A+C), best first, the unscorable one last
        assert sorted(zip(df.a, df.b)) == [("A", "B"), ("A", "C"), ("A", "D"), ("B", "D")]
        assert np.isnan(df.score.iloc[-1]) and (df.a.iloc[-1], df.b.iloc[-1]) == ("A", "C")
        assert "single 'C' not in screen" in df.reason.iloc[-1]
        assert (np.diff(df.score.to_numpy()[:-1]) <= 0).all()
        assert (out / f"{test}.png").stat().st_size > 10_000
        meta = json.loads((out / f"{test}.json").read_text())
        assert meta["table"] == f"{test}.csv" and meta["columns"] == cols and meta["test"] == test
        assert meta["provenance"]["input"]["file"] == str(screen_file.resolve())
        assert meta["provenance"]["screen"]["n_perturbations"] == 4 and meta["provenance"]["jax"]
        assert pj.results.TEST_QUESTIONS[test].split(".")[0] in html  # the report says what each test asks
    meta = json.loads((out / "disjointedness.json").read_text())
    assert meta["settings"]["n_permutations"] == 50 and meta["provenance"]["options"]["permutations"] == 50
    # The CSV equals the library's own result (the CLI adds nothing of its own).
    add = pd.read_csv(out / "additivity.csv")
    ref = pj.additivity_scores(screen).to_frame()
    np.testing.assert_allclose(add.score.to_numpy(), ref.score.to_numpy(), rtol=1e-6, equal_nan=True)
    dis = pd.read_csv(out / "disjointedness.csv")
    top = dis.sort_values("score", ascending=False).iloc[0]
    assert (top.a, top.b) == ("A", "B")


def test_score_bad_bandwidth_is_a_usage_error(screen_file, tmp_path):
    res = CliRunner().invoke(main, ["score", str(screen_file), "--bandwidth", "wide", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "pair" in res.output


def test_lab_loop_score_observe_propose(screen_file, tmp_path):
    """screen -> score -> observe -> propose, through the CLI only."""
    runner = CliRunner()
    out = tmp_path / "scores"
    assert runner.invoke(main, ["score", str(screen_file), "--test", "additivity", "--out", str(out), "--no-progress"]).exit_code == 0
    genes = tmp_path / "genes.txt"
    genes.write_text("A\nB\nC\nD\nE\n")
    camp = tmp_path / "campaign"
    res = runner.invoke(main, ["campaign-init", str(camp), "-p", str(genes), "--batch", "2", "--steps", "50", "--samples", "20"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["observe", str(camp), str(out / "additivity.csv")])
    assert res.exit_code == 0, res.output
    assert "skipp" in res.output.lower()  # A+C has no score: skipped with a message, not an error
    c = pj.Campaign.open(camp)
    assert len(c.observations) == 3  # A-B, A-D, B-D; the three pairs with C have no score
    res = runner.invoke(main, ["propose", str(camp), "--no-progress", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    batch = pd.read_csv(camp / "next_batch.csv")
    assert len(batch) == 2
    observed = {tuple(sorted(p)) for p in zip(pd.read_csv(out / "additivity.csv").dropna(subset=["score"]).a,
                                              pd.read_csv(out / "additivity.csv").dropna(subset=["score"]).b)}
    for a, b in zip(batch.a, batch.b):
        assert tuple(sorted((a, b))) not in observed


def test_demo_cli_writes_a_report(tmp_path):
    """The README's first command, at a CI size: every score, discovery and the report."""
    out = tmp_path / "demo"
    res = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--n-perturbations", "6", "--n-per-condition", "40", "--permutations", "20",
               "--no-nre", "--discovery-perturbations", "6", "--rounds", "2", "--batch", "3", "--seeds", "2",
               "--svi-steps", "30", "--posterior-samples", "16", "--no-progress", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    assert "Report:" in res.output
    html = (out / "report.html").read_text()
    for needle in ("Disjointedness, RBF kernel", "Disjointedness, Matern-2.5", "Additivity", "Separability, k-NN KL",
                   "D.1.1", "Choosing pairs to run next", "Settings, provenance and timings", "data:image/png;base64",
                   "negative MMD² is not an error", "KL estimate can come out negative",  # negative estimates explained
                   "IDS (Information Directed Sampling)", "TS (Thompson sampling)", "US (uncertainty sampling)",
                   "UCB (upper confidence bound)", "it can fall"):  # policy names spelled out, regret labelled
        assert needle in unescape(html), needle
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "NaN" not in text and ">None<" not in text  # missing values read as "not applicable", defaults resolved
    assert "smallest attainable p-value is 1/21" in html
    summary = pd.read_csv(out / "summary.csv")
    assert {"score", "screen", "seconds", "AUROC vs truth"} <= set(summary.columns)
    # the headline shows each score where its question applies
    where = dict(zip(summary.score.str.split(",").str[0].str.split(" ").str[0], summary.screen))
    assert where == {"Disjointedness": "latent-factor", "Additivity": "latent-factor", "Separability": "d11"}
    for table in ("summary", "discovery", "disjointedness_rbf", "separability_knn"):
        assert "provenance" in json.loads((out / f"{table}.json").read_text())
    table = pd.read_csv(out / "discovery.csv")
    assert list(table.policy) == ["ids", "ucb", "ts", "us", "greedy", "hub", "random"]
    assert (out / "discovery.png").stat().st_size > 10_000


def test_score_stream_and_all_devices_equal_the_default(screen_file, tmp_path):
    runner = CliRunner()
    base = ["score", str(screen_file), "--permutations", "0", "--no-progress", "--top", "0"]
    assert runner.invoke(main, [*base, "--out", str(tmp_path / "a")]).exit_code == 0
    res = runner.invoke(main, [*base, "--out", str(tmp_path / "b"), "--stream", "--devices", "all"])
    assert res.exit_code == 0, res.output
    a = pd.read_csv(tmp_path / "a" / "disjointedness.csv")
    b = pd.read_csv(tmp_path / "b" / "disjointedness.csv")
    np.testing.assert_array_equal(a.score.to_numpy(), b.score.to_numpy())


def test_score_a_sparse_h5ad_writes_the_report(tmp_path):
    """An .h5ad with sparse counts in X (scanpy's usual file) scores and writes report.html
    without densifying the observations (the report's observed-vs-expected plot used to fail)."""
    import anndata
    import scipy.sparse

    rng = np.random.default_rng(1)
    labels = np.repeat(["ctrl", "A", "B", "A+B"], 30)
    counts = rng.poisson(2.0, size=(len(labels), 40)).astype(np.float32)
    counts[labels == "A+B", :5] += 6.0
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    adata = anndata.AnnData(scipy.sparse.csr_matrix(counts), obs=obs)
    adata.write_h5ad(tmp_path / "sparse.h5ad")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["score", str(tmp_path / "sparse.h5ad"), "--test", "additivity", "--out", str(out),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "read one group at a time" in res.output
    assert (out / "report.html").stat().st_size > 0 and (out / "observed_vs_expected.png").exists()
