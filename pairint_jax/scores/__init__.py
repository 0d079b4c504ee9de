"""Screen -> PairScores for each test: chunks of pairs through a vmapped stats function."""

from pairint_jax.scores.additivity import additivity_scores
from pairint_jax.scores.disjointedness import disjointedness_scores
from pairint_jax.scores.interaction_types import interaction_types
from pairint_jax.scores.separability import condition_kls, separability_scores

__all__ = ["additivity_scores", "condition_kls", "disjointedness_scores", "interaction_types", "separability_scores"]
