"""Screen -> PairScores for each test: chunks of pairs through a vmapped stats function."""

# -- disjointedness / additivity (issue 3) --
from pairint_jax.scores.additivity import additivity_scores
from pairint_jax.scores.disjointedness import disjointedness_scores

_ISSUE3 = ["additivity_scores", "disjointedness_scores"]

# -- separability (issue 4) --
from pairint_jax.scores.separability import condition_kls, separability_scores

_ISSUE4 = ["condition_kls", "separability_scores"]

__all__: list[str] = [*_ISSUE3, *_ISSUE4]
