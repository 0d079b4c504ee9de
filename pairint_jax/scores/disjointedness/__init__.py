"""Disjointedness scores: the mixture MMD^2 of every scorable pair in one compiled pass.

The computation (``Screen -> chunks of pairs -> vmap``), one module per step:

1. :mod:`.bandwidth`: ``bandwidth=`` resolved once into ``(mode, value)``.
2. :mod:`.layout` (host, once): the rows centred on the control mean and flattened; the
   singles padded to one size ``m_s``, each double to ``m_d``; the control kept apart,
   so a control 50x larger than the other groups costs only its own size.
3. :mod:`.shared` (one jitted call): everything that does not depend on the double,
   the kernel sums (shared bandwidth) or the squared distances and median histograms
   (per-pair bandwidth) of the control and single blocks.
4. :mod:`.pair`: the per-pair program (the pair's slab of distances, its certified
   median bandwidth, its block sums, the statistic, the null draws), mapped over all
   pairs by :func:`pairint_jax.parallel.chunked_vmap`. Peak memory is that of one
   chunk (``pairs_per_chunk`` pairs).
5. :mod:`.runners`: in memory, streamed from the host (:mod:`.streaming`), or sharded
   over a mesh; :mod:`.api`: the entry point :func:`disjointedness_scores`.

The per-pair median (the known bottleneck of a naive ``jnp.median`` per pair: a sort of
millions of cross distances per pair) is found by selection, never by sorting:
:func:`pairint_jax.stats.grid_median` (CPU default) bins the pair's own cross distances
on a float-bit grid and adds the precomputed histograms of the shared control-single
blocks; :func:`pairint_jax.stats.bracket_median` (accelerator default) brackets the
median from a 1,024-entry subsample and certifies/refines it with fused counting
passes. Both guarantee the median within ``median_rtol`` (default 0.1%) of the exact
median of all cross distances.
"""

from pairint_jax.scores.disjointedness.api import disjointedness_scores
from pairint_jax.scores.disjointedness.bandwidth import BANDWIDTHS

__all__ = ["disjointedness_scores", "BANDWIDTHS"]
