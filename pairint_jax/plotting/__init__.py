"""Figures (an edge of the library: nothing numerical imports this). Needs matplotlib."""

# -- score heatmaps (issue 3) --

# -- discovery curves (issue 5) --

__all__: list[str] = []
