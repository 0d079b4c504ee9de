"""``PairScores``: the one result type every pairwise test returns.

A ``PairScores`` lists pairs ``i < j`` of ``perturbations``: when built from a screen, every
one of the ``n(n-1)/2``, with ``measured`` saying which doubles the screen holds. Unscorable
pairs carry ``NaN`` and a human-readable ``reason``; scored pairs have ``reason == ""``.
Test-specific per-pair columns (``p_value``, ``q_value``, ``bandwidth``, ``kl_a`` ...) live in
``columns`` and appear in :meth:`PairScores.to_frame` between ``score`` and ``reason``.

Whatever test made it, a ``p_value`` column gets its ``q_value`` from
:func:`pairint_jax.multitest.adjust_p_values` (Benjamini-Hochberg unless
``settings["correction"] == "holm"``), and :meth:`PairScores.to_frame` adds the
``significant`` and ``p_floor`` columns from them.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import platform
import warnings
from collections.abc import Mapping

import numpy as np

from pairint_jax._validate import as_screen, one_of, positive_int, probability
from pairint_jax.multitest import CORRECTIONS, PValueFloorWarning, adjust_p_values, p_floor, permutations_needed

__all__ = ["PairScores", "pair_scores_from_screen", "provenance", "TEST_QUESTIONS", "score_label"]

#: What each test asks of a pair, in one sentence (reports and plot captions use these).
TEST_QUESTIONS = {
    "separability": (
        "Do i and j act on separate latent factors? Separable perturbations add up in KL divergence from the "
        "control: KL(p0||pij) = KL(p0||pi) + KL(p0||pj). The score is |KL_i + KL_j - KL_ij| (nats); 0 means separable."
    ),
    "disjointedness": (
        "Do i and j act on disjoint subpopulations (the paper's notion)? If so the mixture (p_ij + p_0)/2 equals "
        "(p_i + p_j)/2. The score is the unbiased MMD^2 between the two mixtures (it can be slightly negative when "
        "they are equal); the permutation p-value tests equality. A shift of every cell is not disjoint, so "
        "additive pairs can be significant here: use the additivity test for genetic interactions."
    ),
    "additivity": (
        "Is the double's mean shift the sum of the singles' shifts? The score is ||(mu_ij - mu_0) - (mu_i - mu_0) - "
        "(mu_j - mu_0)||, the norm of the non-additive part of the mean embedding; 0 means additive. With "
        "n_permutations, the p-value tests the additive null mu_ij - mu_i - mu_j + mu_0 = 0 (the genetic-interaction "
        "notion of Norman 2019 and GEARS; sign-flip multiplier draws within each group)."
    ),
}

#: The score's name and unit on colour bars and axes.
_SCORE_LABELS = {
    "separability": "separability |KL_i + KL_j - KL_ij| (nats)",
    "disjointedness": "disjointedness MMD² (unbiased)",
    "additivity": "additivity ||Δ_ij - Δ_i - Δ_j||",
}
_COLUMN_LABELS = {"p_value": "p-value", "q_value": "q-value", "bandwidth": "kernel bandwidth"}


def score_label(test: str, column: str = "score") -> str:
    """A label for ``column`` of a test's results, e.g. ``"disjointedness MMD² (unbiased)"``."""
    if column == "score":
        return _SCORE_LABELS.get(test, f"{test} score" if test else "score")
    return _COLUMN_LABELS.get(column, column)


