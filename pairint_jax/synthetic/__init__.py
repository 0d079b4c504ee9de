"""Synthetic screens with known interactions (paper App. D.1 and our latent-factor screen).

Every generator is seeded by an explicit ``key``, samples in one jit-compiled call with
static sizes, and returns ``(screen, truth)``: a :class:`~pairint_jax.Screen` (labels
``ctrl``, ``A``, ``A+B``) and a boolean ``[n, n]`` symmetric truth matrix, True where two
perturbations truly interact (diagonal False). ``return_latents=True`` adds the hidden
variables (:class:`Latents`).

* :func:`separability_tabular` - D.1.1, 3 latents -> random 7-layer MLP, truth A-B, C-D;
* :func:`balls` - D.1.2, ``[N, 3, 128, 128]`` ball images with the D.1.1 latents;
* :func:`disjointedness_mixture` - D.1.3, 1-D mixture -> random 10-layer MLP, truth D-E, F-G;
* :func:`latent_factor` - our scalable mixture-of-programs screen with modules of
  interacting perturbations (``n``, ``d`` and sizes free);
* :func:`perturbseq` - a Perturb-seq-like AnnData of raw negative-binomial counts with
  planted synergy, buffering, epistasis, suppression and neomorphic pairs; it returns
  ``(adata, truth)`` (:class:`PerturbseqTruth`) rather than a Screen.

Example:
  >>> import jax, pairint_jax as pj
  >>> screen, truth = pj.synthetic.latent_factor(jax.random.key(0), n_per_condition=50)
  >>> screen.n_perturbations, truth.shape
  (20, (20, 20))
"""

from pairint_jax.synthetic._common import Latents
from pairint_jax.synthetic._mlp import MixingMLP, mlp_apply, mlp_apply_chunked, random_mlp
from pairint_jax.synthetic.images import ball_positions, balls, render_scenes
from pairint_jax.synthetic.latent import LatentFactorModel, latent_factor, latent_factor_model
from pairint_jax.synthetic.mixture import disjointedness_mixture
from pairint_jax.synthetic.singlecell import PerturbseqTruth, perturbseq
from pairint_jax.synthetic.tabular import separability_tabular

__all__ = [
    "Latents",
    "LatentFactorModel",
    "MixingMLP",
    "PerturbseqTruth",
    "ball_positions",
    "balls",
    "disjointedness_mixture",
    "latent_factor",
    "latent_factor_model",
    "mlp_apply",
    "mlp_apply_chunked",
    "perturbseq",
    "random_mlp",
    "render_scenes",
    "separability_tabular",
]
