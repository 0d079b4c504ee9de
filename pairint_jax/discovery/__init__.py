"""Active discovery: choose which pairs to run next (DIGEST section 4, paper Sec. 4, App. D.3).

Works on reward matrices and pair indices only (never on a ``Screen``):

* :mod:`~pairint_jax.discovery.posterior`: the low-rank symmetric model, fitted by compiled
  numpyro SVI (``init`` / ``step`` / ``fit``), and its posterior samples (as factors);
* :mod:`~pairint_jax.discovery.acquisition`: IDS, Thompson sampling, UCB, uncertainty
  sampling and random, as pure functions of (samples, remaining actions, key);
* :mod:`~pairint_jax.discovery.simulate`: simulated campaigns on a known matrix
  (:func:`simulate`, :func:`simulate_many`) with the paper's three metrics;
* :mod:`~pairint_jax.discovery.campaign`: the crash-safe on-disk lab loop (:class:`Campaign`);
* :mod:`~pairint_jax.discovery.tiled`: IDS over every pair of a genome-scale screen
  (:func:`ids_tiled`: streamed in tiles, never ``K x pairs``, optionally sharded).
"""

from pairint_jax.discovery.campaign import Campaign, CampaignStateError, ObserveResult
from pairint_jax.discovery.acquisition import POLICIES, Batch, IDSStats, acquire, ids, ids_stats, thompson, ucb, uncertainty
from pairint_jax.discovery.posterior import FactorSamples, LowRankModel, Observations, PosteriorState
from pairint_jax.discovery.simulate import SimulationResult, simulate, simulate_many
from pairint_jax.discovery.tiled import TiledBatch, ids_tiled

__all__ = [
    "POLICIES",
    "Batch",
    "Campaign",
    "CampaignStateError",
    "ObserveResult",
    "FactorSamples",
    "IDSStats",
    "LowRankModel",
    "Observations",
    "PosteriorState",
    "SimulationResult",
    "TiledBatch",
    "acquire",
    "ids",
    "ids_stats",
    "ids_tiled",
    "simulate",
    "simulate_many",
    "thompson",
    "ucb",
    "uncertainty",
]
