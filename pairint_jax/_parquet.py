"""The feature columns of a ``.parquet`` screen table, one row per observation.

:func:`pairint_jax.io.read_screen` reads the label column(s) and asks
:func:`parquet_features` for the features: numeric columns, or one list-valued column (one
list of numbers per row). Columns that hold something else (text, lists among several
columns, ragged lists) are named in the error together with the file, never reported as a
generic "ragged (object array)".
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def parquet_features(df, features, *, label_cols, path) -> tuple[np.ndarray, str]:
    """``(x [N, d] float64, readout description)`` from the feature columns of a table.

    Args:
      df: the table (``pandas.DataFrame``) read from ``path``.
      features: None (every numeric column besides ``label_cols``; boolean and text
        columns are skipped and named in the description), a list of columns (numbers or
        booleans), or one column name (a list-valued column, or a numeric one).
      label_cols: the label column(s), never features.
      path: the file, for the messages.

    Raises:
      ValueError: a missing column, a column holding text (or lists among several
        columns), a ragged list column; each message names the column and the file.
      TypeError: ``features`` neither a column name nor a list of them.
    """
    import pandas as pd

    if features is not None and not isinstance(features, str):
        if isinstance(features, (bytes, dict)) or not isinstance(features, Iterable):
            raise TypeError(
                f"features must be a column name or a list of column names, got {features!r} "
                f"({type(features).__name__})."
            )
        features = list(features)
        if any(not isinstance(c, str) for c in features):
            raise TypeError(f"features must name columns as strings, got {features!r}.")
    if isinstance(features, str):
        if features not in df.columns:
            raise ValueError(f"feature column {features!r} is not in {path!r}; columns: {list(df.columns)}.")
        return _list_column(df[features], features, path), features
    if features is None:
        cols, skipped = [], []
        for c in df.columns:
            if c in label_cols:
                continue
            if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]):
                cols.append(c)
            else:
                skipped.append(f"{c!r} ({_kind(df[c])})")
        if not cols:
            raise ValueError(
                f"{path!r} has no numeric feature columns besides {label_cols}"
                f"{' (skipped: ' + ', '.join(skipped) + ')' if skipped else ''}; name them with features=[...], or "
                "one list-valued column with features='<column>'."
            )
        name = f"{len(cols)} numeric column{'' if len(cols) == 1 else 's'}"
        if skipped:
            name += f" (skipped: {', '.join(skipped)})"
        return df[cols].to_numpy(dtype=np.float64), name
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ValueError(f"feature columns {missing} are not in {path!r}; columns: {list(df.columns)}.")
    if not features:
        raise ValueError("features is an empty list; name at least one feature column.")
    for c in features:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise ValueError(
                f"feature column {c!r} of {path!r} holds {_kind(col)}, not numbers; drop it from features="
                + (f", or read it alone as a list-valued column with features={c!r}" if _kind(col) == "lists" else "")
                + "."
            )
    return df[features].to_numpy(dtype=np.float64), f"feature columns {features}"


def _kind(col) -> str:
    """What a non-numeric column holds, in words (for messages)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return "booleans"
    sample = next((v for v in col if v is not None and not (isinstance(v, float) and v != v)), None)
    if isinstance(sample, str):
        return "text"
    if isinstance(sample, (list, tuple, np.ndarray)):
        return "lists"
    return f"values of type {type(sample).__name__}" if sample is not None else "only missing values"


def _list_column(col, name: str, path: str) -> np.ndarray:
    """``[N, d]`` float64 from one column: a numeric column (one feature) or a list-valued one."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64)[:, None]
    values = col.to_numpy()
    lengths = np.asarray([np.size(v) if isinstance(v, (list, tuple, np.ndarray)) else -1 for v in values])
    bad = np.flatnonzero(lengths < 0)
    if len(bad):
        r = int(bad[0])
        raise ValueError(
            f"feature column {name!r} of {path!r} must hold one list of numbers per row, but row {r} holds "
            f"{values[r]!r} ({_kind(col.iloc[r:r + 1])})."
        )
    ragged = np.flatnonzero(lengths != lengths[0])
    if len(ragged):
        r = int(ragged[0])
        raise ValueError(
            f"feature column {name!r} of {path!r} is ragged: row 0 has {lengths[0]} values but row {r} has "
            f"{lengths[r]}; every observation needs the same number of features."
        )
    try:
        return np.stack([np.asarray(v, dtype=np.float64) for v in values])
    except (TypeError, ValueError) as err:
        raise ValueError(f"feature column {name!r} of {path!r} holds lists with non-numeric values ({err}).") from err