@dataclasses.dataclass(frozen=True, eq=False)
class PairScores:
    """Scores of unordered pairs of perturbations.

    Attributes:
      perturbations: the ``n`` perturbation names; pair indices refer to this order.
      pairs: ``[P, 2]`` int, ``i < j`` (``P = n(n-1)/2`` when built from a screen).
      score: ``[P]`` float64, NaN where the pair is unscorable.
      reason: ``[P]`` object array of strings, ``""`` where scored.
      columns: extra ``[P]`` per-pair arrays, in display order. A ``p_value`` column is
        always followed by its ``q_value``, adjusted by ``settings["correction"]``
        (``"bh"`` by default, or ``"holm"``; see :meth:`with_correction`).
      test: the name of the test (``"disjointedness"``, ``"separability"``, ...).
      settings: the options the scores were computed with (kernel, bandwidth, k,
        ``n_permutations``, ``correction``, ...) and ``settings["provenance"]``: library
        versions, device, date and the screen it came from (see :func:`provenance`).
      measured: ``[P]`` bool, whether the screen holds the double ``i+j`` (scorable or
        not); ``None`` means every listed pair was measured.
    """

    perturbations: tuple[str, ...]
    pairs: np.ndarray
    score: np.ndarray
    reason: np.ndarray
    columns: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    test: str = ""
    settings: Mapping[str, object] = dataclasses.field(default_factory=dict)
    measured: np.ndarray | None = None

    def __post_init__(self):
        if self.measured is not None:
            measured = np.asarray(self.measured, dtype=bool).reshape(-1)
            if measured.shape[0] != len(self.score):
                raise ValueError(f"measured has {measured.shape[0]} entries for {len(self.score)} pairs.")
            object.__setattr__(self, "measured", measured)
        if "p_value" in self.columns:
            method = self.correction
            cols = {}
            for name, val in self.columns.items():
                if name == "q_value":
                    continue
                cols[name] = val
                if name == "p_value":
                    cols["q_value"] = adjust_p_values(val, method=method)
            object.__setattr__(self, "columns", cols)

    @property
    def n(self) -> int:
        """Number of perturbations."""
        return len(self.perturbations)

    @property
    def correction(self) -> str:
        """The multiple-testing correction behind ``q_value``: ``"bh"`` (default) or ``"holm"``."""
        return one_of("correction", self.settings.get("correction", "bh"), tuple(CORRECTIONS))

    @property
    def is_measured(self) -> np.ndarray:
        """``[P]`` bool: the pairs whose double is in the screen (all, when ``measured`` is None)."""
        return np.ones(len(self.score), bool) if self.measured is None else self.measured

    @property
    def matrix(self) -> np.ndarray:
        """``[n, n]`` symmetric float64 matrix of scores; NaN on the diagonal and where unscorable."""
        return self.column_matrix("score")

    def column_matrix(self, name: str) -> np.ndarray:
        """``[n, n]`` symmetric matrix of ``score`` or of one numeric column (e.g. ``"p_value"``)."""
        if name != "score" and name not in self.columns:
            raise KeyError(f"{name!r} is not a column of these {self.test or 'pair'} scores; have {['score', *self.columns]}.")
        values = self.score if name == "score" else self.columns[name]
        m = np.full((self.n, self.n), np.nan, dtype=np.float64)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        v = np.asarray(values, dtype=np.float64)
        m[i, j] = v
        m[j, i] = v
        return m

    def to_matrix_frame(self, column: str = "score"):
        """The ``[n, n]`` matrix of ``column`` as a ``pandas.DataFrame`` labelled by perturbation on both axes.

        Example:
          >>> res.to_matrix_frame().loc["A", "B"]  # doctest: +SKIP
        """
        import pandas as pd

        names = pd.Index(list(self.perturbations), name="perturbation")
        return pd.DataFrame(self.column_matrix(column), index=names, columns=names.copy())

    def with_correction(self, correction: str) -> PairScores:
        """The same scores with ``q_value`` recomputed by another multiple-testing correction.

        Args:
          correction: ``"bh"`` (Benjamini-Hochberg, false discovery rate) or ``"holm"``
            (Holm, family-wise error rate).

        Returns:
          A new :class:`PairScores` with ``settings["correction"] = correction``.
        """
        one_of("correction", correction, tuple(CORRECTIONS))
        return dataclasses.replace(self, settings={**self.settings, "correction": correction}, columns=dict(self.columns))

    def to_frame(self, *, all_pairs: bool = False, alpha: float = 0.05, correction: str | None = None):
        """A tidy ``pandas.DataFrame``, one row per pair, ranked by score (best first, NaN last).

        Columns: ``a, b, score, <columns...>``, then, where the test has p-values,
        ``significant`` (``q_value <= alpha``; False where untested) and, for permutation
        p-values, ``p_floor`` (True where ``p_value`` sits at ``1 / (n_permutations + 1)``),
        and ``reason`` (``""`` where scored). A :class:`~pairint_jax.multitest.PValueFloorWarning`
        says how many permutations the number of pairs needs when pairs sit at that floor
        and the correction cannot reject them.

        Args:
          all_pairs: False (default) lists the measured pairs only (those whose double is
            in the screen, scorable or not); True lists every pair, with
            ``"double ... not in screen"`` as the reason of the rest.
          alpha: the level of ``significant``.
          correction: ``"bh"`` or ``"holm"``; None keeps :attr:`correction`.

        Example:
          >>> df = res.to_frame(alpha=0.1)  # doctest: +SKIP
          >>> df[df.significant]            # doctest: +SKIP
        """
        import pandas as pd

        alpha = probability("alpha", alpha)
        if correction is not None and correction != self.correction:
            return self.with_correction(correction).to_frame(all_pairs=all_pairs, alpha=alpha)
        names = np.asarray(self.perturbations, dtype=object)
        data = {"a": names[self.pairs[:, 0]], "b": names[self.pairs[:, 1]], "score": np.asarray(self.score, np.float64)}
        for key, val in self.columns.items():
            data[key] = np.asarray(val)
        if "q_value" in self.columns:
            q = np.asarray(self.columns["q_value"], np.float64)
            data["significant"] = np.isfinite(q) & (q <= alpha)
        floor = self._p_floor(alpha)
        if floor is not None:
            data["p_floor"] = floor
        data["reason"] = np.asarray(self.reason, dtype=object)
        df = pd.DataFrame(data)
        if not all_pairs:
            df = df[self.is_measured]
        score = df["score"].to_numpy(np.float64)
        order = np.lexsort((-np.nan_to_num(score, nan=0.0), ~np.isfinite(score)))
        return df.iloc[order].reset_index(drop=True)

    def _p_floor(self, alpha: float) -> np.ndarray | None:
        """``p_floor`` column (None without permutation p-values), warning when the floor blocks rejections."""
        b = self.settings.get("n_permutations")
        if "p_value" not in self.columns or b is None or not int(b) > 0:
            return None
        p = np.asarray(self.columns["p_value"], np.float64)
        floor = p_floor(p, int(b))
        m = int(np.isfinite(p).sum())
        k = int(floor.sum())
        smallest = 1.0 / (int(b) + 1.0)
        # BH rejects the k pairs at the floor iff floor <= k alpha / m; Holm iff floor <= alpha / m.
        blocked = smallest > (alpha / m if self.correction == "holm" else k * alpha / m) if k else False
        if blocked:
            need = permutations_needed(m, alpha)
            warnings.warn(
                f"{self.test or 'pair'} scores: {k} of {m} tested pair(s) sit at the smallest attainable p-value "
                f"1/(B+1) = {smallest:.3g} (B = n_permutations = {int(b)}), so their true p-values may be much smaller. "
                f"With {m} pairs, {CORRECTIONS[self.correction]} at alpha={alpha:g} can reject a pair only if its "
                f"p-value is <= alpha/m = {alpha / m:.3g}"
                + ("" if self.correction == "holm" else f" (or if at least {math.ceil(m * smallest / alpha - 1e-9)} pairs sit at the floor)")
                + f": rerun with n_permutations >= {need}. The p_floor column marks these pairs.",
                PValueFloorWarning,
                stacklevel=3,
            )
        return floor

    def top(self, k: int = 10, *, alpha: float = 0.05):
        """The ``k`` highest-scoring scorable pairs as a DataFrame, best first, with their rank."""
        k = positive_int("k", k, minimum=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PValueFloorWarning)
            df = self.to_frame(alpha=alpha)
        df = df[np.isfinite(df["score"].to_numpy(dtype=float))].head(k)
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
            f"PairScores(test={self.test!r}, n={self.n}, pairs={len(self.score)}, measured={int(self.is_measured.sum())}, "
            f"scored={scored}, columns={list(self.columns)})"
        )


