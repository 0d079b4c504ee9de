"""Plots, scanpy-style: ``pj.pl.heatmap(res)``, ``pj.pl.volcano(res)``, ... (an edge of the library).

Every function takes a :class:`~pairint_jax.PairScores` (or, where it makes sense, a square
``pandas.DataFrame`` from ``res.to_matrix_frame()``), and the scanpy keywords ``ax=``
(draw into an existing ``Axes``), ``save=`` (a file path) and ``show=`` (True: call
``plt.show()`` and return None; default: return the ``Figure``).

* :func:`heatmap`: the pair-score matrix (one image, masked NaN, optional clustered order);
* :func:`volcano`: score against ``-log10 q``, significant pairs named;
* :func:`ranked`: scores best first, top pairs named (every test);
* :func:`observed_vs_expected`: the doubles' shifts against the sum of the singles';
* :func:`discovery_curves`: the active-discovery curves of simulated policies (paper Fig. 6).

matplotlib is imported on the first call, not on ``import pairint_jax``.
"""

from pairint_jax.pl.curves import POLICY_NAMES, discovery_curves
from pairint_jax.pl.effects import group_means, observed_vs_expected
from pairint_jax.pl.heatmap import cluster_order, heatmap, order_by_groups
from pairint_jax.pl.pairs import ranked, volcano

__all__ = [
    "POLICY_NAMES",
    "cluster_order",
    "discovery_curves",
    "group_means",
    "heatmap",
    "observed_vs_expected",
    "order_by_groups",
    "ranked",
    "volcano",
]
