"""Reports and files: jinja2 templates (escaped HTML, Markdown twin), what each test asks, a JSON next to every CSV."""

from __future__ import annotations

import json
import re
from html import unescape

import jax
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import pairint_jax as pj  # noqa: E402
from pairint_jax.export import jsonable, write_table  # noqa: E402
from pairint_jax.report import Section, write_report  # noqa: E402
from pairint_jax.results import TEST_QUESTIONS  # noqa: E402


@pytest.fixture(scope="module")
def screen():
    rng = np.random.default_rng(0)
    labels, xs = [], []
    for lab, shift in [("ctrl", 0.0), ("A", 1.0), ("B", -1.0), ("C", 0.5), ("A+B", 3.0), ("A+C", 1.5), ("B+C", -0.5)]:
        x = rng.normal(size=(30, 2))
        x[:, 0] += shift
        xs.append(x)
        labels += [lab] * 30
    return pj.Screen.from_arrays(np.concatenate(xs), labels)


def test_write_report_escapes_html_and_writes_markdown(tmp_path):
    png = tmp_path / "f.png"
    fig = pj.pl.ranked(pd.DataFrame({"a": ["x"], "b": ["y"], "score": [1.0]}))
    fig.savefig(png)
    table = pd.DataFrame({"gene": ["<script>alert(1)</script>", "a|b"], "score": [1.5, np.nan], "flag": [True, False]})
    sections = [Section("One <two>", "Para **bold** & more.\n\nSecond para.", tables=[("T", table)],
                        figures=[("a figure", "f.png")], notes=["careful <b>"], code="pairint score x.h5ad")]
    paths = write_report(tmp_path, "Title & co", sections, subtitle="sub")
    html = open(paths["html"]).read()
    assert "<script>alert" not in html and "&lt;script&gt;" in html  # user text never becomes markup
    assert "<b>bold</b> &amp; more." in html and "One &lt;two&gt;" in html and "careful &lt;b&gt;" in html
    assert "data:image/png;base64," in html and "<pre>pairint score x.h5ad</pre>" in html
    assert "<td>–</td>" in html  # NaN reads as not applicable
    md = open(paths["markdown"]).read()
    assert md.startswith("# Title & co") and "## One <two>" in md and "a\\|b" in md and "![a figure](f.png)" in md


def test_score_report_says_what_each_test_asks(screen, tmp_path):
    results = {"disjointedness": pj.disjointedness_scores(screen, n_permutations=19, key=jax.random.key(0)),
               "additivity": pj.additivity_scores(screen),
               "separability": pj.separability_scores(screen, estimator="knn")}
    with pytest.warns(pj.multitest.PValueFloorWarning):
        out = pj.write_score_report(results, tmp_path, screen=screen, provenance={"input": {"file": "x.h5ad"}})
    html = unescape(re.sub(r"base64,[A-Za-z0-9+/=]+", "", open(out["report"]["html"]).read()))
    for test, files in out["files"].items():
        assert TEST_QUESTIONS[test] in html
        assert set(files) == {"csv", "json", "png"}
        meta = json.loads(files["json"].read_text())
        assert meta["question"] == TEST_QUESTIONS[test] and meta["provenance"]["input"]["file"] == "x.h5ad"
        assert meta["columns"] == list(pd.read_csv(files["csv"]).columns)
        assert (tmp_path / f"{test}_pairs.png").stat().st_size > 1000
    assert "Observed against expected shifts" in html and "Settings and provenance" in html
    assert "smallest attainable p-value" in html and "n_permutations >= " in html  # the floor, with the B needed
    dis = json.loads(out["files"]["disjointedness"]["json"].read_text())
    assert dis["n_at_p_floor"] >= 1 and dis["notes"] and dis["correction"] == "Benjamini-Hochberg (FDR)"
    neg = int((results["disjointedness"].score < 0).sum())
    assert (f"{neg} pair(s) have a negative MMD²" in html) == (neg > 0)


def test_negative_kl_is_explained(tmp_path):
    from pairint_jax.report import score_section

    res = pj.results.PairScores(("A", "B"), np.array([[0, 1]]), np.array([0.2]), np.array([""], object),
                                test="separability", settings={"condition_kl": {"A": -0.1, "B": 0.4, "A+B": 0.1}})
    paths = pj.save_scores(res, tmp_path, plot=False)
    sec = score_section(res, "separability", paths)
    assert any("negative for 1 condition(s) (A)" in n and "finite-sample bias" in n for n in sec.notes)


def test_jsonable_and_write_table(tmp_path):
    obj = {"a": np.float32(1.5), "b": np.array([1, 2]), "c": float("nan"), "d": np.bool_(True), "e": object(),
           "f": (1, np.inf), 3: None}
    got = jsonable(obj)
    assert got["a"] == 1.5 and got["b"] == [1, 2] and got["c"] is None and got["d"] is True
    assert got["e"].startswith("<object") and got["f"] == [1, None] and got["3"] is None
    json.dumps(got, allow_nan=False)
    csv, side = write_table(pd.DataFrame({"x": [1, 2]}), tmp_path / "sub" / "t.csv", {"what": "test"})
    assert csv.read_text().splitlines() == ["x", "1", "2"]
    assert json.loads(side.read_text()) == {"table": "t.csv", "rows": 2, "columns": ["x"], "what": "test"}


def test_save_scores_lives_at_the_library_edge():
    import importlib

    import pairint_jax.commands.score as score_cmd

    assert not hasattr(score_cmd, "save_scores")
    demo = importlib.import_module("pairint_jax.demo")
    assert "pairint_jax.commands" not in open(demo.__file__).read()


def test_score_report_into_a_relative_folder(screen, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = pj.write_score_report(pj.additivity_scores(screen), "rel/out")
    md = (tmp_path / "rel" / "out" / "report.md").read_text()
    assert "](additivity.png)" in md and out["files"]["additivity"]["csv"].exists()
