"""``PairScores``: the one result type every pairwise test returns.

Every pair ``i < j`` of ``perturbations`` has one row, scored or not. Unscorable
pairs carry ``NaN`` and a human-readable ``reason``; scored pairs have ``reason == ""``.
Test-specific per-pair columns (``p_value``, ``q_value``, ``bandwidth``, ``kl_a`` ...)
live in ``columns`` and appear in :meth:`PairScores.to_frame` between ``score`` and
``reason``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

__all__ = ["PairScores", "pair_scores_from_screen"]


@dataclasses.dataclass(frozen=True, eq=False)
class PairScores:
    """Scores of every unordered pair of perturbations.

    Attributes:
      perturbations: the ``n`` perturbation names; pair indices refer to this order.
      pairs: ``[P, 2]`` int, ``i < j``, every pair (``P = n(n-1)/2`` when built from a screen).
      score: ``[P]`` float64, NaN where the pair is unscorable.
      reason: ``[P]`` object array of strings, ``""`` where scored.
      columns: extra ``[P]`` per-pair arrays, in display order.
      test: the name of the test (``"disjointedness"``, ``"separability"``, ...).
      settings: the options the scores were computed with (kernel, bandwidth, k, ...).
    """

    perturbations: tuple[str, ...]
    pairs: np.ndarray
    score: np.ndarray
    reason: np.ndarray
    columns: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    test: str = ""
    settings: Mapping[str, object] = dataclasses.field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of perturbations."""
        return len(self.perturbations)

    @property
    def matrix(self) -> np.ndarray:
        """``[n, n]`` symmetric float64 matrix of scores; NaN on the diagonal and where unscorable."""
        return self.column_matrix("score")

    def column_matrix(self, name: str) -> np.ndarray:
        """``[n, n]`` symmetric matrix of ``score`` or of one numeric column (e.g. ``"p_value"``)."""
        values = self.score if name == "score" else self.columns[name]
        m = np.full((self.n, self.n), np.nan, dtype=np.float64)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        v = np.asarray(values, dtype=np.float64)
        m[i, j] = v
        m[j, i] = v
        return m

    def to_frame(self):
        """A tidy ``pandas.DataFrame``: ``a, b, score, <columns...>, reason``, one row per pair."""
        import pandas as pd

        names = np.asarray(self.perturbations, dtype=object)
        data = {"a": names[self.pairs[:, 0]], "b": names[self.pairs[:, 1]], "score": np.asarray(self.score)}
        for key, val in self.columns.items():
            data[key] = np.asarray(val)
        data["reason"] = np.asarray(self.reason, dtype=object)
        return pd.DataFrame(data)

    def top(self, k: int = 10):
        """The ``k`` highest-scoring scorable pairs as a DataFrame, best first, with their rank."""
        df = self.to_frame()
        df = df[np.isfinite(df["score"].to_numpy(dtype=float))]
        df = df.sort_values("score", ascending=False, kind="stable").head(k)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df.reset_index(drop=True)

    def rank(self, a: str | int, b: str | int) -> int | None:
        """Rank (1 = highest score) of pair ``(a, b)`` among the scored pairs; None if unscored."""
        i = self.perturbations.index(a) if isinstance(a, str) else int(a)
        j = self.perturbations.index(b) if isinstance(b, str) else int(b)
        i, j = min(i, j), max(i, j)
        hit = np.flatnonzero((self.pairs[:, 0] == i) & (self.pairs[:, 1] == j))
        if not len(hit) or not np.isfinite(self.score[hit[0]]):
            return None
        s = self.score[hit[0]]
        finite = self.score[np.isfinite(self.score)]
        return int((finite > s).sum()) + 1

    def __repr__(self) -> str:
        scored = int(np.isfinite(self.score).sum())
        return (
            f"PairScores(test={self.test!r}, n={self.n}, pairs={len(self.score)}, scored={scored}, "
            f"columns={list(self.columns)})"
        )


def pair_scores_from_screen(
    screen,
    score,
    *,
    columns: Mapping[str, np.ndarray] | None = None,
    reason=None,
    test: str = "",
    settings: Mapping[str, object] | None = None,
) -> PairScores:
    """Spread per-scorable-pair results over every pair of a screen.

    Args:
      screen: the :class:`~pairint_jax.Screen` whose ``screen.pairs`` were scored.
      score: ``[P_scorable]`` scores, in ``screen.pairs`` order.
      columns: extra ``[P_scorable]`` arrays (float columns are NaN-filled, others
        filled with ``None`` on unscorable pairs).
      reason: optional ``[P_scorable]`` strings for scorable pairs whose computation
        still failed (e.g. a numerical problem seen inside jit); ``""`` otherwise.
      test, settings: stored on the result.

    Returns:
      A :class:`PairScores` over all ``n(n-1)/2`` pairs.
    """
    allp, index, reasons = screen.all_pairs()
    have = index >= 0
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    if score.shape[0] != len(screen.pairs):
        raise ValueError(f"score has {score.shape[0]} entries, the screen has {len(screen.pairs)} scorable pairs.")
    full = np.full(len(allp), np.nan)
    full[have] = score[index[have]]
    reasons = reasons.copy()
    if reason is not None:
        extra = np.asarray(reason, dtype=object).reshape(-1)
        reasons[have] = extra[index[have]]
    # A scorable pair whose score came back non-finite must say why, never a silent NaN.
    silent = have & ~np.isfinite(full) & (reasons == "")
    reasons[silent] = "score is not finite (numerical failure)"
    cols = {}
    for key, val in (columns or {}).items():
        val = np.asarray(val).reshape(-1)
        if np.issubdtype(val.dtype, np.number) or val.dtype == bool:
            out = np.full(len(allp), np.nan)
            out[have] = val[index[have]].astype(np.float64)
        else:
            out = np.full(len(allp), None, dtype=object)
            out[have] = val[index[have]]
        cols[key] = out
    return PairScores(
        perturbations=tuple(screen.perturbations),
        pairs=allp,
        score=full,
        reason=reasons,
        columns=cols,
        test=test,
        settings=dict(settings or {}),
    )
