"""Flax (Linen) encoders and the contrastive critic ``f(x, c) = Encoder(x)^T W_c``.

Why Linen and not NNX: training here is an ``(init, step)`` pair of pure functions
over a NamedTuple state (``STYLE.md`` rule 2). A Linen module is a pure function of
an explicit variables pytree (``params`` and ``batch_stats``), which optax updates,
``jax.lax.scan`` carries and ``flax.serialization`` writes, with no graph-state
splitting and merging; the Linen API is also the same on flax 0.12.8 (CPU image) and
0.12.10 (GPU image). A custom encoder is any Linen module whose ``__call__(x, train)``
maps ``[B, *feature_shape]`` to ``[B, h]``.

Encoders (defaults follow the paper, App. D):

* :class:`MLPEncoder`: ``Dense -> ReLU`` per hidden width. Default ``(128, 64)`` as
  for the tabular screen D.1.1; the paper used ``(2048, 256)`` for 1024-d embeddings
  (D.2.1): ``MLPEncoder(hidden=(2048, 256))`` or ``encoder_kwargs={"hidden": (2048, 256)}``.
* :class:`CNNEncoder`: blocks of ``Conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2`` with
  32/64/128 channels, then ``Dense 256 -> ReLU -> Dropout(0.3) -> Dense 128 -> ReLU ->
  Dropout(0.3)`` (App. D.2.2, single-cell painting). Inputs are channels-first
  ``[B, C, H, W]`` as :class:`~pairint_jax.Screen` stores images (``channels_first=False``
  for ``[B, H, W, C]``). For 128x128 scenes (D.1.2) more blocks can be added with
  ``channels=(32, 64, 128, 256, 512)`` as the paper did.

BatchNorm runs on batch statistics in training and on its running averages in
evaluation (``train=False``). The running averages use ``momentum=0.9`` (flax's
default 0.99 lags behind for the few hundred steps of short runs, which makes
evaluation-mode outputs, validation accuracy and the KL readout disagree with
training). Dropout is active only with ``train=True`` and needs a ``"dropout"`` rng.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["MLPEncoder", "CNNEncoder", "Critic", "make_encoder", "ENCODERS"]


class MLPEncoder(nn.Module):
    """Multi-layer perceptron encoder for vector observations.

    Attributes:
      hidden: widths of the hidden layers; the last one is the feature size ``h``.
      dropout: dropout rate after every hidden layer (0 disables it).

    Input ``[B, ...]`` (flattened), output ``[B, hidden[-1]]``.
    """

    hidden: Sequence[int] = (128, 64)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = nn.relu(nn.Dense(int(width))(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


class CNNEncoder(nn.Module):
    """Convolutional encoder for images (paper App. D.2.2).

    Attributes:
      channels: output channels of each ``Conv 3x3 -> BN -> ReLU -> MaxPool 2x2`` block.
      dense: widths of the fully connected blocks; the last one is ``h``.
      dropout: dropout rate after each dense block (paper: 0.3).
      channels_first: inputs are ``[B, C, H, W]`` (True, the Screen convention) or
        ``[B, H, W, C]``.
      bn_momentum: momentum of BatchNorm's running averages.

    Input ``[B, C, H, W]``, output ``[B, dense[-1]]``.
    """

    channels: Sequence[int] = (32, 64, 128)
    dense: Sequence[int] = (256, 128)
    dropout: float = 0.3
    channels_first: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.ndim == 3:  # single-channel [B, H, W]
            x = x[..., None] if not self.channels_first else x[:, None]
        if self.channels_first:
            x = jnp.transpose(x, (0, 2, 3, 1))
        for ch in self.channels:
            x = nn.Conv(int(ch), (3, 3), padding="SAME")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum)(x)
            x = nn.relu(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        for width in self.dense:
            x = nn.relu(nn.Dense(int(width))(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


class Critic(nn.Module):
    """The contrastive critic over all classes: ``f(x, c) = Encoder(x)^T W_c``.

    Attributes:
      encoder: a Linen module, ``encoder(x, train) -> [B, h]``.
      n_classes: number of classes ``C`` (control, singles, doubles).

    ``__call__(x, train)`` returns the logits ``[B, C]``; ``features(x, train)`` the
    encoder output ``[B, h]``; ``W`` is ``params["head"]["kernel"]`` ``[h, C]`` (no bias,
    as in the paper's App. B.1).
    """

    encoder: nn.Module
    n_classes: int

    def setup(self):
        self.head = nn.Dense(int(self.n_classes), use_bias=False)

    def features(self, x, train: bool = False):
        return self.encoder(x, train=train)

    def __call__(self, x, train: bool = False):
        return self.head(self.features(x, train=train))


ENCODERS = {"mlp": MLPEncoder, "cnn": CNNEncoder}
_WIDTHS = {"mlp": ("hidden",), "cnn": ("channels", "dense")}


def _check_encoder_kwargs(name: str, kwargs: dict) -> dict:
    """The options of a built-in encoder, checked (names, widths >= 1, dropout in [0, 1))."""
    fields = [f for f in ENCODERS[name].__dataclass_fields__ if f not in ("parent", "name")]
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise TypeError(f"encoder_kwargs: {unknown} are not options of the {name!r} encoder; it accepts {fields}.")
    out = dict(kwargs)
    for key in _WIDTHS[name]:
        if key in out:
            widths = out[key]
            if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
                raise TypeError(f"encoder_kwargs[{key!r}] must be a sequence of layer widths, got {widths!r}.")
            widths = tuple(widths)
            if not widths or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths):
                raise ValueError(f"encoder_kwargs[{key!r}] must be one or more ints >= 1, got {out[key]!r}.")
            out[key] = tuple(int(w) for w in widths)
    if "dropout" in out:
        rate = out["dropout"]
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"encoder_kwargs['dropout'] must be a rate in [0, 1), got {rate!r}.")
    return out


def make_encoder(encoder, **kwargs) -> nn.Module:
    """Turn ``"mlp"``, ``"cnn"`` (with keyword options) or a Linen module into an encoder.

    Raises:
      TypeError / ValueError: an unknown name, or an object that is not a Linen module.
    """
    if isinstance(encoder, str):
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {sorted(ENCODERS)} or a flax.linen.Module, got {encoder!r}.")
        return ENCODERS[encoder](**_check_encoder_kwargs(encoder, kwargs))
    if isinstance(encoder, nn.Module):
        if kwargs:
            raise ValueError("encoder_kwargs apply only to the built-in 'mlp' and 'cnn' encoders.")
        return encoder
    raise TypeError(
        f"encoder must be 'mlp', 'cnn' or a flax.linen.Module with __call__(x, train), got {type(encoder).__name__}."
    )
