"""pairint_jax: pairwise interactions between perturbations, from unstructured readouts, in JAX.

The public API (``import pairint_jax as pj``):

* data: :class:`Screen`, :func:`read_screen`, :func:`write_screen`, :mod:`pj.io`
  (``from_anndata``), :mod:`pj.synthetic`;
* scanpy style: :func:`score_adata` (results into ``adata.uns``);
* scores: :func:`disjointedness_scores`, :func:`additivity_scores`,
  :func:`separability_scores`, each returning :class:`PairScores`;
* the functional core for other JAX code: :mod:`pj.stats`;
* discovery: :func:`simulate`, :class:`Campaign`.
"""

from pairint_jax.io import read_screen, write_screen
from pairint_jax.labels import parse_label
from pairint_jax.results import PairScores
from pairint_jax.screen import DroppedObservationsWarning, Screen, UnscorableWarning, bucket_size

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

# -- scale: meshes, sharding, genome-scale IDS (issue 6) --
from pairint_jax import parallel
from pairint_jax.discovery.tiled import ids_tiled
from pairint_jax.parallel import make_mesh

# -- real datasets (issue 7) --
from pairint_jax import datasets  # noqa: E402

# -- scverse: AnnData in (issue 14) --
from pairint_jax import io  # noqa: E402
from pairint_jax.adata import score_adata  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    # issue 6
    "ids_tiled",
    "make_mesh",
    "parallel",
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
    # issue 14
    "DroppedObservationsWarning",
    "io",
    "score_adata",
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
