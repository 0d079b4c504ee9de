"""pairint_jax: pairwise interactions between perturbations, from unstructured readouts, in JAX.

The public API (``import pairint_jax as pj``):

* data: :class:`Screen`, :func:`read_screen`, :func:`write_screen`, :mod:`pj.synthetic`;
* scores: :func:`disjointedness_scores`, :func:`additivity_scores`,
  :func:`separability_scores`, each returning :class:`PairScores`;
* the functional core for other JAX code: :mod:`pj.stats`;
* discovery: :func:`simulate`, :class:`Campaign`.
"""

from pairint_jax.io import read_screen, write_screen
from pairint_jax.labels import parse_label
from pairint_jax.results import PairScores
from pairint_jax.screen import Screen, UnscorableWarning, bucket_size

# -- synthetic generators (issue 2) --
from pairint_jax import synthetic

# -- disjointedness / additivity (issue 3) --
from pairint_jax import stats
from pairint_jax.scores import additivity_scores, disjointedness_scores

# -- separability (issue 4) --
from pairint_jax import nre
from pairint_jax.scores.separability import separability_scores

# -- discovery (issue 5) --
from pairint_jax.discovery import Campaign, LowRankModel, SimulationResult, simulate, simulate_many

# -- real datasets (issue 7) --
from pairint_jax import datasets  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    # issue 5
    "Campaign",
    "LowRankModel",
    "SimulationResult",
    "simulate",
    "simulate_many",
    # issue 3
    "additivity_scores",
    "disjointedness_scores",
    "stats",
    # foundation
    "PairScores",
    "Screen",
    "UnscorableWarning",
    "bucket_size",
    "datasets",
    "parse_label",
    "synthetic",
    "read_screen",
    "separability_scores",
    "nre",
    "write_screen",
]
