"""The side-features CSV of a campaign: one row per perturbation, a name column, numeric columns.

    perturbation,shift,knn_kl,mmd
    A,1.32,1.19,1.34
    B,-1.10,,-1.06          <- an empty cell is a missing value (NaN)

The name column is the one called ``name`` or ``perturbation``, else the first column; every
other column is a feature. Names are read as text (``NA``, ``None``, ``null`` or ``nan`` stay
names), values with Python's ``float`` (correctly rounded, so :func:`write_features` then
:func:`read_features` round-trips bit for bit). ``pj.perturbation_features(screen).to_csv(path)``
writes this format too.

Every problem is one :class:`FeaturesFileError` line naming the file (and the row, column or
names at fault) and the fix.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pairint_jax._validate import listing, name_list

__all__ = ["FeaturesFileError", "NAME_COLUMNS", "read_features", "read_features_frame", "write_features"]

#: Column names taken as the name column (else the first column is).
NAME_COLUMNS = ("name", "perturbation")

#: Spellings of a missing value in a feature cell (never applied to names).
MISSING = frozenset({"", "nan", "NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>"})


class FeaturesFileError(ValueError):
    """A features CSV that cannot be used: the message names the file and the fix."""


def read_features_frame(path, names: Sequence[str]) -> pd.DataFrame:
    """The features CSV at ``path`` as a float64 ``DataFrame`` ``[n, f]`` in the order of ``names``.

    Args:
      path: the CSV file (module docstring for the format).
      names: the ``n`` perturbation names of the campaign; the file must list each exactly once.

    Returns:
      ``DataFrame`` indexed by ``names`` (index name ``"perturbation"``), one float64
      column per feature column of the file, NaN for an empty (missing) cell.

    Raises:
      FeaturesFileError: (a ``ValueError``) an empty file, a header without rows, no feature
        column, an empty or duplicated name, a name not in ``names``, perturbations of
        ``names`` missing from the file (up to 5 listed), or a cell that is not a finite
        number (its column, row and text named).
      FileNotFoundError: no file at ``path``.
      TypeError: ``names`` is not a sequence of non-empty strings.
    """
    wanted = name_list("names", names)
    where = f"features file {os.fspath(path)}"
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise FeaturesFileError(f"{where} is empty; write one row per perturbation: a name column, then numeric "
                                "feature columns (e.g. `pairint features SCREEN --out features.csv`).") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FeaturesFileError(f"{where}: cannot read it as a CSV ({' '.join(str(err).split())}).") from None
    if len(df) == 0:
        raise FeaturesFileError(f"{where} has a header but no rows; list one perturbation per row.")
    name_col = next((c for c in df.columns if c.strip() in NAME_COLUMNS), df.columns[0])
    feature_cols = [c for c in df.columns if c != name_col]
    if not feature_cols:
        raise FeaturesFileError(f"{where} has only the name column {name_col!r}; add numeric feature columns.")
    rows = [n.strip() for n in df[name_col]]
    _check_rows(where, name_col, rows, wanted)
    values = np.stack([_numeric(where, col, df[col]) for col in feature_cols], axis=1)
    frame = pd.DataFrame(values, index=pd.Index(rows, name="perturbation"), columns=[c.strip() for c in feature_cols])
    return frame.loc[wanted]


def read_features(path, names: Sequence[str]) -> np.ndarray:
    """The features CSV at ``path`` as a float64 array ``[n, f]``, row ``t`` for ``names[t]``
    (NaN for an empty cell); :func:`read_features_frame` has the column names, arguments and errors."""
    return read_features_frame(path, names).to_numpy(np.float64)


def _check_rows(where: str, name_col: str, rows: list[str], wanted: list[str]) -> None:
    empty = [r + 2 for r, n in enumerate(rows) if not n]
    if empty:
        raise FeaturesFileError(f"{where}, row {empty[0]}: the name ({name_col!r}) is empty; give every row a name.")
    dup = [n for n in dict.fromkeys(rows) if rows.count(n) > 1]
    if dup:
        raise FeaturesFileError(f"{where}: perturbation {dup[0]!r} is listed more than once; keep one row per name.")
    known = set(wanted)
    unknown = [n for n in rows if n not in known]
    if unknown:
        raise FeaturesFileError(
            f"{where}: {len(unknown)} name(s) in column {name_col!r} are not perturbations of the campaign: "
            f"{listing(unknown)}; remove those rows or check the spelling."
        )
    have = set(rows)
    missing = [n for n in wanted if n not in have]
    if missing:
        raise FeaturesFileError(
            f"{where}: {len(missing)} perturbation(s) of the campaign have no row: {listing(missing)}; add a row "
            "for each (leave its cells empty if unmeasured)."
        )


def _numeric(where: str, col: str, cells: pd.Series) -> np.ndarray:
    out = np.empty(len(cells))
    for row, text in enumerate(cells):
        text = text.strip()
        try:
            out[row] = math.nan if text in MISSING else float(text)
        except ValueError:
            raise FeaturesFileError(
                f"{where}: column {col.strip()!r} is not numeric (row {row + 2}: {text!r}); every column but the "
                "name column must hold numbers (empty = missing)."
            ) from None
        if math.isinf(out[row]):
            raise FeaturesFileError(f"{where}: column {col.strip()!r}, row {row + 2}: {text!r} is not finite; "
                                    "leave the cell empty for a missing value.")
    return out


def write_features(features, names: Sequence[str], path, *, columns: Sequence[str] | None = None) -> None:
    """Write ``features`` as a features CSV that :func:`read_features` reads back exactly.

    Args:
      features: a ``DataFrame`` indexed by perturbation name (e.g. from
        :func:`pairint_jax.perturbation_features`; its rows are written in the order of
        ``names``), or an ``[n, f]`` array whose row ``t`` belongs to ``names[t]``.
      names: the ``n`` perturbation names.
      path: the CSV file to write.
      columns: the ``f`` column names for an array (default ``feature_0``, ...); a
        ``DataFrame`` keeps its own.

    Raises:
      ValueError: a shape that does not match ``names``/``columns``, a ``DataFrame`` that
        lacks some of ``names``, or an infinite value.
      TypeError: ``names`` is not a sequence of non-empty strings.
    """
    wanted = name_list("names", names)
    if isinstance(features, pd.DataFrame):
        absent = [n for n in wanted if n not in set(map(str, features.index))]
        if absent:
            raise ValueError(f"features has no row for {len(absent)} of the names: {listing(absent)}.")
        frame = features.set_axis([str(i).strip() for i in features.index], axis=0)
        columns, values = [str(c) for c in frame.columns], frame.loc[wanted].to_numpy(np.float64)
    else:
        values = np.asarray(features, np.float64)
        if values.ndim != 2 or values.shape[0] != len(wanted):
            raise ValueError(f"features must be [n, f] with n = {len(wanted)} names, got shape {values.shape}.")
        columns = [f"feature_{t}" for t in range(values.shape[1])] if columns is None else [str(c) for c in columns]
    if len(columns) != values.shape[1] or not columns:
        raise ValueError(f"{len(columns)} column name(s) for {values.shape[1]} feature column(s); give one per column.")
    if np.isinf(values).any():
        raise ValueError("features holds an infinite value; use NaN for a missing one.")
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["perturbation", *columns])
        for name, row in zip(wanted, values):
            out.writerow([name, *("" if math.isnan(v) else repr(float(v)) for v in row)])
