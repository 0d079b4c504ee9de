"""The functional core: pure ``jnp`` on padded arrays with masks.

Nothing here knows about ``Screen``, pandas or files; everything works under
``jit`` and ``vmap`` (and ``grad`` where meaningful), so other JAX code can embed it.

* kernels and distances: :func:`sq_distances`, :func:`rbf_kernel`,
  :func:`matern52_kernel`, :func:`kernel_from_sq`, :func:`kernel_fn`,
  :func:`median_heuristic`;
* certified medians (the median heuristic without sorting): :func:`grid_median`,
  :func:`bracket_median` and their float-bit grid;
* the mixture MMD^2 and its null: :func:`mixture_mmd2`, :func:`mixture_mmd2_test`,
  :func:`permutation_null`, :func:`bootstrap_null`, p- and q-values;
* the two-sample MMD^2 of a sample against a large reference read in blocks:
  :func:`mmd2_two_sample`, :func:`mmd2_from_sums`, :func:`blocked_kernel_sum`,
  :func:`blocked_self_sum`, :func:`kernel_sum`;
* KL divergence estimators: k-NN (:func:`knn_kl`, :func:`knn_kl_all`, and the neighbour
  search alone, :func:`knn_distances`) and SMILE
  (:func:`smile`, :func:`smile_all`).
"""

# -- kernels and distances --
from pairint_jax.stats.kernels import (
    KERNELS,
    kernel_fn,
    kernel_from_sq,
    matern52_kernel,
    median_heuristic,
    rbf_kernel,
    sq_distances,
)

# -- certified medians --
from pairint_jax.stats.median import GridSpec, MedianResult, bracket_median, grid_histogram, grid_median, grid_spec

# -- the mixture MMD^2, its null distribution, p- and q-values --
from pairint_jax.stats.mmd import (
    NULLS,
    MMDTestResult,
    benjamini_hochberg,
    block_weights,
    bootstrap_null,
    mixture_mmd2,
    mixture_mmd2_from_block_sums,
    mixture_mmd2_test,
    permutation_null,
    permutation_p_value,
)

# -- the two-sample MMD^2 against a (blocked) reference sample --
from pairint_jax.stats.two_sample import blocked_kernel_sum, blocked_self_sum, kernel_sum, mmd2_from_sums, mmd2_two_sample

# -- KL divergence estimators: k-NN and SMILE --
from pairint_jax.stats.knn import KnnKL, knn_distances, knn_kl, knn_kl_all, knn_kl_info
from pairint_jax.stats.smile import smile, smile_all

__all__ = [
    # kernels and distances
    "KERNELS",
    "kernel_fn",
    "kernel_from_sq",
    "matern52_kernel",
    "median_heuristic",
    "rbf_kernel",
    "sq_distances",
    # certified medians
    "GridSpec",
    "MedianResult",
    "bracket_median",
    "grid_histogram",
    "grid_median",
    "grid_spec",
    # mixture MMD^2 and its null
    "NULLS",
    "MMDTestResult",
    "benjamini_hochberg",
    "block_weights",
    "bootstrap_null",
    "mixture_mmd2",
    "mixture_mmd2_from_block_sums",
    "mixture_mmd2_test",
    "permutation_null",
    "permutation_p_value",
    # two-sample MMD^2
    "blocked_kernel_sum",
    "blocked_self_sum",
    "kernel_sum",
    "mmd2_from_sums",
    "mmd2_two_sample",
    # KL divergence estimators
    "KnnKL",
    "knn_distances",
    "knn_kl",
    "knn_kl_all",
    "knn_kl_info",
    "smile",
    "smile_all",
]
