"""Screen -> PairScores for each test: chunks of pairs through a vmapped stats function."""

# -- disjointedness / additivity (issue 3) --

# -- separability (issue 4) --

__all__: list[str] = []
