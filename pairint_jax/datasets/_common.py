"""Shared plumbing of the dataset loaders: bundled files, result types, row ordering."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pairint_jax.screen import Screen

__all__ = ["DATA_DIR", "GeneMatrix", "ScreenInfo", "bundled", "check_columns", "resolve_dtype", "build_screen"]

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


class ScreenInfo(NamedTuple):
    """What a screen loader knows beyond the :class:`~pairint_jax.Screen` itself.

    Attributes:
      obs: one row per observation, aligned with ``screen.x`` (same order): the
        condition label plus the dataset's own columns (guides, orientation, ...).
      features: the ``d`` names of the readout columns.
      source: a one-line provenance note (paper, repository and commit).
    """

    obs: pd.DataFrame
    features: tuple[str, ...]
    source: str


class GeneMatrix(NamedTuple):
    """A symmetric gene x gene matrix; unpacks as ``genes, matrix = ...``.

    Attributes:
      genes: the ``n`` gene names, in row/column order.
      matrix: ``[n, n]`` float64, symmetric, NaN on the diagonal.
    """

    genes: tuple[str, ...]
    matrix: np.ndarray


def bundled(name: str) -> pathlib.Path:
    """Path of a file bundled in ``pairint_jax/datasets/data``."""
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the bundled data file {name!r} is missing from {DATA_DIR}; reinstall pairint_jax, "
            "regenerate it with `python -m pairint_jax.datasets._prepare --shared <shared/data>`, "
            "or pass path= to the loader with the raw source file."
        )
    return path


def user_path(path) -> pathlib.Path:
    """A user-given path, checked to exist."""
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist; pass the raw source file (see the loader's docstring).")
    return p


def check_columns(frame: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the missing columns of ``frame``."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks the column(s) {missing}; found {list(frame.columns)[:12]}. "
            "Pass the raw file described in the loader's docstring."
        )


def resolve_dtype(dtype) -> np.dtype:
    """float32 (default) or float64; anything else is a TypeError."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}.")
    return dt


def build_screen(
    x: np.ndarray,
    labels: Sequence[str],
    obs: pd.DataFrame,
    *,
    perturbations: Sequence[str] | None,
    dtype: np.dtype,
    features: Sequence[str],
    source: str,
    return_info: bool,
    warn: bool = True,
):
    """``Screen.from_arrays`` plus, optionally, the observation table in the screen's row order.

    Rows are put in the screen's canonical group order first (a stable sort by group,
    exactly what ``Screen.from_arrays`` does), so ``obs`` lines up with ``screen.x``.
    """
    x = np.ascontiguousarray(x, dtype=dtype)
    labels = np.asarray(labels, dtype=object)
    screen = Screen.from_arrays(x, labels, perturbations=perturbations, warn=warn)
    group = {lab: screen.group_index(lab) for lab in pd.unique(labels)}
    order = np.argsort(np.asarray([group[lab] for lab in labels]), kind="stable")
    # from_arrays sorted the same way; make the promise explicit and cheap to check.
    if not np.array_equal(screen.x, x[order]):  # pragma: no cover - guards a foundation change
        raise RuntimeError("row order of Screen.from_arrays changed; datasets._common.build_screen needs updating")
    if not return_info:
        return screen
    table = obs.iloc[order].reset_index(drop=True)
    table.insert(0, "condition", screen.labels)
    return screen, ScreenInfo(obs=table, features=tuple(features), source=source)
