"""The inputs of a simulated campaign: the true reward matrix, its top set, the oracle.

Conventions for the input matrix: it must be square and symmetric (up to ``rtol = 1e-5``,
NaN matching NaN); the diagonal is ignored; a NaN off the diagonal marks an *unavailable*
pair (for example one the screen could not score): it is never chosen and belongs to no
metric. Infinite entries are an error.

The top set is the ``ceil(0.05 P)`` available pairs with the highest true scores, plus any
pair tied with the last of them (``P`` = available pairs). The oracle takes the ``batch``
best remaining true scores every round.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from pairint_jax.discovery.policies import get_policy

__all__ = ["Problem", "as_reward_matrix", "check_policies", "pair_list", "problem"]


def as_reward_matrix(reward_matrix) -> np.ndarray:
    """``[n, n]`` float64 copy of a reward matrix (or a ``PairScores``), validated (module docstring)."""
    if hasattr(reward_matrix, "matrix") and not isinstance(reward_matrix, np.ndarray):
        reward_matrix = reward_matrix.matrix  # a PairScores
    try:
        r = np.array(reward_matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"reward_matrix must be a numeric [n, n] array (or a PairScores), got {type(reward_matrix).__name__}: {err}") from err
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"reward_matrix must be square [n, n], got shape {r.shape}.")
    n = r.shape[0]
    if n < 3:
        raise ValueError(f"reward_matrix needs at least 3 perturbations, got n = {n}.")
    off = ~np.eye(n, dtype=bool)
    if np.any(np.isinf(r[off])):
        i, j = np.argwhere(np.isinf(r) & off)[0]
        raise ValueError(f"reward_matrix has an infinite entry at ({i}, {j}); use NaN to mark an unavailable pair.")
    nan_up, nan_lo = np.isnan(r), np.isnan(r.T)
    if np.any((nan_up != nan_lo) & off):
        i, j = np.argwhere((nan_up != nan_lo) & off)[0]
        raise ValueError(f"reward_matrix is not symmetric: entry ({i}, {j}) is NaN but ({j}, {i}) is not.")
    both = off & ~nan_up
    diff = np.abs(r - r.T)
    tol = 1e-5 * np.maximum(np.abs(r), np.abs(r.T)) + 1e-8 * (np.nanmax(np.abs(r[both])) if both.any() else 1.0)
    bad = both & (diff > tol)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"reward_matrix is not symmetric: R[{i}, {j}] = {r[i, j]:.6g} but R[{j}, {i}] = {r[j, i]:.6g} "
            f"({int(bad.sum()) // 2} such pairs). Symmetrise it, e.g. (R + R.T) / 2."
        )
    return r


def pair_list(pairs, n: int, what: str) -> np.ndarray:
    """Distinct pairs ``[k, 2]`` with ``i < j`` from pairs or a bool ``[n, n]`` matrix (validated)."""
    arr = np.asarray(pairs)
    if arr.dtype == bool:
        if arr.shape != (n, n):
            raise ValueError(f"{what} as a bool matrix must be [n, n] = [{n}, {n}], got {arr.shape}.")
        arr = np.argwhere(np.triu(arr | arr.T, 1))
    arr = arr.reshape(-1, 2) if arr.size else np.zeros((0, 2), int)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise TypeError(f"{what} must hold integer perturbation indices (pairs [k, 2]), got dtype {arr.dtype}.")
        arr = arr.astype(np.int64)
    if np.any((arr < 0) | (arr >= n)):
        raise ValueError(f"{what}: a perturbation index is outside 0..{n - 1}.")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise ValueError(f"{what}: a pair (i, i) is on the diagonal; pairs need two different perturbations.")
    arr = np.sort(arr, axis=1)
    return np.unique(arr, axis=0)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A validated simulation problem (host arrays; ``[n, n]`` masks are upper-triangular)."""

    r: np.ndarray  # [n, n] float64, NaN diag / unavailable
    avail: np.ndarray  # [n, n] bool upper
    top: np.ndarray  # [n, n] bool upper
    known: np.ndarray  # [n, n] bool upper
    init_pairs: np.ndarray  # [k0, 2]
    oracle: np.ndarray  # [rounds]
    n_top: int
    n_known: int


def problem(reward_matrix, *, rounds, batch, known, observed) -> Problem:
    """Validate a simulation's inputs; the available, top and known masks and the oracle."""
    r = as_reward_matrix(reward_matrix)
    n = r.shape[0]
    for name, val in (("rounds", rounds), ("batch", batch)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}.")
    upper = np.triu(np.ones((n, n), bool), 1)
    avail = upper & np.isfinite(r)
    n_avail = int(avail.sum())
    if n_avail < 2:
        raise ValueError(f"reward_matrix has only {n_avail} available (finite, off-diagonal) pair(s).")
    init_pairs = pair_list(observed if observed is not None else np.zeros((0, 2), int), n, "observed")
    if len(init_pairs) and not np.all(avail[init_pairs[:, 0], init_pairs[:, 1]]):
        bad = init_pairs[~avail[init_pairs[:, 0], init_pairs[:, 1]]][0]
        raise ValueError(f"observed pair ({bad[0]}, {bad[1]}) is unavailable (NaN in reward_matrix).")
    left = n_avail - len(init_pairs)
    if rounds * batch > left:
        raise ValueError(
            f"rounds * batch = {rounds * batch} exceeds the {left} available pairs not yet observed; "
            "lower rounds or batch."
        )
    vals = r[avail]
    n_top = int(math.ceil(0.05 * n_avail))
    thresh = np.sort(vals)[::-1][n_top - 1]
    top = avail & (np.nan_to_num(r, nan=-np.inf) >= thresh)
    known_m = np.zeros((n, n), bool)
    if known is not None:
        kp = pair_list(known, n, "known")
        ok = avail[kp[:, 0], kp[:, 1]] if len(kp) else np.zeros(0, bool)
        if len(kp) and not ok.all():
            warnings.warn(f"{int((~ok).sum())} known pair(s) are unavailable (NaN) and can never be found; they are not counted.", stacklevel=3)
        kp = kp[ok]
        known_m[kp[:, 0], kp[:, 1]] = True
    rest = avail.copy()
    if len(init_pairs):
        rest[init_pairs[:, 0], init_pairs[:, 1]] = False
    best = np.sort(r[rest])[::-1]
    oracle = np.cumsum(best[: rounds * batch]).reshape(rounds, batch)[:, -1]
    return Problem(r, avail, top, known_m, init_pairs, oracle, int(top.sum()), int(known_m.sum()))


def check_policies(policies, policy_options) -> tuple[str, ...]:
    """The policy names of a simulation, checked: distinct, known, jittable, with options only for them."""
    if isinstance(policies, str):
        policies = (policies,)
    policies = tuple(policies)
    if not policies or len(set(policies)) != len(policies):
        raise ValueError(f"policies must be a non-empty sequence of distinct names, got {policies!r}.")
    for p in policies:
        if not get_policy(p).jittable:
            raise ValueError(f"policy {p!r} runs on the host and cannot be simulated; use 'ids' (the same batches).")
    unknown = sorted(set(policy_options or {}) - set(policies))
    if unknown:
        raise ValueError(f"policy_options given for {unknown}, which are not among policies {policies}.")
    return policies
