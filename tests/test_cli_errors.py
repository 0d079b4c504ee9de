"""File and OS failures on the command line: each is ONE line on stderr naming the file or the
option and the fix, exit code 1, never a traceback (``--debug`` shows it). Output paths are
checked before any work starts. ``observe`` reads names as text and scores exactly.

Most cases run in-process with click's ``CliRunner``; one runs the installed ``pairint``
program to check the real process (its exit code and that ``--debug`` shows the traceback).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from pairint_jax.cli import main
from pairint_jax.discovery.campaign import Campaign

NAMES = [f"G{i}" for i in range(6)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good .npz and .h5ad screen, their broken variants, and a plain file to block paths."""
    import anndata
    import pandas as pd

    d = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(0)
    labels = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(20)]
    x = rng.normal(size=(len(labels), 3))
    np.savez(d / "good.npz", x=x, labels=np.asarray(labels))
    anndata.AnnData(X=x, obs=pd.DataFrame({"perturbation": labels}, index=[str(i) for i in range(len(labels))])
                    ).write_h5ad(d / "good.h5ad")
    for ext in ("npz", "h5ad"):
        data = (d / f"good.{ext}").read_bytes()
        (d / f"truncated.{ext}").write_bytes(data[: len(data) // 2])
        (d / f"empty.{ext}").write_bytes(b"")
        (d / f"random.{ext}").write_bytes(rng.bytes(4096))
    (d / "garbage.msgpack").write_bytes(rng.bytes(300))
    (d / "empty.msgpack").write_bytes(b"")
    (d / "blocker").write_text("a file where a folder is expected\n")
    return d


def test_a_wrong_groupby_names_the_file_and_the_columns(files, tmp_path):
    res = run(["score", files / "good.h5ad", "--groupby", "nope", "--out", tmp_path / "out"])
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert "good.h5ad" in line and "'nope'" in line and "['perturbation']" in line, line


@pytest.fixture
def campaign(tmp_path):
    folder = tmp_path / "camp"
    Campaign.create(folder, NAMES, batch=2, steps=50, num_samples=16, rank=2)
    return folder


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(res, *names, code=1):
    """Exit ``code``, no traceback, and stderr is exactly one ``Error:`` line naming ``names``."""
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "name,problem",
    [
        ("truncated.h5ad", "truncated file"),
        ("empty.h5ad", "empty or not in this format"),
        ("random.h5ad", "empty or not in this format"),
        ("truncated.npz", "not a complete .npz (zip) archive"),
        ("empty.npz", "empty or not in this format"),
        ("random.npz", "not an .npz archive"),
    ],
)
def test_broken_screen_files_are_one_line_naming_the_file(files, name, problem, tmp_path):
    line = assert_one_line_error(run(["score", files / name, "--out", tmp_path / "o"]), name, problem)
    assert "np.savez" in line or "write_h5ad" in line  # the fix
    assert_one_line_error(run(["info", files / name]), name)


@pytest.mark.parametrize("name,problem", [("garbage.msgpack", "not a pairint_jax NRE checkpoint"),
                                          ("empty.msgpack", "is empty")])
def test_a_garbage_model_file_is_one_line_before_any_training(files, name, problem, tmp_path):
    res = run(["score", files / "good.npz", "--test", "separability", "--estimator", "nre", "--model", files / name,
               "--out", tmp_path / "o", "--device", "cpu"])
    assert_one_line_error(res, name, problem, "--save-model")
    assert not (tmp_path / "o" / "separability.csv").exists()


@pytest.mark.parametrize(
    "args,option",
    [
        (["score", "{good}", "--out", "{blocker}/out"], "--out"),
        (["score", "{good}", "--save-model", "{blocker}/critic.msgpack"], "--save-model"),
        (["demo", "--out", "{blocker}/demo"], "--out"),
        (["campaign-init", "{blocker}/camp", "-p", "A,B,C"], "FOLDER"),
        (["propose", "{camp}", "--out", "{blocker}/batch.csv"], "--out"),
    ],
)
def test_unwritable_outputs_fail_before_any_work(files, campaign, args, option):
    args = [a.format(good=files / "good.npz", blocker=files / "blocker", camp=campaign) for a in args]
    before = (campaign / "campaign.json").read_text()
    line = assert_one_line_error(run(args), option, "blocker")
    assert "is a file, not a folder" in line
    assert (campaign / "campaign.json").read_text() == before  # propose did not run


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_campaign_folder_fails_before_the_fit(campaign, tmp_path):
    os.chmod(campaign, 0o555)
    try:
        res = run(["propose", campaign, "--device", "cpu"])
        assert_one_line_error(res, "FOLDER", "Permission denied")
    finally:
        os.chmod(campaign, 0o755)


def test_outputs_are_created_and_checked_up_front(tmp_path, files):
    from pairint_jax.commands.common import check_writable

    check_writable(folders={"--out": tmp_path / "a" / "b"}, files={"--save-model": tmp_path / "c" / "m.msgpack",
                                                                   "--other": None})
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir())  # the probe file is gone
    with pytest.raises(Exception, match="it is a folder; give a file name"):
        check_writable(files={"--out": tmp_path})


