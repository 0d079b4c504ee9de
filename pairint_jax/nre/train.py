r"""Training the contrastive neural ratio estimator (Hermans et al. 2020) with optax.

Objective (paper App. B.1): binary cross-entropy separating joint
pairs ``(x, c) ~ p(x, c)`` from marginal pairs ``(x, c')``, ``c' ~ p(c)`` drawn
independently of ``x``:

.. math::
    L(\theta, W) = -\tfrac12\Big( \mathbb{E}_{p(x,c)} \log\sigma f(x,c)
                 + \mathbb{E}_{p(x)p(c')} \log\big(1-\sigma f(x,c')\big) \Big)

At the optimum ``f*(x, c) = log p(x|c)/p(x)``, so ``log p(x|g)/p(x|0) = f(x,g) - f(x,0)``.
Two exact ways to form the marginal term (``marginal=``):

* ``"all"`` (default): every ``x`` of the batch against *all* classes, weighted by
  the class frequencies ``p(c')``. This is the expectation over ``c'`` of the
  shuffled form, so it has the same optimum and less variance; it costs nothing
  since the critic scores all classes anyway.
* ``"shuffle"``: the paper's form, labels permuted inside the batch.

The state machine is a pair of pure functions (``STYLE.md`` rule 2)::

    trainer = nre_trainer(model, class_prior=p)
    state = trainer.init(key, x_example)
    state, info = trainer.step(key, state, (x_batch, y_batch))   # jit-compiled

:func:`~pairint_jax.nre.fit_nre` adds the seeded pipeline: a stratified held-out
split, each epoch a compiled ``lax.scan`` over shuffled batches (:func:`run_epoch`),
validation each epoch, and the parameters with the best validation accuracy kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pairint_jax._validate import as_key, ceil_div
from pairint_jax._progress import progress as _progress
from pairint_jax._validate import one_of, positive_float, probability

__all__ = ["NREState", "NREInfo", "NRETrainer", "nre_trainer", "nre_loss", "stratified_split", "evaluate_nre"]

MARGINALS = ("all", "shuffle")
SELECT = ("accuracy", "loss")

#: The largest Adam step size accepted: far beyond the usual 1e-5 to 1e-2 the critic
#: diverges and the KL estimates are noise (``learning_rate=1e6`` gave scores of 1e20).
MAX_LEARNING_RATE = 1.0


def check_learning_rate(value) -> float:
    """``value`` as an Adam step size in ``(0, MAX_LEARNING_RATE]``, or a clear error."""
    return positive_float(
        "learning_rate", value, maximum=MAX_LEARNING_RATE,
        hint="Adam step sizes are usually 1e-5 to 1e-2 (defaults: 1e-3 for the MLP, 2e-4 for the CNN).",
    )


class NREState(NamedTuple):
    """Training state: a pytree, carried by ``lax.scan``.

    Attributes:
      params: the critic's ``params`` collection.
      batch_stats: BatchNorm running averages (``{}`` without BatchNorm).
      opt_state: optax state (holds the learning rate, traced).
      step: ``[]`` int32 number of steps taken.
    """

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array


class NREInfo(NamedTuple):
    """Per-step diagnostics: ``loss`` and binary ``accuracy`` (joint vs marginal)."""

    loss: jax.Array
    accuracy: jax.Array


class NRETrainer(NamedTuple):
    """``init(key, x_example) -> NREState`` and ``step(key, state, (x, y)) -> (state, NREInfo)``."""

    init: Callable
    step: Callable


def _variables(params, batch_stats):
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def nre_loss(logits, y, class_prior, *, marginal: str = "all", key=None):
    """The contrastive BCE and its accuracy from critic logits.

    Args:
      logits: ``[B, C]`` critic outputs ``f(x_b, c)``.
      y: ``[B]`` int class of each ``x_b`` (the joint pairs).
      class_prior: ``[C]`` class frequencies ``p(c)`` (used by ``marginal="all"``).
      marginal: ``"all"`` or ``"shuffle"`` (module docstring).
      key: PRNG key for ``"shuffle"`` (a typed key, a legacy ``uint32[2]`` key or an
        int seed); unused by ``"all"``.

    Returns:
      :class:`NREInfo` with the loss ``[]`` and accuracy ``[]`` (the mean of the joint
      accuracy ``f > 0`` and the marginal accuracy ``f < 0``).
    """
    joint = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    if marginal == "all":
        marg_ll = jnp.sum(jax.nn.log_sigmoid(-logits) * class_prior[None, :], axis=1)
        marg_acc = jnp.sum((logits < 0) * class_prior[None, :], axis=1)
    else:
        y_shuf = jax.random.permutation(as_key(key, default_seed=None), y)
        marg = jnp.take_along_axis(logits, y_shuf[:, None], axis=1)[:, 0]
        marg_ll = jax.nn.log_sigmoid(-marg)
        marg_acc = (marg < 0).astype(logits.dtype)
    loss = -0.5 * (jnp.mean(jax.nn.log_sigmoid(joint)) + jnp.mean(marg_ll))
    acc = 0.5 * (jnp.mean((joint > 0).astype(logits.dtype)) + jnp.mean(marg_acc))
    return NREInfo(loss=loss, accuracy=acc)


def nre_trainer(model, *, class_prior, learning_rate=1e-3, marginal: str = "all", optimizer=None) -> NRETrainer:
    """Build the ``(init, step)`` pair for a critic.

    Args:
      model: a :class:`~pairint_jax.nre.Critic` (any Linen module ``(x, train) -> [B, C]``).
      class_prior: ``[C]`` class frequencies of the training data.
      learning_rate: Adam step size (kept in the optax state, so it is traced).
      marginal: ``"all"`` (default) or ``"shuffle"``.
      optimizer: an optax ``GradientTransformation`` to use instead of Adam.

    Returns:
      :class:`NRETrainer`; ``init`` and ``step`` are jit-compiled. Their ``key`` may be a
      typed key, a legacy ``uint32[2]`` key or an int seed.

    Example:
      >>> from pairint_jax.nre import Critic, MLPEncoder
      >>> model = Critic(MLPEncoder(), n_classes=3)
      >>> tr = nre_trainer(model, class_prior=jnp.ones(3) / 3)
      >>> state = tr.init(jax.random.key(0), jnp.zeros((1, 5)))
      >>> state, info = tr.step(jax.random.key(1), state, (jnp.zeros((8, 5)), jnp.zeros(8, int)))
    """
    one_of("marginal", marginal, MARGINALS)
    if optimizer is None and not callable(learning_rate):  # a callable is an optax schedule
        learning_rate = check_learning_rate(learning_rate)
    class_prior = jnp.asarray(class_prior, jnp.float32)
    tx = optimizer if optimizer is not None else optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)

    def init(key, x_example) -> NREState:
        k_params, k_drop = jax.random.split(key)
        variables = model.init({"params": k_params, "dropout": k_drop}, x_example, train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return NREState(params=params, batch_stats=batch_stats, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32))

    def step(key, state: NREState, batch) -> tuple[NREState, NREInfo]:
        x, y = batch
        k_drop, k_shuf = jax.random.split(key)

        def loss_fn(params):
            logits, updates = model.apply(
                _variables(params, state.batch_stats),
                x,
                train=True,
                rngs={"dropout": k_drop},
                mutable=["batch_stats"],
            )
            info = nre_loss(logits, y, class_prior, marginal=marginal, key=k_shuf)
            return info.loss, (info, updates.get("batch_stats", state.batch_stats))

        grads, (info, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return NREState(params, batch_stats, opt_state, state.step + 1), info

    return NRETrainer(init=_key_first(jax.jit(init)), step=_key_first(jax.jit(step)))


def _key_first(fn: Callable) -> Callable:
    """``fn(key, *args)`` with ``key`` checked by :func:`~pairint_jax._validate.as_key` first
    (outside jit, so an int seed becomes a key instead of a traced int)."""

    @functools.wraps(fn)
    def call(key, *args):
        return fn(as_key(key, default_seed=None), *args)

    return call


# ----------------------------------------------------------------------------- pipeline
def stratified_split(key, labels, *, val_fraction: float = 0.3, class_names=None) -> np.ndarray:
    """Seeded held-out split, stratified per class.

    Each class of ``n_c`` rows sends ``round(val_fraction * n_c)`` rows (at least 1 and
    at most ``n_c - 1``) to validation, chosen by a permutation drawn from ``key``.

    Args:
      key: PRNG key (a typed key, a legacy ``uint32[2]`` key or an int seed).
      labels: ``[N]`` int classes ``0..C-1`` (every class present).
      val_fraction: in ``(0, 1)``, default 0.3.
      class_names: optional names used in error messages.

    Returns:
      ``[N]`` bool, True for held-out rows.

    Raises:
      ValueError: fewer than 2 classes, a class with fewer than 2 rows, an empty
        class, or ``val_fraction`` outside ``(0, 1)``.

    Example:
      >>> held = stratified_split(jax.random.key(0), np.repeat([0, 1], [10, 4]))
      >>> int(held[:10].sum()), int(held[10:].sum())
      (3, 1)
    """
    val_fraction = probability("val_fraction", val_fraction)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    counts = np.bincount(labels, minlength=n_classes)
    name = (lambda c: repr(class_names[c])) if class_names is not None else (lambda c: f"class {c}")
    if n_classes < 2:
        raise ValueError(
            f"the neural ratio estimator needs at least 2 classes (the control and one condition), got {n_classes}."
        )
    small = np.flatnonzero(counts < 2)
    if len(small):
        detail = ", ".join(f"{name(c)} ({counts[c]} obs)" for c in small[:8])
        raise ValueError(
            f"{len(small)} class(es) have fewer than 2 observations and cannot be split into training and "
            f"held-out parts: {detail}. Drop these conditions (Screen.select) or collect more observations."
        )
    perm = np.asarray(jax.random.permutation(as_key(key, default_seed=None), labels.size))
    order = perm[np.argsort(labels[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)])
    n_val = np.clip(np.round(val_fraction * counts).astype(np.int64), 1, counts - 1)
    heldout = np.zeros(labels.size, dtype=bool)
    pos = np.arange(labels.size) - np.repeat(starts[:-1], counts)
    heldout[order] = pos < np.repeat(n_val, counts)
    return heldout


#: Steps per compiled call on CPU, where the steps are unrolled (see :func:`run_epoch`).
CPU_STEPS_PER_CALL = 8


@functools.partial(jax.jit, static_argnames=("n", "batch_size", "n_steps"))
def _epoch_batches(key, *, n, batch_size, n_steps):
    """Row indices ``[n_steps, batch_size]`` of one epoch: a fresh permutation, the last
    batch filled up with the permutation's first rows; and one key per step."""
    k_perm, k_steps = jax.random.split(key)
    perm = jax.random.permutation(k_perm, n)
    need = n_steps * batch_size
    idx = jnp.concatenate([perm, perm[: need - n]]) if need > n else perm[:need]
    return idx.reshape(n_steps, batch_size), jax.random.split(k_steps, n_steps)


