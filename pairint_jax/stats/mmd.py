"""The mixture MMD^2 of the disjointedness test, its null distributions and p-values.

The statistic (the paper's disjointedness test, Sec. 3.2 and App. C) compares the mixtures
``A = 1/2 p_ij + 1/2 p_0`` and ``B = 1/2 p_i + 1/2 p_j``. With group weights
``c = (1/2, 1/2, -1/2, -1/2)`` for the groups ``(ij, 0, i, j)`` and block sums
``S_ab = sum_{x in a, y in b, x != y} k(x, y)``, the block-form estimator is

    MMD^2 = sum_{a, b} c_a c_b kbar(a, b),
    kbar(a, a) = S_aa / (n_a (n_a - 1))   (U-statistic, diagonal excluded),
    kbar(a, b) = S_ab / (n_a n_b)         (a != b),

which expands to the paper's ``1/4 [..] + 1/4 [..] - 1/2 [..]`` and is exactly
unbiased for ``MMD^2(A, B)`` at any group sizes.

Null distributions (both act on the pooled kernel matrix of the four groups):

* ``"permutation"`` (:func:`permutation_null`, the paper's definition and the
  default): the pooled observations are randomly re-assigned to the four groups,
  sizes kept. Under ``A = B`` the groups are *not* exchangeable (only the mixtures
  are equal) and each group is a stratified part of its mixture, so the permutation
  spread is wider than the real null spread: the test is valid but conservative.
* ``"bootstrap"`` (:func:`bootstrap_null`): a calibrated within-group multiplier
  (wild) bootstrap of the degenerate U-statistic. It reproduces the stratified null
  spread, so it is more powerful; its level holds asymptotically (see the function).

p-values are ``(1 + #{T_null >= T_obs}) / (1 + B)``; :func:`benjamini_hochberg`
turns them into q-values across pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, one_of, positive_int
from pairint_jax.stats.kernels import check_kernel, kernel_from_sq, median_heuristic, sq_distances

__all__ = [
    "GROUP_WEIGHTS",
    "NULLS",
    "mixture_mmd2",
    "mixture_mmd2_from_block_sums",
    "mixture_mmd2_test",
    "MMDTestResult",
    "block_weights",
    "permutation_null",
    "bootstrap_null",
    "permutation_p_value",
    "benjamini_hochberg",
]

#: Mixture weights ``c_a`` of the groups ``(ij, 0, i, j)``.
GROUP_WEIGHTS = (0.5, 0.5, -0.5, -0.5)
#: Null-distribution schemes accepted by ``null=``.
NULLS = ("permutation", "bootstrap")


def block_weights(counts: jax.Array) -> jax.Array:
    """``[4, 4]`` weights ``W_ab`` with ``MMD^2 = sum_ab W_ab S_ab``.

    ``W_ab = c_a c_b / (n_a n_b)`` off the diagonal and ``c_a^2 / (n_a (n_a - 1))``
    on it (U-statistic). ``counts`` is ``[4]`` group sizes ``(n_ij, n_0, n_i, n_j)``.
    """
    n = jnp.asarray(counts)
    dtype = jnp.result_type(float)
    n = n.astype(dtype)
    c = jnp.asarray(GROUP_WEIGHTS, dtype)
    off = jnp.outer(c, c) / jnp.outer(n, n)
    diag = c * c / (n * (n - 1.0))
    return jnp.where(jnp.eye(4, dtype=bool), jnp.diag(diag), off)


def mixture_mmd2_from_block_sums(block_sums: jax.Array, counts: jax.Array) -> jax.Array:
    """Block-form MMD^2 from ``[..., 4, 4]`` block sums (diagonal pairs excluded) and ``[4]`` counts."""
    return jnp.sum(block_weights(counts) * block_sums, axis=(-2, -1))


def _check_core_inputs(xs, masks, bandwidth):
    """Boundary checks for concrete (non-traced) inputs of the functional core."""
    names = ("x_ij", "x_0", "x_i", "x_j")
    d = None
    for name, x, m in zip(names, xs, masks):
        if x.ndim != 2:
            raise ValueError(f"{name} must be [n, d] (one row per observation), got shape {x.shape}.")
        if d is None:
            d = x.shape[1]
        elif x.shape[1] != d:
            raise ValueError(f"{name} has {x.shape[1]} features, x_ij has {d}; all groups need the same d.")
        if m is not None and tuple(m.shape) != (x.shape[0],):
            raise ValueError(f"mask for {name} must have shape ({x.shape[0]},), got {tuple(m.shape)}.")
        if isinstance(x, jax.core.Tracer) or (m is not None and isinstance(m, jax.core.Tracer)):
            continue
        xv = np.asarray(x)
        mv = np.ones(x.shape[0], bool) if m is None else np.asarray(m, bool)
        n = int(mv.sum())
        if n < 2:
            raise ValueError(
                f"group {name} has {n} valid observation(s); the unbiased estimator needs at least 2 per group."
            )
        if not np.isfinite(xv[mv]).all():
            raise ValueError(f"group {name} contains non-finite values (NaN or inf); remove or impute them.")
    if isinstance(bandwidth, str):
        if bandwidth != "pair":
            raise ValueError(f"bandwidth must be a positive float or 'pair', got {bandwidth!r}.")
    elif not isinstance(bandwidth, jax.core.Tracer):
        b = np.asarray(bandwidth)
        if b.shape != () or not np.isfinite(b) or b <= 0:
            raise ValueError(f"bandwidth must be a positive finite scalar, got {bandwidth!r}.")


def _block_sums(xs, masks, kernel, bandwidth, precision):
    sums = [[None] * 4 for _ in range(4)]
    for a in range(4):
        for b in range(a, 4):
            if a == b:
                sq = sq_distances(xs[a], precision=precision)
            else:
                sq = sq_distances(xs[a], xs[b], precision=precision)
            valid = masks[a][:, None] & masks[b][None, :]
            s = jnp.sum(jnp.where(valid, kernel_from_sq(kernel, sq, bandwidth), 0.0))
            if a == b:
                s = s - jnp.sum(masks[a])  # the exact-zero diagonal contributes k(0) = 1 per row
            sums[a][b] = sums[b][a] = s
    return jnp.stack([jnp.stack(r) for r in sums])


def _prepare(x_ij, x_0, x_i, x_j, mask_ij, mask_0, mask_i, mask_j, bandwidth):
    xs = [jnp.asarray(v) for v in (x_ij, x_0, x_i, x_j)]
    raw_masks = (mask_ij, mask_0, mask_i, mask_j)
    _check_core_inputs(xs, raw_masks, bandwidth)
    dtype = jnp.result_type(*xs, float)
    xs = [v.astype(dtype) for v in xs]
    masks = [jnp.ones(v.shape[0], bool) if m is None else jnp.asarray(m, bool) for v, m in zip(xs, raw_masks)]
    xs = [jnp.where(m[:, None], v, 0.0) for v, m in zip(xs, masks)]
    return xs, masks


def _resolve_bandwidth(xs, masks, bandwidth, precision):
    if isinstance(bandwidth, str):
        bw = median_heuristic(
            jnp.concatenate([xs[0], xs[1]]),
            jnp.concatenate([xs[2], xs[3]]),
            jnp.concatenate([masks[0], masks[1]]),
            jnp.concatenate([masks[2], masks[3]]),
            precision=precision,
        )
        if not isinstance(bw, jax.core.Tracer) and not float(bw) > 0:
            raise ValueError(
                "the median distance between the (ij, 0) and (i, j) observations is 0 (constant or duplicated "
                "data), so the median heuristic gives no bandwidth; pass a fixed bandwidth=<float>."
            )
        return bw
    return jnp.asarray(bandwidth, xs[0].dtype)


def mixture_mmd2(
    x_ij,
    x_0,
    x_i,
    x_j,
    mask_ij=None,
    mask_0=None,
    mask_i=None,
    mask_j=None,
    *,
    kernel: str = "rbf",
    bandwidth=1.0,
    precision=None,
) -> jax.Array:
    """Unbiased block-form ``MMD^2(1/2 p_ij + 1/2 p_0, 1/2 p_i + 1/2 p_j)`` of one pair.

    ``MMD^2 = 1/4 [kbar(ij,ij) + kbar(0,0) + 2 kbar(ij,0)] + 1/4 [kbar(i,i) + kbar(j,j) +
    2 kbar(i,j)] - 1/2 [kbar(ij,i) + kbar(ij,j) + kbar(0,i) + kbar(0,j)]``, with
    ``kbar(a,a)`` the U-statistic mean over ``x != x'`` and ``kbar(a,b)`` the mean over
    all cross pairs. Exactly unbiased at any group sizes.

    Pure ``jnp``: works under ``jit``, ``vmap`` (e.g. over pairs of padded groups) and
    ``grad`` (with respect to the observations and a float bandwidth). Padded rows
    (mask False) are ignored exactly.

    Args:
      x_ij, x_0, x_i, x_j: ``[n_ij, d]``, ``[n_0, d]``, ``[n_i, d]``, ``[n_j, d]``
        observations of the double, the control and the two singles.
      mask_ij, mask_0, mask_i, mask_j: optional ``[n_g]`` bool masks (True = real row).
      kernel: ``"rbf"`` (``exp(-r^2/(2 s^2))``) or ``"matern52"`` (static).
      bandwidth: a positive float (traced) or ``"pair"``: the exact median of the
        cross distances between ``ij u 0`` and ``i u j`` (a sort; see
        :func:`pairint_jax.stats.median_heuristic`).
      precision: matmul precision for the distances (static; ``None``: device default).

    Returns:
      Scalar ``MMD^2`` estimate (can be slightly negative: it is unbiased).

    Raises:
      ValueError: on concrete inputs, a group with fewer than 2 valid rows,
        non-finite values, mismatched feature dimensions, a non-positive bandwidth,
        or a zero median distance. Under ``jit`` these cannot be checked; a group
        with fewer than 2 rows or a zero bandwidth then gives NaN.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> ks = jax.random.split(jax.random.key(0), 4)
      >>> x = [jax.random.normal(k, (30, 3)) for k in ks]
      >>> float(mixture_mmd2(*x, kernel="rbf", bandwidth=1.0)) < 0.05
      True
    """
    check_kernel(kernel)
    xs, masks = _prepare(x_ij, x_0, x_i, x_j, mask_ij, mask_0, mask_i, mask_j, bandwidth)
    bw = _resolve_bandwidth(xs, masks, bandwidth, precision)
    counts = jnp.stack([jnp.sum(m) for m in masks])
    return mixture_mmd2_from_block_sums(_block_sums(xs, masks, kernel, bw, precision), counts)


# ----------------------------------------------------------------------------- null distributions
def _onehot(labels: jax.Array, dtype) -> jax.Array:
    return jax.nn.one_hot(labels, 4, dtype=dtype)  # label -1 (padding) -> all zeros


def _statistic_from_onehot(kmat, onehot, counts, k_valid=None):
    """MMD^2 of the labelling ``onehot [..., N, 4]`` on the pooled kernel ``kmat [N, N]`` (unit diagonal).

    With ``k_valid = K @ 1_valid`` (the labelled rows, the same in every labelling) only
    three columns are multiplied: ``K e_3 = K 1_valid - K e_0 - K e_1 - K e_2``, a quarter
    fewer FLOPs for a batch of labellings.
    """
    if k_valid is None:
        ke = jnp.einsum("mn,...nk->...mk", kmat, onehot)
    else:
        ke3 = jnp.einsum("mn,...nk->...mk", kmat, onehot[..., :3])
        ke = jnp.concatenate([ke3, (k_valid - jnp.sum(ke3, axis=-1))[..., None]], axis=-1)
    sums = jnp.einsum("...nk,...nl->...kl", onehot, ke) - jnp.diag(counts.astype(kmat.dtype))
    return mixture_mmd2_from_block_sums(sums, counts)


def permutation_null(
    key: jax.Array,
    kmat: jax.Array,
    labels: jax.Array,
    *,
    n_permutations: int,
    base_permutations: jax.Array | None = None,
) -> jax.Array:
    """Statistics of random re-assignments of the pooled observations to the four groups.

    Each permutation keeps the group sizes and permutes only valid rows (label
    ``>= 0``). All permutations are evaluated with one matrix product
    ``K [N, N] @ E [N, 3B]`` (``E`` the stacked one-hot labellings of three groups; the
    fourth group's column follows from ``K 1``), so the work is ``6 N^2 B`` FLOPs on the
    matmul units.

    Random permutations need a sort; to sort only once for many pairs, pass
    ``base_permutations`` (``B`` permutations of ``range(N)``, e.g. shared by all
    pairs of a screen): the pair's permutation of its ``n_valid`` rows is then the
    order in which ``0 .. n_valid - 1`` appear in each base permutation, which is
    again uniformly random (found with a cumulative sum, no sort).

    Args:
      key: PRNG key (a typed key, a legacy ``uint32[2]`` key or an int seed; unused
        when ``base_permutations`` is given).
      kmat: ``[N, N]`` pooled kernel matrix with unit diagonal (padding rows arbitrary
        but finite).
      labels: ``[N]`` int group of each row: 0 = ij, 1 = control, 2 = i, 3 = j, -1 = padding.
      n_permutations: ``B`` (static).
      base_permutations: optional ``[B, N]`` int permutations of ``range(N)``.

    Returns:
      ``[B]`` permuted statistics.
    """
    n = labels.shape[0]
    valid = labels >= 0
    counts = jnp.sum(jax.nn.one_hot(labels, 4, dtype=jnp.int32), axis=0)
    n_valid = jnp.sum(valid, dtype=jnp.int32)
    rank = jnp.cumsum(valid.astype(jnp.int32)) - 1
    pos = jnp.zeros((n,), jnp.int32).at[jnp.where(valid, rank, n)].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    if base_permutations is None:
        keys = jax.random.split(as_key(key, default_seed=None), n_permutations)
        base_permutations = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
    base_permutations = base_permutations.astype(jnp.int32)

    def one(sigma):
        keep = sigma < n_valid
        slot = jnp.where(keep, jnp.cumsum(keep.astype(jnp.int32)) - 1, n)
        perm = jnp.zeros((n,), jnp.int32).at[slot].set(sigma, mode="drop")  # a permutation of 0..n_valid-1
        src = labels[pos[perm]]  # label moved onto the k-th valid row
        return jnp.full((n,), -1, labels.dtype).at[jnp.where(jnp.arange(n) < n_valid, pos, n)].set(src, mode="drop")

    perm_labels = jax.vmap(one)(base_permutations)  # [B, N]
    k_valid = kmat @ valid.astype(kmat.dtype)  # the labelled rows are the same in every permutation
    return _statistic_from_onehot(kmat, _onehot(perm_labels, kmat.dtype), counts, k_valid)


def bootstrap_null(key: jax.Array, kmat: jax.Array, labels: jax.Array, *, n_bootstrap: int) -> jax.Array:
    """Calibrated within-group multiplier (wild) bootstrap of the mixture MMD^2 under the null.

    Under ``H0: A = B`` the statistic is a degenerate U-statistic,
    ``T ~= sum_{s != t} w_s w_t <phi_s - mu_{g(s)}, phi_t - mu_{g(t)}>`` with
    ``w_s = c_{g(s)} / n_{g(s)}``: independent groups, each centred at its own mean
    (the *stratified* null; the groups themselves need not be equal). The bootstrap
    replaces the unknown centred terms by group-centred ones with Rademacher signs:

        T* = sum_{s != t} e_s e_t v_s v_t Ktilde_st,   v_s = w_s sqrt(n_g / (n_g - 1)),

    where ``Ktilde = (I - P) K (I - P)`` is the kernel centred within each group
    (``P`` averages within groups). ``E*[T*] = 0`` exactly, and the factor
    ``sqrt(n/(n-1))`` makes ``E Var*(T*)`` match the null variance of ``T`` for every
    between-group term (centring by the sample mean shrinks each group's covariance
    by ``(n-1)/n``). As the groups grow, ``T*`` converges to the same weighted
    chi-square limit as ``T`` under H0 (multiplier bootstrap of degenerate
    U-statistics; Dehling & Mikosch 1994, Leucht & Neumann 2013), so the level holds
    asymptotically and, unlike the pooled permutation, without inflating the spread.

    Cost: one product ``K [N, N] @ U [N, B]``.

    Args:
      key: PRNG key (a typed key, a legacy ``uint32[2]`` key or an int seed).
      kmat: ``[N, N]`` pooled kernel matrix with unit diagonal.
      labels: ``[N]`` groups as in :func:`permutation_null`.
      n_bootstrap: ``B`` (static).

    Returns:
      ``[B]`` bootstrap statistics.
    """
    dtype = kmat.dtype
    e0 = _onehot(labels, dtype)  # [N, 4]
    counts = jnp.sum(e0, axis=0)
    c = jnp.asarray(GROUP_WEIGHTS, dtype)
    safe = jnp.maximum(counts, 2.0)
    wg = c / safe * jnp.sqrt(safe / (safe - 1.0))  # per-group multiplier scale
    w = e0 @ wg  # [N], 0 on padding
    ke0 = kmat @ e0  # [N, 4]
    sv = e0.T @ ke0  # [4, 4] V-sums
    n_row = jnp.where(labels >= 0, e0 @ safe, 1.0)  # n_{g(t)}, 1 on padding
    row_mean = jnp.sum(ke0 * e0, axis=1) / n_row  # (K 1_g)_t / n_g
    grp_self = (e0 @ jnp.diag(sv)) / n_row**2
    ktt = jnp.where(labels >= 0, jnp.diag(kmat) - 2.0 * row_mean + grp_self, 0.0)  # Ktilde_tt
    eps = jax.random.rademacher(as_key(key, default_seed=None), (n_bootstrap, labels.shape[0]), dtype=dtype)
    v = eps * w  # [B, N]
    gmean = (v @ e0) / safe  # [B, 4]
    u = v - gmean @ e0.T  # group-centred
    ku = u @ kmat  # [B, N] (K symmetric)
    quad = jnp.sum(u * ku, axis=1)
    return quad - jnp.sum(v * v * ktt, axis=1)


def permutation_p_value(t_obs: jax.Array, t_null: jax.Array) -> jax.Array:
    """``(1 + #{t_null >= t_obs}) / (1 + B)`` over the last axis of ``t_null [..., B]``."""
    b = t_null.shape[-1]
    return (1.0 + jnp.sum(t_null >= t_obs[..., None], axis=-1)) / (1.0 + b)


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN entries are ignored and stay NaN.

    ``q_(k) = min_{l >= k} m p_(l) / l`` over the ``m`` finite p-values sorted
    ascending, capped at 1.

    Args:
      p: ``[P]`` p-values (NaN where a pair was not scored).

    Returns:
      ``[P]`` float64 q-values.
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


# ----------------------------------------------------------------------------- one-pair test
class MMDTestResult(NamedTuple):
    """Result of :func:`mixture_mmd2_test`: ``statistic``, ``p_value``, ``bandwidth`` (scalars)."""

    statistic: jax.Array
    p_value: jax.Array
    bandwidth: jax.Array


def mixture_mmd2_test(
    x_ij,
    x_0,
    x_i,
    x_j,
    mask_ij=None,
    mask_0=None,
    mask_i=None,
    mask_j=None,
    *,
    key: jax.Array,
    kernel: str = "rbf",
    bandwidth=1.0,
    n_permutations: int = 200,
    null: str = "permutation",
    precision=None,
) -> MMDTestResult:
    """The mixture MMD^2 of one pair with its p-value (pooled kernel matrix in memory).

    Args:
      x_ij, x_0, x_i, x_j, mask_*: as in :func:`mixture_mmd2`.
      key: PRNG key for the null draws.
      kernel, bandwidth, precision: as in :func:`mixture_mmd2`. The bandwidth is
        held fixed across the null draws.
      n_permutations: number ``B`` of null draws (static, >= 1): permutations, or
        bootstrap draws with ``null="bootstrap"`` (the name is kept for both).
      null: ``"permutation"`` (pooled permutation, conservative; the default) or
        ``"bootstrap"`` (calibrated multiplier bootstrap, see :func:`bootstrap_null`).

    Returns:
      :class:`MMDTestResult`; ``p = (1 + #{T_null >= T}) / (1 + B)``.

    Example:
      >>> import jax
      >>> ks = jax.random.split(jax.random.key(0), 4)
      >>> x = [jax.random.normal(k, (20, 2)) for k in ks]
      >>> res = mixture_mmd2_test(*x, key=jax.random.key(1), n_permutations=99)
      >>> 0.0 < float(res.p_value) <= 1.0
      True
    """
    check_kernel(kernel)
    key = as_key(key, default_seed=None)
    one_of("null", null, NULLS)
    n_permutations = positive_int("n_permutations", n_permutations)
    xs, masks = _prepare(x_ij, x_0, x_i, x_j, mask_ij, mask_0, mask_i, mask_j, bandwidth)
    bw = _resolve_bandwidth(xs, masks, bandwidth, precision)
    z = jnp.concatenate(xs)
    labels = jnp.concatenate([jnp.where(m, g, -1) for g, m in enumerate(masks)]).astype(jnp.int32)
    kmat = kernel_from_sq(kernel, sq_distances(z, precision=precision), bw)
    counts = jnp.stack([jnp.sum(m) for m in masks])
    t_obs = _statistic_from_onehot(kmat, _onehot(labels, kmat.dtype), counts)
    if null == "permutation":
        t_null = permutation_null(key, kmat, labels, n_permutations=n_permutations)
    else:
        t_null = bootstrap_null(key, kmat, labels, n_bootstrap=n_permutations)
    return MMDTestResult(statistic=t_obs, p_value=permutation_p_value(t_obs, t_null), bandwidth=bw)
