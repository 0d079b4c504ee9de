"""Regenerate the bundled files in ``pairint_jax/datasets/data/`` from the raw sources.

Run from the repository root (the raw files are the project's read-only copies, see
``pairint_jax/datasets/data/README.md`` for where each one comes from)::

    python -m pairint_jax.datasets._prepare --shared ../shared/data

The output is deterministic (gzip without a timestamp, fixed row order, numbers
written with Python's round-trip ``repr``), so re-running it reproduces the bundled
files byte for byte; ``tests/test_datasets.py`` checks that the loaders give the
same values from the bundled files as from the raw ones.

What is done to each source (nothing else):

* ``bigpapi_lfcs.csv.gz``: Big Papi guide-pair log2 fold changes, copied verbatim.
* ``slkb_22rv1_counts.csv.gz``: SLKB 22Rv1 guide-pair read counts; the
  ``count_replicates`` string (``T0_1;T0_2;T12_1;T12_2``) is split into four integer
  columns, and the constant columns (cell line, study, conditions) are dropped.
* ``slkb_22rv1_scores.csv``: the authors' SL scores, columns ``gene_1, gene_2, SL_score``.
* ``norman2019_gi.csv.gz``: Norman 2019 ``processed_emap.csv`` (112 x 112 GI map), copied
  verbatim (gzipped).
* ``korkut2015_rppa.csv``: Korkut 2015 RPPA profiles: the 89 condition labels of
  ``expr_index.txt``, the drugs and doses parsed from them, and the first 87 columns of
  ``expr.csv`` (82 proteins + 5 phenotypes) named from ``node_Index.csv``; the 12
  drug-activity columns are dropped (they encode the perturbation, not a readout).
"""

from __future__ import annotations

import argparse
import gzip
import io
import pathlib
import shutil

import numpy as np
import pandas as pd

__all__ = ["prepare"]

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"

#: The files this script writes (the README next to them is written by hand).
BUNDLED = (
    "bigpapi_lfcs.csv.gz",
    "slkb_22rv1_counts.csv.gz",
    "slkb_22rv1_scores.csv",
    "norman2019_gi.csv.gz",
    "korkut2015_rppa.csv",
)

#: Korkut 2015 drug code -> target-activity node of CellBox's ``pert.csv`` (checked below).
KORKUT_TARGETS = {
    "901": "MEK", "AK": "AKT", "HN": "HDAC", "NT": "MDM2", "P6": "JAK", "PLX": "BRAFm",
    "RO": "PKC", "RY": "CDK4", "SR": "SRC", "ST": "STAT3", "Tm": "mTOR", "ZS": "PI3K",
}  # fmt: skip


def _write_gz_csv(frame: pd.DataFrame, path: pathlib.Path) -> None:
    text = frame.to_csv(index=False, lineterminator="\n").encode()
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
        gz.write(text)


def _prepare_bigpapi(shared: pathlib.Path, out: pathlib.Path) -> None:
    shutil.copyfile(shared / "najm2018_bigpapi" / "bigpapi_lfcs.csv.gz", out / "bigpapi_lfcs.csv.gz")


def _prepare_slkb(shared: pathlib.Path, out: pathlib.Path) -> None:
    raw = pd.read_csv(shared / "slkb_demo_22Rv1" / "counts_ref.csv.gz")
    if set(raw["study_conditions"]) != {"T0_1;T0_2;T12_1;T12_2"}:
        raise ValueError("unexpected SLKB study_conditions; expected 'T0_1;T0_2;T12_1;T12_2' on every row")
    counts = raw["count_replicates"].str.split(";", expand=True).astype(np.int64)
    counts.columns = ["T0_1", "T0_2", "T12_1", "T12_2"]
    frame = pd.concat([raw[["guide_1", "guide_2", "gene_1", "gene_2"]], counts], axis=1)
    _write_gz_csv(frame, out / "slkb_22rv1_counts.csv.gz")
    scores = pd.read_csv(shared / "slkb_demo_22Rv1" / "score_ref.csv")
    scores[["gene_1", "gene_2", "SL_score"]].to_csv(out / "slkb_22rv1_scores.csv", index=False, lineterminator="\n")