@functools.partial(jax.jit, static_argnames=("step_fn", "unroll"))
def _run_steps(keys, state, x, y, idx, *, step_fn, unroll):
    """Consecutive steps as one compiled ``lax.scan`` over the batches ``idx [s, B]``."""

    def body(state, inp):
        k, rows = inp
        return step_fn(k, state, (x[rows], y[rows]))

    state, infos = jax.lax.scan(body, state, (keys, idx), unroll=unroll)
    return state, infos


_CONV_CACHE: dict = {}


def _uses_convolution(step_fn, state, x, y, batch_size) -> bool:
    """Whether one training step contains a convolution (traced once per step function and shapes)."""
    sig = (step_fn, x.shape[1:], str(x.dtype), batch_size)
    if sig not in _CONV_CACHE:
        batch = (jax.ShapeDtypeStruct((batch_size,) + x.shape[1:], x.dtype), jax.ShapeDtypeStruct((batch_size,), y.dtype))
        jaxpr = jax.make_jaxpr(step_fn)(jax.random.key(0), state, batch)
        _CONV_CACHE[sig] = "conv_general_dilated" in str(jaxpr)
    return _CONV_CACHE[sig]


def run_epoch(key, state, x, y, *, step_fn, batch_size: int, n_steps: int):
    """One epoch of ``n_steps`` shuffled batches; returns ``(state, mean NREInfo)``.

    Normally the whole epoch is one compiled ``lax.scan``. On CPU, for models with
    convolutions, the steps run in compiled, fully unrolled groups of
    :data:`CPU_STEPS_PER_CALL` instead: XLA's CPU backend emits convolution gradients
    inside a while loop without its fast library kernels (measured 8-20x slower for
    the CNN encoder), and unrolling removes the loop.
    """
    idx, keys = _epoch_batches(key, n=x.shape[0], batch_size=batch_size, n_steps=n_steps)
    if jax.default_backend() != "cpu" or not _uses_convolution(step_fn, state, x, y, batch_size):
        state, infos = _run_steps(keys, state, x, y, idx, step_fn=step_fn, unroll=1)
        return state, NREInfo(loss=jnp.mean(infos.loss), accuracy=jnp.mean(infos.accuracy))
    losses, accs = [], []
    for start in range(0, n_steps, CPU_STEPS_PER_CALL):
        sl = slice(start, min(start + CPU_STEPS_PER_CALL, n_steps))
        state, infos = _run_steps(keys[sl], state, x, y, idx[sl], step_fn=step_fn, unroll=True)
        losses.append(infos.loss)
        accs.append(infos.accuracy)
    return state, NREInfo(loss=jnp.mean(jnp.concatenate(losses)), accuracy=jnp.mean(jnp.concatenate(accs)))


@functools.partial(jax.jit, static_argnames=("model", "batch_size", "marginal"))
def _evaluate(variables, x, y, class_prior, *, model, batch_size, marginal="all"):
    n = x.shape[0]
    n_b = ceil_div(n, batch_size)
    pad = n_b * batch_size - n
    xp = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)).reshape((n_b, batch_size) + x.shape[1:])
    yp = jnp.pad(y, (0, pad)).reshape(n_b, batch_size)
    mp = (jnp.arange(n_b * batch_size) < n).reshape(n_b, batch_size)

    def one(args):
        xb, yb, mb = args
        logits = model.apply(variables, xb, train=False)
        joint = jnp.take_along_axis(logits, yb[:, None], axis=1)[:, 0]
        ll = jax.nn.log_sigmoid(joint) + jnp.sum(jax.nn.log_sigmoid(-logits) * class_prior[None], axis=1)
        acc = (joint > 0) + jnp.sum((logits < 0) * class_prior[None], axis=1)
        w = mb.astype(logits.dtype)
        return jnp.sum(-0.5 * ll * w), jnp.sum(0.5 * acc * w)

    ls, accs = jax.lax.map(one, (xp, yp, mp))
    return NREInfo(loss=jnp.sum(ls) / n, accuracy=jnp.sum(accs) / n)


