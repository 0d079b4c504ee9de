r"""Separability scores of every pair of a screen (paper Sec. 3.1, Thm. 3.6).

.. math::
    S_{ij} = \big|\, \mathrm{KL}(p_0\|p_i) + \mathrm{KL}(p_0\|p_j) - \mathrm{KL}(p_0\|p_{ij}) \,\big|

``KL(p0 || pg)`` is estimated once per condition ``g`` (never once per pair) and
gathered into the pairs:

* ``estimator="knn"``: the k-NN estimator (:func:`~pairint_jax.stats.knn_kl_all`),
  all conditions in one compiled pass per size bucket, the control kept apart;
* ``estimator="nre"``: a contrastive neural ratio estimator trained on *all* classes
  (:func:`~pairint_jax.nre.fit_nre`) and SMILE on the held-out samples
  (:func:`~pairint_jax.nre.nre_kl_all`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import progress as _progress
from pairint_jax._progress import resolve_progress
from pairint_jax._validate import (
    as_key,
    as_screen,
    float_in_range,
    nonnegative_int,
    one_of,
    optional_positive_int,
    positive_int,
    renamed_keywords,
)
from pairint_jax.nre.model import TrainedNRE, check_encoder_input, check_tau, fit_nre, nre_kl_all, training_options
from pairint_jax.parallel import check_mesh, shard_leading
from pairint_jax.results import PairScores, pair_scores_from_screen
from pairint_jax.scores._knn_reasons import knn_failure_reasons
from pairint_jax.screen import MIN_OBSERVATIONS, Screen, bucket_size
from pairint_jax.stats.knn import knn_kl_all

__all__ = ["separability_scores", "condition_kls"]

ESTIMATORS = ("knn", "nre")

#: k-NN KL warns above this many features, and refuses above :data:`KNN_MAX_DIM`
#: unless ``force_high_dim=True``: in high dimension nearest-neighbour distances
#: concentrate and the estimator's bias swamps the KLs (e.g. KLs of 50-100 on 2,000 genes).
KNN_WARN_DIM = 512
KNN_MAX_DIM = 4096

#: k-NN KL also warns when a sample it uses (the control, or a condition of a scorable
#: pair) has fewer than ``KNN_MIN_OBS_PER_DIM * d`` observations. Measured on Gaussian
#: shifts with KL = 1 nat (d = 5, 20, 50; 20 repeats): with n between d and 2d the
#: estimates' standard deviation is 0.5-1 nat, as large as the KL itself; at 5d it is
#: 0.3-0.5 and at 10d 0.2-0.3.
KNN_MIN_OBS_PER_DIM = 2


def _check_representation(screen, estimator: str, force_high_dim: bool) -> None:
    d = int(np.prod(screen.feature_shape))
    if estimator == "nre" and screen.is_sparse:
        raise ValueError(
            f"the NRE trains on every observation at once and would densify all {screen.x.shape[0]} x {d} sparse "
            "rows; score a low-dimensional representation (use_rep='X_pca'), use estimator='knn', or pass "
            "screen.to_dense() if it fits in memory."
        )
    if estimator != "knn":
        return
    if d <= KNN_WARN_DIM:
        _warn_small_samples(screen, d)
        return
    advice = "score a low-dimensional representation instead (use_rep='X_pca'; CLI --use-rep X_pca)"
    if d > KNN_MAX_DIM and not force_high_dim:
        raise ValueError(
            f"k-NN KL on {d} features (> {KNN_MAX_DIM}) is dominated by the estimator's bias; {advice}, "
            "or pass force_high_dim=True to run it anyway."
        )
    warnings.warn(
        f"k-NN KL on {d} features (> {KNN_WARN_DIM}): nearest-neighbour distances concentrate in high dimension "
        f"and the KLs are dominated by bias; read them as a ranking at best, or {advice}.",
        UserWarning,
        stacklevel=4,  # _check_representation, separability_scores, its keyword-rename wrapper, the caller
    )
    _warn_small_samples(screen, d)  # after the refusal: a refused run gets the error only


def _warn_small_samples(screen, d: int) -> None:
    """Warn when a sample the k-NN KL uses has fewer than ``KNN_MIN_OBS_PER_DIM * d`` rows."""
    need = np.union1d(_needed_groups(screen), [0])
    counts = screen.counts[need]
    small = counts < KNN_MIN_OBS_PER_DIM * d
    if not small.any() or len(need) == 1:
        return
    worst = need[np.argmin(counts)]
    warnings.warn(
        f"k-NN KL on {d} features with few observations: {int(small.sum())} of {len(need)} conditions have fewer "
        f"than {KNN_MIN_OBS_PER_DIM} x {d} = {KNN_MIN_OBS_PER_DIM * d} (e.g. {screen.conditions[worst]!r}: "
        f"{int(counts.min())}). With so few points per dimension the KL estimates are noisy (their spread is as "
        "large as a KL of 1 nat); score a lower-dimensional representation (fewer PCs; use_rep=), collect more "
        "observations, or read the scores as a rough ranking.",
        UserWarning,
        stacklevel=5,  # this, _check_representation, separability_scores, its keyword-rename wrapper, the caller
    )


def _float_x(x):
    dtype = jax.dtypes.canonicalize_dtype(np.asarray(x).dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.float32
    return jnp.asarray(x, dtype=dtype)


def _needed_groups(screen: Screen) -> np.ndarray:
    pg = screen.pair_groups
    if len(pg) == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([pg[:, 0], pg[:, 2], pg[:, 3]])).astype(np.int64)


#: Bytes of one padded block of groups read from a sparse screen (a dense screen pads a
#: whole size bucket at once, as before).
_SPARSE_BLOCK_BYTES = 256 << 20


def _padded_blocks(screen, todo, sizes, buckets):
    """``(size, groups)`` per size bucket; for a sparse screen, split so that one padded block
    stays under ``_SPARSE_BLOCK_BYTES`` (the sparse rows are densified one block at a time)."""
    d = int(np.prod(screen.feature_shape))
    for size in buckets:
        groups = todo[sizes == size]
        per = max(1, _SPARSE_BLOCK_BYTES // (int(size) * d * 4)) if screen.is_sparse else len(groups)
        for lo in range(0, len(groups), per):
            yield size, groups[lo : lo + per]


def _knn_condition_kls(screen, *, k, dim, conditions_per_chunk, block_size, progress, max_duplicates, mesh=None,
                       groups=None):
    """KL per group (NaN where not estimated), duplicates per group, reason per group; for the
    groups of the scorable pairs, or the group ids ``groups`` (e.g. the singles, for
    :func:`~pairint_jax.perturbation_features`)."""
    G = screen.n_groups
    kl = np.full(G, np.nan)
    n_dup = np.zeros(G, np.int64)
    why = np.full(G, "", dtype=object)
    counts = screen.counts
    if counts[0] < k + 1:
        raise ValueError(
            f"the control {screen.control!r} has {counts[0]} observations; the k-NN estimator with k={k} "
            f"needs at least {k + 1}. Use a smaller k or collect more control observations."
        )
    need = _needed_groups(screen) if groups is None else np.asarray(groups, np.int64)
    few = need[counts[need] < k]
    for g in few:
        why[g] = f"condition {screen.conditions[g]!r} has {counts[g]} observation(s); k-NN with k={k} needs >= {k}"
    todo = need[counts[need] >= k]
    x0 = _float_x(screen.group(0).reshape(counts[0], -1))
    # Bucket the groups by padded size: few distinct compiled shapes, little padding.
    sizes = np.asarray([bucket_size(int(c)) for c in counts[todo]], dtype=np.int64)
    buckets = np.unique(sizes)
    bar = _progress(total=len(todo), desc="k-NN KL", enabled=progress, unit="cond")
    invalid = []
    for size, groups in _padded_blocks(screen, todo, sizes, buckets):
        x_pad, mask = screen.padded(groups, size=int(size))
        x_pad = _float_x(x_pad.reshape(len(groups), int(size), -1))
        # Fast pass without duplicate slack; conditions where exact duplicates were met
        # are redone with max_duplicates (rare: continuous readouts have none).
        kw = dict(k=k, dim=dim, groups_per_chunk=conditions_per_chunk, block_size=block_size, mesh=mesh)
        mask = jnp.asarray(mask)
        res = _knn_kl_all(x0, x_pad, mask, max_duplicates=0, **kw)
        kl_b, dup_b, valid_b = (np.asarray(v) for v in res)
        redo = dup_b > 0
        if redo.any() and max_duplicates > 0:
            res2 = _knn_kl_all(x0, x_pad, mask, max_duplicates=max_duplicates, **kw)
            kl_b, dup_b, valid_b = (np.where(redo, np.asarray(v2), v1) for v1, v2 in zip((kl_b, dup_b, valid_b), res2))
        kl[groups] = np.asarray(kl_b, np.float64)
        n_dup[groups] = dup_b
        invalid.append(groups[~np.asarray(valid_b, bool)])
        bar.update(len(groups))
    bar.close()
    invalid = np.concatenate(invalid) if invalid else np.zeros(0, np.int64)
    if len(invalid):  # rare: find the condition at fault (the control, or this one) and the cause
        for g, reason in knn_failure_reasons(screen, x0, invalid, k=k, max_duplicates=max_duplicates).items():
            why[g] = reason
    return kl, n_dup, why


def _knn_kl_all(x0, x_groups, mask_groups, *, mesh, dim, **statics):
    """:func:`~pairint_jax.stats.knn_kl_all`, with the conditions split over ``mesh``'s
    devices when one is given (the control replicated)."""
    if mesh is None:
        return knn_kl_all(x0, x_groups, mask_groups=mask_groups, dim=dim, **statics)
    return _knn_kl_all_on_mesh(x0, x_groups, mask_groups, dim, mesh=check_mesh(mesh), **statics)


@functools.partial(jax.jit, static_argnames=("mesh", "k", "groups_per_chunk", "block_size", "max_duplicates"))
def _knn_kl_all_on_mesh(x0, x_groups, mask_groups, dim, *, mesh, **statics):
    # groups_per_chunk then counts conditions per device; each condition's estimate is computed
    # by the same code as without a mesh
    def local(x_p, d, xg, mg):
        return knn_kl_all(x_p, xg, mask_groups=mg, dim=d, **statics)

    return shard_leading(local, x_groups, mask_groups, mesh=mesh, replicated_args=(x0, dim))


def _nre_condition_kls(screen, *, key, encoder, encoder_kwargs, tau, epochs, batch_size, learning_rate, val_fraction,
                       marginal, model, eval_on, progress, select, mesh=None):
    counts = screen.counts
    classes = np.flatnonzero(counts >= MIN_OBSERVATIONS)  # group 0 (control) always qualifies
    class_of_group = np.full(screen.n_groups, -1, np.int64)
    class_of_group[classes] = np.arange(len(classes))
    rows = np.concatenate([np.arange(screen.offsets[g], screen.offsets[g + 1]) for g in classes])
    labels = class_of_group[screen.group_ids[rows]]
    x = np.asarray(screen.x[rows])
    names = tuple(screen.conditions[g] for g in classes)
    if model is None:
        trained = fit_nre(
            key, x, labels, class_names=names, encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, val_fraction=val_fraction, marginal=marginal,
            progress=progress, select=select,
        )
    else:
        if not isinstance(model, TrainedNRE):
            raise TypeError(f"model must be a TrainedNRE (from a previous run or load_nre), got {type(model).__name__}.")
        if tuple(model.class_names) != names:
            raise ValueError(
                f"the model was trained on classes {list(model.class_names)[:6]}... ({model.n_classes}) but this screen "
                f"has {list(names)[:6]}... ({len(names)}); a trained NRE can only score a screen with the same conditions."
            )
        if tuple(model.config["feature_shape"]) != tuple(screen.feature_shape):
            raise ValueError(
                f"the model expects observations of shape {tuple(model.config['feature_shape'])}, "
                f"the screen has {screen.feature_shape}."
            )
        trained = model
    if eval_on == "heldout":
        eval_rows = None
        if model is not None and len(model.heldout) != len(labels):
            raise ValueError(
                f"the model's held-out split covers {len(model.heldout)} observations but the screen has {len(labels)}; "
                "pass eval_on='all' to evaluate a trained model on new data."
            )
    elif eval_on == "all":
        eval_rows = np.ones(len(labels), bool)
    else:
        raise ValueError(f"eval_on must be 'heldout' or 'all', got {eval_on!r}.")
    kl_cls = np.asarray(nre_kl_all(trained, x, labels, tau=tau, rows=eval_rows, mesh=mesh), np.float64)
    kl = np.full(screen.n_groups, np.nan)
    kl[classes] = kl_cls
    why = np.full(screen.n_groups, "", dtype=object)
    for g in np.flatnonzero(~np.isfinite(kl)):
        if g in set(classes.tolist()):
            why[g] = f"SMILE KL of condition {screen.conditions[g]!r} is not finite"
    return kl, why, trained


def condition_kls(screen: Screen, **kwargs) -> dict:
    """``KL(p0 || pg)`` for every condition, keyed by label (the numbers behind the scores).

    Accepts the keywords of :func:`separability_scores`; returns ``{label: kl}`` for the
    conditions that enter a scorable pair (NaN where not estimable).

    Example:
      >>> condition_kls(screen, estimator="knn")   # doctest: +SKIP
      {'A': 3.9, 'B': 6.4, ...}
    """
    res = separability_scores(as_screen(screen, caller="condition_kls"), **kwargs)
    return dict(res.settings["condition_kl"])


@renamed_keywords(chunk_size="conditions_per_chunk")
def separability_scores(
    screen: Screen,
    *,
    estimator: str = "knn",
    k: int = 1,
    dim=None,
    encoder="mlp",
    encoder_kwargs: Mapping | None = None,
    tau=5.0,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    val_fraction: float = 0.3,
    marginal: str = "all",
    select: str = "accuracy",
    model: TrainedNRE | None = None,
    eval_on: str = "heldout",
    key=None,
    progress: bool | None = None,
    conditions_per_chunk: int | None = None,
    block_size: int | None = None,
    max_duplicates: int = 8,
    mesh=None,
    force_high_dim: bool = False,
) -> PairScores:
    r"""Separability score of every pair: ``S_ij = |KL(p0||pi) + KL(p0||pj) - KL(p0||pij)|``.

    Answers: *do the perturbations act on independent latent factors?*

    Separable perturbations (acting on disjoint latent factors) have additive KLs and
    score near 0; a high score flags an interaction (paper Thm. 3.6, Eq. 3). With the
    k-NN estimator finite-sample bias makes separable pairs clearly non-zero and with
    SMILE at ``tau = 5`` large KLs are biased upward: read the scores as a ranking.

    Args:
      screen: the :class:`~pairint_jax.Screen`.
      estimator: ``"knn"`` (default; low-dimensional readouts) or ``"nre"`` (neural
        ratio estimator + SMILE; images, embeddings).
      k: (knn) neighbour order, default 1.
      dim: (knn) the ``d`` of the k-NN formula; default the flattened feature size.
      encoder: (nre) ``"mlp"`` (default), ``"cnn"`` or a Linen module ``(x, train) -> [B, h]``.
      encoder_kwargs: (nre) options of the built-in encoder, e.g. ``{"hidden": (2048, 256)}``
        (the paper's MLP for 1024-d embeddings; default ``(128, 64)``).
      tau: (nre) SMILE clipping, default 5; ``float("inf")`` gives MILE.
      epochs, batch_size, learning_rate: (nre) training; defaults in
        :data:`pairint_jax.nre.DEFAULTS` (mlp: 50 epochs, batch 256, lr 1e-3;
        cnn: 50 epochs, batch 256, lr 2e-4).
      val_fraction: (nre) held-out fraction per class (default 0.3); the KLs are
        evaluated on the held-out samples.
      marginal: (nre) ``"all"`` or ``"shuffle"`` form of the contrastive loss.
      select: (nre) keep the epoch with the best validation ``"accuracy"`` (default,
        as in the paper) or the lowest validation ``"loss"``.
      model: (nre) a :class:`~pairint_jax.nre.TrainedNRE` to reuse instead of training
        (from ``res.settings["nre_model"]`` or :func:`~pairint_jax.nre.load_nre`).
      eval_on: (nre) ``"heldout"`` (default: the model's held-out split; requires the
        data it was trained on) or ``"all"`` (every observation; for new data).
      key: (nre) PRNG key for the split, initialisation and training (keyword only; a typed
        key, a legacy ``uint32[2]`` key or an int seed). ``None`` uses ``jax.random.key(0)``.
      progress: progress bars (k-NN buckets, NRE epochs with loss and accuracy): True, False, or
        None (default) for on when a person is watching (a terminal or a notebook).
      conditions_per_chunk: (knn) conditions per vmapped chunk (formerly ``chunk_size``); default bounds one block of
        distances to about 2^27 numbers.
      block_size: (knn) control rows per block (same default rule).
      max_duplicates: (knn) exact copies of a point the duplicate guard can skip (see
        :mod:`pairint_jax.stats.knn`); conditions are first scored without this slack
        and only those where duplicates were met are redone with it. Default 8.
      mesh: optional :class:`jax.sharding.Mesh`. ``"knn"``: the conditions are split over
        its devices. ``"nre"``: the encoder evaluation (batches) and the SMILE readout
        (classes) are split over its devices; the training itself runs on one device.
        Scores equal the single-device ones to float32 round-off (``rtol`` 1e-5).
      force_high_dim: (knn) run the k-NN estimator on more than
        :data:`KNN_MAX_DIM` features anyway (it warns above :data:`KNN_WARN_DIM`:
        nearest-neighbour distances concentrate and the KLs are dominated by bias). It
        also warns when a condition it uses has fewer than
        :data:`KNN_MIN_OBS_PER_DIM` x ``d`` observations (noisy estimates).

    Returns:
      :class:`~pairint_jax.PairScores` (``test="separability"``) with columns
      ``kl_a``, ``kl_b``, ``kl_ab`` (the three KLs of each pair) and ``reason``;
      ``settings`` holds the options, ``condition_kl`` ``{label: KL}`` and, for
      ``"nre"``, the trained model ``nre_model`` and its training ``history``.

    Raises:
      TypeError: ``screen`` is not a :class:`~pairint_jax.Screen`; an option of the wrong type.
      ValueError: unknown estimator, ``k``/``dim``/``tau`` or an NRE training option out of
        range (e.g. ``learning_rate`` <= 0 or > 1, ``encoder="cnn"`` on vectors), too few
        control observations for ``k``, classes too small to split for the NRE, a reused
        model that does not fit the screen, k-NN on more than :data:`KNN_MAX_DIM` features
        without ``force_high_dim``, the NRE on a sparse screen (it would densify every row).

    Example:
      >>> import pairint_jax as pj
      >>> screen, truth = pj.synthetic.separability_tabular(jax.random.key(0), n_per_condition=2000)  # doctest: +SKIP
      >>> res = pj.separability_scores(screen, estimator="knn")                                      # doctest: +SKIP
      >>> res.top(2)[["a", "b"]]   # A-B and C-D                                                       # doctest: +SKIP
    """
    screen = as_screen(screen, caller="separability_scores")
    one_of("estimator", estimator, ESTIMATORS)
    k = positive_int("k", k, hint="(the neighbour order)")
    max_duplicates = nonnegative_int("max_duplicates", max_duplicates)
    one_of("eval_on", eval_on, ("heldout", "all"))
    if dim is not None:
        float_in_range("dim", dim, low=1.0, hint="It is the d of the k-NN formula (default: the feature size).")
    conditions_per_chunk = optional_positive_int("conditions_per_chunk", conditions_per_chunk)
    block_size = optional_positive_int("block_size", block_size)
    tau = check_tau(tau)
    if estimator == "nre" and model is None:  # fail before any work, not after the screen is gathered
        opts = training_options(encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=epochs, batch_size=batch_size,
                                learning_rate=learning_rate, val_fraction=val_fraction, marginal=marginal, select=select)
        check_encoder_input(encoder, opts["encoder_kwargs"], screen.feature_shape)
    else:
        one_of("select", select, ("accuracy", "loss"))
    key = as_key(key)
    progress = resolve_progress(progress)
    settings: dict = {"estimator": estimator}
    _check_representation(screen, estimator, force_high_dim)
    if estimator == "knn":
        kl, n_dup, why = _knn_condition_kls(
            screen, k=int(k), dim=dim, conditions_per_chunk=conditions_per_chunk, block_size=block_size, progress=progress,
            max_duplicates=int(max_duplicates), mesh=mesh,
        )
        d_used = int(np.prod(screen.feature_shape)) if dim is None else dim
        settings.update(k=int(k), dim=d_used, n_duplicates={screen.conditions[g]: int(n_dup[g]) for g in np.flatnonzero(n_dup)})
        if n_dup.any():
            warnings.warn(
                f"duplicate observations met in the k-NN search for {int((n_dup > 0).sum())} condition(s) "
                f"(e.g. {screen.conditions[int(np.flatnonzero(n_dup)[0])]!r}); exact duplicates are skipped "
                "(k-th nearest *distinct* neighbour). See settings['n_duplicates'].",
                UserWarning,
                stacklevel=3,  # separability_scores, its keyword-rename wrapper, the caller
            )
    else:
        kl, why, trained = _nre_condition_kls(
            screen, key=key, encoder=encoder, encoder_kwargs=encoder_kwargs, tau=tau, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, val_fraction=val_fraction, marginal=marginal,
            model=model, eval_on=eval_on, progress=progress, select=select, mesh=mesh,
        )
        settings.update(
            tau=float(tau), encoder=trained.config["encoder"], encoder_kwargs=dict(trained.config["encoder_kwargs"]),
            epochs=trained.config["epochs"], batch_size=trained.config["batch_size"],
            learning_rate=trained.config["learning_rate"], val_fraction=trained.config["val_fraction"],
            marginal=trained.config["marginal"], eval_on=eval_on, nre_model=trained, history=dict(trained.history),
        )
    pg = screen.pair_groups
    kl_ab, kl_a, kl_b = kl[pg[:, 0]], kl[pg[:, 2]], kl[pg[:, 3]]
    score = np.abs(kl_a + kl_b - kl_ab)
    reason = np.full(len(pg), "", dtype=object)
    for p, groups in enumerate(pg):
        msgs = [why[g] for g in (groups[2], groups[3], groups[0]) if why[g]]
        if msgs:
            reason[p] = "; ".join(dict.fromkeys(msgs))
    need = _needed_groups(screen)
    settings["condition_kl"] = {screen.conditions[g]: float(kl[g]) for g in need}
    return pair_scores_from_screen(
        screen,
        score,
        columns={"kl_a": kl_a, "kl_b": kl_b, "kl_ab": kl_ab},
        reason=reason,
        test="separability",
        settings=settings,
    )