@pytest.mark.parametrize("cmd", [["score", "{good}"], ["demo"], ["campaign-init", "{tmp}/c", "-p", "A,B"]])
def test_seed_out_of_range_is_a_usage_error_naming_the_option(files, tmp_path, cmd):
    args = [a.format(good=files / "good.npz", tmp=tmp_path) for a in cmd] + ["--seed", str(10**23)]
    res = run(args)
    # a bad option value is a click usage error: exit code 2, the usage hint, then one Error line
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "'--seed'" in errors[0] and "0<=x<=4294967295" in errors[0], res.stderr


@pytest.mark.parametrize(
    "name,data,problem",
    [
        ("empty.csv", b"", "cannot read it as a CSV"),
        ("binary.csv", bytes(range(256)) * 4, "cannot read it as a CSV"),
        ("quote.csv", b'p,g\n"A,x\nB,y\n', "cannot read it as a CSV"),
        ("one_column.csv", b"perturbation\nA\n", "found 1 column(s); it needs two"),
        ("header_only.csv", b"perturbation,group\n", "a header but no rows"),
        ("two_groups.csv", b"perturbation,group\nA,x\nA,y\n", "'A' is listed in more than one group"),
    ],
)
def test_a_bad_groups_csv_is_one_line_naming_it_before_scoring(files, tmp_path, name, data, problem):
    path = tmp_path / name
    path.write_bytes(data)
    res = run(["score", files / "good.npz", "--test", "additivity", "--groups", path, "--out", tmp_path / "o"])
    assert_one_line_error(res, "--groups", name, problem)
    assert not (tmp_path / "o" / "additivity.csv").exists()


def test_groups_named_na_are_kept_as_text(files, tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("perturbation,group\nA,NA\nB,None\n")
    res = run(["score", files / "good.npz", "--test", "additivity", "--groups", path, "--out", tmp_path / "o"])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    import pandas as pd

    d = tmp_path_factory.mktemp("parquet_errors")
    rng = np.random.default_rng(0)
    labels = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(10)]
    n = len(labels)
    pd.DataFrame({"perturbation": labels, "f0": rng.normal(size=n), "flag": rng.random(n) > 0.5,
                  "name": [f"c{i}" for i in range(n)],
                  "rag": [rng.normal(size=2 if i == 7 else 3) for i in range(n)]}).to_parquet(d / "s.parquet")
    return d / "s.parquet"


@pytest.mark.parametrize(
    "features,problem",
    [
        ("f0,name", "feature column 'name'"),
        ("rag", "feature column 'rag'"),
        ("nope", "feature column 'nope' is not in"),
    ],
)
def test_parquet_feature_problems_name_the_column_and_the_file(parquet, features, problem):
    assert_one_line_error(run(["info", parquet, "--features", features]), "s.parquet", problem)


def test_parquet_default_features_skip_booleans_and_text_and_say_so(parquet):
    res = run(["info", parquet])
    assert res.exit_code == 0, res.output
    assert "readout: 1 numeric column (skipped: 'flag' (booleans), 'name' (text), 'rag' (lists))" in res.output


# ----------------------------------------------------------------------------- observe


