"""Saving and loading a :class:`~pairint_jax.nre.TrainedNRE` (flax msgpack, one file).

Format: ``flax.serialization`` msgpack of a dict holding the best variables
(``params`` and ``batch_stats`` as a state dict of arrays), the input
standardisation, the held-out mask, and a JSON string with the class names, the
training history and the build config (``format = "pairint_jax.nre/1"``).

Why msgpack rather than orbax: a trained critic is small (KB to tens of MB) and is
saved once; msgpack gives one self-contained file, written synchronously and
atomically, restored bit for bit, with the metadata inside, through an API of flax
itself (``to_state_dict`` / ``msgpack_serialize`` / ``msgpack_restore``) that has
not changed across flax 0.12.x. orbax-checkpoint also works on this CPU image, but
it writes a directory asynchronously through tensorstore, needs a separate handler
for the metadata, and its API is being migrated (v0 -> v1), which we could not
check on the GPU image (jax 0.11). Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np

from pairint_jax._files import follow_umask
from pairint_jax.nre.encoders import Critic, make_encoder
from pairint_jax.nre.model import TrainedNRE

__all__ = ["save_nre", "load_nre", "FORMAT"]

FORMAT = "pairint_jax.nre/1"


def _to_numpy(tree):
    return jax.tree.map(lambda a: np.asarray(jax.device_get(a)), tree)


def save_nre(path, trained: TrainedNRE) -> str:
    """Write a trained estimator to ``path`` (conventionally ``*.msgpack``).

    Args:
      path: file to write (parent folders are created); replaced atomically.
      trained: the :class:`TrainedNRE`.

    Returns:
      The path written.

    Example:
      >>> save_nre("critic.msgpack", trained)        # doctest: +SKIP
      >>> again = load_nre("critic.msgpack")          # doctest: +SKIP
    """
    if not isinstance(trained, TrainedNRE):
        raise TypeError(f"save_nre expects a TrainedNRE, got {type(trained).__name__}.")
    history = {k: (list(map(float, v)) if isinstance(v, (list, tuple)) else v) for k, v in trained.history.items()}
    meta = {"class_names": list(trained.class_names), "history": history, "config": dict(trained.config)}
    payload = {
        "format": FORMAT,
        "variables": _to_numpy(fser.to_state_dict(dict(trained.variables))),
        "shift": np.asarray(trained.shift, np.float32),
        "scale": np.asarray(trained.scale, np.float32),
        "heldout": np.asarray(trained.heldout, np.bool_),
        "meta": json.dumps(meta),
    }
    data = fser.msgpack_serialize(payload)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nre-", suffix=".tmp")
    try:
        follow_umask(tmp)  # mkstemp makes 0600; a saved model follows the umask, like open()
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


_FIELDS = ("variables", "shift", "scale", "heldout", "meta")


def _read_checkpoint(path: str) -> tuple[dict, dict]:
    """The payload and its metadata, or a ValueError naming ``path`` and what is wrong."""
    how = "save one with save_nre(path, trained) or `pairint score ... --save-model PATH`"
    with open(path, "rb") as fh:
        data = fh.read()
    if not data:
        raise ValueError(f"{path!r} is empty, not a pairint_jax NRE checkpoint; {how}.")
    try:
        raw = fser.msgpack_restore(data)
    except Exception as err:  # msgpack raises ValueError subclasses and UnpackException
        raise ValueError(
            f"{path!r} is not a pairint_jax NRE checkpoint (not readable as msgpack: {err or type(err).__name__}; "
            f"truncated or another format?); {how}."
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a pairint_jax NRE checkpoint (format {FORMAT!r}); {how}.")
    missing = [k for k in _FIELDS if k not in raw]
    try:
        meta = json.loads(raw["meta"]) if not missing else None
        config = meta["config"]
        ok = (
            isinstance(meta["class_names"], list)
            and config["encoder"] in ("mlp", "cnn", "custom")
            and isinstance(config["encoder_kwargs"], dict)
            and int(config["n_classes"]) == len(meta["class_names"]) >= 2
            and all(int(d) >= 1 for d in config["feature_shape"])
            and isinstance(meta["history"], dict)
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        ok, missing = False, missing or [str(err)]
    if missing or not ok:
        detail = f"missing or bad field(s) {missing}" if missing else "inconsistent metadata"
        raise ValueError(f"{path!r} is a damaged pairint_jax NRE checkpoint ({detail}); {how}.")
    return raw, meta


def load_nre(path, *, encoder=None) -> TrainedNRE:
    """Read an estimator written by :func:`save_nre`.

    Args:
      path: the file.
      encoder: the Linen encoder module, required only when the estimator was trained
        with a custom encoder (built-in ``"mlp"``/``"cnn"`` encoders are rebuilt from
        the stored config).

    Returns:
      :class:`TrainedNRE` whose outputs equal the saved one's exactly.

    Raises:
      OSError: the file cannot be read (missing, permissions).
      ValueError: not a pairint_jax NRE checkpoint (empty, truncated, another format, damaged
        fields), or variables that do not fit the encoder; the message names the file.
    """
    raw, meta = _read_checkpoint(os.fspath(path))
    config = meta["config"]
    if config["encoder"] == "custom":
        if encoder is None:
            raise ValueError("this checkpoint was trained with a custom encoder; pass it again as load_nre(path, encoder=module).")
        enc = make_encoder(encoder)
    else:
        if encoder is not None:
            raise ValueError(f"this checkpoint uses the built-in {config['encoder']!r} encoder; do not pass encoder=.")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config["encoder_kwargs"].items()}
        enc = make_encoder(config["encoder"], **kwargs)
        config["encoder_kwargs"] = kwargs
    model = Critic(encoder=enc, n_classes=int(config["n_classes"]))
    x0 = jnp.zeros((1, *config["feature_shape"]), jnp.float32)
    target = jax.eval_shape(lambda: model.init(jax.random.key(0), x0, train=False))
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(target))
    try:
        variables = fser.from_state_dict(target, raw["variables"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{os.fspath(path)!r}: the stored variables do not fit the encoder: {err}") from err
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(variables)):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{os.fspath(path)!r}: the stored variables do not fit the encoder: shape {np.shape(b)} where "
                f"{np.shape(a)} is expected."
            )
    variables = jax.tree.map(jnp.asarray, variables)
    history = dict(meta["history"])
    return TrainedNRE(
        model=model,
        variables=variables,
        shift=np.asarray(raw["shift"], np.float32),
        scale=np.asarray(raw["scale"], np.float32),
        class_names=tuple(meta["class_names"]),
        heldout=np.asarray(raw["heldout"], bool),
        history=history,
        config=config,
    )
