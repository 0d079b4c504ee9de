"""Writing results to disk: every CSV gets a JSON next to it that says how it was made.

An edge of the library (nothing numerical imports it). ``pairint score``, ``pairint demo``
and :func:`pairint_jax.write_score_report` all write through :func:`save_scores` and
:func:`write_table`, so a table never travels without its settings and provenance.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from pairint_jax.multitest import CORRECTIONS, PValueFloorWarning
from pairint_jax.results import TEST_QUESTIONS

__all__ = ["save_scores", "write_table", "write_json", "jsonable"]


def jsonable(obj, *, max_items: int = 10_000):
    """``obj`` as plain JSON types: NumPy scalars and arrays become numbers and lists, NaN and
    infinities become None (JSON has neither), other objects their ``repr``."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, max_items=max_items) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v, max_items=max_items) for v in list(obj)[:max_items]]
    if isinstance(obj, np.ndarray):
        if obj.size > max_items:
            return f"<array shape={list(obj.shape)} dtype={obj.dtype}>"
        return jsonable(obj.tolist(), max_items=max_items)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    text = repr(obj)
    return text if len(text) <= 300 else text[:297] + "..."


def write_json(path: str | os.PathLike, obj) -> pathlib.Path:
    """Write :func:`jsonable` ``(obj)`` to ``path`` (indented, UTF-8); returns the path."""
    path = pathlib.Path(path)
    path.write_text(json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_table(df, path: str | os.PathLike, meta: Mapping | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``df`` to ``path`` (CSV, no index) and ``meta`` plus the column names to ``path`` with ``.json``.

    Returns:
      ``(csv_path, json_path)``.
    """
    csv = pathlib.Path(path)
    csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    side = write_json(csv.with_suffix(".json"), {"table": csv.name, "rows": len(df), "columns": list(map(str, df.columns)),
                                                 **dict(meta or {})})
    return csv, side


def _settings_for_json(settings: Mapping) -> dict:
    return {k: v for k, v in settings.items() if k != "provenance"}


def save_scores(
    res,
    out_dir: str | os.PathLike,
    name: str | None = None,
    *,
    title: str | None = None,
    alpha: float = 0.05,
    all_pairs: bool = False,
    groups=None,
    highlight: Iterable[tuple[str, str]] = (),
    highlight_label: str = "highlighted pair",
    plot: bool = True,
    provenance: Mapping | None = None,
    dpi: int = 130,
) -> dict[str, pathlib.Path]:
    """Write one test's results: ``<name>.csv``, ``<name>.json`` and the heatmap ``<name>.png``.

    The CSV is ``res.to_frame(alpha=alpha, all_pairs=all_pairs)`` (measured pairs, best
    first, with ``significant`` and ``p_floor`` where the test has p-values). The JSON holds
    the test, the question it asks, ``alpha``, the correction, counts of measured, scored and
    significant pairs, the settings and the provenance (``res.settings["provenance"]``
    updated with ``provenance``, e.g. the input file).

    Args:
      res: a :class:`~pairint_jax.PairScores`.
      out_dir: the folder (created if needed).
      name: the file stem; default the test's name.
      title: the heatmap's title.
      alpha: the level of the ``significant`` column.
      all_pairs: list every pair in the CSV, not only the measured ones.
      groups, highlight, highlight_label: passed to :func:`pairint_jax.pl.heatmap`.
      plot: write the PNG heatmap (needs matplotlib).
      provenance: extra provenance entries.
      dpi: PNG resolution.

    Returns:
      ``{"csv": path, "json": path[, "png": path]}``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or res.test or "scores"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PValueFloorWarning)
        df = res.to_frame(alpha=alpha, all_pairs=all_pairs)
    notes = [str(w.message) for w in caught if issubclass(w.category, PValueFloorWarning)]
    for w in caught:  # hand the warnings on to the caller (the CLI prints them)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    measured = res.is_measured
    meta = {
        "test": res.test,
        "question": TEST_QUESTIONS.get(res.test, ""),
        "alpha": alpha,
        "correction": CORRECTIONS[res.correction] if "q_value" in res.columns else None,
        "n_perturbations": res.n,
        "n_pairs_measured": int(measured.sum()),
        "n_pairs_scored": int(np.isfinite(res.score).sum()),
        "n_significant": int(df["significant"].sum()) if "significant" in df.columns else None,
        "n_at_p_floor": int(df["p_floor"].sum()) if "p_floor" in df.columns else None,
        "notes": notes,
        "settings": _settings_for_json(res.settings),
        "provenance": {**dict(res.settings.get("provenance", {})), **dict(provenance or {})},
    }
    csv, side = write_table(df, out / f"{name}.csv", meta)
    paths = {"csv": csv, "json": side}
    if plot:
        from pairint_jax.pl import heatmap

        png = out / f"{name}.png"
        heatmap(res, groups=groups, highlight=list(highlight), title=title, highlight_label=highlight_label, save=png, dpi=dpi)
        paths["png"] = png
    return paths
