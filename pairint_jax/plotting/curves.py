"""Discovery curves (paper Fig. 6): top-5% fraction, cumulative regret and known pairs found,
per round, one mean line and one min-max band over seeds for each policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["plot_discovery_curves"]

_COLORS = {"ids": "#d62728", "ts": "#1f77b4", "ucb": "#2ca02c", "us": "#9467bd", "random": "#7f7f7f"}
_LABELS = {"ids": "IDS", "ts": "TS", "ucb": "UCB", "us": "US", "random": "random"}
_PANELS = (
    ("top5_fraction", "fraction of top-5% pairs found"),
    ("regret", "cumulative regret"),
    ("known_found", "known pairs found"),
)


def plot_discovery_curves(results, *, axes=None, title: str | None = None, path=None, dpi: int = 150):
    """Plot the three discovery curves of one or several simulated policies.

    For each policy, the mean over seeds is a line and the min-max over seeds a shaded
    band, against the round (1-based). The third panel is drawn only if a ``known`` list
    was given to the simulation (``n_known > 0``).

    Args:
      results: a :class:`~pairint_jax.discovery.simulate.SimulationResult`, a sequence of
        them, or a mapping ``{name: result}`` (as returned by ``simulate_many``).
      axes: optional sequence of matplotlib axes (2 or 3); a new figure otherwise.
      title: optional figure title.
      path: if given, save the figure there (PNG, PDF, SVG ...).
      dpi: resolution when saving.

    Returns:
      The matplotlib ``Figure``.

    Example:
      >>> res = pj.simulate_many(R, ("ids", "random"), rounds=20, batch=10, seeds=3)  # doctest: +SKIP
      >>> pj.plotting.plot_discovery_curves(res, path="discovery.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if isinstance(results, Mapping):
        items = list(results.items())
    elif isinstance(results, Sequence):
        items = [(r.policy, r) for r in results]
    else:
        items = [(results.policy, results)]
    if not items:
        raise ValueError("plot_discovery_curves needs at least one SimulationResult.")
    for name, res in items:
        for field, _ in _PANELS:
            if not hasattr(res, field):
                raise TypeError(f"{name!r} is not a SimulationResult (no {field!r}); pass what pj.simulate returns.")
    show_known = any(getattr(r, "n_known", 0) > 0 for _, r in items)
    panels = _PANELS if show_known else _PANELS[:2]
    if axes is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
        axes = axes[0]
    else:
        axes = list(np.ravel(axes))
        if len(axes) < len(panels):
            raise ValueError(f"axes: need {len(panels)} axes for these panels, got {len(axes)}.")
        fig = axes[0].figure
    for ax, (field, label) in zip(axes, panels):
        for name, res in items:
            vals = np.asarray(getattr(res, field), float)
            x = np.arange(1, vals.shape[1] + 1)
            color = _COLORS.get(res.policy)
            ax.plot(x, vals.mean(0), color=color, lw=2, label=f"{_LABELS.get(name, name)}")
            ax.fill_between(x, vals.min(0), vals.max(0), color=color, alpha=0.18, lw=0)
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if field == "top5_fraction":
            ax.set_ylim(0, 1.02)
        if field == "known_found":
            n_known = max(getattr(r, "n_known", 0) for _, r in items)
            ax.axhline(n_known, color="k", lw=0.8, ls=":")
            ax.set_title(f"of {n_known} known", fontsize=9)
    axes[0].legend(frameon=False, fontsize=9)
    first = items[0][1]
    s = getattr(first, "settings", {})
    sub = f"n = {s.get('n', '?')}, batch {s.get('batch', '?')}, {first.seeds} seeds (line: mean, band: min-max)"
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig
