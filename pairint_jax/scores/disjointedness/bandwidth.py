"""The kernel bandwidth of the disjointedness scores, resolved once at the boundary.

``bandwidth=`` is one of three things, and becomes a :class:`Bandwidth` ``(mode, value)``
before any array work:

* ``"pair"``: each pair's own median heuristic (Gretton et al. 2012), the median of the
  cross distances between ``ij u 0`` and ``i u j``, found inside the per-pair program;
* ``"global"``: one median of all pairwise distances among a row sample of the screen,
  shared by every pair (measured by :func:`measure_global` once the rows are prepared);
* a positive float: a fixed bandwidth.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax.stats.kernels import sq_distances

#: Bandwidth modes accepted by ``bandwidth=`` (besides a positive float).
BANDWIDTHS = ("pair", "global")

#: A fixed bandwidth ``s`` must lie in ``[2**-63, 2**63]``: the kernels compute ``s**2``
#: in float32, which underflows to 0 below (every kernel value is then 0 or 0/0) and
#: overflows above (every kernel value 1).
BANDWIDTH_RANGE = (2.0**-63, 2.0**63)

_EXPECTED = "bandwidth must be 'pair', 'global' or a positive float"


class Bandwidth(NamedTuple):
    """A resolved bandwidth: ``mode`` is ``"pair"``, ``"global"`` or ``"fixed"``; ``value``
    is the bandwidth shared by every pair (``None`` for ``"pair"``, and for ``"global"``
    until :func:`measure_global` sets it)."""

    mode: str
    value: float | None = None

    @property
    def per_pair(self) -> bool:
        """Whether each pair finds its own bandwidth (inside the per-pair program)."""
        return self.mode == "pair"

    def setting(self):
        """The value recorded in ``PairScores.settings["bandwidth"]``."""
        return self.value if self.mode == "fixed" else self.mode


def resolve_bandwidth(bandwidth) -> Bandwidth:
    """Validate ``bandwidth=`` and return its :class:`Bandwidth`.

    Raises:
      ValueError: an unknown mode name, or a fixed bandwidth that is not a positive
        finite number in :data:`BANDWIDTH_RANGE`.
      TypeError: neither a string nor a real number.
    """
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTHS:
            raise ValueError(f"{_EXPECTED}, got {bandwidth!r}.")
        return Bandwidth(bandwidth)
    try:
        if isinstance(bandwidth, (bool, np.bool_)):
            raise TypeError
        value = float(bandwidth)  # Python, NumPy and 0-d JAX numbers
    except (TypeError, ValueError) as err:
        raise TypeError(f"{_EXPECTED}, got {bandwidth!r} ({type(bandwidth).__name__}).") from err
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a fixed bandwidth must be a positive finite float, got {bandwidth!r}.")
    low, high = BANDWIDTH_RANGE
    if not low <= value <= high:
        side = "underflows to 0 (every kernel value 0 or 0/0)" if value < low else "overflows (every kernel value 1)"
        raise ValueError(
            f"bandwidth={bandwidth!r} is outside the range float32 kernels can use, [{low:.3g}, {high:.3g}]: "
            f"bandwidth**2 {side}. Pass bandwidth='pair' (the median heuristic), bandwidth='global', or a "
            "bandwidth on the scale of the distances between observations."
        )
    return Bandwidth("fixed", value)


def measure_global(rows: jax.Array, key, *, n_rows: int, n_sample: int, precision=None) -> Bandwidth:
    """The ``"global"`` bandwidth: the exact median distance among ``n_sample`` of the
    first ``n_rows`` rows of ``rows``, drawn without replacement with ``key``.

    Raises:
      ValueError: the median is 0 (constant or duplicated data).
    """
    value = float(_global_median(rows, key, n_rows=n_rows, n_sample=n_sample, precision=precision))
    if not value > 0:
        raise ValueError(
            f"the global median distance over {n_sample} sampled observations is 0 (constant or duplicated "
            "data); pass a fixed bandwidth=<float> or remove duplicated rows."
        )
    return Bandwidth("global", value)


def _global_median_impl(x, key, *, n_rows, n_sample, precision):
    idx = jax.random.choice(key, n_rows, (n_sample,), replace=False)
    z = x[idx]
    sq = sq_distances(z, precision=precision)
    iu = jnp.triu_indices(n_sample, k=1)
    return jnp.median(jnp.sqrt(sq[iu]))


_global_median = jax.jit(_global_median_impl, static_argnames=("n_rows", "n_sample", "precision"))
