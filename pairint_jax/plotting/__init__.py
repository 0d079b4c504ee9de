"""Figures (an edge of the library: nothing numerical imports this). Needs matplotlib."""

# -- score heatmaps (issue 3) --

# -- discovery curves (issue 5) --
from pairint_jax.plotting.curves import plot_discovery_curves  # noqa: E402

__all__: list[str] = ["plot_discovery_curves"]
