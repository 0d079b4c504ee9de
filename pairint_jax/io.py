"""Reading and writing screens: AnnData objects, ``.h5ad``, ``.npz`` and ``.parquet``.

The readers live here; :mod:`pairint_jax.screen` holds the data model and its checks.

* **AnnData** (:func:`from_anndata`, ``.h5ad``): the condition labels are the ``obs``
  column ``groupby`` (default ``"perturbation"``), or two guide columns
  ``groupby=["guide_1", "guide_2"]``. The readout is, by default, ``obsm["X_pca"]``
  when present (as in pertpy and scanpy) and ``X`` otherwise; ``use_rep=`` picks an
  ``obsm`` key (or ``"X"``) and ``layer=`` a layer. A sparse ``X`` or layer stays
  sparse: the screen reads it one group at a time (:mod:`pairint_jax.sparse`). An
  ``.h5ad`` is opened in backed mode, so ``X`` is not loaded when another readout is used.
* **``.npz``**: arrays ``x`` (``[N, ...]``) and ``labels`` (``[N]`` unicode strings).
  It is always loaded with ``allow_pickle=False``: object arrays are refused, never
  unpickled. Other array names can be chosen with ``x_key=`` / ``labels_key=``.
* **``.parquet``**: one row per observation; the label column(s) ``groupby`` and either
  numeric feature columns (all numeric columns but the labels, or those named in
  ``features=``) or one list-valued column named by ``features="embedding"``.

All of them round-trip through :func:`write_screen` / :func:`read_screen`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from pairint_jax._parquet import parquet_features
from pairint_jax._validate import as_anndata, as_screen, moved_keywords
from pairint_jax.labels import as_control_set
from pairint_jax.screen import Screen

__all__ = ["from_anndata", "read_screen", "write_screen", "choose_readout", "labels_from_columns", "DEFAULT_REP"]

#: The representation used by default when ``adata.obsm`` has it (as in pertpy and scanpy).
DEFAULT_REP = "X_pca"


class Readout(NamedTuple):
    """The observations chosen from an AnnData, and why."""

    x: object  # [N, d] dense array or scipy.sparse matrix
    name: str  # "obsm['X_pca']", "X" or "layers['counts']"
    reason: str  # how it was chosen


def choose_readout(adata, *, use_rep: str | None = None, layer: str | None = None) -> Readout:
    """Pick the observations of an AnnData (never densifying a sparse matrix).

    Args:
      adata: an ``anndata.AnnData`` (in memory or backed).
      use_rep: an ``obsm`` key (e.g. ``"X_pca"``), ``"X"`` for ``adata.X``, or None: then
        ``layers[layer]`` if ``layer`` is given, else ``obsm["X_pca"]`` when present, else ``X``.
      layer: a key of ``adata.layers``.

    Returns:
      :class:`Readout` ``(x, name, reason)``.

    Raises:
      ValueError: both ``use_rep`` (other than ``"X"``) and ``layer``; a key that does not
        exist (the message lists those that do); an empty ``X``.
    """
    obsm_keys = list(adata.obsm.keys())
    if layer is not None:
        if use_rep not in (None, "X"):
            raise ValueError(f"pass use_rep={use_rep!r} or layer={layer!r}, not both: a layer is a readout of its own.")
        if layer not in adata.layers:
            raise ValueError(f"layer {layer!r} not found in adata.layers; available: {list(adata.layers.keys())}.")
        return Readout(_in_memory(adata.layers[layer]), f"layers[{layer!r}]", "requested (layer=)")
    if use_rep is None:
        if DEFAULT_REP in adata.obsm:
            return Readout(
                _in_memory(adata.obsm[DEFAULT_REP]), f"obsm[{DEFAULT_REP!r}]",
                f"default: obsm[{DEFAULT_REP!r}] is present (pass use_rep='X' for X)",
            )
        return Readout(_x(adata), "X", f"default: no obsm[{DEFAULT_REP!r}] (available: {obsm_keys})")
    if use_rep == "X":
        return Readout(_x(adata), "X", "requested (use_rep='X')")
    if use_rep not in adata.obsm:
        raise ValueError(
            f"use_rep={use_rep!r} not found: it must be 'X' or a key of adata.obsm (available: {obsm_keys}); "
            "a layer is chosen with layer=."
        )
    return Readout(_in_memory(adata.obsm[use_rep]), f"obsm[{use_rep!r}]", "requested (use_rep=)")


def _x(adata):
    if adata.X is None:
        raise ValueError(f"adata.X is empty; pass use_rep=<obsm key> (available: {list(adata.obsm.keys())}) or layer=.")
    return _in_memory(adata.X)


def _in_memory(x):
    if hasattr(x, "to_memory"):  # backed sparse dataset: loaded as a sparse matrix, not densified
        return x.to_memory()
    if hasattr(x, "to_numpy"):  # DataFrame in obsm
        return x.to_numpy()
    if type(x).__module__.startswith("h5py"):  # backed dense X
        return x[()]
    return x


def labels_from_columns(obs, groupby: str | Sequence[str], *, control: str | Iterable[str] = "ctrl", sep: str = "+"):
    """Condition labels from one label column or from two guide columns of a table.

    With two columns ``[g1, g2]`` each row becomes ``g1 + sep + g2``, where a guide equal
    to a control token counts as no perturbation (``A`` / ``ctrl`` is the single ``A``;
    ``ctrl`` / ``ctrl`` the control). A row with an empty or NaN guide in either column is
    unassigned (None): fill it first (``obs[col].fillna("ctrl")``) if an empty guide
    means "no guide".

    Args:
      obs: a ``pandas.DataFrame`` (``adata.obs``, a parquet table).
      groupby: a column name or a list of one or two column names.
      control, sep: as in :meth:`pairint_jax.Screen.from_arrays`.

    Returns:
      ``[N]`` object array of labels (None where unassigned).

    Raises:
      ValueError: a missing column (the message lists the available ones), more than two
        columns, or (two columns) a guide name containing ``sep``.
    """
    import pandas as pd

    cols = [groupby] if isinstance(groupby, str) else list(groupby)
    if not cols or len(cols) > 2 or any(not isinstance(c, str) for c in cols):
        raise ValueError(
            f"groupby must be a column name or a list of two guide columns, got {groupby!r}."
        )
    missing = [c for c in cols if c not in obs.columns]
    if missing:
        raise ValueError(
            f"column {missing[0]!r} is not in the table (adata.obs); available columns: {list(obs.columns)}. "
            "Pass groupby='<column with the condition labels>' or groupby=['<guide 1>', '<guide 2>']."
        )
    if len(cols) == 1:
        return obs[cols[0]].astype(object).to_numpy()
    controls = as_control_set(control)
    parts = []
    for c in cols:
        col = obs[c].astype(object)
        blank = (col.isna() | (col.astype(str).str.strip() == "")).to_numpy()
        text = col.astype(str).str.strip()
        clash = text[~blank & text.str.contains(sep, regex=False).to_numpy()]
        if len(clash):
            raise ValueError(
                f"column {c!r} has guide names containing the separator {sep!r} (e.g. {clash.iloc[0]!r}); "
                "pass a sep that no guide name contains, e.g. sep='|'."
            )
        parts.append((text.to_numpy(dtype=object), blank, text.isin(controls).to_numpy()))
    (a, blank_a, ctrl_a), (b, blank_b, ctrl_b) = parts
    both = pd.Series(a, dtype=object) + sep + pd.Series(b, dtype=object)
    labels = np.where(ctrl_a & ctrl_b, controls[0], np.where(ctrl_a, b, np.where(ctrl_b, a, both.to_numpy())))
    labels = labels.astype(object)
    labels[blank_a | blank_b] = None
    return labels


@moved_keywords(key="groupby", obsm="use_rep")
def from_anndata(
    adata,
    *,
    groupby: str | Sequence[str] = "perturbation",
    use_rep: str | None = None,
    layer: str | None = None,
    control: str | Iterable[str] = "ctrl",
    sep: str = "+",
    perturbations: Sequence[str] | None = None,
    drop_unassigned: bool = True,
    max_order: int | None = 2,
    warn: bool = True,
) -> Screen:
    """Build a screen from an AnnData object.

    Args:
      adata: an ``anndata.AnnData`` (in memory or backed).
      groupby: the ``adata.obs`` column holding each observation's condition label, or
        two guide columns ``["guide_1", "guide_2"]`` (see :func:`labels_from_columns`).
      use_rep: the readout: an ``obsm`` key or ``"X"``; default ``obsm["X_pca"]`` when
        present, else ``X`` (see :func:`choose_readout`).
      layer: read ``adata.layers[layer]`` instead.
      control, sep, perturbations, drop_unassigned, max_order, warn: as in
        :meth:`pairint_jax.Screen.from_arrays`.

    Returns:
      The :class:`~pairint_jax.Screen`. A sparse ``X`` or layer stays sparse
      (``screen.is_sparse``); only one group at a time is densified when scoring.

    Raises:
      ValueError: the column, ``obsm`` key or layer does not exist (the message lists
        the available ones), or any error of :meth:`~pairint_jax.Screen.from_arrays`.
      TypeError: ``adata`` is not an AnnData; the former keywords ``key=``/``obsm=``
        (now ``groupby=``/``use_rep=``).

    Example:
      >>> screen = from_anndata(adata, groupby="perturbation")            # doctest: +SKIP
      >>> screen = from_anndata(adata, groupby=["guide_1", "guide_2"], layer="counts")  # doctest: +SKIP
    """
    return screen_and_provenance(
        adata, groupby=groupby, use_rep=use_rep, layer=layer, control=control, sep=sep,
        perturbations=perturbations, drop_unassigned=drop_unassigned, max_order=max_order, warn=warn,
    )[0]


def screen_and_provenance(adata, *, groupby, use_rep, layer, control, sep, perturbations=None,
                          drop_unassigned=True, max_order=2, warn=True) -> tuple[Screen, dict]:
    """:func:`from_anndata`, also returning what was read and dropped (for provenance)."""
    as_anndata(adata, caller="from_anndata")
    labels = labels_from_columns(adata.obs, groupby, control=control, sep=sep)
    readout = choose_readout(adata, use_rep=use_rep, layer=layer)
    screen = Screen.from_arrays(
        readout.x, labels, control=control, sep=sep, perturbations=perturbations,
        drop_unassigned=drop_unassigned, max_order=max_order, warn=warn,
    )
    return screen, _provenance(screen, readout.name, readout.reason, groupby, control, int(adata.n_obs))


def _provenance(screen, name, reason, groupby, control, n_read) -> dict:
    return {
        "representation": name,
        "representation_reason": reason,
        "sparse": screen.is_sparse,
        "n_features": int(np.prod(screen.feature_shape)),
        "groupby": groupby if isinstance(groupby, str) else list(groupby),
        "control": list(as_control_set(control)),
        "sep": screen.sep,
        "n_obs_read": int(n_read),
        "n_obs_used": int(screen.x.shape[0]),
        "dropped": {why: int(count) for why, count, _ in screen.dropped},
    }


@moved_keywords(key="groupby", obsm="use_rep")
def read_screen(
    path: str | os.PathLike,
    *,
    groupby: str | Sequence[str] = "perturbation",
    use_rep: str | None = None,
    layer: str | None = None,
    features: str | Sequence[str] | None = None,
    x_key: str = "x",
    labels_key: str = "labels",
    control: str | Iterable[str] = "ctrl",
    sep: str = "+",
    perturbations: Sequence[str] | None = None,
    drop_unassigned: bool = True,
    max_order: int | None = 2,
    warn: bool = True,
) -> Screen:
    """Read a screen from an ``.h5ad``, ``.npz`` or ``.parquet`` file.

    Args:
      path: the file; its suffix selects the format.
      groupby: label column(s) (``.h5ad`` obs, ``.parquet``): one column or two guide columns.
      use_rep, layer: ``.h5ad`` only: the readout, as in :func:`from_anndata` (default
        ``obsm["X_pca"]`` when present, else ``X``).
      features: ``.parquet`` only: the feature columns (numbers or booleans), or one
        column name: a list-valued column (one list of numbers per row) or a numeric one.
        Default: every numeric column besides the labels (boolean and text columns are
        skipped, and named in the readout's description).
      x_key, labels_key: ``.npz`` only: the array names.
      control, sep, perturbations, drop_unassigned, max_order, warn: as in
        :meth:`Screen.from_arrays`.

    Returns:
      The validated :class:`Screen`.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: unknown suffix, missing columns/arrays, object arrays in ``.npz``,
        ``use_rep``/``layer`` for a file other than ``.h5ad``, a ``groupby`` other than the
        default for an ``.npz`` (its labels are an array, not a column), a ``.parquet`` feature
        column holding text (the message names the column), a ragged list column
        (naming the column and row), or any validation error of :meth:`Screen.from_arrays`.
      TypeError: ``features`` neither a column name nor a list of them; the former
        keywords ``key=``/``obsm=`` (now ``groupby=``/``use_rep=``).

    Example:
      >>> screen = read_screen("screen.h5ad", groupby="perturbation", use_rep="X_pca")  # doctest: +SKIP
    """
    return read_screen_and_provenance(
        path, groupby=groupby, use_rep=use_rep, layer=layer, features=features, x_key=x_key,
        labels_key=labels_key, control=control, sep=sep, perturbations=perturbations,
        drop_unassigned=drop_unassigned, max_order=max_order, warn=warn,
    )[0]


def read_screen_and_provenance(path, *, groupby="perturbation", use_rep=None, layer=None, features=None, x_key="x",
                               labels_key="labels", control="ctrl", sep="+", perturbations=None,
                               drop_unassigned=True, max_order=2, warn=True) -> tuple[Screen, dict]:
    """:func:`read_screen`, also returning what was read and dropped (for provenance)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no screen file at {path!r}")
    suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    common = dict(control=control, sep=sep, perturbations=perturbations, drop_unassigned=drop_unassigned,
                  max_order=max_order, warn=warn)
    if suffix == "h5ad":
        import anndata

        adata = anndata.read_h5ad(path, backed="r")  # X stays on disk unless it is the readout
        try:
            screen, info = screen_and_provenance(adata, groupby=groupby, use_rep=use_rep, layer=layer, **common)
        finally:
            adata.file.close()
        return screen, {"file": path, **info}
    if use_rep is not None or layer is not None:
        raise ValueError(f"use_rep= and layer= apply to .h5ad files only, not to {path!r}.")
    if suffix == "npz":
        if groupby != "perturbation":
            raise ValueError(f"groupby= applies to .h5ad and .parquet files; the labels of an .npz screen ({path!r}) "
                             f"are its array {labels_key!r} (labels_key=), so groupby={groupby!r} would be ignored.")
        x, labels = _read_npz(path, x_key, labels_key)
        name = x_key
    elif suffix == "parquet":
        import pandas as pd

        df = pd.read_parquet(path)
        labels = labels_from_columns(df, groupby, control=control, sep=sep)
        label_cols = [groupby] if isinstance(groupby, str) else list(groupby)
        x, name = parquet_features(df, features, label_cols=label_cols, path=path)
    else:
        raise ValueError(f"unknown screen file type {suffix!r} for {path!r}; use .h5ad, .npz or .parquet.")
    screen = Screen.from_arrays(x, labels, **common)
    return screen, {"file": path, **_provenance(screen, name, "the file's readout", groupby, control, len(labels))}


def _read_npz(path, x_key, labels_key):
    with np.load(path, allow_pickle=False) as data:
        names = list(data.keys())
        for need in (x_key, labels_key):
            if need not in names:
                raise ValueError(f"{path!r} has no array {need!r}; arrays present: {names}.")
        try:
            return data[x_key], data[labels_key]
        except ValueError as err:
            if "allow_pickle" not in str(err):
                raise
            raise ValueError(
                f"{path!r} stores an object array, which would need unpickling; pairint_jax never "
                "unpickles files. Save labels as a unicode array: "
                "np.savez(path, x=x, labels=np.asarray(labels, dtype=str))."
            ) from err


def write_screen(screen: Screen, path: str | os.PathLike, *, groupby: str = "perturbation") -> None:
    """Write a screen to ``.h5ad``, ``.npz`` or ``.parquet`` (chosen by suffix).

    Parquet needs vector observations ``[N, d]``; images go to ``.npz`` or ``.h5ad``.
    A sparse screen is written to ``.h5ad`` only (``X`` stays sparse).

    Raises:
      TypeError: ``screen`` is not a :class:`Screen`.
      ValueError: an unknown suffix, images to ``.h5ad``/``.parquet``, a sparse screen to
        another format than ``.h5ad``.
    """
    screen = as_screen(screen, caller="write_screen")
    path = os.fspath(path)
    suffix = path.lower().rsplit(".", 1)[-1]
    labels = np.asarray(screen.labels, dtype=str)
    if screen.is_sparse and suffix != "h5ad":
        raise ValueError(f"a sparse screen is written to .h5ad only (X stays sparse), not to {path!r}.")
    if suffix == "npz":
        np.savez(path, x=np.asarray(screen.x), labels=labels)
    elif suffix == "h5ad":
        import anndata
        import pandas as pd

        if len(screen.feature_shape) != 1:
            raise ValueError("write .h5ad only for vector observations [N, d]; use .npz for images.")
        x = screen.x.csr if screen.is_sparse else np.asarray(screen.x)
        adata = anndata.AnnData(X=x, obs=pd.DataFrame({groupby: labels}, index=[str(i) for i in range(len(labels))]))
        adata.write_h5ad(path)
    elif suffix == "parquet":
        import pandas as pd

        if len(screen.feature_shape) != 1:
            raise ValueError("write .parquet only for vector observations [N, d]; use .npz for images.")
        df = pd.DataFrame(np.asarray(screen.x), columns=[f"f{k}" for k in range(screen.feature_shape[0])])
        df.insert(0, groupby, labels)
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown screen file type {suffix!r}; use .h5ad, .npz or .parquet.")