def _prepare_norman(shared: pathlib.Path, out: pathlib.Path) -> None:
    text = (shared / "norman2019_crispra_gi" / "processed_emap.csv").read_bytes()
    with open(out / "norman2019_gi.csv.gz", "wb") as fh, gzip.GzipFile(
        filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9
    ) as gz:
        gz.write(text)


def korkut_raw_frame(folder: pathlib.Path) -> pd.DataFrame:
    """The Korkut 2015 table (one row per condition) from CellBox's raw files in ``folder``."""
    folder = pathlib.Path(folder)
    nodes = pd.read_csv(folder / "node_Index.csv", header=None)[0].astype(str).tolist()
    expr = pd.read_csv(folder / "expr.csv", header=None).to_numpy(np.float64)
    pert = pd.read_csv(folder / "pert.csv", header=None).to_numpy(np.float64)
    index = pd.read_csv(io.StringIO((folder / "expr_index.txt").read_text()), sep=r"\s+", header=None)
    labels = index[0].astype(str).tolist()
    if expr.shape != (len(labels), len(nodes)) or pert.shape != expr.shape:
        raise ValueError(f"Korkut files disagree: expr {expr.shape}, pert {pert.shape}, {len(labels)} labels, {len(nodes)} nodes")
    n_read = 87
    drug_a, dose_a, drug_b, dose_b = [], [], [], []
    for r, lab in enumerate(labels):
        parts = [p.split("|") for p in lab.split(",")]
        if len(parts) not in (1, 2):
            raise ValueError(f"cannot parse Korkut condition {lab!r}")
        # Check the drug -> target map against the perturbation encoding of this row.
        hit = {nodes[c][1:] for c in np.flatnonzero(pert[r, n_read:] != 0) + n_read}
        want = {KORKUT_TARGETS[code] for code, _ in parts}
        if hit != want:
            raise ValueError(f"Korkut row {r} ({lab!r}): pert.csv targets {hit}, expected {want}")
        drug_a.append(parts[0][0])
        dose_a.append(float(parts[0][1]))
        drug_b.append(parts[1][0] if len(parts) == 2 else "")
        dose_b.append(float(parts[1][1]) if len(parts) == 2 else np.nan)
    frame = pd.DataFrame(
        {"condition": labels, "drug_a": drug_a, "dose_a": dose_a, "drug_b": drug_b, "dose_b": dose_b}
    )
    values = pd.DataFrame(expr[:, :n_read], columns=nodes[:n_read])
    return pd.concat([frame, values], axis=1)


def _prepare_korkut(shared: pathlib.Path, out: pathlib.Path) -> None:
    frame = korkut_raw_frame(shared / "korkut2015_cellbox_rppa")
    frame.to_csv(out / "korkut2015_rppa.csv", index=False, lineterminator="\n")


def prepare(shared: str | pathlib.Path, out: str | pathlib.Path = DATA_DIR) -> list[pathlib.Path]:
    """Write every bundled file from the raw data folder ``shared`` into ``out``.

    Args:
      shared: the folder holding ``najm2018_bigpapi/``, ``slkb_demo_22Rv1/``,
        ``norman2019_crispra_gi/`` and ``korkut2015_cellbox_rppa/``.
      out: the destination folder (default: the package's ``datasets/data``).

    Returns:
      The paths written.
    """
    shared, out = pathlib.Path(shared), pathlib.Path(out)
    missing = [d for d in ("najm2018_bigpapi", "slkb_demo_22Rv1", "norman2019_crispra_gi", "korkut2015_cellbox_rppa")
               if not (shared / d).is_dir()]  # fmt: skip
    if missing:
        raise ValueError(f"{shared} lacks the raw data folders {missing}; pass --shared <path to shared/data>.")
    out.mkdir(parents=True, exist_ok=True)
    _prepare_bigpapi(shared, out)
    _prepare_slkb(shared, out)
    _prepare_norman(shared, out)
    _prepare_korkut(shared, out)
    return [out / name for name in BUNDLED]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared/data", help="raw data folder (default ../shared/data)")
    parser.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the package data folder)")
    args = parser.parse_args(argv)
    for p in prepare(args.shared, args.out):
        print(f"{p.stat().st_size:>9,d}  {p}")


if __name__ == "__main__":
    main()
