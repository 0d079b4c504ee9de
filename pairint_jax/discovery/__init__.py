"""Active discovery: choose which pairs to run next (paper Sec. 4, App. D.3).

Works on reward matrices and pair indices only (never on a ``Screen``):

* :mod:`~pairint_jax.discovery.posterior`: the low-rank symmetric model, fitted by compiled
  numpyro SVI (``init`` / ``step`` / ``fit``), and its posterior samples (as factors);
  :mod:`~pairint_jax.discovery.links`: its link functions;
* :mod:`~pairint_jax.discovery.acquisition`: IDS, Thompson sampling, UCB, uncertainty
  sampling, greedy and uniform, as pure functions of (samples, remaining actions, key), on
  :mod:`~pairint_jax.discovery.sample_stats` and :mod:`~pairint_jax.discovery.selection`;
  :mod:`~pairint_jax.discovery.hub`: the model-free hub baseline;
* :mod:`~pairint_jax.discovery.policies`: the one registry of policies, options and defaults;
* :mod:`~pairint_jax.discovery.rounds`: one discovery round, ``(init, step)``: fit, sample,
  acquire (:mod:`~pairint_jax.discovery.tiled_round` for the tiled IDS);
* :mod:`~pairint_jax.discovery.simulate`: simulated campaigns on a known matrix
  (:func:`simulate`, :func:`simulate_many`: ``vmap(scan(step))``) with the paper's three
  metrics (inputs checked in :mod:`~pairint_jax.discovery.simulate_inputs`);
* :mod:`~pairint_jax.discovery.campaign`: the crash-safe on-disk lab loop (:class:`Campaign`;
  disk in :mod:`~pairint_jax.discovery.campaign_store`, proposals in
  :mod:`~pairint_jax.discovery.campaign_round`);
* :mod:`~pairint_jax.discovery.features_csv`: the per-perturbation features CSV
  (:func:`read_features`, :func:`write_features`) of ``pairint campaign-init --features``;
* :mod:`~pairint_jax.discovery.tiled`: IDS over every pair of a genome-scale screen
  (:func:`ids_tiled`: streamed in tiles, never ``K x pairs``, optionally sharded; device
  passes in :mod:`~pairint_jax.discovery.tiled_passes`).
"""

from pairint_jax.discovery.campaign import Campaign, CampaignStateError, ObserveResult
from pairint_jax.discovery.acquisition import Batch, IDSStats, greedy, ids, ids_stats, thompson, ucb, uncertainty, uniform
from pairint_jax.discovery.features_csv import FeaturesFileError, read_features, write_features
from pairint_jax.discovery.hub import hub
from pairint_jax.discovery.model_options import HUB_MODEL
from pairint_jax.discovery.policies import POLICIES, REGISTRY, acquire
from pairint_jax.discovery.posterior import FactorSamples, LowRankModel, Observations, PosteriorState
from pairint_jax.discovery.rounds import RoundInfo, RoundState
from pairint_jax.discovery.simulate import SimulationResult, simulate, simulate_many
from pairint_jax.discovery.tiled import TiledBatch, ids_tiled

__all__ = [
    "HUB_MODEL",
    "POLICIES",
    "Batch",
    "Campaign",
    "CampaignStateError",
    "FeaturesFileError",
    "ObserveResult",
    "FactorSamples",
    "IDSStats",
    "LowRankModel",
    "Observations",
    "PosteriorState",
    "RoundInfo",
    "RoundState",
    "SimulationResult",
    "TiledBatch",
    "REGISTRY",
    "acquire",
    "greedy",
    "hub",
    "ids",
    "ids_stats",
    "ids_tiled",
    "read_features",
    "simulate",
    "simulate_many",
    "thompson",
    "ucb",
    "uncertainty",
    "uniform",
    "write_features",
]
