"""Link functions ``g`` of the low-rank reward model: ``R = shift + scale * g(F)``.

* ``"identity"``: ``g(F) = F`` (the digest's model, the default);
* ``"abs"``: ``g(F) = |F|`` (a non-negative matrix that is the magnitude of a signed low-rank one);
* ``"softplus"``: ``g(F) = log(1 + e^F)`` (a smooth non-negative map).

Shared by the posterior (:mod:`~pairint_jax.discovery.posterior`) and the tiled IDS
(:mod:`~pairint_jax.discovery.tiled`), which both turn factors into rewards.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LINKS", "apply_link"]

LINKS = ("identity", "abs", "softplus")


def apply_link(name: str, f):
    """``g(f)`` elementwise for the link ``name`` (static).

    Args:
      name: one of :data:`LINKS`.
      f: array of any shape.

    Returns:
      An array of the shape of ``f``.

    Example:
      >>> apply_link("abs", jnp.array([-2.0, 3.0])).tolist()
      [2.0, 3.0]
    """
    if name == "identity":
        return f
    if name == "abs":
        return jnp.abs(f)
    if name == "softplus":
        return jax.nn.softplus(f)
    raise ValueError(f"unknown link {name!r}; expected one of {LINKS}.")
