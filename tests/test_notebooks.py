"""Every numbered notebook runs top to bottom at small settings (``PAIRINT_NB_SMALL=1``).

Each notebook is executed with nbclient in a fresh kernel of the current Python
(``kernel_name="python3"``: jupyter_client maps the ``python`` of the kernelspec to
``sys.executable``), with the notebook's folder as the working directory. Any cell that
raises fails the test. The committed ``.ipynb`` files must also match their sources in
``notebooks/_nb*.py`` (regenerate with ``python notebooks/_build.py``) and carry no outputs.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_exist_and_match_their_sources():
    assert [p.stem for p in NOTEBOOKS][:3] == ["01_quickstart", "02_paper_synthetic", "03_real_screens"]
    sys.path.insert(0, str(NB_DIR))
    try:
        build = importlib.import_module("_build")
        assert sorted(build.SOURCES) == [p.stem for p in NOTEBOOKS]
        for path in NOTEBOOKS:
            want = build.build(path.stem, importlib.import_module(build.SOURCES[path.stem]).CELLS)
            got = nbformat.read(path, as_version=4)
            assert [(c.cell_type, c.source) for c in got.cells] == [(c.cell_type, c.source) for c in want.cells], (
                f"{path.name} differs from its source; run `python notebooks/_build.py`"
            )
            assert all(not c.get("outputs") for c in got.cells if c.cell_type == "code"), f"{path.name} has outputs"
    finally:
        sys.path.remove(str(NB_DIR))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_small_settings(path, monkeypatch):
    monkeypatch.setenv("PAIRINT_NB_SMALL", "1")
    # the kernel must import this checkout even when the package is not installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    corum = ROOT.parent / "shared" / "data" / "known_interactions" / "corum_core_human_complexes.tsv"
    if corum.is_file() and "PAIRINT_CORUM" not in os.environ:
        monkeypatch.setenv("PAIRINT_CORUM", str(corum))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
