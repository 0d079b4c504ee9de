"""Discovery curves (paper Fig. 6): top-5% pairs found, regret and known pairs found, per round.

One mean line and one min-max band over seeds for each policy, whatever its name: the
built-in policies get fixed colours and their names spelled out in the legend, any other
policy the next colour of the cycle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from pairint_jax.pl._common import finish

__all__ = ["discovery_curves", "POLICY_NAMES"]

#: Legend names of the built-in policies.
POLICY_NAMES = {
    "ids": "IDS (Information Directed Sampling)",
    "ucb": "UCB (upper confidence bound)",
    "ts": "TS (Thompson sampling)",
    "us": "US (uncertainty sampling)",
    "greedy": "greedy (posterior mean)",
    "hub": "hub (shrunk mean score of each perturbation)",
    "random": "random (uniform)",
    "uniform": "uniform random",
}
_COLORS = {"ids": "#d62728", "ts": "#1f77b4", "ucb": "#2ca02c", "us": "#9467bd", "greedy": "#ff7f0e", "hub": "#8c564b",
           "random": "#7f7f7f", "uniform": "#7f7f7f"}
_CYCLE = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31")

_REGRET = {
    "oracle": ("regret", "cumulative reward gap to the oracle\n(oracle's best b pairs per round; can fall)"),
    "remaining": ("regret_remaining", "cumulative regret vs. the best b\nstill-unmeasured pairs each round"),
}


def _panels(regret: str, show_known: bool):
    if regret not in _REGRET:
        raise ValueError(f"regret must be 'oracle' (the paper's metric) or 'remaining'; got {regret!r}.")
    panels = [("top5_fraction", "fraction of the top-5% pairs found"), _REGRET[regret]]
    if show_known:
        panels.append(("known_found", "known pairs found"))
    return panels


def _items(results):
    if isinstance(results, Mapping):
        items = list(results.items())
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = [(r.policy, r) for r in results]
    else:
        items = [(results.policy, results)]
    if not items:
        raise ValueError("discovery_curves needs at least one SimulationResult.")
    for name, res in items:
        for field in ("top5_fraction", "regret"):
            if not hasattr(res, field):
                raise TypeError(f"{name!r} is not a SimulationResult (no {field!r}); pass what pj.simulate returns.")
    return items


def discovery_curves(
    results,
    *,
    regret: str = "oracle",
    title: str | None = None,
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Plot the discovery curves of one or several simulated policies.

    For each policy the mean over seeds is a line and the min-max over seeds a band, against
    the round (1-based). Panels: the fraction of the true top-5% pairs measured so far; a
    regret; and, when the simulation was given ``known`` pairs, how many of them were found.

    The regret panel is honest about its reference. ``regret="oracle"`` (default, the
    paper's metric) is the oracle's cumulative reward minus the policy's, where the oracle
    takes the best ``b`` pairs each round: once it runs out of good pairs a policy that
    still finds them gains on it, so the curve can fall. ``regret="remaining"`` compares each
    round with the best ``b`` pairs the policy had not measured yet and never falls.

    Args:
      results: a :class:`~pairint_jax.SimulationResult`, a sequence of them, or a mapping
        ``{name: result}`` (as ``pj.simulate_many`` returns). Any policy name works.
      regret: ``"oracle"`` or ``"remaining"``.
      title: optional figure title (the settings line is always added).
      ax: a sequence of 2 (or 3, with known pairs) matplotlib axes; default a new figure.
      show, save, dpi: as in :func:`pairint_jax.pl.heatmap`.

    Returns:
      The matplotlib ``Figure`` (None when ``show=True``).

    Example:
      >>> res = pj.simulate_many(R, ("ids", "random"), rounds=20, batch=10, seeds=3)  # doctest: +SKIP
      >>> pj.pl.discovery_curves(res, save="discovery.png")  # doctest: +SKIP
    """
    items = _items(results)
    panels = _panels(regret, any(getattr(r, "n_known", 0) > 0 for _, r in items))
    if ax is None:
        if show:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(4.8 * len(panels), 3.9), layout="constrained")
        else:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(4.8 * len(panels), 3.9), layout="constrained")
        axes = list(fig.subplots(1, len(panels), squeeze=False)[0])
    else:
        axes = list(np.ravel(ax))
        if len(axes) < len(panels):
            raise ValueError(f"ax: need {len(panels)} axes for these panels, got {len(axes)}.")
        fig = axes[0].figure
    extra = iter(_CYCLE)
    colors = {name: _COLORS.get(name) or next(extra, None) for name, _ in items}
    for axis, (field, label) in zip(axes, panels):
        for name, res in items:
            vals = np.asarray(getattr(res, field), float)
            x = np.arange(1, vals.shape[1] + 1)
            axis.plot(x, vals.mean(0), color=colors[name], lw=2, label=POLICY_NAMES.get(name, name))
            axis.fill_between(x, vals.min(0), vals.max(0), color=colors[name], alpha=0.18, lw=0)
        axis.set_xlabel("round")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if field == "top5_fraction":
            axis.set_ylim(0, 1.02)
        if field == "known_found":
            n_known = max(getattr(r, "n_known", 0) for _, r in items)
            axis.axhline(n_known, color="k", lw=0.8, ls=":")
            axis.set_title(f"of {n_known} known", fontsize=9)
    axes[0].legend(frameon=False, fontsize=8)
    first = items[0][1]
    s = getattr(first, "settings", {}) or {}
    sub = f"n = {s.get('n', '?')}, batch b = {s.get('batch', '?')}, {first.seeds} seeds (line: mean, band: min-max)"
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=10)
    return finish(fig, show=show, save=save, dpi=dpi)
