"""Real screens and reference matrices, ready to score (``pj.datasets``).

Screens (each a :class:`~pairint_jax.Screen` with labels ``ctrl`` / ``A`` / ``A+B``):

* :func:`slkb_22rv1`: SLKB 22Rv1 double knockouts, guide-pair LFCs, 2 replicates, 50 genes;
* :func:`bigpapi`: Big Papi (Najm et al. 2018), guide-pair LFCs in 6 cell lines, 26 genes;
* :func:`korkut2015`: Korkut 2015 drug pairs, one 87-d RPPA profile per condition, 12 drugs.

Reference matrices (:class:`GeneMatrix` ``(genes, matrix)``, symmetric, NaN diagonal):

* :func:`slkb_22rv1_scores`: the SLKB authors' SL scores, 50 x 50;
* :func:`norman2019_gi`: the Norman et al. 2019 GI map, 112 x 112.

Known relations: :func:`corum_pairs` (CORUM co-complex pairs; bring your own CORUM file).

Validation against known pairs: :func:`known_pair_ranks`, :func:`known_pair_enrichment`
(hypergeometric), :func:`score_correlation` (Spearman against a published matrix).

The bundled files, their sources, licences and processing are described in
``pairint_jax/datasets/data/README.md``; ``python -m pairint_jax.datasets._prepare``
regenerates them from the raw files.
"""

from pairint_jax.datasets._common import GeneMatrix, ScreenInfo
from pairint_jax.datasets.known import corum_pairs
from pairint_jax.datasets.matrices import SLKB_SL_CUTOFF, norman2019_gi, slkb_22rv1_scores
from pairint_jax.datasets.screens import (
    BIGPAPI_CELL_LINES,
    BIGPAPI_CONTROLS,
    BIGPAPI_SYNTHETIC_LETHAL,
    KORKUT_TARGETS,
    SLKB_SAFE_PREFIX,
    bigpapi,
    korkut2015,
    slkb_22rv1,
)
from pairint_jax.datasets.validation import Enrichment, known_pair_enrichment, known_pair_ranks, score_correlation

__all__ = [
    "BIGPAPI_CELL_LINES",
    "BIGPAPI_CONTROLS",
    "BIGPAPI_SYNTHETIC_LETHAL",
    "Enrichment",
    "GeneMatrix",
    "KORKUT_TARGETS",
    "SLKB_SAFE_PREFIX",
    "SLKB_SL_CUTOFF",
    "ScreenInfo",
    "bigpapi",
    "corum_pairs",
    "known_pair_enrichment",
    "known_pair_ranks",
    "korkut2015",
    "norman2019_gi",
    "score_correlation",
    "slkb_22rv1",
    "slkb_22rv1_scores",
]
