"""What every ``pj.pl`` function shares: reading its input, making or reusing axes, show and save.

scanpy conventions: ``ax=`` draws into an existing ``Axes``; ``save=`` writes the figure
to a path; ``show=True`` calls ``matplotlib.pyplot.show()`` and returns None. By default
(``show=None``) the ``Figure`` is returned without showing it, so a notebook displays it
once as the cell's value and scripts stay free of GUI calls. Figures made here without
``show=True`` are not registered with pyplot, so they never pile up in memory.
"""

from __future__ import annotations

import os
import numpy as np

from pairint_jax.results import score_label

__all__ = ["as_matrix", "as_table", "new_figure", "finish", "pair_lookup"]


def _is_pair_scores(data) -> bool:
    return all(hasattr(data, k) for k in ("perturbations", "pairs", "score", "column_matrix"))


def as_matrix(data, column: str = "score"):
    """``(names, matrix [n, n], measured [n, n] bool, label)`` from a ``PairScores`` or a square DataFrame.

    For a DataFrame, ``measured`` is True wherever the value is finite (a matrix does not
    say which missing pairs were measured), and the label is ``columns.name`` or ``"score"``.
    """
    if _is_pair_scores(data):
        names = [str(p) for p in data.perturbations]
        mat = np.asarray(data.column_matrix(column), dtype=np.float64)
        measured = np.zeros_like(mat, dtype=bool)
        sel = np.asarray(data.is_measured if hasattr(data, "is_measured") else np.ones(len(data.score), bool))
        i, j = data.pairs[sel, 0], data.pairs[sel, 1]
        measured[i, j] = measured[j, i] = True
        return names, mat, measured, score_label(getattr(data, "test", ""), column)
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if data.shape[0] != data.shape[1] or set(map(str, data.index)) != set(map(str, data.columns)):
            raise ValueError(
                f"a DataFrame must be a square matrix with the same labels on both axes (as PairScores.to_matrix_frame() "
                f"returns); got shape {data.shape}. For a tidy table (a, b, score ...) pass the PairScores itself."
            )
        names = [str(p) for p in data.index]
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        mat = frame.loc[:, names].to_numpy(dtype=np.float64)
        mat = np.where(np.eye(len(names), dtype=bool), np.nan, mat)
        return names, mat, np.isfinite(mat), str(data.columns.name or data.index.name or "score") if column == "score" else column
    raise TypeError(
        f"expected a PairScores (what pj.disjointedness_scores & co. return) or a square pandas DataFrame, got "
        f"{type(data).__name__}."
    )


def as_table(data, *, alpha: float = 0.05):
    """``(table, label)``: a tidy frame ``a, b, score[, q_value, significant]`` of the scored pairs.

    Accepts a ``PairScores``, its ``to_frame()`` table, or a square matrix DataFrame (its upper triangle).
    """
    import pandas as pd

    if _is_pair_scores(data):
        import warnings

        from pairint_jax.multitest import PValueFloorWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PValueFloorWarning)
            df = data.to_frame(alpha=alpha)
        label = score_label(getattr(data, "test", ""))
    elif isinstance(data, pd.DataFrame) and {"a", "b", "score"} <= set(data.columns):
        df = data.copy()
        if "q_value" in df.columns:
            q = df["q_value"].to_numpy(np.float64)
            df["significant"] = np.isfinite(q) & (q <= alpha)
        label = "score"
    else:
        names, mat, _, label = as_matrix(data)
        iu, ju = np.triu_indices(len(names), 1)
        nm = np.asarray(names, dtype=object)
        df = pd.DataFrame({"a": nm[iu], "b": nm[ju], "score": mat[iu, ju]})
    df = df[np.isfinite(df["score"].to_numpy(np.float64))]
    return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True), label


def new_figure(ax, figsize, *, show):
    """``(fig, ax)``: ``ax`` and its figure, or a new single-axes figure (pyplot-managed only when shown)."""
    if ax is not None:
        return ax.figure, ax
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def finish(fig, *, show: bool | None, save: str | os.PathLike | None, dpi: int, tight: bool = True):
    """Save and/or show ``fig``; return it, or None when shown (as scanpy does).

    ``tight=False`` skips the tight bounding box (a second full draw) for figures whose
    margins were computed already."""
    if save is not None:
        if isinstance(save, bool):
            raise TypeError("save= takes a file path such as 'heatmap.png' (the format follows the suffix), not a bool.")
        fig.savefig(os.fspath(save), dpi=dpi, bbox_inches="tight" if tight else None)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return fig


def pair_lookup(highlight, names) -> list[tuple[int, int]]:
    """Index pairs of the ``(a, b)`` name pairs in ``highlight`` that exist in ``names`` (others are ignored)."""
    pos = {p: k for k, p in enumerate(names)}
    out = []
    for item in highlight or ():
        if isinstance(item, str) or not len(item) == 2:
            raise ValueError(f"highlight takes (a, b) pairs of perturbation names, got {item!r}.")
        a, b = (str(v) for v in item)
        if a in pos and b in pos:
            out.append((pos[a], pos[b]))
    return out
