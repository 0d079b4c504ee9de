"""The plots under their former names; :mod:`pairint_jax.pl` is the current home.

``pairint_jax.plotting.plot_pair_heatmap`` is :func:`pairint_jax.pl.heatmap` and
``plot_discovery_curves`` is :func:`pairint_jax.pl.discovery_curves` (which still accepts
the former ``axes=`` and ``path=`` keywords here). Both return the ``Figure``.
"""

from __future__ import annotations

from pairint_jax.pl import *  # noqa: F403
from pairint_jax.pl import __all__ as _pl_all
from pairint_jax.pl import discovery_curves as _discovery_curves
from pairint_jax.pl import heatmap as plot_pair_heatmap


def plot_discovery_curves(results, *, axes=None, title=None, path=None, dpi: int = 150, **kwargs):
    """:func:`pairint_jax.pl.discovery_curves` with the former ``axes=`` / ``path=`` names."""
    return _discovery_curves(results, ax=kwargs.pop("ax", axes), title=title, save=kwargs.pop("save", path), dpi=dpi, **kwargs)


__all__ = [*_pl_all, "plot_discovery_curves", "plot_pair_heatmap"]
