"""SMILE: the smoothed mutual-information "lower-bound" estimator of a KL divergence.

Given a log-density ratio ``f(x) ~= log p(x) / q(x)`` (for separability the critic
difference ``f(x, 0) - f(x, g)`` of a neural ratio estimator) and samples of both
distributions (Song & Ermon 2020; the paper's App. B.2)::

    KL_SMILE(f, tau) = E_p[ f ] - log E_q[ clip( exp f, e^-tau, e^tau ) ]

Only the ``E_q`` term is clipped. ``clip(exp f, e^-tau, e^tau) = exp(clip(f, -tau, tau))``,
so the log-mean-exp is computed stably with ``logsumexp`` on the clipped values.
``tau = inf`` gives MILE (the Donsker-Varadhan form, no clipping).

Even with the exact log-ratio, ``tau = 5`` biases the estimate upward once the KL
exceeds about 2 (``E_q[clip(p/q)] < 1``); rankings survive, values are not nats.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

__all__ = ["smile", "smile_all"]


def _mask(mask, shape, name):
    if mask is None:
        return jnp.ones(shape, dtype=bool)
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} to match the log-ratios, got {mask.shape}.")
    return mask.astype(bool)


def _check_tau(tau):
    try:
        t = float(tau)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return  # traced: checked by the caller's contract
    if not t > 0:
        raise ValueError(f"tau must be > 0 (or inf for MILE), got {tau!r}.")


def _smile_core(f_p, f_q, tau, mask_p, mask_q):
    dtype = jnp.result_type(f_p.dtype, f_q.dtype, jnp.float32)
    f_p, f_q = f_p.astype(dtype), f_q.astype(dtype)
    n_p = jnp.sum(mask_p).astype(dtype)
    n_q = jnp.sum(mask_q).astype(dtype)
    e_p = jnp.sum(jnp.where(mask_p, f_p, 0.0)) / n_p
    tau = jnp.asarray(tau, dtype)
    clipped = jnp.clip(f_q, -tau, tau)
    log_e_q = logsumexp(jnp.where(mask_q, clipped, -jnp.inf)) - jnp.log(n_q)
    return e_p - log_e_q


def smile(f_p, f_q, *, tau=5.0, mask_p=None, mask_q=None) -> jax.Array:
    r"""SMILE estimate of ``KL(p || q)`` from a log-ratio evaluated on samples of each.

    .. math::
        \mathrm{KL}_{\mathrm{SMILE}}(f,\tau) = \frac{1}{n}\sum_{t} f(x_t)
        - \log \frac{1}{m}\sum_{s} \exp\big(\mathrm{clip}(f(y_s), -\tau, \tau)\big),
        \qquad x_t \sim p,\ y_s \sim q

    Args:
      f_p: ``[n]`` log-ratio ``f = log p/q`` at samples of ``p``.
      f_q: ``[m]`` the same log-ratio at samples of ``q``.
      tau: clipping threshold (traced, so changing it does not recompile); default 5
        (the paper's; its code used 10). ``jnp.inf`` gives MILE.
      mask_p: ``[n]`` bool, True on real entries of ``f_p`` (default all).
      mask_q: ``[m]`` bool, True on real entries of ``f_q`` (default all).

    Returns:
      ``[]`` the estimate; NaN if a mask selects nothing.

    Raises:
      ValueError: ``tau <= 0`` (concrete), mismatched masks or non-1-d inputs.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.random.normal(jax.random.key(0), (20000,)); y = x + 1.0   # p = N(0,1), q = N(1,1)
      >>> f = lambda z: 0.5 - z                                              # exact log p/q
      >>> round(float(smile(f(x), f(y), tau=jnp.inf)), 1)                    # analytic KL = 0.5
      0.5

    References:
      J. Song, S. Ermon. Understanding the limitations of variational mutual information
      estimators. ICLR 2020.
    """
    f_p, f_q = jnp.asarray(f_p), jnp.asarray(f_q)
    if f_p.ndim != 1 or f_q.ndim != 1:
        raise ValueError(f"f_p and f_q must be 1-d ([n] and [m]), got shapes {f_p.shape} and {f_q.shape}.")
    _check_tau(tau)
    return _smile_jit(f_p, f_q, tau, _mask(mask_p, f_p.shape, "mask_p"), _mask(mask_q, f_q.shape, "mask_q"))


_smile_jit = jax.jit(_smile_core)


def smile_all(f_p, f_q, *, tau=5.0, mask_p=None, mask_q=None) -> jax.Array:
    """SMILE for ``G`` conditions at once: ``KL(p || q_g)`` for every ``g`` (vmapped).

    For separability, ``f_p[:, g] = f(x, 0) - f(x, g)`` at held-out *control* samples
    (so every condition shares ``p``'s samples) and ``f_q[g, s]`` is the same
    difference at the held-out samples of condition ``g``, padded to ``m``.

    Args:
      f_p: ``[n, G]`` log-ratio of each condition at the samples of ``p``.
      f_q: ``[G, m]`` log-ratio of condition ``g`` at its own (padded) samples.
      tau: as in :func:`smile` (traced).
      mask_p: ``[n]`` bool for the rows of ``f_p`` (default all).
      mask_q: ``[G, m]`` bool for ``f_q`` (default all).

    Returns:
      ``[G]`` estimates, equal to :func:`smile` applied to each column/row.

    Example:
      >>> f_p = jnp.zeros((100, 3)); f_q = jnp.zeros((3, 50))
      >>> smile_all(f_p, f_q).shape
      (3,)
    """
    f_p, f_q = jnp.asarray(f_p), jnp.asarray(f_q)
    if f_p.ndim != 2 or f_q.ndim != 2 or f_p.shape[1] != f_q.shape[0]:
        raise ValueError(
            f"f_p must be [n, G] and f_q [G, m] with the same G, got shapes {f_p.shape} and {f_q.shape}."
        )
    _check_tau(tau)
    mask_p = _mask(mask_p, f_p.shape[:1], "mask_p")
    mask_q = _mask(mask_q, f_q.shape, "mask_q")
    return _smile_all_jit(f_p, f_q, tau, mask_p, mask_q)


def smile_per_condition(f_p, f_q, tau, mask_p, mask_q) -> jax.Array:
    """The unchecked core of :func:`smile_all` (same arguments, masks required), for
    callers that build the log-ratios inside their own compiled program."""
    return jax.vmap(_smile_core, in_axes=(1, 0, None, None, 0))(f_p, f_q, tau, mask_p, mask_q)


_smile_all_jit = jax.jit(smile_per_condition)