def provenance(screen=None, **extra) -> dict:
    """Where a result came from: library versions, device, date, and the screen's shape.

    Args:
      screen: the :class:`~pairint_jax.Screen` that was scored (optional). Its
        ``provenance`` attribute, when a reader set one (file, representation, ...), is
        copied in under ``"source"``.
      **extra: more entries (e.g. the command line and input file, added by ``pairint score``).

    Returns:
      A JSON-friendly dict.
    """
    import jax

    try:
        from importlib.metadata import version

        ours = version("pairint_jax")
    except Exception:  # noqa: BLE001 - not installed (source checkout on sys.path)
        ours = "unknown"
    dev = jax.devices()[0]
    out = {
        "pairint_jax": ours,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": f"{dev.platform} ({getattr(dev, 'device_kind', '')}), {jax.device_count()} device(s)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if screen is not None:
        kinds = np.array([len(m) for m in screen.members])
        out["screen"] = {
            "n_observations": int(screen.x.shape[0]),
            "feature_shape": list(screen.feature_shape),
            "dtype": str(screen.x.dtype),
            "n_perturbations": int(screen.n_perturbations),
            "n_doubles": int((kinds == 2).sum()),
            "n_scorable_pairs": int(len(screen.pairs)),
            "control": screen.control if isinstance(screen.control, str) else list(screen.control),
            "sep": screen.sep,
        }
        source = getattr(screen, "provenance", None)
        if source:
            out["source"] = dict(source)
    out.update(extra)
    return out


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
      A :class:`PairScores` over all ``n(n-1)/2`` pairs, with ``measured`` set and
      ``settings["provenance"]`` from :func:`provenance`.
    """
    screen = as_screen(screen, caller="pair_scores_from_screen")
    allp, index, reasons = screen.all_pairs()
    have = index >= 0
    measured = have.copy()
    unscorable = screen.unscorable
    if unscorable:
        n = screen.n_perturbations
        keyed = np.asarray(list(unscorable), dtype=np.int64).reshape(-1, 2)
        measured[np.searchsorted(allp[:, 0].astype(np.int64) * n + allp[:, 1], keyed[:, 0] * n + keyed[:, 1])] = True
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
        settings={**dict(settings or {}), "provenance": provenance(screen)},
        measured=measured,
    )
