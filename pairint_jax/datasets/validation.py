"""Validating pair scores against known biology: ranks, enrichment and rank correlation.

Small host-side helpers (NumPy/SciPy on ``[n, n]`` matrices, never on observations) used
by the real-screen notebooks, tests and benchmarks:

* :func:`known_pair_ranks`: where known pairs land in a ranking;
* :func:`known_pair_enrichment`: how many known pairs fall in the top fraction, against
  the hypergeometric chance level;
* :func:`score_correlation`: Spearman correlation of two pair-score matrices.

Each accepts a :class:`~pairint_jax.PairScores` or a symmetric ``[n, n]`` matrix (only the
strict upper triangle is read; NaN means "not scored").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["Enrichment", "known_pair_enrichment", "known_pair_ranks", "score_correlation"]


class Enrichment(NamedTuple):
    """Known pairs among the top-scoring pairs, against chance.

    Attributes:
      hits: known pairs inside the top set.
      n_known: known pairs that were scored (unscored known pairs are left out).
      n_top: size of the top set, ``ceil(top_fraction * n_pairs)``.
      n_pairs: scored pairs.
      expected: chance expectation ``n_known * n_top / n_pairs``.
      p_value: one-sided hypergeometric ``P(X >= hits)``, ``X ~ Hypergeom(n_pairs, n_known, n_top)``.
    """

    hits: int
    n_known: int
    n_top: int
    n_pairs: int
    expected: float
    p_value: float


def _as_matrix(scores) -> tuple[np.ndarray, tuple[str, ...] | None]:
    if hasattr(scores, "matrix") and hasattr(scores, "perturbations"):
        return np.asarray(scores.matrix, dtype=np.float64), tuple(scores.perturbations)
    m = np.asarray(scores, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected PairScores or a square [n, n] matrix, got an array of shape {m.shape}.")
    return m, None


def _pair_index(known, names: tuple[str, ...] | None, n: int) -> np.ndarray:
    """Known pairs as a ``[K, 2]`` int array with ``i < j``."""
    known = list(known) if not isinstance(known, np.ndarray) else known
    if len(known) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    arr = np.asarray(known, dtype=object)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"known pairs must be [K, 2] (index or name pairs), got shape {arr.shape}.")
    if all(isinstance(v, str) for v in arr.ravel()):
        if names is None:
            raise ValueError("known pairs are given by name, so pass PairScores (which carry names), not a bare matrix.")
        pos = {p: k for k, p in enumerate(names)}
        missing = sorted({v for v in arr.ravel() if v not in pos})
        if missing:
            raise ValueError(f"known pairs name {len(missing)} perturbation(s) not in the scores: {missing[:5]}; "
                             "restrict them to the screen's perturbations first.")
        idx = np.vectorize(pos.__getitem__, otypes=[np.int64])(arr)
    else:
        idx = np.asarray(known, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"known pair indices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}].")
    if (idx[:, 0] == idx[:, 1]).any():
        raise ValueError("known pairs must join two different perturbations (found (i, i)).")
    return np.sort(idx, axis=1)


def _ranks(m: np.ndarray) -> np.ndarray:
    """``[n, n]`` rank of each scored upper-triangle entry (1 = highest; ties share the best rank)."""
    iu = np.triu_indices(m.shape[0], k=1)
    v = m[iu]
    ok = np.isfinite(v)
    r = np.full(v.shape, np.nan)
    srt = np.sort(v[ok])[::-1]
    # rank = 1 + number of strictly larger scores
    r[ok] = 1 + np.searchsorted(-srt, -v[ok], side="left")
    out = np.full(m.shape, np.nan)
    out[iu] = r
    out[(iu[1], iu[0])] = r
    return out


def known_pair_ranks(scores, known) -> np.ndarray:
    """Rank of each known pair among the scored pairs (1 = highest score).

    ``rank(i, j) = 1 + #{scored pairs with a strictly larger score}``; tied pairs share
    the best rank, as in :meth:`PairScores.rank`.

    Args:
      scores: :class:`~pairint_jax.PairScores` or a symmetric ``[n, n]`` matrix.
      known: ``[K, 2]`` pairs, as indices or (with ``PairScores``) names.

    Returns:
      ``[K]`` float64 ranks; NaN where a known pair is not scored.

    Example:
      >>> res = pj.additivity_scores(pj.datasets.bigpapi())
      >>> pj.datasets.known_pair_ranks(res, pj.datasets.BIGPAPI_SYNTHETIC_LETHAL)  # doctest: +SKIP
      array([ 1.,  2.,  5., 11.])
    """
    m, names = _as_matrix(scores)
    idx = _pair_index(known, names, m.shape[0])
    return _ranks(m)[idx[:, 0], idx[:, 1]] if len(idx) else np.zeros(0)


def known_pair_enrichment(scores, known, *, top_fraction: float = 0.05) -> Enrichment:
    """How many known pairs fall among the top-scoring pairs, against chance.

    The top set is the ``n_top = ceil(top_fraction * n_pairs)`` highest-scoring scored
    pairs (ties at the boundary broken by pair order, row-major). Under the null that the
    known pairs are a uniformly random subset of the scored pairs, the number of hits is
    ``Hypergeom(n_pairs, n_known, n_top)``; the p-value is ``P(X >= hits)``.

    Args:
      scores: :class:`~pairint_jax.PairScores` or a symmetric ``[n, n]`` matrix.
      known: ``[K, 2]`` pairs, as indices or (with ``PairScores``) names; duplicates and
        unscored pairs are dropped.
      top_fraction: fraction of the scored pairs in the top set, in ``(0, 1]``.

    Returns:
      :class:`Enrichment` ``(hits, n_known, n_top, n_pairs, expected, p_value)``.

    Example:
      >>> known = pj.datasets.corum_pairs("corum.tsv", screen.perturbations)  # doctest: +SKIP
      >>> pj.datasets.known_pair_enrichment(res, known, top_fraction=0.05)  # doctest: +SKIP
      Enrichment(hits=1, n_known=9, n_top=62, n_pairs=1225, expected=0.455..., p_value=0.37...)
    """
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}.")
    m, names = _as_matrix(scores)
    n = m.shape[0]
    idx = _pair_index(known, names, n)
    iu = np.triu_indices(n, k=1)
    v = m[iu]
    ok = np.isfinite(v)
    n_pairs = int(ok.sum())
    if n_pairs == 0:
        raise ValueError("no pair is scored (all NaN); nothing to rank.")
    is_known = np.zeros((n, n), dtype=bool)
    is_known[idx[:, 0], idx[:, 1]] = True
    kv = is_known[iu][ok]
    n_top = math.ceil(float(top_fraction) * n_pairs)
    order = np.argsort(-v[ok], kind="stable")
    hits = int(kv[order[:n_top]].sum())
    n_known = int(kv.sum())
    from scipy.stats import hypergeom

    p = float(hypergeom.sf(hits - 1, n_pairs, n_known, n_top)) if hits > 0 else 1.0
    return Enrichment(hits, n_known, n_top, n_pairs, n_known * n_top / n_pairs, p)


def score_correlation(scores, reference, *, transform=None) -> float:
    """Spearman rank correlation between two pair-score matrices over the pairs scored in both.

    Args:
      scores: :class:`~pairint_jax.PairScores` or a symmetric ``[n, n]`` matrix.
      reference: a symmetric ``[n, n]`` matrix in the same perturbation order (e.g. a
        published GI or SL-score matrix).
      transform: optional function applied to ``reference`` first (e.g. ``np.abs`` to compare
        an unsigned score with a signed one).

    Returns:
      Spearman's rho (float); NaN if fewer than 3 pairs are scored in both.

    Example:
      >>> genes, S = pj.datasets.slkb_22rv1_scores()
      >>> pj.datasets.score_correlation(res, S, transform=np.abs)  # doctest: +SKIP
    """
    m, _ = _as_matrix(scores)
    r, _ = _as_matrix(reference)
    if r.shape != m.shape:
        raise ValueError(f"reference is {r.shape} but the scores are {m.shape}; align the perturbation order first.")
    if transform is not None:
        r = np.asarray(transform(r), dtype=np.float64)
    iu = np.triu_indices(m.shape[0], k=1)
    a, b = m[iu], r[iu]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a[ok], b[ok])[0])

