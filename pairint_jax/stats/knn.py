"""k-nearest-neighbour KL divergence (Wang, Kulkarni & Verdu 2009), batched over conditions.

The estimator (the paper's App. B; Wang, Kulkarni & Verdu 2009), for ``X ~ P`` with ``n`` points and
``Y ~ Q`` with ``m`` points in ``R^d``::

    D(P || Q) ~= (d / n) * sum_t log( nu_k(t) / rho_k(t) ) + log( m / (n - 1) )

``rho_k(t)`` is the distance from ``X_t`` to its k-th nearest neighbour in ``X``
without itself, ``nu_k(t)`` the distance to its k-th nearest neighbour in ``Y``.

How it is computed (the same in :func:`knn_kl` and :func:`knn_kl_all`):

* all distances are matrix products, ``|a|^2 + |b|^2 - 2 a.b`` as one GEMM of
  augmented rows ``[a, 1, |a|^2] . [-2b, |b|^2, 1]``, at full float32
  (``precision=HIGHEST``, so TF32 on GPUs cannot spoil them), on data centred at the
  mean of ``X`` (smaller norms, less cancellation); the groups of a chunk share one
  flat GEMM with the control rows of a block;
* ``k + max_duplicates`` candidates per point are picked by a few fused ``min``
  passes over packed (distance, index) keys (:mod:`pairint_jax.stats.selection`), and their distances
  are then recomputed exactly as ``|a - b|^2`` on the raw data; so the result
  matches a float64 tree search to float32 round-off, even for neighbours far
  closer than the products can resolve (neighbours tied to within 2^-15 relative
  may be taken in either order);
* ragged groups are padded arrays plus boolean masks: padded points are never
  neighbours and padded rows of ``X`` do not count.

**Duplicate points** (a guard against ``log 0``). A candidate at exact distance
zero (an identical row; a point is never its own neighbour) is skipped, so ``rho_k``
and ``nu_k`` are distances to the k-th nearest *distinct* point and never zero. Up
to ``max_duplicates`` (default 2, static) copies per point are handled this way. The
number of points of ``X`` that met a duplicate is returned in :class:`KnnKL`
``.n_duplicates`` (and :func:`~pairint_jax.separability_scores` warns); without
duplicates the guard changes nothing. A point with more copies than
``max_duplicates``, or with fewer than ``k`` distinct neighbours, makes the estimate
invalid (``valid=False``, ``kl`` NaN, reported as a reason) -- never ``inf``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import ceil_div, nonnegative_int, optional_positive_int, positive_int, renamed_keywords
from pairint_jax.stats.selection import kth_smallest, smallest

__all__ = ["KnnKL", "knn_kl", "knn_kl_info", "knn_kl_all", "knn_distances"]

#: Elements of one distance block (rows x columns x groups) kept in memory at once
#: when ``groups_per_chunk`` / ``block_size`` are chosen automatically (float32: 512 MiB).
_AUTO_BLOCK_ELEMENTS = 2**27


class KnnKL(NamedTuple):
    """k-NN KL estimate(s) with diagnostics.

    Attributes:
      kl: ``[]`` (or ``[G]``) the estimate in nats scaled by ``d`` (see ``dim``); NaN
        exactly where ``valid`` is False.
      n_duplicates: ``[]`` (or ``[G]``) int32, points of ``X`` whose ``rho`` or ``nu``
        search skipped a duplicate point (see the module docstring).
      valid: ``[]`` (or ``[G]``) bool, False when ``X`` has fewer than ``k + 1`` or
        ``Y`` fewer than ``k`` (distinct) points.
    """

    kl: jax.Array
    n_duplicates: jax.Array
    valid: jax.Array


# ----------------------------------------------------------------------------- core
def _sqnorm(x):
    return jnp.sum(x * x, axis=-1)


def _kth_sq(a, b, a_raw, b_raw, mask_b, *, k: int, slack: int, self_rows=None):
    """k-th smallest exact squared distance from each row of ``a`` to the valid, distinct rows of each group.

    Args:
      a: ``[r, d]`` query rows, centred (for the products).
      b: ``[c, m, d]`` ``c`` groups of candidate rows, centred.
      a_raw, b_raw: the same rows uncentred (for the exact recomputation, so that an
        exact zero means identical rows).
      mask_b: ``[c, m]`` bool, valid candidates.
      k: static neighbour order.
      slack: static number of extra candidates refined, i.e. how many exact duplicates
        a row may meet before it runs out of distinct neighbours.
      self_rows: ``[r]`` index of each query row inside ``b`` (``c == 1``; never its own
        neighbour), or None.

    Returns:
      ``(kth [r, c], has_dup [r, c] bool)``; ``kth`` is ``inf`` where fewer than ``k``
      valid, distinct candidates were found.
    """
    r, d = a.shape
    c, m = b.shape[:2]
    # One flat GEMM for all c groups, with the squared norms folded in as two extra
    # columns: [a, 1, |a|^2] . [-2b, |b|^2, 1] = |a - b|^2. No elementwise epilogue over
    # the [r, c*m] block (on CPU that pass costs more than the product itself).
    bf = b.reshape(c * m, d)
    one_a = jnp.ones((r, 1), a.dtype)
    one_b = jnp.ones((c * m, 1), b.dtype)
    a_aug = jnp.concatenate([a, one_a, _sqnorm(a)[:, None]], axis=1)
    b_aug = jnp.concatenate([-2.0 * bf, _sqnorm(bf)[:, None], one_b], axis=1)
    d2 = jnp.matmul(a_aug, b_aug.T, precision=jax.lax.Precision.HIGHEST).reshape(r, c, m)
    ok = jnp.broadcast_to(mask_b[None], d2.shape)
    if self_rows is not None:
        ok = ok & (self_rows[:, None, None] != jnp.arange(m)[None, None, :])
    kk = min(k + slack, m)
    if kk < k:  # fewer candidate rows than k: no estimate
        return jnp.full((r, c), jnp.inf, d2.dtype), jnp.zeros((r, c), bool)
    idx, found = smallest(d2, ok, kk)  # [r, c, kk]
    nb = b_raw[jnp.arange(c)[None, :, None], idx]  # [r, c, kk, d]
    diff = a_raw[:, None, None, :] - nb
    exact = jnp.sum(diff * diff, axis=-1)  # exact |a - b|^2 of the candidates
    dup = found & (exact == 0)
    exact = jnp.where(found & ~dup, exact, jnp.inf)
    return kth_smallest(exact, k), jnp.any(dup, axis=-1)


def _masked_center(x_p, mask_p):
    w = mask_p.astype(x_p.dtype)
    mean = jnp.sum(x_p * w[:, None], axis=0) / jnp.maximum(jnp.sum(w), 1.0)
    return mean


def _finish(sum_log_ratio, n, m, dim, k, bad_rows, n_dup, dtype):
    """Assemble the estimate from the summed ``log(nu^2 / rho^2)`` over valid rows of X."""
    n_f = n.astype(dtype)
    m_f = m.astype(dtype)
    kl = (dim / jnp.maximum(n_f, 1.0)) * 0.5 * sum_log_ratio + jnp.log(m_f / jnp.maximum(n_f - 1.0, 1.0))
    valid = (n >= k + 1) & (m >= k) & (bad_rows == 0)
    return KnnKL(kl=jnp.where(valid, kl, jnp.nan), n_duplicates=n_dup.astype(jnp.int32), valid=valid)


def _as_float(x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _default_mask(mask, n, name):
    if mask is None:
        return jnp.ones((n,), dtype=bool)
    mask = jnp.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the observations, got {mask.shape}.")
    return mask.astype(bool)


def _check_counts_concrete(mask, need, what, k):
    """Boundary check on concrete masks; traced masks are checked inside (``valid`` flag)."""
    try:
        count = int(np.asarray(mask).sum())
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if count < need:
        raise ValueError(
            f"{what} has {count} valid point(s); the k-NN estimator with k={k} needs at least {need}. "
            "Use more observations or a smaller k."
        )


# ----------------------------------------------------------------------------- public
def knn_kl_info(x_p, x_q, *, k: int = 1, mask_p=None, mask_q=None, dim=None, max_duplicates: int = 2) -> KnnKL:
    """k-NN estimate of ``KL(P || Q)`` with its diagnostics (see :func:`knn_kl`).

    Returns:
      :class:`KnnKL` with scalar ``kl``, ``n_duplicates`` and ``valid``. Under ``jit``
      with traced masks, too few points give ``valid=False`` (``kl`` NaN) instead of an error.
    """
    k = positive_int("k", k, hint="(the neighbour order)")
    x_p, x_q = _as_float(x_p), _as_float(x_q)
    if x_p.ndim != 2 or x_q.ndim != 2:
        raise ValueError(
            f"x_p and x_q must be [n, d] and [m, d] arrays, got shapes {x_p.shape} and {x_q.shape}; "
            "flatten images first (x.reshape(len(x), -1))."
        )
    if x_p.shape[1] != x_q.shape[1]:
        raise ValueError(f"x_p has {x_p.shape[1]} features but x_q has {x_q.shape[1]}; both need the same d.")
    dtype = jnp.promote_types(x_p.dtype, x_q.dtype)
    x_p, x_q = x_p.astype(dtype), x_q.astype(dtype)
    mask_p = _default_mask(mask_p, x_p.shape[0], "mask_p")
    mask_q = _default_mask(mask_q, x_q.shape[0], "mask_q")
    _check_counts_concrete(mask_p, k + 1, "x_p (samples of P)", k)
    _check_counts_concrete(mask_q, k, "x_q (samples of Q)", k)
    d = jnp.asarray(x_p.shape[1] if dim is None else dim, dtype)
    return _knn_kl_single(x_p, x_q, mask_p, mask_q, d, k=k, slack=nonnegative_int("max_duplicates", max_duplicates))


@functools.partial(jax.jit, static_argnames=("k", "slack"))
def _knn_kl_single(x_p, x_q, mask_p, mask_q, d, *, k, slack) -> KnnKL:
    dtype = x_p.dtype
    mean = _masked_center(x_p, mask_p)
    a, b = x_p - mean, x_q - mean
    rho, dup_p = _kth_sq(a, a[None], x_p, x_p[None], mask_p[None], k=k, slack=slack, self_rows=jnp.arange(a.shape[0]))
    nu, dup_q = _kth_sq(a, b[None], x_p, x_q[None], mask_q[None], k=k, slack=slack)
    rho, dup_p, nu, dup_q = rho[:, 0], dup_p[:, 0], nu[:, 0], dup_q[:, 0]
    row_ok = jnp.isfinite(rho) & jnp.isfinite(nu)
    log_ratio = jnp.where(mask_p & row_ok, jnp.log(jnp.where(row_ok, nu / rho, 1.0)), 0.0)
    bad = jnp.sum(mask_p & ~row_ok)
    n_dup = jnp.sum(mask_p & (dup_p | dup_q))
    return _finish(jnp.sum(log_ratio), jnp.sum(mask_p), jnp.sum(mask_q), d, k, bad, n_dup, dtype)


def knn_distances(x_p, x_q=None, *, k: int = 1, mask_q=None, max_duplicates: int = 2) -> tuple[jax.Array, jax.Array]:
    """Distance from every row of ``x_p`` to its k-th nearest *distinct* neighbour.

    The neighbour search of :func:`knn_kl` on its own (``rho_k`` with ``x_q=None``: the
    other rows of ``x_p``; ``nu_k`` otherwise: the valid rows of ``x_q``), with the same
    duplicate guard: candidates at exact distance 0 are skipped, up to ``max_duplicates``
    of them. It tells which points make an estimate invalid.

    Args:
      x_p: ``[n, d]`` query points.
      x_q: ``[m, d]`` candidate neighbours, or None for the other rows of ``x_p``.
      k: neighbour order (static).
      mask_q: ``[m]`` bool, True on real rows of ``x_q`` (default all).
      max_duplicates: exact copies of a point that can be skipped (static).

    Returns:
      ``(dist, has_duplicate)``, each ``[n]``: the k-th distinct neighbour distance
      (``inf`` where fewer than ``k`` distinct candidates lie among the ``k +
      max_duplicates`` nearest) and whether a duplicate was skipped.

    Example:
      >>> x = jnp.array([[0.0], [0.0], [3.0], [4.0]])
      >>> [float(v) for v in knn_distances(x, k=1, max_duplicates=0)[0]]
      [inf, inf, 1.0, 1.0]
    """
    k = positive_int("k", k, hint="(the neighbour order)")
    slack = nonnegative_int("max_duplicates", max_duplicates)
    x_p = _as_float(x_p)
    x_q = x_p if x_q is None else _as_float(x_q)
    same = x_q is x_p
    if x_p.ndim != 2 or x_q.ndim != 2 or x_p.shape[1] != x_q.shape[1]:
        raise ValueError(f"x_p and x_q must be [n, d] and [m, d] arrays, got shapes {x_p.shape} and {x_q.shape}.")
    dtype = jnp.promote_types(x_p.dtype, x_q.dtype)
    mask_q = _default_mask(mask_q, x_q.shape[0], "mask_q")
    return _knn_distances(x_p.astype(dtype), x_q.astype(dtype), mask_q, k=k, slack=slack, same=same)


@functools.partial(jax.jit, static_argnames=("k", "slack", "same"))
def _knn_distances(x_p, x_q, mask_q, *, k, slack, same):
    mean = jnp.mean(x_p, axis=0)
    self_rows = jnp.arange(x_p.shape[0]) if same else None
    sq, dup = _kth_sq(x_p - mean, (x_q - mean)[None], x_p, x_q[None], mask_q[None], k=k, slack=slack,
                      self_rows=self_rows)
    return jnp.sqrt(sq[:, 0]), dup[:, 0]


def knn_kl(x_p, x_q, *, k: int = 1, mask_p=None, mask_q=None, dim=None, max_duplicates: int = 2) -> jax.Array:
    r"""k-NN estimate of ``KL(P || Q)`` (Wang, Kulkarni & Verdu 2009).

    .. math::
        \hat D(P\|Q) = \frac{d}{n}\sum_{t=1}^{n} \log\frac{\nu_k(t)}{\rho_k(t)} + \log\frac{m}{n-1}

    with ``n``/``m`` the numbers of valid rows of ``x_p``/``x_q``, ``rho_k(t)`` the
    distance from ``x_p[t]`` to its k-th nearest neighbour among the other rows of
    ``x_p`` and ``nu_k(t)`` to its k-th nearest neighbour in ``x_q``. Distances are
    matrix products refined exactly for the chosen neighbours; exact duplicate points
    are skipped (module docstring), so the result is never ``inf``.

    Jit- and vmap-safe; pad ragged samples and pass masks.

    Args:
      x_p: ``[n, d]`` samples of ``P`` (for separability: the control).
      x_q: ``[m, d]`` samples of ``Q`` (a perturbed condition).
      k: neighbour order (static), default 1.
      mask_p: ``[n]`` bool, True on real rows of ``x_p`` (default all).
      mask_q: ``[m]`` bool, True on real rows of ``x_q`` (default all).
      dim: the ``d`` of the formula (traced); default ``x_p.shape[1]``. For data on a
        low-dimensional manifold pass the intrinsic dimension to get values in nats;
        rankings do not depend on it.
      max_duplicates: (static) exact copies of a point that the duplicate guard can
        skip; each costs one more refined candidate per point.

    Returns:
      ``[]`` the estimate. NaN only when fewer than ``k + 1`` valid rows of ``x_p``
      or ``k`` of ``x_q`` (possible only with traced masks; concrete masks raise).
      Use :func:`knn_kl_info` for the duplicate count and validity flag.

    Raises:
      ValueError: wrong ranks, mismatched feature sizes or masks, ``k < 1``, or too
        few valid points (concrete masks).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> kp, kq = jax.random.split(jax.random.key(0))
      >>> x = jax.random.normal(kp, (2000, 2)); y = jax.random.normal(kq, (2000, 2)) + 1.0
      >>> float(knn_kl(x, y))  # analytic: 1.0  # doctest: +SKIP
      0.98...

    References:
      Q. Wang, S. R. Kulkarni, S. Verdu. Divergence estimation for multidimensional
      densities via k-nearest-neighbor distances. IEEE Trans. Inf. Theory 55(5), 2009.
    """
    return knn_kl_info(x_p, x_q, k=k, mask_p=mask_p, mask_q=mask_q, dim=dim, max_duplicates=max_duplicates).kl


@renamed_keywords(chunk_size="groups_per_chunk")
def knn_kl_all(
    x_p,
    x_groups,
    *,
    k: int = 1,
    mask_p=None,
    mask_groups=None,
    dim=None,
    groups_per_chunk: int | None = None,
    block_size: int | None = None,
    max_duplicates: int = 2,
) -> KnnKL:
    """``KL(P || Q_g)`` for every group ``g`` at once, sharing ``P``'s neighbour search.

    The same estimator as :func:`knn_kl`, with ``P`` (the control) kept apart from the
    padded block of groups: ``rho_k`` is computed once, and the distances from every
    point of ``P`` to every group are matrix products followed by a per-group top-k.
    Work is a compiled loop over blocks of ``block_size`` rows of ``P`` (``lax.map``),
    inside which groups are vmapped ``groups_per_chunk`` at a time, so peak memory is
    about ``block_size * max(n, groups_per_chunk * m)`` distances whatever ``G``.

    Args:
      x_p: ``[n, d]`` samples of ``P`` (the control).
      x_groups: ``[G, m, d]`` padded samples of the groups.
      k: neighbour order (static).
      mask_p: ``[n]`` bool for ``x_p`` (default all True).
      mask_groups: ``[G, m]`` bool, True on real rows (default all True).
      dim: the ``d`` of the formula (traced); default ``d``.
      groups_per_chunk: groups per vmapped chunk (static; formerly ``chunk_size``); default so that one block of
        distances holds about 2^27 numbers.
      block_size: rows of ``P`` per block (static); default so that ``block_size * n``
        is about 2^27 (at least 64 rows).
      max_duplicates: as in :func:`knn_kl`.

    Returns:
      :class:`KnnKL` with ``kl``, ``n_duplicates`` and ``valid`` of shape ``[G]``;
      identical (to round-off) to calling :func:`knn_kl_info` on each group.

    Example:
      >>> x0 = jax.random.normal(jax.random.key(0), (500, 3))
      >>> xg = jax.random.normal(jax.random.key(1), (10, 400, 3)) + jnp.arange(10.0)[:, None, None] / 5
      >>> knn_kl_all(x0, xg).kl.shape
      (10,)
    """
    k = positive_int("k", k, hint="(the neighbour order)")
    x_p, x_groups = _as_float(x_p), _as_float(x_groups)
    if x_p.ndim != 2 or x_groups.ndim != 3:
        raise ValueError(
            f"x_p must be [n, d] and x_groups [G, m, d], got shapes {x_p.shape} and {x_groups.shape}."
        )
    if x_p.shape[1] != x_groups.shape[2]:
        raise ValueError(f"x_p has {x_p.shape[1]} features but x_groups has {x_groups.shape[2]}; both need the same d.")
    groups_per_chunk = optional_positive_int("groups_per_chunk", groups_per_chunk)
    block_size = optional_positive_int("block_size", block_size)
    dtype = jnp.promote_types(x_p.dtype, x_groups.dtype)
    x_p, x_groups = x_p.astype(dtype), x_groups.astype(dtype)
    n, d = x_p.shape
    G, m = x_groups.shape[:2]
    mask_p = _default_mask(mask_p, n, "mask_p")
    if mask_groups is None:
        mask_groups = jnp.ones((G, m), dtype=bool)
    mask_groups = jnp.asarray(mask_groups).astype(bool)
    if mask_groups.shape != (G, m):
        raise ValueError(f"mask_groups must have shape {(G, m)} to match x_groups, got {mask_groups.shape}.")
    _check_counts_concrete(mask_p, k + 1, "x_p (samples of P)", k)
    dim = jnp.asarray(d if dim is None else dim, dtype)
    slack = nonnegative_int("max_duplicates", max_duplicates)
    kk = k + slack
    if block_size is None:
        block_size = max(64, _AUTO_BLOCK_ELEMENTS // max(n, m, 1))
    block_size = int(min(block_size, n))
    if groups_per_chunk is None:  # distances [B, c, m] plus refined candidates [B, c, kk, d]
        groups_per_chunk = int(max(1, _AUTO_BLOCK_ELEMENTS // max(1, block_size * (m + kk * d))))
    groups_per_chunk = int(min(groups_per_chunk, G))
    statics = dict(k=k, groups_per_chunk=int(groups_per_chunk), block_size=block_size, slack=slack)
    return _knn_kl_all(x_p, x_groups, mask_p, mask_groups, dim, **statics)


@functools.partial(jax.jit, static_argnames=("k", "groups_per_chunk", "block_size", "slack"))
def _knn_kl_all(x_p, x_groups, mask_p, mask_groups, dim, *, k, groups_per_chunk, block_size, slack) -> KnnKL:
    n, d = x_p.shape
    G, m = x_groups.shape[:2]
    dtype = x_p.dtype
    mean = _masked_center(x_p, mask_p)
    a_all = x_p - mean
    # Pad P's rows to whole blocks and the groups to whole chunks; padding is masked out.
    n_blocks = ceil_div(n, block_size)
    pad = n_blocks * block_size - n
    a_pad = jnp.pad(a_all, ((0, pad), (0, 0)))
    raw_pad = jnp.pad(x_p, ((0, pad), (0, 0)))
    m_pad = jnp.pad(mask_p, (0, pad))
    rows = jnp.arange(n_blocks * block_size)
    n_chunks = ceil_div(G, groups_per_chunk)
    gpad = n_chunks * groups_per_chunk - G
    xg_raw = jnp.pad(x_groups, ((0, gpad), (0, 0), (0, 0))).reshape(n_chunks, groups_per_chunk, m, d)
    xg = xg_raw - mean
    mg = jnp.pad(mask_groups, ((0, gpad), (0, 0))).reshape(n_chunks, groups_per_chunk, m)

    def one_block(args):
        a, a_raw, mask_a, r = args  # [B, d], [B, d], [B], [B]
        rho, dup_p = _kth_sq(a, a_all[None], a_raw, x_p[None], mask_p[None], k=k, slack=slack, self_rows=r)
        rho, dup_p = rho[:, :1], dup_p[:, :1]  # [B, 1]

        def one_chunk(chunk):
            b, b_raw, mask_b = chunk  # [c, m, d], [c, m, d], [c, m]
            nu, dup_q = _kth_sq(a, b, a_raw, b_raw, mask_b, k=k, slack=slack)  # [B, c]
            fine = jnp.isfinite(rho) & jnp.isfinite(nu)
            ok = mask_a[:, None] & fine
            s = jnp.sum(jnp.where(ok, jnp.log(jnp.where(ok, nu / rho, 1.0)), 0.0), axis=0)
            bad = jnp.sum(mask_a[:, None] & ~fine, axis=0)
            nd = jnp.sum(mask_a[:, None] & (dup_p | dup_q), axis=0)
            return s, bad, nd

        out = jax.lax.map(one_chunk, (xg, xg_raw, mg))  # each [n_chunks, c]
        return jax.tree.map(lambda v: v.reshape(n_chunks * groups_per_chunk)[:G], out)

    blocks = (
        a_pad.reshape(n_blocks, block_size, d),
        raw_pad.reshape(n_blocks, block_size, d),
        m_pad.reshape(n_blocks, block_size),
        rows.reshape(n_blocks, block_size),
    )
    s, bad, nd = jax.lax.map(one_block, blocks)  # each [n_blocks, G]
    return _finish(
        jnp.sum(s, axis=0),
        jnp.sum(mask_p),
        jnp.sum(mask_groups, axis=1),
        dim,
        k,
        jnp.sum(bad, axis=0),
        jnp.sum(nd, axis=0),
        dtype,
    )
