"""A trained ratio estimator (:class:`TrainedNRE`), how to fit one, and the SMILE readout.

:func:`fit_nre` is the whole pipeline on arrays: standardise, split (stratified,
seeded), train with :func:`~pairint_jax.nre.train.nre_trainer`, keep the best
epoch by validation accuracy. :func:`nre_kl_all` then reads ``KL(p0 || pg)`` for
every class ``g`` from held-out samples in one compiled pass:

* encoder features ``F`` of the held-out rows (evaluation mode, batched);
* control rows: ``f_p = F_0 (W_0 - W)``, all classes at once (one matrix product);
* other rows: ``f_q = F_r . (W_0 - W_{c_r})`` (their own class only);
* :func:`~pairint_jax.stats.smile_all` on ``f_p [n0, C]`` and ``f_q`` padded to ``[C, m]``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._progress import resolve_progress
from pairint_jax._validate import as_bool, as_key, ceil_div, one_of, positive_float, positive_int, probability
from pairint_jax.nre.encoders import CNNEncoder, Critic, make_encoder
from pairint_jax.nre.train import MARGINALS, SELECT, check_learning_rate, nre_trainer, stratified_split, train_loop
from pairint_jax.parallel import check_mesh, shard_leading
from pairint_jax.stats.smile import smile_per_condition

__all__ = ["TrainedNRE", "fit_nre", "nre_kl_all", "DEFAULTS"]

#: Training defaults (the paper's values, App. D, in the comments).
DEFAULTS = {
    # paper D.1.1 (20,000 per condition): 500 epochs, lr 5e-3, batch 1024; D.2.1: 2500, 1e-4, 16384.
    # Ours: 9/10 seeds rank A-B and C-D top-2 on D.1.1 at 2,000 per condition.
    "mlp": {"epochs": 50, "learning_rate": 1e-3, "batch_size": 256},
    # paper D.1.2: 200 epochs, lr 2e-4, batch 1024; D.2.2: 5000 epochs, lr 5e-5, batch 2048.
    "cnn": {"epochs": 50, "learning_rate": 2e-4, "batch_size": 256},
}


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedNRE:
    """A trained critic with everything needed to reuse it.

    Attributes:
      model: the :class:`~pairint_jax.nre.Critic` (Linen module; static).
      variables: the best ``{"params", "batch_stats"}`` (by validation accuracy).
      shift, scale: input standardisation, ``x -> (x - shift) / scale`` (broadcast
        against one observation).
      class_names: the ``C`` class labels, class 0 the reference (control).
      heldout: ``[N]`` bool, the held-out rows of the training data (in the order given
        to :func:`fit_nre`).
      history: per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and
        ``best_epoch``, ``best_val_accuracy``.
      config: how it was built and trained (encoder name and options, epochs, ...),
        enough for :func:`~pairint_jax.nre.load_nre` to rebuild a built-in encoder.
    """

    model: Critic
    variables: Mapping
    shift: np.ndarray
    scale: np.ndarray
    class_names: tuple[str, ...]
    heldout: np.ndarray
    history: Mapping
    config: Mapping

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def W(self) -> jax.Array:
        """``[h, C]`` the class vectors ``W_c`` of the critic."""
        return self.variables["params"]["head"]["kernel"]

    def _prep(self, x):
        x = jnp.asarray(x, jnp.float32)
        return (x - jnp.asarray(self.shift)) / jnp.asarray(self.scale)

    def features(self, x, *, batch_size: int = 1024, mesh=None) -> jax.Array:
        """Encoder features ``[N, h]`` in evaluation mode (batches split over ``mesh``'s devices if given)."""
        return _batched_apply(
            self.model, self.variables, self._prep(x), batch_size=int(batch_size), method="features", mesh=check_mesh(mesh)
        )

    def logits(self, x, *, batch_size: int = 1024) -> jax.Array:
        """Critic outputs ``f(x, c)`` for all classes, ``[N, C]``, in evaluation mode."""
        return _batched_apply(self.model, self.variables, self._prep(x), batch_size=int(batch_size), method=None)

    def log_ratio(self, x, g: int, *, ref: int = 0, batch_size: int = 1024) -> jax.Array:
        """``[N]`` the estimated ``log p(x | g) / p(x | ref) = f(x, g) - f(x, ref)``."""
        lg = self.logits(x, batch_size=batch_size)
        return lg[:, g] - lg[:, ref]


@functools.partial(jax.jit, static_argnames=("model", "batch_size", "method", "mesh"))
def _batched_apply(model, variables, x, *, batch_size, method, mesh=None):
    n = x.shape[0]
    bs = max(1, min(batch_size, n))
    n_b = ceil_div(n, bs)
    xp = jnp.pad(x, ((0, n_b * bs - n),) + ((0, 0),) * (x.ndim - 1)).reshape((n_b, bs) + x.shape[1:])

    def one(xb):
        return model.apply(variables, xb, train=False, method=method)

    if mesh is None:
        out = jax.lax.map(one, xp)
    else:  # data-parallel evaluation: the batches split over the devices, the weights replicated
        out = shard_leading(lambda xb: jax.lax.map(one, xb), xp, mesh=mesh)
    return out.reshape((n_b * bs,) + out.shape[2:])[:n]


def training_options(
    *, encoder="mlp", encoder_kwargs=None, epochs=None, batch_size=None, learning_rate=None, val_fraction=0.3,
    marginal="all", select="accuracy",
) -> dict:
    """The NRE training options, checked and with :data:`DEFAULTS` filled in.

    Entry points call this before any work (:func:`fit_nre`,
    :func:`~pairint_jax.separability_scores`), so a bad option is a ``ValueError``/``TypeError``
    naming it, never a failure inside JAX or an estimate trained with a meaningless setting.

    Returns:
      dict with ``encoder_kwargs`` (lists made tuples), ``epochs``, ``batch_size``,
      ``learning_rate``, ``val_fraction``, ``marginal`` and ``select``.
    """
    if encoder_kwargs is not None and not isinstance(encoder_kwargs, Mapping):
        raise TypeError(f"encoder_kwargs must be a dict of encoder options, got {type(encoder_kwargs).__name__}.")
    enc_kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(encoder_kwargs or {}).items()}
    make_encoder(encoder, **enc_kwargs)  # checks the name (or module) and the options; builds no parameters
    defaults = DEFAULTS.get(encoder if isinstance(encoder, str) else "mlp")
    return {
        "encoder_kwargs": enc_kwargs,
        "epochs": positive_int("epochs", defaults["epochs"] if epochs is None else epochs),
        "batch_size": positive_int("batch_size", defaults["batch_size"] if batch_size is None else batch_size),
        "learning_rate": check_learning_rate(defaults["learning_rate"] if learning_rate is None else learning_rate),
        "val_fraction": probability("val_fraction", val_fraction, hint="It is the held-out fraction of each class."),
        "marginal": one_of("marginal", marginal, MARGINALS),
        "select": one_of("select", select, SELECT),
    }


def check_tau(tau) -> float:
    """SMILE's clipping ``tau``: a positive number, ``inf`` allowed (MILE)."""
    return positive_float("tau", tau, allow_inf=True, hint="SMILE clips log-ratios to [-tau, tau]; tau=inf is MILE.")


def check_encoder_input(encoder, encoder_kwargs: Mapping, feature_shape) -> None:
    """A built-in encoder must fit the observations: the CNN takes images ``[C, H, W]`` or
    ``[H, W]`` at least ``2**blocks`` pixels on a side (one 2x2 max-pool per block)."""
    if encoder != "cnn":  # the MLP flattens any shape; a custom module is the user's choice
        return
    shape = tuple(int(d) for d in feature_shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"encoder='cnn' needs images [C, H, W] (or [H, W]) per observation, but the observations have shape "
            f"{shape}; use encoder='mlp' for vectors."
        )
    blocks = len(tuple(encoder_kwargs.get("channels", CNNEncoder.channels)))
    channels_first = encoder_kwargs.get("channels_first", True)
    hw = shape[-2:] if (len(shape) == 2 or channels_first) else shape[:2]
    if min(hw) < 2**blocks:
        raise ValueError(
            f"encoder='cnn' with {blocks} pooling blocks needs images of at least {2**blocks}x{2**blocks} pixels, got "
            f"{hw[0]}x{hw[1]} (observation shape {shape}); pass fewer channels, e.g. "
            f"encoder_kwargs={{'channels': (32,)}}, or use encoder='mlp'."
        )


