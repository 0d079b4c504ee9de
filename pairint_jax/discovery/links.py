"""Link functions ``g`` of the low-rank reward model: ``R = shift + scale * g(F)``.

* ``"identity"``: ``g(F) = F`` (the digest's model);
* ``"abs"``: ``g(F) = |F|`` (a non-negative matrix that is the magnitude of a signed low-rank one);
* ``"softplus"``: ``g(F) = log(1 + e^F)`` (a smooth non-negative map).

The non-negative links (:data:`NONNEGATIVE_LINKS`) are fitted with ``shift = 0``: scores are
divided by their root mean square, not centred, since a centred score goes below 0 where
``g`` cannot (:func:`~pairint_jax.discovery.posterior_model.standardise`).

``"auto"`` (the default of :func:`~pairint_jax.simulate`, :func:`~pairint_jax.simulate_many`
and :meth:`~pairint_jax.Campaign.create`) is resolved from the scores by :func:`resolve_link`:
``"abs"`` for a score that is never negative (a magnitude such as ``|GI|``, ``|SL|`` or the
additivity norm ``||h_ij - h_i - h_j||``, which folds a signed interaction at 0), ``"identity"``
for a score that takes negative values (an unbiased MMD^2, noise around 0). On the real maps
of ``benchmarks/real_discovery.py`` the folded model is what finds the top pairs of a magnitude
score (``benchmarks/RESULTS.md``, "Discovery on real maps, issue 12, with link="auto"").

Shared by the posterior (:mod:`~pairint_jax.discovery.posterior`) and the tiled IDS
(:mod:`~pairint_jax.discovery.tiled`), which both turn factors into rewards.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LINKS", "LINK_CHOICES", "NONNEGATIVE_LINKS", "apply_link", "resolve_link"]

LINKS = ("identity", "abs", "softplus")
#: Links whose values are never negative: fitted without centring the scores.
NONNEGATIVE_LINKS = ("abs", "softplus")
#: What the user-facing entry points accept: a link, or ``"auto"`` (:func:`resolve_link`).
LINK_CHOICES = (*LINKS, "auto")


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


def resolve_link(link: str, scores) -> str:
    """The link to fit: ``link`` itself, or for ``"auto"`` the one the ``scores`` call for.

    ``"auto"`` gives ``"abs"`` when no finite score is negative (also when there is none yet:
    the first round of a campaign), else ``"identity"``. Non-finite scores are ignored.

    Args:
      link: one of :data:`LINK_CHOICES`.
      scores: array-like of the scores known so far (any shape; host values).

    Returns:
      One of :data:`LINKS`.

    Raises:
      ValueError: ``link`` is not one of :data:`LINK_CHOICES`.

    Example:
      >>> resolve_link("auto", [0.5, 2.0]), resolve_link("auto", [0.5, -0.1]), resolve_link("identity", [1.0])
      ('abs', 'identity', 'identity')
    """
    if link not in LINK_CHOICES:
        raise ValueError(f"link must be one of {', '.join(map(repr, LINK_CHOICES))}; got {link!r}.")
    if link != "auto":
        return link
    v = np.asarray(scores, np.float64).ravel()
    v = v[np.isfinite(v)]
    return "identity" if np.any(v < 0) else "abs"
