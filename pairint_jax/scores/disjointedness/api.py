"""The entry point :func:`disjointedness_scores`: validate, resolve, prepare, run, finish."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._validate import as_key, as_screen, nonnegative_int, one_of, optional_positive_int, positive_float, positive_int
from pairint_jax._progress import resolve_progress
from pairint_jax._validate import renamed_keywords
from pairint_jax.parallel import check_mesh
from pairint_jax.results import PairScores, pair_scores_from_screen
from pairint_jax.scores.disjointedness.bandwidth import measure_global, resolve_bandwidth
from pairint_jax.scores.disjointedness.layout import global_sample as sample_rows
from pairint_jax.scores.disjointedness.layout import prepare, prepare_streamed
from pairint_jax.scores.disjointedness.pair import NOT_CONVERGED, UNDERFLOW, ZERO_MEDIAN, PairResult
from pairint_jax.scores.disjointedness.runners import auto_chunk, make_runner, score_all
from pairint_jax.scores.disjointedness.shared import Statics, shared_blocks
from pairint_jax.stats.kernels import check_kernel
from pairint_jax.stats.mmd import NULLS, benjamini_hochberg

MEDIAN_METHODS = ("auto", "grid", "sample")


@renamed_keywords(chunk_size="pairs_per_chunk")
def disjointedness_scores(
    screen,
    *,
    kernel: str = "rbf",
    bandwidth="pair",
    n_permutations: int = 200,
    null: str = "permutation",
    key: jax.Array | int | None = None,
    pairs_per_chunk: int | str | None = "auto",
    precision=None,
    median_rtol: float = 1e-3,
    median_method: str = "auto",
    global_sample: int = 2048,
    on_zero_bandwidth: str = "raise",
    progress: bool | None = None,
    mesh=None,
    stream: bool = False,
    stream_block: int | None = None,
) -> PairScores:
    """Disjointedness (mixture MMD^2) score of every scorable pair, with p- and q-values.

    Answers: *do the perturbations act on disjoint subpopulations?* (the paper's notion). A
    shift of every cell is not disjoint, so pairs that are additive in the mean are often
    significant here; for "is the double's mean shift the sum of the singles' shifts?" use
    :func:`~pairint_jax.additivity_scores` with ``n_permutations`` or
    :func:`~pairint_jax.interaction_types`.

    For each pair ``(i, j)`` with a control, both singles and the double measured,

        score = MMD^2(1/2 p_ij + 1/2 p_0, 1/2 p_i + 1/2 p_j)

    by the exactly unbiased block-form estimator (the paper's disjointedness test,
    Sec. 3.2; :func:`pairint_jax.stats.mixture_mmd2`). Large scores mean the double is
    not the superposition of the singles: the perturbations are not disjoint. All pairs
    run in one compiled pass (``lax.map`` over chunks of a ``vmap``-ed pair function).

    Args:
      screen: a :class:`~pairint_jax.Screen`; observations of any feature shape are
        flattened to vectors.
      kernel: ``"rbf"`` (``exp(-r^2/(2s^2))``, default) or ``"matern52"``.
      bandwidth: ``"pair"`` (default, as in the paper's code): per pair, the median of
        the cross distances between ``ij u 0`` and ``i u j``, certified within
        ``median_rtol`` of the exact median; ``"global"``: the exact median of all
        pairwise distances among ``global_sample`` rows drawn without replacement from
        the whole screen (seeded by ``key``), shared by every pair; or a positive float.
      n_permutations: null draws per pair for the p-values (default 200): permutations,
        or bootstrap draws with ``null="bootstrap"``; 0 skips them (no
        ``p_value``/``q_value`` columns).
      null: ``"permutation"`` (default; the pooled permutation of the four groups: valid
        and conservative, since the groups are stratified) or ``"bootstrap"``
        (calibrated within-group multiplier bootstrap: reproduces the stratified null
        spread, so more power; level holds asymptotically; see
        :func:`pairint_jax.stats.bootstrap_null`). The bandwidth is held at its
        observed value during the null draws. The permutations are drawn once and
        shared by all pairs (each pair restricts them to its own rows), so p-values of
        different pairs are dependent, as they already are through the shared control.
      key: PRNG key (keyword only; a typed key, a legacy ``uint32[2]`` key or an int
        seed). ``None`` uses ``jax.random.key(0)``. Pair ``k`` uses ``fold_in(key, k)``,
        so results do not depend on ``pairs_per_chunk``.
      pairs_per_chunk: pairs per vmapped chunk (static; formerly ``chunk_size``).
        ``"auto"`` (default) keeps the chunk's intermediates near 4 GiB on accelerators
        and 16 MiB (cache-sized, measured fastest) on CPU; ``None`` vmaps all pairs at once.
      precision: matmul precision of the distance products (``None``: device default,
        TF32 on recent NVIDIA GPUs; ``"highest"``: full float32).
      median_rtol: tolerance of the certified pair median (default 1e-3, i.e. 0.1%).
      median_method: how the certified pair median is found (both guarantee
        ``median_rtol``): ``"grid"`` bins every cross distance on one float-bit grid
        (control-single blocks binned once and shared by all pairs; one scatter pass
        per pair, best on CPU; the few pairs whose grid bin is wider than
        ``median_rtol`` are redone by a second, refining program, compiled only when
        needed); ``"sample"`` brackets the median from a 1,024-entry
        subsample and refines it with fused counting passes (no scatter; best on
        GPUs); ``"auto"`` (default) picks by backend.
      global_sample: rows in the ``"global"`` bandwidth subsample (default 2048).
      on_zero_bandwidth: ``"raise"`` (default) raises when a pair's median distance is 0
        (constant or duplicated data); ``"nan"`` reports NaN with a reason instead.
      progress: show a progress bar (the pass is then split into up to 20 equal
        compiled blocks of pairs). ``None`` (default) shows it when a person is watching
        (a terminal or a notebook), ``True``/``False`` force it.
      mesh: optional :class:`jax.sharding.Mesh`: the pairs are split over its devices
        (``shard_map``; ``pairs_per_chunk`` then counts pairs per device, and every
        device runs whole chunks; observations and shared blocks replicated). With the
        same ``pairs_per_chunk`` the scores equal the single-device ones bit for bit
        (``tests/mesh_cases.py``).
      stream: keep the doubles in host memory and send them to the device in blocks of
        ``stream_block`` pairs (for screens that do not fit on the device; ``screen.x``
        may be a ``np.memmap``). Only the control and the singles stay on the device;
        see :mod:`pairint_jax.scores.disjointedness.streaming` for the memory bound.
        Same scores as in memory. A sparse screen (``screen.is_sparse``) always takes this
        path, so its rows are densified one block at a time.
      stream_block: pairs per streamed block (default: about 64 MiB of doubles on CPU,
        1 GiB on accelerators).

    Returns:
      :class:`~pairint_jax.PairScores` with ``test="disjointedness"``: ``score`` and the
      columns ``p_value``, ``q_value`` (Benjamini-Hochberg over the scored pairs) and
      ``bandwidth``; unscorable pairs are NaN with a ``reason``.

    Raises:
      ValueError: unknown kernel/null/bandwidth, a fixed bandwidth that is not positive
        or outside ``[2**-63, 2**63]`` (float32 cannot square it), or a zero median
        distance (with ``on_zero_bandwidth="raise"``). A fixed or ``"global"``
        bandwidth so small that every kernel value of a pair underflows to 0 gives that
        pair NaN with a reason saying so (and a ``RuntimeWarning``). (A :class:`Screen`
        never holds non-finite or float32-overflowing observations: its builders refuse
        them.)
      TypeError: ``screen`` is not a :class:`~pairint_jax.Screen`; a parameter of the wrong
        type (a float ``n_permutations``, a bad key).

    Example:
      >>> import numpy as np, pairint_jax as pj
      >>> rng = np.random.default_rng(0)
      >>> labels = np.repeat(["ctrl", "A", "B", "A+B"], 30)
      >>> x = rng.normal(size=(120, 4)) + 3.0 * (labels == "A+B")[:, None]
      >>> res = pj.disjointedness_scores(pj.Screen.from_arrays(x, labels), n_permutations=99)
      >>> bool(res.to_frame().p_value[0] < 0.05)
      True

    References:
      Gretton et al. (2012), A kernel two-sample test. JMLR 13.
    """
    screen = as_screen(screen, caller="disjointedness_scores")
    bw = resolve_bandwidth(bandwidth)
    n_perm = nonnegative_int("n_permutations", n_permutations)
    median_rtol = positive_float("median_rtol", median_rtol, maximum=0.5)
    key = as_key(key)
    settings = {"kernel": check_kernel(kernel), "bandwidth": bw.setting(), "n_permutations": n_perm,
                "null": one_of("null", null, NULLS), "median_rtol": median_rtol, "precision": precision}
    method = one_of("median_method", median_method, MEDIAN_METHODS)
    one_of("on_zero_bandwidth", on_zero_bandwidth, ("raise", "nan"))
    global_sample = positive_int("global_sample", global_sample, minimum=2)
    stream_block = optional_positive_int("stream_block", stream_block)
    progress = resolve_progress(progress)
    mesh = check_mesh(mesh)
    if len(screen.pairs) == 0:
        return pair_scores_from_screen(screen, np.zeros(0), test="disjointedness", settings=settings)

    stream = stream or screen.is_sparse  # sparse rows are densified one block of doubles at a time
    prep, x_host = prepare_streamed(screen) if stream else (prepare(screen), None)
    k_global, k_pairs = jax.random.split(key)
    if bw.mode == "global":
        n_sample = min(global_sample, int(screen.x.shape[0]))
        rows, n_rows = sample_rows(prep, x_host, k_global, n_rows=int(screen.x.shape[0]), n_sample=n_sample)
        bw = measure_global(rows, k_global, n_rows=n_rows, n_sample=n_sample, precision=precision)
        settings["global_bandwidth"] = bw.value
    if method == "auto":
        method = "grid" if jax.default_backend() == "cpu" else "sample"
    statics = Statics(n0=prep.n0, m_s=prep.m_s, m_d=prep.m_d, per_pair=bw.per_pair, kernel=kernel, n_perm=n_perm,
                      null=null, median_method=method if bw.per_pair else "", precision=precision)
    chunk = _pairs_per_chunk(pairs_per_chunk, prep, statics)
    dtype = prep.x.dtype
    value = None if bw.value is None else jnp.asarray(bw.value, dtype)  # traced: no recompilation per value
    shared = shared_blocks(prep.x, jnp.asarray(prep.s_starts), jnp.asarray(prep.s_counts), value,
                           statics=statics.for_shared())
    run = make_runner(prep, x_host, shared, value, jnp.asarray(median_rtol, dtype), k_pairs, statics, chunk=chunk,
                      mesh=mesh, stream_block=stream_block, progress=progress)
    out = score_all(run, prep.pairs, chunk, statics, median_rtol, blocks=progress and not stream)
    return _finish(screen, out, on_zero_bandwidth, settings)


def _pairs_per_chunk(value, prep, statics: Statics) -> int | None:
    if value == "auto":
        return auto_chunk(prep, statics, np.dtype(prep.x.dtype).itemsize)
    return optional_positive_int("pairs_per_chunk", value, hint="Or pass 'auto' or None.")


def _finish(screen, out: PairResult, on_zero_bandwidth: str, settings: dict) -> PairScores:
    """The :class:`PairScores` table: zero-median pairs raised or reported, p- and q-values."""
    score = np.asarray(out.score, np.float64)
    bandwidth = np.asarray(out.bandwidth, np.float64)
    reason = np.full(len(score), "", dtype=object)
    zero = out.status == ZERO_MEDIAN
    if zero.any():
        names = [f"{screen.perturbations[i]}{screen.sep}{screen.perturbations[j]}" for i, j in screen.pairs[zero]]
        if on_zero_bandwidth == "raise":
            raise ValueError(
                f"{int(zero.sum())} pair(s) have a zero median cross distance (constant or duplicated data), so the "
                f"median heuristic gives no bandwidth: {names[:5]}. Pass a fixed bandwidth=<float>, "
                "bandwidth='global', or on_zero_bandwidth='nan' to report these pairs as NaN."
            )
        score[zero] = np.nan
        bandwidth[zero] = 0.0
        reason[zero] = "zero median distance (constant or duplicated data): no median-heuristic bandwidth"
    tiny = out.status == UNDERFLOW
    if tiny.any():  # a shared bandwidth far below the pair's distances: the statistic is 0 by underflow
        score[tiny] = np.nan
        reason[tiny] = [
            f"every kernel value between distinct observations underflowed to 0: the bandwidth {b:.3g} is far "
            "below the distances between observations; use bandwidth='pair' (the median heuristic) or a larger one"
            for b in bandwidth[tiny]
        ]
        warnings.warn(
            f"{int(tiny.sum())} pair(s) got NaN: with bandwidth={settings['bandwidth']!r} every kernel value "
            "underflowed to 0 (see their reason); use bandwidth='pair' or a larger bandwidth.",
            RuntimeWarning,
            stacklevel=4,  # _finish, disjointedness_scores, its keyword-rename wrapper, the caller
        )
    slow = int(np.sum(out.status == NOT_CONVERGED))
    if slow:  # the bandwidth is still inside a proven bracket, only wider than median_rtol
        warnings.warn(
            f"the certified median did not reach median_rtol={settings['median_rtol']} for {slow} pair(s) "
            "(heavily tied distances); their bandwidths are approximate.",
            RuntimeWarning,
            stacklevel=4,  # _finish, disjointedness_scores, its keyword-rename wrapper, the caller
        )
    columns = {}
    if out.p_value is not None:
        p = np.asarray(out.p_value, np.float64)
        p[~np.isfinite(score)] = np.nan
        columns["p_value"] = p
        columns["q_value"] = benjamini_hochberg(p)
    columns["bandwidth"] = bandwidth
    settings = dict(settings)
    if settings["bandwidth"] == "pair":
        settings["median_passes_max"] = int(np.max(out.n_passes))
    return pair_scores_from_screen(screen, score, columns=columns, reason=reason, test="disjointedness", settings=settings)
