"""Reading and writing screens: ``.h5ad``, ``.npz`` and ``.parquet``.

File formats (all round-trip through :func:`write_screen` / :func:`read_screen`):

* ``.h5ad``: an AnnData file; the condition labels are the ``obs`` column ``key``
  (default ``"perturbation"``) and the readout is ``X`` or ``obsm[obsm]``.
* ``.npz``: arrays ``x`` (``[N, ...]``) and ``labels`` (``[N]`` unicode strings).
  It is always loaded with ``allow_pickle=False``: object arrays are refused, never
  unpickled. Other array names can be chosen with ``x_key=`` / ``labels_key=``.
* ``.parquet``: one row per observation; the label column ``key`` and either numeric
  feature columns (all numeric columns but the label, or those named in
  ``features=``) or one list-valued column named by ``features="embedding"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from pairint_jax.screen import Screen

__all__ = ["read_screen", "write_screen"]


def read_screen(
    path: str | os.PathLike,
    *,
    key: str = "perturbation",
    obsm: str | None = None,
    features: str | Sequence[str] | None = None,
    x_key: str = "x",
    labels_key: str = "labels",
    control: str | Iterable[str] = "ctrl",
    sep: str = "+",
    perturbations: Sequence[str] | None = None,
    warn: bool = True,
) -> Screen:
    """Read a screen from an ``.h5ad``, ``.npz`` or ``.parquet`` file.

    Args:
      path: the file; its suffix selects the format.
      key: label column (``.h5ad`` obs column, ``.parquet`` column).
      obsm: ``.h5ad`` only: read the readout from ``obsm[obsm]`` instead of ``X``.
      features: ``.parquet`` only: the feature columns, or one list-valued column name.
      x_key, labels_key: ``.npz`` only: the array names.
      control, sep, perturbations, warn: as in :meth:`Screen.from_arrays`.

    Returns:
      The validated :class:`Screen`.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: unknown suffix, missing columns/arrays, object arrays in ``.npz``,
        or any validation error of :meth:`Screen.from_arrays`.

    Example:
      >>> screen = read_screen("screen.h5ad", key="perturbation", obsm="X_pca")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no screen file at {path!r}")
    suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    common = dict(control=control, sep=sep, perturbations=perturbations, warn=warn)
    if suffix == "h5ad":
        import anndata

        adata = anndata.read_h5ad(path)
        return Screen.from_anndata(adata, key=key, obsm=obsm, **common)
    if suffix == "npz":
        with np.load(path, allow_pickle=False) as data:
            names = list(data.keys())
            for need in (x_key, labels_key):
                if need not in names:
                    raise ValueError(f"{path!r} has no array {need!r}; arrays present: {names}.")
            try:
                x = data[x_key]
                labels = data[labels_key]
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise
                raise ValueError(
                    f"{path!r} stores an object array, which would need unpickling; pairint_jax never "
                    "unpickles files. Save labels as a unicode array: "
                    "np.savez(path, x=x, labels=np.asarray(labels, dtype=str))."
                ) from err
        return Screen.from_arrays(x, labels, **common)
    if suffix == "parquet":
        import pandas as pd

        df = pd.read_parquet(path)
        if key not in df.columns:
            raise ValueError(f"column {key!r} is not in {path!r}; columns: {list(df.columns)[:20]}. Pass key=.")
        labels = df[key].astype(object).to_numpy()
        if isinstance(features, str):
            if features not in df.columns:
                raise ValueError(f"feature column {features!r} is not in {path!r}.")
            x = np.stack([np.asarray(v, dtype=np.float64) for v in df[features].to_numpy()])
        else:
            cols = list(features) if features is not None else [
                c for c in df.columns if c != key and pd.api.types.is_numeric_dtype(df[c])
            ]
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise ValueError(f"feature columns {missing} are not in {path!r}.")
            if not cols:
                raise ValueError(f"{path!r} has no numeric feature columns besides {key!r}.")
            x = df[cols].to_numpy()
        return Screen.from_arrays(x, labels, **common)
    raise ValueError(f"unknown screen file type {suffix!r} for {path!r}; use .h5ad, .npz or .parquet.")


def write_screen(screen: Screen, path: str | os.PathLike, *, key: str = "perturbation") -> None:
    """Write a screen to ``.h5ad``, ``.npz`` or ``.parquet`` (chosen by suffix).

    Parquet needs vector observations ``[N, d]``; images go to ``.npz`` or ``.h5ad``
    (stored flattened in ``X`` with the shape in ``uns``, for ``.h5ad``).
    """
    path = os.fspath(path)
    suffix = path.lower().rsplit(".", 1)[-1]
    labels = np.asarray(screen.labels, dtype=str)
    if suffix == "npz":
        np.savez(path, x=np.asarray(screen.x), labels=labels)
    elif suffix == "h5ad":
        import anndata
        import pandas as pd

        if len(screen.feature_shape) != 1:
            raise ValueError("write .h5ad only for vector observations [N, d]; use .npz for images.")
        adata = anndata.AnnData(
            X=np.asarray(screen.x), obs=pd.DataFrame({key: labels}, index=[str(i) for i in range(len(labels))])
        )
        adata.write_h5ad(path)
    elif suffix == "parquet":
        import pandas as pd

        if len(screen.feature_shape) != 1:
            raise ValueError("write .parquet only for vector observations [N, d]; use .npz for images.")
        df = pd.DataFrame(np.asarray(screen.x), columns=[f"f{k}" for k in range(screen.feature_shape[0])])
        df.insert(0, key, labels)
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown screen file type {suffix!r}; use .h5ad, .npz or .parquet.")
