"""Screen -> PairScores for each test: chunks of pairs through a vmapped stats function;
and Screen -> per-perturbation features of the singles (:func:`perturbation_features`)."""

from pairint_jax.scores.additivity import additivity_scores
from pairint_jax.scores.disjointedness import disjointedness_scores
from pairint_jax.scores.features import perturbation_features
from pairint_jax.scores.interaction_types import interaction_types
from pairint_jax.scores.separability import condition_kls, separability_scores

__all__ = [
    "additivity_scores",
    "condition_kls",
    "disjointedness_scores",
    "interaction_types",
    "perturbation_features",
    "separability_scores",
]
