"""Choosing a batch of pairs: the :class:`Batch` result and the top-``b`` selections every policy uses.

An *action* is an unordered pair ``(i, j)``, ``i < j``. Pairs are indexed row-major,
``i * n + j`` (the ``np.triu_indices`` order), and every selection breaks ties toward the
lower index, so a batch is a deterministic function of its scores.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Batch", "finish_batch", "lex_argmin", "pair_index", "pairs_from_flat", "top_b", "upper_mask"]


class Batch(NamedTuple):
    """A batch of chosen actions.

    Attributes:
      pairs: ``[b, 2]`` int32, ``i < j`` (``(0, 0)`` in invalid slots).
      valid: ``[b]`` bool; False only when fewer than ``b`` actions remained.
      score: ``[b]`` float32, the policy's criterion for each pick (``Psi`` for IDS, the
        sample's value for TS, ``mean + beta std`` for UCB, ``std`` for US, a uniform draw
        for random).
      n_valid: ``[]`` int32, posterior samples used (finite on the remaining actions).
      fallback: ``[]`` bool, no sample was valid and the batch is random.
    """

    pairs: jax.Array
    valid: jax.Array
    score: jax.Array
    n_valid: jax.Array
    fallback: jax.Array


def pair_index(i, j, n: int):
    """Position of pair ``(i, j)``, ``i < j``, in ``np.triu_indices(n, 1)`` order."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


# ---------------------------------------------------------------------------- policies


def upper_mask(remaining, n):
    remaining = jnp.asarray(remaining, bool)
    if remaining.shape != (n, n):
        raise ValueError(f"remaining must be a bool array [n, n] = [{n}, {n}], got shape {remaining.shape}.")
    idx = jnp.arange(n)
    return remaining & (idx[None, :] > idx[:, None])


def lex_argmin(primary, secondary, cand):
    """Flat index of the lexicographic minimum of (primary, secondary, index) over ``cand``."""
    p = jnp.where(cand, primary, jnp.inf)
    c1 = cand & (p == jnp.min(p))
    s = jnp.where(c1, secondary, jnp.inf)
    c2 = c1 & (s == jnp.min(s))
    return jnp.argmax(c2.reshape(-1)), jnp.any(cand)


def pairs_from_flat(flat, n):
    return jnp.stack([flat // n, flat % n], -1).astype(jnp.int32)


def top_b(score, cand, batch):
    """The ``batch`` largest ``score`` among ``cand`` (ties: lower flat index first)."""
    n = cand.shape[0]
    s = jnp.where(cand, score, -jnp.inf).reshape(-1)
    vals, idx = jax.lax.top_k(s, batch)
    valid = cand.reshape(-1)[idx]
    return pairs_from_flat(idx, n), valid, vals


def finish_batch(pairs, valid, score, n_valid, fallback_batch):
    fallback = n_valid == 0
    pairs = jnp.where(fallback, fallback_batch.pairs, pairs)
    valid = jnp.where(fallback, fallback_batch.valid, valid)
    score = jnp.where(fallback, fallback_batch.score, score)
    pairs = jnp.where(valid[:, None], pairs, 0)
    return Batch(pairs.astype(jnp.int32), valid, score.astype(jnp.float32), n_valid.astype(jnp.int32), fallback)