def _standardizer(x_train, feature_shape):
    if len(feature_shape) == 1:
        shift = x_train.mean(axis=0)
        scale = x_train.std(axis=0)
    else:  # images: one scalar, layout-agnostic
        shift = np.asarray(x_train.mean(), dtype=np.float64).reshape((1,) * len(feature_shape))
        scale = np.asarray(x_train.std(), dtype=np.float64).reshape((1,) * len(feature_shape))
    scale = np.where(scale > 1e-12, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)


def fit_nre(
    key,
    x,
    labels,
    *,
    class_names: Sequence[str] | None = None,
    encoder="mlp",
    encoder_kwargs: Mapping | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    val_fraction: float = 0.3,
    marginal: str = "all",
    standardize: bool = True,
    select: str = "accuracy",
    progress: bool | None = None,
):
    """Train a contrastive ratio estimator over all classes and keep its best epoch.

    Args:
      key: PRNG key (split for the held-out split, initialisation and training); a
        typed key, a legacy ``uint32[2]`` key or an int seed. Required.
      x: ``[N, *feature_shape]`` observations.
      labels: ``[N]`` int classes ``0..C-1``; class 0 is the reference (control).
      class_names: ``C`` names (for messages and checkpoints); default ``"0".."C-1"``.
      encoder: ``"mlp"`` (vectors), ``"cnn"`` (images ``[C, H, W]``) or a Linen module
        ``(x, train) -> [B, h]``.
      encoder_kwargs: options of a built-in encoder, e.g. ``{"hidden": (2048, 256)}``.
      epochs, batch_size, learning_rate: default :data:`DEFAULTS` of the encoder kind
        (``"mlp"`` defaults for a custom module).
      val_fraction: held-out fraction per class (default 0.3).
      marginal: ``"all"`` (default) or ``"shuffle"``, see :mod:`pairint_jax.nre.train`.
      standardize: standardise inputs with training-split statistics (per feature for
        vectors, one scalar for images).
      select: keep the epoch with the best validation ``"accuracy"`` (default, the
        paper's rule) or the lowest validation ``"loss"``.
      progress: a progress bar with loss and accuracy: True, False, or None (default) for on
        when a person is watching (a terminal or a notebook).

    Returns:
      :class:`TrainedNRE`.

    Raises:
      ValueError: fewer than 2 classes, a class too small to split, labels out of
        range, bad sizes.

    Example:
      >>> x = np.random.default_rng(0).normal(size=(400, 2)); y = np.repeat([0, 1], 200); x[y == 1] += 2
      >>> nre = fit_nre(jax.random.key(0), x, y, epochs=5)
      >>> nre.logits(x[:3]).shape
      (3, 2)
    """
    progress = resolve_progress(progress)
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must be [N, *feature_shape], got shape {x.shape}.")
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be [N] ints with N = {x.shape[0]}, got shape {labels.shape}, dtype {labels.dtype}.")
    n_classes = int(labels.max()) + 1
    if labels.min() < 0:
        raise ValueError("labels must be >= 0 (class 0 is the control).")
    if class_names is None:
        class_names = tuple(str(c) for c in range(n_classes))
    class_names = tuple(str(c) for c in class_names)
    if len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names but labels use {n_classes} classes.")
    opts = training_options(
        encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, val_fraction=val_fraction, marginal=marginal, select=select,
    )
    epochs, batch_size, learning_rate = opts["epochs"], opts["batch_size"], opts["learning_rate"]
    val_fraction, enc_kwargs = opts["val_fraction"], opts["encoder_kwargs"]
    standardize = as_bool("standardize", standardize)
    check_encoder_input(encoder, enc_kwargs, x.shape[1:])
    model = Critic(encoder=make_encoder(encoder, **enc_kwargs), n_classes=n_classes)

    k_split, k_init, k_train = jax.random.split(as_key(key, default_seed=None), 3)
    heldout = stratified_split(k_split, labels, val_fraction=val_fraction, class_names=class_names)
    x_tr, y_tr = x[~heldout], labels[~heldout]
    x_va, y_va = x[heldout], labels[heldout]
    feature_shape = tuple(x.shape[1:])
    if standardize:
        shift, scale = _standardizer(x_tr.astype(np.float64), feature_shape)
    else:
        shift = np.zeros((1,) * len(feature_shape), np.float32)
        scale = np.ones((1,) * len(feature_shape), np.float32)
    prep = lambda a: jnp.asarray((a - shift) / scale, jnp.float32)  # noqa: E731
    class_prior = np.bincount(y_tr, minlength=n_classes) / len(y_tr)

    trainer = nre_trainer(model, class_prior=class_prior, learning_rate=learning_rate, marginal=marginal)
    state = trainer.init(k_init, prep(x_tr[:1]))
    best, _, history = train_loop(
        k_train,
        trainer,
        state,
        model,
        prep(x_tr),
        jnp.asarray(y_tr, jnp.int32),
        prep(x_va),
        jnp.asarray(y_va, jnp.int32),
        class_prior,
        epochs=epochs,
        batch_size=batch_size,
        progress=progress,
        select=select,
    )
    config = {
        "encoder": encoder if isinstance(encoder, str) else "custom",
        "encoder_kwargs": enc_kwargs,
        "n_classes": n_classes,
        "feature_shape": list(feature_shape),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "val_fraction": float(val_fraction),
        "marginal": marginal,
        "standardize": bool(standardize),
        "select": select,
    }
    return TrainedNRE(
        model=model,
        variables=best,
        shift=shift,
        scale=scale,
        class_names=class_names,
        heldout=heldout,
        history=history,
        config=config,
    )


