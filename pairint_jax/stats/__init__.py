"""The functional core: pure ``jnp`` on padded arrays with masks.

Nothing here knows about ``Screen``, pandas or files; everything works under
``jit`` and ``vmap`` (and ``grad`` where meaningful), so other JAX code can embed it.
"""

# -- kernels, MMD, permutations (issue 3) --
from pairint_jax.stats.kernels import (
    KERNELS,
    kernel_from_sq,
    matern52_kernel,
    median_heuristic,
    rbf_kernel,
    sq_distances,
)
from pairint_jax.stats.median import GridSpec, MedianResult, bracket_median, grid_histogram, grid_median, grid_spec
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

_ISSUE3 = [
    "KERNELS",
    "GridSpec",
    "MedianResult",
    "bracket_median",
    "grid_histogram",
    "grid_median",
    "grid_spec",
    "kernel_from_sq",
    "matern52_kernel",
    "median_heuristic",
    "rbf_kernel",
    "sq_distances",
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
]

# -- k-NN KL, SMILE (issue 4) --
from pairint_jax.stats.knn import KnnKL, knn_kl, knn_kl_all, knn_kl_info
from pairint_jax.stats.smile import smile, smile_all

_ISSUE4 = ["KnnKL", "knn_kl", "knn_kl_all", "knn_kl_info", "smile", "smile_all"]

__all__: list[str] = [*_ISSUE3, *_ISSUE4]
