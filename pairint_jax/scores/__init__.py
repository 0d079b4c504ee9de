"""Screen -> PairScores for each test: chunks of pairs through a vmapped stats function."""

# -- disjointedness / additivity (issue 3) --

# -- separability (issue 4) --
from pairint_jax.scores.separability import condition_kls, separability_scores

_ISSUE4 = ["condition_kls", "separability_scores"]

__all__: list[str] = [*_ISSUE4]
