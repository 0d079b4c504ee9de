"""``pairint campaign-init --features FILE.csv`` and ``--from-screen SCREEN``: the features that
reach the campaign state equal the file's (or ``pj.perturbation_features`` of the screen's),
every problem is one line (exit 1, or 2 for a usage error), ``campaign-status`` reports them,
and a campaign with features proposes the same pairs after a SIGKILL of ``pairint propose``
as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import pairint_jax as pj
from pairint_jax.cli import main
from pairint_jax.discovery.campaign import Campaign

NAMES = [f"G{i}" for i in range(8)]
SMALL = ["--steps", "150", "--samples", "64", "--rank", "2", "--batch", "3"]
PROGRAM = [sys.executable, "-c", "import _pairint_entry; _pairint_entry.main()"]


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(res, code=1):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def _features_csv(tmp_path, rows, header="perturbation,size,fitness"):
    path = tmp_path / "features.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _singles(rng, labels_col="perturbation", control="ctrl", d=3):
    """A control and four singles S0..S3 with growing shifts (no doubles)."""
    blocks, labels = [rng.normal(size=(60, d))], [control] * 60
    for t in range(4):
        blocks.append(rng.normal(size=(25, d)) + 0.5 * t)
        labels += [f"S{t}"] * 25
    return np.concatenate(blocks), np.asarray(labels)


# ----------------------------------------------------------------------------- --features FILE.csv


def test_features_csv_is_stored_in_campaign_order(tmp_path):
    # rows in another order than -p, an empty cell (missing), exact decimal values
    values = {n: (0.1 * i - 0.35, float(i * i) / 3.0) for i, n in enumerate(NAMES)}
    rows = [f"{n},{values[n][0]!r},{'' if n == 'G5' else repr(values[n][1])}" for n in reversed(NAMES)]
    csv = _features_csv(tmp_path, rows)
    folder = tmp_path / "camp"
    res = run(["campaign-init", folder, "-p", ",".join(NAMES), "--features", csv, *SMALL])
    assert res.exit_code == 0, res.output
    assert "stored 2 feature(s) per perturbation (1 missing value(s), imputed)" in res.output
    expected = np.array([values[n] for n in NAMES])
    expected[5, 1] = np.nan
    np.testing.assert_array_equal(pj.read_features(csv, NAMES), expected)  # the reader: float64, exact
    got = Campaign.open(folder).features
    np.testing.assert_array_equal(got, expected.astype(np.float32))  # the model's float32, exactly through JSON
    assert json.loads((folder / "campaign.json").read_text())["features"][5][1] is None
    status = run(["campaign-status", folder])
    assert status.exit_code == 0 and "features: 2 feature(s) per perturbation (1 missing" in status.output
    plain = tmp_path / "plain"
    assert run(["campaign-init", plain, "-p", "A,B,C"]).exit_code == 0
    assert "features: none" in run(["campaign-status", plain]).output
    assert Campaign.open(plain).features is None


def test_feature_interactions_flag_is_stored_and_needs_features(tmp_path):
    """``--feature-interactions`` stores the setting (off by default); without features it is one
    line of error and creates nothing."""
    csv = _features_csv(tmp_path, [f"{n},{i},{i * i}" for i, n in enumerate(NAMES)])
    for flag, want in ((["--feature-interactions"], True), ([], False)):
        folder = tmp_path / f"camp{want}"
        res = run(["campaign-init", folder, "-p", ",".join(NAMES), "--features", csv, *flag, *SMALL])
        assert res.exit_code == 0, res.output
        assert json.loads((folder / "campaign.json").read_text())["settings"]["feature_interactions"] is want
    line = _one_line_error(run(["campaign-init", tmp_path / "bare", "-p", ",".join(NAMES), "--feature-interactions"]))
    assert "need features" in line and not (tmp_path / "bare" / "campaign.json").exists()


@pytest.mark.parametrize("rows, header, match", [
    ([*(f"{n},1,2" for n in NAMES), "ZZ,1,2"], "perturbation,size,fitness",
     r"1 name\(s\) in column 'perturbation' are not perturbations of the campaign: 'ZZ'"),
    ([f"{n},1,2" for n in NAMES[:-2]], "perturbation,size,fitness",
     r"2 perturbation\(s\) of the campaign have no row: 'G6', 'G7'"),
    ([*(f"{n},1,2" for n in NAMES[1:]), "G0,1,high"], "perturbation,size,fitness",
     r"column 'fitness' is not numeric \(row 9: 'high'\)"),
    ([f"{n}" for n in NAMES], "perturbation", r"has only the name column 'perturbation'"),
    ([], "perturbation,size", r"has a header but no rows"),
])
def test_a_bad_features_csv_is_one_line_and_creates_nothing(tmp_path, rows, header, match):
    import re

    csv = _features_csv(tmp_path, rows, header)
    folder = tmp_path / "camp"
    line = _one_line_error(run(["campaign-init", folder, "-p", ",".join(NAMES), "--features", csv, *SMALL]))
    assert re.search(match, line), line
    assert str(csv) in line
    assert not (folder / "campaign.json").exists()


def test_a_missing_features_file_is_a_usage_error(tmp_path):
    res = run(["campaign-init", tmp_path / "c", "-p", "A,B,C", "--features", tmp_path / "nope.csv"])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- --from-screen


def test_from_screen_takes_names_and_features_of_the_singles(tmp_path, rng):
    x, labels = _singles(rng)
    path = tmp_path / "singles.npz"
    np.savez(path, x=x, labels=labels)
    folder = tmp_path / "camp"
    res = run(["campaign-init", folder, "--from-screen", path, *SMALL])
    assert res.exit_code == 0, res.output
    assert "4 perturbations, 6 pairs" in res.output and "stored 3 feature(s) per perturbation" in res.output
    c = Campaign.open(folder)
    expected = pj.perturbation_features(pj.Screen.from_arrays(x, labels))
    assert c.perturbations == ("S0", "S1", "S2", "S3") == tuple(expected.index)
    np.testing.assert_allclose(c.features, expected.to_numpy(np.float64), rtol=1e-6, atol=1e-7)  # float32 pipeline

    # the same names in another order: kept, the rows follow them
    again = tmp_path / "again"
    res = run(["campaign-init", again, "--from-screen", path, "-p", "S3,S1,S0,S2", *SMALL])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(Campaign.open(again).features, c.features[[3, 1, 0, 2]])


def test_from_screen_reads_h5ad_with_the_reading_options(tmp_path, rng):
    import anndata
    import pandas as pd

    x, labels = _singles(rng, control="NT")
    obs = pd.DataFrame({"gene": labels}, index=[str(i) for i in range(len(labels))])
    path = tmp_path / "singles.h5ad"
    anndata.AnnData(X=x, obs=obs).write_h5ad(path)
    folder = tmp_path / "camp"
    res = run(["campaign-init", folder, "--from-screen", path, "--groupby", "gene", "--control", "NT", *SMALL])
    assert res.exit_code == 0, res.output
    expected = pj.perturbation_features(pj.Screen.from_arrays(x, labels, control="NT"))
    np.testing.assert_allclose(Campaign.open(folder).features, expected.to_numpy(np.float64), rtol=1e-6, atol=1e-7)
    # without them, the screen cannot be read: one line, nothing created
    line = _one_line_error(run(["campaign-init", tmp_path / "bad", "--from-screen", path, *SMALL]))
    assert "'perturbation' is not in the table" in line and "['gene']" in line
    assert not (tmp_path / "bad" / "campaign.json").exists()


def test_from_screen_and_names_that_disagree(tmp_path, rng):
    x, labels = _singles(rng)
    path = tmp_path / "singles.npz"
    np.savez(path, x=x, labels=labels)
    line = _one_line_error(run(["campaign-init", tmp_path / "c", "--from-screen", path, "-p", "S0,S1,S2,XX"]))
    assert "--perturbations and --from-screen" in line
    assert "1 name(s) not in the screen: 'XX'" in line and "1 perturbation(s) of the screen not listed: 'S3'" in line
    assert not (tmp_path / "c" / "campaign.json").exists()


@pytest.mark.parametrize("args, match", [
    (["--features", "{csv}", "--from-screen", "{screen}"], "--features and --from-screen are exclusive"),
    (["--features", "{csv}"], "give the perturbations (--perturbations/-p) or a screen"),
    (["-p", "A,B,C", "--groupby", "gene"], "--groupby only apply with --from-screen"),
    (["-p", "A,B,C", "--control", "NT", "--sep", "_"], "--control, --sep only apply with --from-screen"),
])
def test_usage_errors(tmp_path, rng, args, match):
    x, labels = _singles(rng)
    screen = tmp_path / "singles.npz"
    np.savez(screen, x=x, labels=labels)
    csv = _features_csv(tmp_path, ["A,1,2", "B,3,4", "C,5,6"])
    args = [a.format(csv=csv, screen=screen) for a in args]
    res = run(["campaign-init", tmp_path / "c", *args])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "c" / "campaign.json").exists()


def test_the_features_command_then_campaign_init(tmp_path, rng):
    x, labels = _singles(rng)
    screen = tmp_path / "singles.npz"
    np.savez(screen, x=x, labels=labels)
    csv = tmp_path / "features.csv"
    assert run(["features", screen, "--out", csv]).exit_code == 0
    res = run(["campaign-init", tmp_path / "a", "-p", "S0,S1,S2,S3", "--features", csv, *SMALL])
    assert res.exit_code == 0, res.output
    assert run(["campaign-init", tmp_path / "b", "--from-screen", screen, *SMALL]).exit_code == 0
    # the CSV holds the float64 values exactly: the two campaigns store the same features
    np.testing.assert_array_equal(Campaign.open(tmp_path / "a").features, Campaign.open(tmp_path / "b").features)


# ----------------------------------------------------------------------------- SIGKILL and resume


def _observe_csv(folder, pairs, path):
    rng_scores = {p: (sum(map(ord, p[0] + p[1])) % 17) / 4.0 for p in pairs}  # a fixed lab
    path.write_text("a,b,score\n" + "".join(f"{a},{b},{rng_scores[(a, b)]!r}\n" for a, b in pairs))
    res = run(["observe", folder, path])
    assert res.exit_code == 0, res.output


def _kill_propose_mid_fit(folder):
    """Start ``pairint propose FOLDER`` as a program and SIGKILL it as soon as it starts fitting."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(PROGRAM + ["propose", str(folder), "--device", "cpu"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    seen, err = threading.Event(), []

    def read():
        for line in iter(proc.stderr.readline, ""):
            err.append(line)
            if "fitting the posterior" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(180), "".join(err)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    reader.join(10)
    return proc.returncode


