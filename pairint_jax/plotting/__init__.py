"""Figures (an edge of the library: nothing numerical imports this). Needs matplotlib."""

# -- score heatmaps (issue 3) --
from pairint_jax.plotting.heatmap import order_by_groups, plot_pair_heatmap

_ISSUE3 = ["order_by_groups", "plot_pair_heatmap"]

# -- discovery curves (issue 5) --
from pairint_jax.plotting.curves import plot_discovery_curves  # noqa: E402

__all__: list[str] = [*_ISSUE3, "plot_discovery_curves"]
