"""Write the numbered notebooks from the cell sources below (no outputs).

The notebooks are the product; this script is how they are kept tidy and reviewable.
Edit a notebook's cells here, then regenerate::

    python notebooks/_build.py                   # writes notebooks/0*_*.ipynb
    python notebooks/_build.py 03_real_screens   # only one

Each notebook starts with a cell of constants. ``PAIRINT_NB_SMALL=1`` in the environment
selects small settings (used by ``tests/test_notebooks.py``); without it the notebook runs
the full settings, which take minutes on a CPU.
"""

from __future__ import annotations

import pathlib
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: notebook name -> module holding its ``CELLS`` list of ("md" | "code", source).
SOURCES = {
    "01_quickstart": "_nb01",
    "02_paper_synthetic": "_nb02",
    "03_real_screens": "_nb03",
    "04_active_discovery": "_nb04",
    "05_lab_campaign": "_nb05",
    "06_perturbseq": "_nb06",
}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        nb.cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    for k, cell in enumerate(nb.cells):  # stable ids: clean diffs when regenerated
        cell["id"] = f"{name[:2]}-{k:02d}"
    return nb


def main() -> None:
    import importlib

    only = set(sys.argv[1:])
    for name, module in SOURCES.items():
        if only and name not in only:
            continue
        nb = build(name, importlib.import_module(module).CELLS)
        nbformat.validate(nb)
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        print(f"wrote {path.relative_to(HERE.parent)} ({len(nb.cells)} cells)")


if __name__ == "__main__":
    main()
