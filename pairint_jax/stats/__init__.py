"""The functional core: pure ``jnp`` on padded arrays with masks.

Nothing here knows about ``Screen``, pandas or files; everything works under
``jit`` and ``vmap`` (and ``grad`` where meaningful), so other JAX code can embed it.
"""

# -- kernels, MMD, permutations (issue 3) --

# -- k-NN KL, SMILE (issue 4) --
from pairint_jax.stats.knn import KnnKL, knn_kl, knn_kl_all, knn_kl_info
from pairint_jax.stats.smile import smile, smile_all

_ISSUE4 = ["KnnKL", "knn_kl", "knn_kl_all", "knn_kl_info", "smile", "smile_all"]

__all__: list[str] = [*_ISSUE4]