def evaluate_nre(model, variables, x, y, class_prior, *, batch_size: int = 1024) -> NREInfo:
    """Held-out loss and accuracy in evaluation mode (BatchNorm running averages, no dropout).

    The marginal term is the exact expectation over ``class_prior`` (deterministic), so
    the accuracy used to pick the best epoch has no sampling noise.

    Returns:
      :class:`NREInfo` of scalars.

    Example:
      >>> info = evaluate_nre(trained.model, trained.variables, x_val, y_val, prior)  # doctest: +SKIP
      >>> float(info.accuracy)                                                      # doctest: +SKIP
    """
    batch_size = int(min(batch_size, x.shape[0]))
    return _evaluate(variables, x, y, jnp.asarray(class_prior, jnp.float32), model=model, batch_size=batch_size)


def train_loop(
    key,
    trainer: NRETrainer,
    state: NREState,
    model,
    x_train,
    y_train,
    x_val,
    y_val,
    class_prior,
    *,
    epochs: int,
    batch_size: int,
    progress: bool | None = None,
    desc: str = "NRE",
    select: str = "accuracy",
):
    """Epochs of compiled scans with validation; returns ``(best_variables, last_state, history)``.

    The kept variables are those of the epoch with the highest validation accuracy
    (``select="accuracy"``, the paper's rule; the first such epoch on ties) or the
    lowest validation loss (``select="loss"``). ``progress=None`` shows a bar over epochs when
    a person is watching (a terminal or a notebook).
    """
    one_of("select", select, SELECT)
    n_train = x_train.shape[0]
    bs = int(min(batch_size, n_train))
    n_steps = ceil_div(n_train, bs)
    step_fn = trainer.step
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best_acc, best_vars, best_epoch = -np.inf, _variables(state.params, state.batch_stats), -1
    bar = _progress(total=epochs, desc=desc, enabled=progress, unit="epoch")
    keys = jax.random.split(key, epochs)
    for epoch in range(epochs):
        state, info = run_epoch(keys[epoch], state, x_train, y_train, step_fn=step_fn, batch_size=bs, n_steps=n_steps)
        variables = _variables(state.params, state.batch_stats)
        val = evaluate_nre(model, variables, x_val, y_val, class_prior, batch_size=max(bs, 256))
        loss, acc, vloss, vacc = (float(v) for v in (info.loss, info.accuracy, val.loss, val.accuracy))
        for name, v in zip(history, (loss, acc, vloss, vacc)):
            history[name].append(v)
        crit = vacc if select == "accuracy" else -vloss
        if crit > best_acc:
            best_acc, best_vars, best_epoch = crit, variables, epoch
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", val_acc=f"{vacc:.3f}")
    bar.close()
    history["best_epoch"] = best_epoch
    history["best_val_accuracy"] = history["val_accuracy"][best_epoch]
    history["best_val_loss"] = history["val_loss"][best_epoch]
    return best_vars, state, history