def test_observe_header_only_csv_is_a_clear_error(campaign, tmp_path):
    csv = tmp_path / "scores.csv"
    csv.write_text("a,b,score,p_value,q_value,reason\n")  # what `pairint score` writes for no pairs
    assert_one_line_error(run(["observe", campaign, csv]), "scores.csv", "header but no rows")
    csv.write_text("")
    assert_one_line_error(run(["observe", campaign, csv]), "scores.csv", "cannot read")


def test_observe_reads_names_as_text_and_scores_exactly(tmp_path):
    names = ["NA", "None", "null", "nan", "N/A", "G1"]
    folder = tmp_path / "camp"
    Campaign.create(folder, names, batch=2, steps=50, num_samples=16, rank=2)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    # decimal texts that pandas' default (fast, not correctly rounded) parser misreads by 1 ulp
    texts = ["-0.013210486329130189", "0.00010490011715303971", "0.0036159505490948474", "1304.0000451301373",
             "-0.007037352358069926"]
    csv = tmp_path / "scores.csv"
    csv.write_text("a,b,score,reason\n" + "".join(f"{a},{b},{t},\n" for (a, b), t in zip(pairs, texts))
                   + f"{pairs[5][0]},{pairs[5][1]},NA,no double in the screen\n")
    res = run(["observe", folder, csv])
    assert res.exit_code == 0, res.output
    assert "recorded 5 new observation(s)" in res.output and "skipped 1 unscorable pair" in res.output
    state = json.loads((folder / "campaign.json").read_text())
    got = {(o["a"], o["b"]): o["score"] for o in state["observations"]}
    assert got == {p: float(t) for p, t in zip(pairs, texts)}  # names kept, scores bit-exact


# ----------------------------------------------------------------------------- the handler


def test_library_errors_become_one_line_and_debug_shows_them(monkeypatch, files):
    from pairint_jax.commands import common

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.csv")

    monkeypatch.setattr(common, "load_screen_and_provenance", boom)
    line = assert_one_line_error(run(["info", files / "good.npz"]), "/data/out.csv", "the disk is full")
    assert "No space left on device" in line
    res = run(["--debug", "info", files / "good.npz"])
    assert res.exit_code == 1 and isinstance(res.exception, OSError)  # raised, so a traceback is printed


@pytest.mark.parametrize(
    "exc,expected",
    [
        (KeyError("perturbation"), "missing key 'perturbation'"),
        (ValueError("k must be an int >= 1,\n got 0."), "k must be an int >= 1, got 0."),
        (PermissionError(errno.EACCES, "Permission denied", "/x/y.h5ad"), "/x/y.h5ad: Permission denied; check its"),
        (MemoryError(), "out of memory"),
        (AttributeError("'NoneType' object has no attribute 'x'"), "internal error (AttributeError"),
    ],
)
def test_every_exception_kind_is_one_line(monkeypatch, files, exc, expected):
    from pairint_jax.commands import common

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(common, "load_screen_and_provenance", boom)
    line = assert_one_line_error(run(["info", files / "good.npz"]))
    assert expected in line, line


def test_keyboard_interrupt_in_process_exits_130(monkeypatch, files):
    from pairint_jax.commands import common

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "load_screen_and_provenance", interrupted)
    res = run(["info", files / "good.npz"])
    assert res.exit_code == 130 and "interrupted" in res.stderr and "Traceback" not in res.output


def test_the_pairint_program_prints_one_line_or_the_traceback_with_debug(files):
    exe = [sys.executable, "-c", "import _pairint_entry; _pairint_entry.main()"]
    plain = subprocess.run(exe + ["info", str(files / "truncated.npz")], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1, plain.stderr
    assert plain.stderr.startswith("Error: cannot read the screen file") and "truncated.npz" in plain.stderr
    debug = subprocess.run(exe + ["--debug", "info", str(files / "truncated.npz")], capture_output=True, text=True,
                           timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "BadZipFile" in debug.stderr


def test_groupby_on_an_npz_is_an_error_not_ignored(files, tmp_path):
    """An .npz screen's labels are its 'labels' array; a --groupby for it used to be ignored silently."""
    res = run(["score", files / "good.npz", "--groupby", "guide", "--out", tmp_path / "out"])
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert "good.npz" in line and "groupby" in line and "'labels'" in line, line
