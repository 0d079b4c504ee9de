"""pairint_jax: pairwise interactions between perturbations, from unstructured readouts, in JAX.

The public API (``import pairint_jax as pj``):

* data: :class:`Screen`, :func:`read_screen`, :func:`write_screen`, :mod:`pj.io`
  (``from_anndata``), :mod:`pj.synthetic`, :mod:`pj.datasets`;
* scanpy style: :func:`score_adata` (results into ``adata.uns``);
* scores: :func:`disjointedness_scores`, :func:`additivity_scores`,
  :func:`separability_scores`, each returning :class:`PairScores`; the interaction
  types :func:`interaction_types` (a tidy table); and
  :func:`perturbation_features` (what the singles measured: ``[n, f]`` discovery covariates);
* the functional core for other JAX code: :mod:`pj.stats`, and the neural ratio
  estimator :mod:`pj.nre`;
* discovery: :func:`simulate`, :class:`Campaign`, :func:`ids_tiled`, and the features CSV of a
  campaign (:func:`read_features`, :func:`write_features`);
* scale: :func:`make_mesh` and :mod:`pj.parallel` (every heavy entry point takes ``mesh=``);
* results out: :class:`PairScores` (``to_frame``, ``to_matrix_frame``, q-values through
  :mod:`pj.multitest`), :func:`save_scores`, :func:`write_score_report`, and the plots
  :mod:`pj.pl` (loaded on first use, so ``import pairint_jax`` does not import matplotlib).
"""

import importlib as _importlib

# -- data: screens, files, generators, real datasets --
from pairint_jax import io
from pairint_jax.io import read_screen, write_screen
from pairint_jax.labels import parse_label
from pairint_jax.screen import DroppedObservationsWarning, Screen, UnscorableWarning, bucket_size
from pairint_jax import datasets, synthetic

# -- scores of every pair --
from pairint_jax.results import PairScores
from pairint_jax.scores import (
    additivity_scores,
    disjointedness_scores,
    interaction_types,
    perturbation_features,
    separability_scores,
)

# -- scanpy style: AnnData in and out --
from pairint_jax.adata import score_adata

# -- the functional core and the neural ratio estimator --
from pairint_jax import nre, stats

# -- discovery: choosing which pairs to run next --
from pairint_jax.discovery import (
    HUB_MODEL,
    Campaign,
    CampaignStateError,
    LowRankModel,
    SimulationResult,
    simulate,
    simulate_many,
)
from pairint_jax.discovery.features_csv import FeaturesFileError, read_features, write_features
from pairint_jax.discovery.tiled import ids_tiled

# -- scale: meshes and sharding --
from pairint_jax import parallel
from pairint_jax.parallel import make_mesh

# -- results out: tables, multiple testing, files, reports (plots: pj.pl, lazily) --
from pairint_jax import multitest
from pairint_jax.export import save_scores
from pairint_jax.report import write_score_report

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
    # data
    "DroppedObservationsWarning",
    "Screen",
    "UnscorableWarning",
    "bucket_size",
    "datasets",
    "io",
    "parse_label",
    "read_screen",
    "synthetic",
    "write_screen",
    # scores
    "PairScores",
    "additivity_scores",
    "interaction_types",
    "disjointedness_scores",
    "perturbation_features",
    "score_adata",
    "separability_scores",
    # functional core
    "nre",
    "stats",
    # discovery
    "Campaign",
    "CampaignStateError",
    "FeaturesFileError",
    "HUB_MODEL",
    "LowRankModel",
    "SimulationResult",
    "ids_tiled",
    "read_features",
    "simulate",
    "simulate_many",
    "write_features",
    # scale
    "make_mesh",
    "parallel",
    # results out
    "multitest",
    "pl",
    "plotting",
    "save_scores",
    "write_score_report",
]