# ----------------------------------------------------------------------------- readout
def _padded_index(row_class, n_classes):
    """Positions of each class's rows, padded: ``idx [C, m]``, ``mask [C, m]``."""
    row_class = np.asarray(row_class, np.int64)
    counts = np.bincount(row_class, minlength=n_classes)
    m = max(1, int(counts.max()))
    order = np.argsort(row_class, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    cols = np.arange(m)
    mask = cols[None, :] < counts[:, None]
    idx = np.where(mask, order[np.minimum(starts[:-1, None] + cols[None, :], len(order) - 1)], 0)
    return idx, mask


@jax.jit
def smile_readout(feat_p, feat_q, class_q, idx_q, mask_q, W, tau):
    """SMILE ``KL(p0 || pg)`` for all classes from held-out encoder features (one pass).

    Args:
      feat_p: ``[n0, h]`` features of held-out control rows.
      feat_q: ``[Nq, h]`` features of held-out rows of all classes.
      class_q: ``[Nq]`` int class of each row of ``feat_q``.
      idx_q, mask_q: ``[C, m]`` rows of ``feat_q`` belonging to each class, padded.
      W: ``[h, C]`` the critic's class vectors.
      tau: SMILE clipping (traced).

    Returns:
      ``[C]`` estimates (entry 0, the control against itself, is ~0).

    FLOPs: ``2 n0 h C`` (control rows against all classes) + ``2 Nq h`` + O(C m).

    Example:
      >>> f = jnp.ones((5, 4)); W = jnp.zeros((4, 3))
      >>> idx = jnp.array([[0, 1], [2, 3], [4, 0]]); mask = jnp.array([[1, 1], [1, 1], [1, 0]], bool)
      >>> smile_readout(f[:2], f, jnp.array([0, 0, 1, 1, 2]), idx, mask, W, 5.0).shape
      (3,)
    """
    dW = W[:, :1] - W  # [h, C]: f(x,0) - f(x,c) = F . (W_0 - W_c)
    f_p = jnp.matmul(feat_p, dW, precision=jax.lax.Precision.HIGHEST)  # [n0, C]
    f_rows = jnp.sum(feat_q * dW.T[class_q], axis=1)  # [Nq]
    f_q = jnp.where(mask_q, f_rows[idx_q], 0.0)  # [C, m]
    return smile_per_condition(f_p, f_q, tau, jnp.ones(feat_p.shape[:1], bool), mask_q)


@functools.partial(jax.jit, static_argnames=("mesh",))
def _smile_readout_sharded(feat_p, feat_q, idx_q, mask_q, W, tau, *, mesh):
    """:func:`smile_readout` with the classes split over ``mesh``: each device computes
    ``f_p`` (``[n0, C / D]``), ``f_q`` and SMILE for its own classes."""
    dWt = (W[:, :1] - W).T  # [C, h]

    def local(fp, fq, t, dw, idx, mask):  # this device's classes; the features replicated
        f_p = jnp.matmul(fp, dw.T, precision=jax.lax.Precision.HIGHEST)  # [n0, c]
        f_rows = jnp.sum(fq[idx] * dw[:, None, :], axis=2)  # [c, m]
        return smile_per_condition(f_p, jnp.where(mask, f_rows, 0.0), t, jnp.ones(fp.shape[:1], bool), mask)

    return shard_leading(local, dWt, idx_q, mask_q, mesh=mesh, replicated_args=(feat_p, feat_q, tau))


def nre_kl_all(trained: TrainedNRE, x, labels, *, tau=5.0, rows=None, batch_size: int = 1024, mesh=None) -> jax.Array:
    """``KL(p0 || pg)`` for every class ``g`` by SMILE on held-out samples.

    ``f(x) = f(x, 0) - f(x, g)`` estimates ``log p0(x)/pg(x)``; ``p`` are the chosen
    control rows, ``q`` the chosen rows of class ``g``.

    Args:
      trained: a :class:`TrainedNRE`.
      x: ``[N, *feature_shape]`` observations; labels ``[N]`` their classes.
      tau: SMILE clipping (default 5; ``inf`` = MILE).
      rows: ``[N]`` bool, the rows to evaluate on; default ``trained.heldout`` (then
        ``x``/``labels`` must be the training data, same order).
      batch_size: rows per encoder batch.
      mesh: optional :class:`jax.sharding.Mesh`: encoder batches and then the classes
        of the readout are split over its devices (same estimates to float32 round-off).

    Returns:
      ``[C]`` estimates (NaN for a class with no chosen rows).

    Raises:
      ValueError: ``rows`` (or ``heldout``) does not match ``x``; no control rows.

    Example:
      >>> x = np.random.default_rng(0).normal(size=(400, 2)); y = np.repeat([0, 1], 200); x[y == 1] += 1
      >>> nre = fit_nre(jax.random.key(0), x, y, epochs=3)
      >>> nre_kl_all(nre, x, y, tau=5.0).shape   # [C]: KL(p0 || p0) ~ 0, KL(p0 || p1)
      (2,)
    """
    if not isinstance(trained, TrainedNRE):
        raise TypeError(f"nre_kl_all expects a TrainedNRE (from fit_nre or load_nre), got {type(trained).__name__}.")
    tau = check_tau(tau)
    batch_size = positive_int("batch_size", batch_size)
    labels = np.asarray(labels).astype(np.int64)
    if rows is None:
        rows = trained.heldout
    rows = np.asarray(rows, bool)
    if rows.shape != (labels.shape[0],):
        raise ValueError(
            f"the evaluation rows have shape {rows.shape} but there are {labels.shape[0]} observations; "
            "a model's stored held-out split applies only to the data it was trained on "
            "(evaluate new data with rows=all True, e.g. eval_on='all')."
        )
    sel = np.flatnonzero(rows)
    cls = labels[sel]
    if not (cls == 0).any():
        raise ValueError("no control rows to evaluate on: SMILE needs samples of p0 (class 0).")
    mesh = check_mesh(mesh)
    feats = trained.features(np.asarray(x)[sel], batch_size=batch_size, mesh=mesh)
    is0 = np.flatnonzero(cls == 0)
    idx, mask = _padded_index(cls, trained.n_classes)
    if mesh is None:
        kl = smile_readout(feats[is0], feats, jnp.asarray(cls, jnp.int32), jnp.asarray(idx), jnp.asarray(mask), trained.W, tau)
    else:
        kl = _smile_readout_sharded(feats[is0], feats, jnp.asarray(idx), jnp.asarray(mask), trained.W,
                                    jnp.asarray(tau, jnp.float32), mesh=mesh)
    return jnp.where(jnp.asarray(mask.any(axis=1)), kl, jnp.nan)
