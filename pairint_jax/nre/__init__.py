"""Neural ratio estimation (NRE) for separability: Flax encoders, the contrastive critic,
optax training as ``(init, step)``, checkpoints and the SMILE readout.

* :mod:`~pairint_jax.nre.encoders`: :class:`MLPEncoder`, :class:`CNNEncoder`, :class:`Critic`.
* :mod:`~pairint_jax.nre.train`: :func:`nre_trainer` (``init``/``step``), :func:`nre_loss`,
  :func:`stratified_split`, :func:`evaluate_nre`.
* :mod:`~pairint_jax.nre.model`: :func:`fit_nre` -> :class:`TrainedNRE`, :func:`nre_kl_all`.
* :mod:`~pairint_jax.nre.checkpoint`: :func:`save_nre`, :func:`load_nre` (flax msgpack).
"""

from pairint_jax.nre.checkpoint import load_nre, save_nre
from pairint_jax.nre.encoders import CNNEncoder, Critic, MLPEncoder, make_encoder
from pairint_jax.nre.model import DEFAULTS, TrainedNRE, fit_nre, nre_kl_all, smile_readout
from pairint_jax.nre.train import NREInfo, NREState, NRETrainer, evaluate_nre, nre_loss, nre_trainer, stratified_split

__all__ = [
    "CNNEncoder",
    "Critic",
    "DEFAULTS",
    "MLPEncoder",
    "NREInfo",
    "NREState",
    "NRETrainer",
    "TrainedNRE",
    "evaluate_nre",
    "fit_nre",
    "load_nre",
    "make_encoder",
    "nre_kl_all",
    "nre_loss",
    "nre_trainer",
    "save_nre",
    "smile_readout",
    "stratified_split",
]
