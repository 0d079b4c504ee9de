"""Score an AnnData in place, scanpy style: :func:`score_adata`.

The tidy table of each test, the settings of each test and the provenance of the run
(representation, label column, control, separator, permutations, versions, time, what was
dropped) are written into ``adata.uns[key_added]`` in a form that ``write_h5ad`` /
``read_h5ad`` round-trip; the combined table is returned.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from pairint_jax import _validate
from pairint_jax.io import screen_and_provenance

__all__ = ["score_adata", "TESTS"]

#: The tests :func:`score_adata` can run, in the order it runs them.
TESTS = ("disjointedness", "additivity", "separability", "types")


def _test_functions() -> dict:
    from pairint_jax.scores import additivity_scores, disjointedness_scores, interaction_types
    from pairint_jax.scores.separability import separability_scores

    return {"disjointedness": disjointedness_scores, "additivity": additivity_scores, "separability": separability_scores,
            "types": interaction_types}


@_validate.moved_keywords(obsm="use_rep")
def score_adata(
    adata,
    groupby: str | Sequence[str] = "perturbation",
    control: str | Iterable[str] = "ctrl",
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    tests: str | Sequence[str] = ("disjointedness", "additivity"),
    key_added: str = "pairint",
    key=None,
    sep: str = "+",
    drop_unassigned: bool = True,
    max_order: int | None = 2,
    progress: bool | None = None,
    **options,
):
    """Score every measured pair of perturbations of an AnnData and store the results in it.

    Args:
      adata: an ``anndata.AnnData`` with one observation (cell, well) per row.
      groupby: the ``obs`` column with the condition labels (``ctrl``, ``A``, ``A+B``), or
        two guide columns ``["guide_1", "guide_2"]`` (a control token in either column
        means that guide is the control).
      control: the control label, or several.
      use_rep: the readout: an ``obsm`` key or ``"X"``; default ``obsm["X_pca"]`` when
        present (as in pertpy), else ``X``. A sparse ``X`` or layer is never densified
        whole: it is read one group (or one block of doubles) at a time.
      layer: read ``adata.layers[layer]`` instead.
      tests: the tests to run, from :data:`TESTS` (or ``"all"``): ``"types"`` adds the
        table of :func:`pairint_jax.interaction_types` (``adata.uns[key_added]["types"]``).
        ``n_permutations=`` also turns on the additive-null p-values of ``"additivity"``.
      key_added: the ``adata.uns`` key the results go to.
      key: PRNG key (typed key, legacy ``uint32[2]`` key or int seed) for the tests that
        draw random numbers; None uses ``jax.random.key(0)``.
      sep, drop_unassigned, max_order: label parsing, as in
        :meth:`pairint_jax.Screen.from_arrays` (unassigned labels and triples are dropped,
        counted, warned about and recorded in the provenance).
      progress: show progress bars; None leaves each test's own default.
      **options: options of the tests (e.g. ``n_permutations=500``, ``kernel="matern52"``,
        ``estimator="knn"``); each goes to every chosen test that takes it.

    Returns:
      ``pandas.DataFrame``: the tables of the chosen tests (each test's
      :meth:`~pairint_jax.PairScores.to_frame`) stacked, with a first column ``test``.

    Side effects:
      ``adata.uns[key_added]`` becomes a dict with one table (``DataFrame``) per test,
      ``"settings"`` (per test) and ``"provenance"`` (``representation``,
      ``representation_reason``, ``groupby``, ``control``, ``sep``, ``n_permutations``,
      ``dropped``, ``pairint_jax_version``, ``time``, ...). Values that HDF5 cannot hold
      are stored as text (None as ``"None"``, objects as their ``repr``).

    Raises:
      ValueError: an unknown test, a missing column/representation/layer (the message lists
        what exists), a label column without doubles (the message proposes a separator when
        one would parse it), or any error of the tests.
      TypeError: ``adata`` is not an AnnData; an option that none of the chosen tests takes
        (``obsm=`` is now ``use_rep=``).

    Example:
      >>> df = pj.score_adata(adata, groupby="perturbation", control="ctrl")   # doctest: +SKIP
      >>> adata.uns["pairint"]["provenance"]["representation"]                 # doctest: +SKIP
      "obsm['X_pca']"
    """
    import pandas as pd

    import pairint_jax

    _validate.as_anndata(adata, caller="score_adata")
    chosen = _chosen_tests(tests)
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        raise ValueError(f"key_added must be a non-empty name without '/', got {key_added!r}.")
    funcs = _test_functions()
    routed = _route_options(chosen, funcs, dict(options), key=key, progress=progress)
    screen, prov = screen_and_provenance(
        adata, groupby=groupby, use_rep=use_rep, layer=layer, control=control, sep=sep,
        drop_unassigned=drop_unassigned, max_order=max_order,
    )
    if not (screen.kinds == 2).any():
        raise ValueError(
            f"no double perturbations in adata.obs[{groupby!r}] with sep={sep!r}: there is no pair to score "
            f"(conditions: {list(screen.conditions[:8])}{' ...' if screen.n_groups > 8 else ''}). "
            "Check groupby= and sep=."
        )
    tables, settings = {}, {}
    for name in chosen:
        res = funcs[name](screen, **routed[name])
        if name == "types":  # a tidy table already (pj.interaction_types)
            tables[name], settings[name] = res, {k: v for k, v in routed[name].items() if k != "key"}
            continue
        tables[name] = res.to_frame()
        settings[name] = dict(res.settings)
    n_perm = settings.get("disjointedness", {}).get("n_permutations")
    prov.update(
        tests=list(chosen),
        n_permutations=n_perm,
        key=_describe_key(key),
        pairint_jax_version=pairint_jax.__version__,
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    adata.uns[key_added] = {
        **{name: _h5_table(df) for name, df in tables.items()},
        "settings": _h5_value(settings),
        "provenance": _h5_value(prov),
    }
    frames = [df.assign(test=name)[["test", *df.columns]] for name, df in tables.items()]
    return pd.concat(frames, ignore_index=True)


def _chosen_tests(tests) -> tuple[str, ...]:
    if isinstance(tests, str):
        tests = TESTS if tests == "all" else (tests,)
    tests = tuple(dict.fromkeys(tests))
    for t in tests:
        _validate.one_of("tests", t, TESTS)
    if not tests:
        raise ValueError(f"tests must name at least one of {TESTS}.")
    return tests


def _route_options(chosen, funcs, options: dict, *, key, progress) -> dict:
    """Each option goes to every chosen test whose function takes it; unknown ones raise."""
    params = {name: inspect.signature(funcs[name]).parameters for name in chosen}
    unused = [o for o in options if not any(o in params[name] for name in chosen)]
    if unused:
        valid = sorted({p for name in chosen for p in params[name] if p not in ("screen", "key", "progress")})
        raise TypeError(f"option(s) {unused} are not taken by the tests {list(chosen)}; their options: {valid}.")
    extra = {"key": _validate.as_key(key)}
    if progress is not None:
        extra["progress"] = bool(progress)
    routed = {}
    for name in chosen:
        routed[name] = {o: v for o, v in {**options, **extra}.items() if o in params[name]}
    return routed


def _describe_key(key):
    if key is None:
        return "jax.random.key(0) (default)"
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return f"seed {int(key)}"
    import jax

    data = np.asarray(jax.random.key_data(_validate.as_key(key))).reshape(-1)
    return f"key data {data.tolist()}"


def _h5_value(value):
    """A value ``write_h5ad`` can store: dicts with text keys, arrays, numbers, text."""
    if isinstance(value, Mapping):
        return {str(k).replace("/", "\u2215"): _h5_value(v) for k, v in value.items()}
    if value is None:
        return "None"
    if isinstance(value, (str, bool, int, float, np.number, np.bool_)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            return arr
        if arr.dtype.kind in "US" or all(isinstance(v, str) for v in np.ravel(arr)):
            return arr.astype(str)
        return np.asarray([repr(v) if not isinstance(v, str) else v for v in np.ravel(arr)], dtype=str)
    return repr(value)


def _h5_table(df):
    """The table with text row names and HDF5-storable columns (objects become text or nullable bools)."""
    import pandas as pd

    out = df.copy()
    out.index = out.index.astype(str)
    for col in out.columns:
        s = out[col]
        if s.dtype != object:
            continue
        present = s.dropna()
        if len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
            out[col] = s.astype("boolean")
        else:
            out[col] = s.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)).astype(str)
    return pd.DataFrame(out)
