"""The functional core: pure ``jnp`` on padded arrays with masks.

Nothing here knows about ``Screen``, pandas or files; everything works under
``jit`` and ``vmap`` (and ``grad`` where meaningful), so other JAX code can embed it.
"""

# -- kernels, MMD, permutations (issue 3) --

# -- k-NN KL, SMILE (issue 4) --

__all__: list[str] = []
