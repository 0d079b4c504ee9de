"""pairint_jax: pairwise interactions between perturbations, from unstructured readouts, in JAX.

The public API (``import pairint_jax as pj``):

* data: :class:`Screen`, :func:`read_screen`, :func:`write_screen`, :mod:`pj.synthetic`;
* scores: :func:`disjointedness_scores`, :func:`additivity_scores`,
  :func:`separability_scores`, each returning :class:`PairScores`;
* the functional core for other JAX code: :mod:`pj.stats`;
* discovery: :func:`simulate`, :class:`Campaign`;
* results out: :class:`PairScores` (``to_frame``, ``to_matrix_frame``, q-values through
  :mod:`pj.multitest`), :func:`save_scores`, :func:`write_score_report`, and the plots
  :mod:`pj.pl` (loaded on first use, so ``import pairint_jax`` does not import matplotlib).
"""

import importlib as _importlib

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

# -- scale: meshes, sharding, genome-scale IDS (issue 6) --
from pairint_jax import parallel
from pairint_jax.discovery.tiled import ids_tiled
from pairint_jax.parallel import make_mesh

# -- real datasets (issue 7) --
from pairint_jax import datasets  # noqa: E402

# -- results out (issue 14) --
from pairint_jax import multitest  # noqa: E402
from pairint_jax.export import save_scores  # noqa: E402
from pairint_jax.report import write_score_report  # noqa: E402

__version__ = "0.1.0"

_LAZY = {"pl": "pairint_jax.pl", "plotting": "pairint_jax.plotting"}


def __getattr__(name: str):
    """``pj.pl`` and ``pj.plotting`` import matplotlib only when first used."""
    if name in _LAZY:
        module = _importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'pairint_jax' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])

__all__ = [
    # issue 14 (results out)
    "multitest",
    "pl",
    "plotting",
    "save_scores",
    "write_score_report",
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
