r"""What a screen's singles measured about each perturbation: ``[n, f]`` side features.

For every perturbation ``i`` with a single-perturbation group, against the control ``0``:

* ``shift``: the control-centred mean shift ``||mu_i - mu_0||``;
* ``knn_kl``: the k-NN estimate of ``KL(p_0 || p_i)``, the separability test's per-condition
  KL (:func:`pairint_jax.stats.knn_kl_all`, through the same bucketed pass);
* ``mmd``: the unbiased two-sample ``MMD^2(p_i, p_0)``
  (:func:`pairint_jax.stats.mmd2_two_sample`) with one median-heuristic bandwidth shared by
  every perturbation (so the values are comparable), measured as the disjointedness
  test's ``bandwidth="global"``.

The singles are padded to a few bucket sizes and each bucket runs one compiled program,
a :func:`~pairint_jax.parallel.chunked_vmap` over its singles with masks; the control is
kept apart and read in row blocks (a ``lax.scan``), so a control 50x larger than the
singles costs only its own size, and its own kernel sum is computed once. A sparse screen
densifies one padded block of singles at a time.

These are the covariates of the discovery posterior (``features=``): a prior from the
singles, since on many maps strong singles interact more.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from pairint_jax._progress import resolve_progress
from pairint_jax._validate import as_bool, as_key, as_screen, nonnegative_int, positive_int, round_up
from pairint_jax.parallel import chunked_vmap
from pairint_jax.scores.disjointedness.bandwidth import measure_global, resolve_bandwidth
from pairint_jax.scores.disjointedness.layout import compute_dtype
from pairint_jax.scores.separability import _check_representation, _knn_condition_kls, _padded_blocks
from pairint_jax.screen import bucket_size
from pairint_jax.stats.kernels import check_kernel
from pairint_jax.stats.two_sample import blocked_kernel_sum, blocked_self_sum, kernel_sum, mmd2_from_sums

__all__ = ["FEATURES", "perturbation_features", "standardize_columns"]

#: The features :func:`perturbation_features` computes, in its column order.
FEATURES = ("shift", "knn_kl", "mmd")

#: Bytes of one chunk's kernel intermediates (CPU: cache-sized; accelerators: larger).
_CHUNK_BYTES = {"cpu": 16 << 20, "other": 1 << 30}


def perturbation_features(
    screen,
    *,
    features=FEATURES,
    standardize: bool = True,
    k: int = 1,
    kernel: str = "rbf",
    bandwidth="global",
    global_sample: int = 2048,
    key=None,
    singles_per_chunk: int | str | None = "auto",
    control_block: int = 512,
    max_duplicates: int = 8,
    force_high_dim: bool = False,
    progress: bool | None = None,
    precision=None,
) -> pd.DataFrame:
    r"""Per-perturbation features from the screen's singles, each a column, one row per perturbation.

    ``shift = ||mu_i - mu_0||``, ``knn_kl = KL(p_0 || p_i)`` (k-NN, Wang et al. 2009) and
    ``mmd = MMD^2_u(p_i, p_0)`` (Gretton et al. 2012, Lemma 6), then, with
    ``standardize=True``, each column z-scored across perturbations ignoring NaN:
    ``z = (v - mean) / std`` (``std`` with ``ddof=0``; a constant column becomes 0).

    Args:
      screen: a :class:`~pairint_jax.Screen` (singles only, or with doubles; dense or sparse).
      features: which columns, a subset of :data:`FEATURES` (a name or a sequence).
      standardize: z-score each column (default True); the raw values are
        ``z * attrs["scale"][col] + attrs["center"][col]``.
      k: neighbour order of the k-NN KL (default 1).
      kernel: ``"rbf"`` (default) or ``"matern52"``, for ``mmd``.
      bandwidth: ``"global"`` (default): the exact median of all pairwise distances among
        ``global_sample`` rows drawn without replacement (seeded by ``key``) from the
        control and the singles; or a positive float.
      global_sample: rows in the ``"global"`` bandwidth sample (default 2048).
      key: PRNG key (or an int seed; ``None``: ``jax.random.key(0)``) for that sample.
      singles_per_chunk: singles per vmapped chunk; ``"auto"`` (default) keeps one chunk's
        intermediates near 16 MiB on CPU and 1 GiB on accelerators; ``None``: all at once.
      control_block: control rows per scan step (default 512).
      max_duplicates: duplicate guard of the k-NN search (:func:`separability_scores`).
      force_high_dim: run the k-NN KL on more than 4,096 features anyway.
      progress: progress bar of the k-NN pass (``None``: when a person is watching).
      precision: matmul precision of the distances (``None``: device default).

    Returns:
      ``pandas.DataFrame`` ``[n, f]`` float64 indexed by ``screen.perturbations`` (index
      name ``"perturbation"``), with the columns in :data:`FEATURES` order. A
      perturbation without a single group (measured only in doubles), or whose single
      is too small for a feature, has NaN there; ``attrs["reason"]`` says why
      (``{name: reason}``). ``attrs`` also holds ``bandwidth``, ``center``, ``scale``,
      ``standardized``, ``k`` and ``kernel``. ``df.to_csv(path)`` is read back by
      :func:`pairint_jax.discovery.features_csv.read_features`.

    Raises:
      TypeError: ``screen`` is not a :class:`~pairint_jax.Screen`; a parameter of the wrong type.
      ValueError: an unknown or repeated feature, a bad ``k``/``bandwidth``/``kernel``, a
        control with fewer than ``k + 1`` rows (``knn_kl``), a zero median distance, or
        k-NN on more than 4,096 features without ``force_high_dim``.

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> rng = np.random.default_rng(0)
      >>> labels = np.repeat(["ctrl", "A", "B", "C"], 40)
      >>> x = rng.normal(size=(160, 3)) + np.array([0.0, 2.0, 0.5, 1.0])[np.arange(160) // 40, None]
      >>> df = pj.perturbation_features(pj.Screen.from_arrays(x, labels))
      >>> list(df.index), list(df.columns)
      (['A', 'B', 'C'], ['shift', 'knn_kl', 'mmd'])
      >>> df["shift"].idxmax()
      'A'
    """
    screen = as_screen(screen, caller="perturbation_features")
    which = _check_features(features)
    standardize = as_bool("standardize", standardize)
    k = positive_int("k", k, hint="(the neighbour order)")
    check_kernel(kernel)
    bw = _check_bandwidth(bandwidth)
    global_sample = positive_int("global_sample", global_sample, minimum=2)
    control_block = positive_int("control_block", control_block)
    max_duplicates = nonnegative_int("max_duplicates", max_duplicates)
    force_high_dim = as_bool("force_high_dim", force_high_dim)
    chunk = _check_chunk(singles_per_chunk)
    key = as_key(key)
    progress = resolve_progress(progress)

    singles = screen.single_groups
    have = singles >= 0
    groups = singles[have]
    values = {name: np.full(screen.n_perturbations, np.nan) for name in which}
    why = {name: [] for name in screen.perturbations}
    attrs = {"k": k, "kernel": kernel, "bandwidth": None}
    if len(groups) and ("shift" in which or "mmd" in which):
        shift, mmd, attrs["bandwidth"] = _moment_features(
            screen, groups, kernel=kernel, bandwidth=bw, global_sample=global_sample, key=key, chunk=chunk,
            control_block=control_block, precision=precision,
        )
        for name, col in (("shift", shift), ("mmd", mmd)):
            if name in which:
                values[name][have] = col
        few = groups[screen.counts[groups] < 2] if "mmd" in which else []
        for g in few:
            why[screen.perturbations[screen.members[g][0]]].append("mmd: the single has 1 observation; MMD^2 needs 2")
    if len(groups) and "knn_kl" in which:
        _check_representation(screen, "knn", force_high_dim)
        kl, _, kl_why = _knn_condition_kls(
            screen, k=k, dim=None, conditions_per_chunk=None, block_size=None, progress=progress,
            max_duplicates=max_duplicates, groups=groups,
        )
        values["knn_kl"][have] = kl[groups]
        for g in groups:
            if kl_why[g]:
                why[screen.perturbations[screen.members[g][0]]].append(f"knn_kl: {kl_why[g]}")
    for i in np.flatnonzero(~have):
        why[screen.perturbations[i]].insert(0, "no single-perturbation group in the screen (measured only in doubles)")
    frame = pd.DataFrame(values, index=pd.Index(list(screen.perturbations), name="perturbation"), columns=list(which))
    frame, center, scale = standardize_columns(frame) if standardize else (frame, None, None)
    attrs.update(standardized=standardize, center=center, scale=scale,
                 reason={name: "; ".join(msgs) for name, msgs in why.items() if msgs})
    frame.attrs.update(attrs)
    return frame


def standardize_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """Z-score each column across rows, ignoring NaN: ``(v - nanmean) / nanstd`` (``ddof=0``).

    A column with fewer than two finite values or no spread keeps scale 1 (its values
    become 0). Returns the new frame and the ``{column: center}``, ``{column: scale}`` used.
    """
    center, scale, out = {}, {}, frame.copy()
    for col in frame.columns:
        v = frame[col].to_numpy(np.float64)
        finite = np.isfinite(v)
        mu = float(v[finite].mean()) if finite.any() else 0.0
        sd = float(v[finite].std()) if finite.sum() >= 2 else 0.0
        sd = sd if sd > 0 else 1.0
        center[col], scale[col] = mu, sd
        out[col] = (v - mu) / sd
    return out, center, scale


# ----------------------------------------------------------------------------- validation
def _check_features(features) -> tuple[str, ...]:
    names = (features,) if isinstance(features, str) else features
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"features must be a name or a sequence of names from {FEATURES}, got {features!r}.") from None
    bad = [n for n in names if not isinstance(n, str) or n not in FEATURES]
    if bad or not names:
        raise ValueError(f"features must be a non-empty subset of {FEATURES}, got {features!r}"
                         + (f" (unknown: {bad})." if bad else "."))
    if len(set(names)) != len(names):
        raise ValueError(f"features lists a feature twice: {features!r}; give each of {FEATURES} at most once.")
    return tuple(n for n in FEATURES if n in names)


def _check_bandwidth(bandwidth):
    if isinstance(bandwidth, str) and bandwidth != "global":
        raise ValueError(
            f"bandwidth must be 'global' (one median-heuristic bandwidth shared by every perturbation) or a "
            f"positive float, got {bandwidth!r}."
        )
    return resolve_bandwidth(bandwidth)


def _check_chunk(value):
    if isinstance(value, str) and value == "auto":
        return "auto"
    if value is None:
        return None
    return positive_int("singles_per_chunk", value, hint="Or pass 'auto' or None.")


# ----------------------------------------------------------------------------- shift and MMD^2
def _moment_features(screen, groups, *, kernel, bandwidth, global_sample, key, chunk, control_block, precision):
    """``shift [n_s]``, ``mmd [n_s]`` (float64) of the singles ``groups`` and the bandwidth used."""
    dtype = compute_dtype(screen)
    counts = screen.counts
    n0 = int(counts[0])
    x0 = jnp.asarray(np.asarray(screen.group(0)).reshape(n0, -1), dtype)
    mu0 = _mean(x0)
    bw = bandwidth.value if bandwidth.mode == "fixed" else _global_bandwidth(screen, groups, mu0, global_sample, key)
    cb = min(control_block, round_up(n0, 8))
    n_blocks = -(-n0 // cb)
    pad = n_blocks * cb - n0
    x0_blocks = _centre(jnp.concatenate([x0, jnp.zeros((pad, x0.shape[1]), dtype)]), mu0).reshape(n_blocks, cb, -1)
    m0_blocks = jnp.asarray(np.arange(n_blocks * cb) < n0).reshape(n_blocks, cb)
    x0_blocks = jnp.where(m0_blocks[..., None], x0_blocks, 0.0)
    bw_arr = jnp.asarray(bw, dtype)
    s00 = _control_sum(x0_blocks, m0_blocks, bw_arr, kernel=kernel, precision=precision)
    sizes = np.asarray([bucket_size(int(c)) for c in counts[groups]], np.int64)
    shift = np.full(len(groups), np.nan)
    mmd = np.full(len(groups), np.nan)
    where = {int(g): t for t, g in enumerate(groups)}
    for size, block in _padded_blocks(screen, groups, sizes, np.unique(sizes)):
        x_pad, mask = screen.padded(block, size=int(size))
        x_pad = jnp.asarray(x_pad.reshape(len(block), int(size), -1), dtype)
        per_chunk = _auto_chunk(int(size), cb, np.dtype(dtype).itemsize) if chunk == "auto" else chunk
        sh, mm = _single_program(x_pad, jnp.asarray(mask), mu0, x0_blocks, m0_blocks, bw_arr, s00, n0,
                                 kernel=kernel, precision=precision, chunk=per_chunk)
        rows = [where[int(g)] for g in block]
        shift[rows] = np.asarray(sh, np.float64)
        mmd[rows] = np.asarray(mm, np.float64)
    return shift, mmd, float(bw)


def _auto_chunk(m: int, cb: int, itemsize: int) -> int:
    budget = _CHUNK_BYTES["cpu" if jax.default_backend() == "cpu" else "other"]
    per_single = 3 * m * (m + cb) * itemsize  # distances, kernel values, masked copy
    return max(1, budget // per_single)


@jax.jit
def _mean(x):
    return jnp.mean(x, axis=0)


@jax.jit
def _centre(x, mu):
    return x - mu


def _global_bandwidth(screen, groups, mu0, n_sample, key) -> float:
    """The ``"global"`` median heuristic over a sample of the control and single rows."""
    off = np.asarray(screen.offsets, np.int64)
    pool = np.concatenate([np.arange(off[g], off[g + 1]) for g in np.concatenate([[0], groups])])
    n_sample = min(n_sample, len(pool))
    k_rows, k_median = jax.random.split(key)
    pick = np.sort(pool[np.asarray(jax.random.choice(k_rows, len(pool), (n_sample,), replace=False))])
    rows = np.asarray(screen.x[pick]).reshape(n_sample, -1)  # sparse: only these rows are densified
    rows = _centre(jnp.asarray(rows, mu0.dtype), mu0)
    return measure_global(rows, k_median, n_rows=n_sample, n_sample=n_sample).value


@functools.partial(jax.jit, static_argnames=("kernel", "precision"))
def _control_sum(x0_blocks, m0_blocks, bw, *, kernel, precision):
    """``S_00``: the control's kernel sum, once for every single."""
    return blocked_self_sum(x0_blocks, m0_blocks, kernel=kernel, bandwidth=bw, precision=precision)


@functools.partial(jax.jit, static_argnames=("kernel", "precision", "chunk"))
def _single_program(x_pad, mask, mu0, x0_blocks, m0_blocks, bw, s00, n0, *, kernel, precision, chunk):
    """``(shift, mmd)`` of every padded single ``x_pad [B, m, D]`` (masks ``[B, m]``)."""
    kw = dict(kernel=kernel, bandwidth=bw, precision=precision)

    def one(x, m):
        x = jnp.where(m[:, None], x - mu0, 0.0)
        n = jnp.sum(m)
        shift = jnp.linalg.norm(jnp.sum(x, axis=0) / jnp.maximum(n, 1))
        s_ii = kernel_sum(x, x, m, m, diagonal=True, **kw)
        s_i0 = blocked_kernel_sum(x, x0_blocks, m, m0_blocks, **kw)
        return shift, mmd2_from_sums(s_ii, s00, s_i0, n, n0)

    return chunked_vmap(one, x_pad, mask, chunk_size=chunk)