def test_a_campaign_with_features_resumes_after_sigkill_with_the_same_proposals(tmp_path):
    csv = _features_csv(tmp_path, [f"{n},{0.3 * i - 1.0!r},{'' if i == 2 else repr(float(i % 3))}"
                                   for i, n in enumerate(NAMES)])
    folders = [tmp_path / "uninterrupted", tmp_path / "killed"]
    for folder in folders:
        assert run(["campaign-init", folder, "-p", ",".join(NAMES), "--features", csv, "--seed", "5",
                    *SMALL]).exit_code == 0
    first = [Campaign.open(f).propose() for f in folders]  # round 1: random, no fit
    assert first[0] == first[1]
    for folder in folders:
        _observe_csv(folder, first[0], tmp_path / "scores.csv")
    for rnd in (2, 3):
        a = run(["propose", folders[0], "--no-progress", "--device", "cpu"])
        assert a.exit_code == 0, a.output
        before = (folders[1] / "campaign.json").read_bytes()
        assert _kill_propose_mid_fit(folders[1]) == -signal.SIGKILL
        assert (folders[1] / "campaign.json").read_bytes() == before  # killed before it saved anything
        assert Campaign.open(folders[1]).round == rnd - 1
        b = run(["propose", folders[1], "--no-progress", "--device", "cpu"])  # resume in a fresh run
        assert b.exit_code == 0, b.output
        batches = [Campaign.open(f).pending for f in folders]
        assert batches[0] == batches[1] and len(batches[0]) == 3, batches
        assert f"round {rnd}: 3 pair(s)" in a.output and a.output.splitlines()[:4] == b.output.splitlines()[:4]
        for folder in folders:
            _observe_csv(folder, batches[0], tmp_path / "scores.csv")
    states = [json.loads((f / "campaign.json").read_text()) for f in folders]
    assert states[0]["posterior"] == states[1]["posterior"] and states[0]["observations"] == states[1]["observations"]
    assert states[0]["features"] == states[1]["features"] and states[0]["features"][2][1] is None
