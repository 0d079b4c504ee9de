"""Chunking (and, with issue 6, mesh) helpers shared by ``scores`` and ``discovery``.

``chunked_vmap`` is the one way this library batches a single-item function over
many items (pairs, conditions, actions) with bounded memory: ``vmap`` inside chunks of
``chunk_size`` items, ``lax.map`` (a compiled loop) across chunks. Peak memory is
that of one chunk, and the whole thing is still one compiled program under ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

__all__ = ["chunked_vmap"]


def chunked_vmap(fn: Callable, *args, chunk_size: int | None = None):
    """Apply ``fn`` to every item along the leading axis of ``args``, in chunks.

    Args:
      fn: a function of one item of each argument (pytrees allowed).
      *args: pytrees whose leaves all share the leading axis ``[m, ...]``.
      chunk_size: items per vmapped chunk (static). ``None`` or ``>= m`` means a
        plain ``vmap`` over all items at once.

    Returns:
      ``fn``'s outputs stacked along a new leading axis ``[m, ...]``, identical to
      ``jax.vmap(fn)(*args)``.

    Example:
      >>> import jax.numpy as jnp
      >>> chunked_vmap(lambda a, b: a @ b, jnp.ones((10, 3)), jnp.ones((10, 3)), chunk_size=4).shape
      (10,)
    """
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("chunked_vmap needs at least one array argument.")
    m = leaves[0].shape[0]
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size}.")
    if chunk_size is None or chunk_size >= m:
        return jax.vmap(fn)(*args)
    return jax.lax.map(lambda a: fn(*a), args, batch_size=int(chunk_size))
