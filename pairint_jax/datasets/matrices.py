"""Published gene x gene interaction matrices, used as reward matrices for discovery.

* :func:`slkb_22rv1_scores`: the SLKB 22Rv1 authors' SL scores, 50 x 50;
* :func:`norman2019_gi`: the Norman et al. 2019 CRISPRa K562 growth GI map, 112 x 112.

Both return a :class:`~pairint_jax.datasets.GeneMatrix` ``(genes, matrix)``: ``matrix`` is
float64, symmetric, NaN on the diagonal (a gene paired with itself is not a pair), with
the published sign. Discovery maximises a reward, so pick the transform that matches the
question (``-matrix`` for synthetic lethality, ``abs(matrix)`` for any interaction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairint_jax.datasets._common import GeneMatrix, bundled, check_columns, user_path

__all__ = ["SLKB_SL_CUTOFF", "norman2019_gi", "slkb_22rv1_scores"]

#: The SLKB authors' cutoff: a pair with ``SL_score < -0.361`` is called synthetic lethal.
SLKB_SL_CUTOFF = -0.361


def slkb_22rv1_scores(*, path=None) -> GeneMatrix:
    """The SLKB 22Rv1 screen's published SL scores as a 50 x 50 matrix.

    Sign as published: **negative = synthetic lethal** (the double kills more than the
    singles predict); the authors call a pair SL when ``SL_score < -0.361``
    (:data:`SLKB_SL_CUTOFF`). The source lists every unordered pair once; entry
    ``[i, j] = [j, i]`` is that pair's score. Genes are sorted alphabetically.

    Args:
      path: the raw SLKB ``score_ref.csv`` (columns ``gene_1, gene_2, SL_score``);
        default: the bundled copy.

    Returns:
      ``GeneMatrix(genes, matrix)``: 50 gene names and a ``[50, 50]`` float64 matrix,
      symmetric, NaN diagonal (and NaN for any pair the file lacks).

    Raises:
      ValueError: missing columns, a pair listed twice with different scores, or a
        self-pair.

    Example:
      >>> genes, sl = pj.datasets.slkb_22rv1_scores()
      >>> len(genes), sl.shape
      (50, (50, 50))
    """
    frame = pd.read_csv(bundled("slkb_22rv1_scores.csv") if path is None else user_path(path))
    check_columns(frame, ["gene_1", "gene_2", "SL_score"], "the SLKB score file")
    return _long_to_matrix(frame["gene_1"], frame["gene_2"], frame["SL_score"], what="SLKB SL_score")


def _long_to_matrix(a, b, v, *, what: str) -> GeneMatrix:
    a = np.asarray(a, dtype=str)
    b = np.asarray(b, dtype=str)
    v = np.asarray(v, dtype=np.float64)
    if (a == b).any():
        raise ValueError(f"{what}: the file pairs {a[a == b][0]!r} with itself; only pairs of two genes are allowed.")
    genes = tuple(str(g) for g in sorted(set(a) | set(b)))
    index = {g: k for k, g in enumerate(genes)}
    i = np.asarray([index[g] for g in a])
    j = np.asarray([index[g] for g in b])
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = pd.Series(v).groupby(lo * len(genes) + hi)
    spread = key.max() - key.min()
    if (spread > 1e-12).any():
        raise ValueError(f"{what}: {int((spread > 1e-12).sum())} pair(s) are listed twice with different values.")
    m = np.full((len(genes), len(genes)), np.nan)
    m[lo, hi] = v
    m[hi, lo] = v
    return GeneMatrix(genes, m)


def norman2019_gi(*, path=None) -> GeneMatrix:
    """The Norman et al. 2019 CRISPRa K562 growth genetic-interaction map, 112 x 112.

    Entries are the published gene-level GI scores of the bulk double-sgRNA growth
    screen (``final_emaps/processed_emap.csv``). Sign as published (E-MAP convention):
    **negative = synergistic** (the double grows worse than the singles predict),
    **positive = buffering / suppressive**. Processing: the matrix is symmetrised as
    ``(M + M^T) / 2`` (the source is symmetric up to 1e-12 rounding) and the diagonal
    (same-gene sgRNA pairs in the source) is set to NaN. Genes keep the source's order
    (alphabetical, with the renamed C3orf72 -> FOXL2NB, C19orf26 -> CBARP,
    KIAA1804 -> RP5-862P8.2 where the originals stood).

    Args:
      path: the raw ``processed_emap.csv`` (square, gene names as header and first
        column); default: the bundled copy.

    Returns:
      ``GeneMatrix(genes, matrix)``: 112 gene names and a ``[112, 112]`` float64 matrix,
      symmetric, NaN diagonal.

    Raises:
      ValueError: a non-square table, row and column genes that differ, NaNs off the
        diagonal, or an asymmetry larger than 1e-6.

    Example:
      >>> genes, gi = pj.datasets.norman2019_gi()
      >>> gi.shape
      (112, 112)
    """
    frame = pd.read_csv(bundled("norman2019_gi.csv.gz") if path is None else user_path(path), index_col=0)
    rows = [str(g) for g in frame.index]
    cols = [str(g) for g in frame.columns]
    if rows != cols:
        raise ValueError(
            f"the GI table must be square with the same genes as rows and columns; got {len(rows)} rows and "
            f"{len(cols)} columns ({sorted(set(rows) ^ set(cols))[:5]} differ)."
        )
    m = frame.to_numpy(np.float64)
    off = ~np.eye(len(rows), dtype=bool)
    if not np.isfinite(m[off]).all():
        raise ValueError(f"the GI table has {int((~np.isfinite(m[off])).sum())} non-finite off-diagonal entries.")
    asym = float(np.abs(m - m.T).max())
    if asym > 1e-6:
        raise ValueError(f"the GI table is not symmetric (max |M - M^T| = {asym:.3g}); pass the gene-level processed_emap.csv.")
    m = 0.5 * (m + m.T)
    np.fill_diagonal(m, np.nan)
    return GeneMatrix(tuple(rows), m)
