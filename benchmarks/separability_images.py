"""D.1.2 image screen: separability with the CNN neural ratio estimator + SMILE (paper Fig. 2, right).

Three small balls over a background of large ones (``pj.synthetic.balls``); their
positions follow the D.1.1 latent structure, so the inseparable pairs are A-B and
C-D. We train the contrastive critic with the CNN encoder over all 11 classes and
read ``KL(p0 || pg)`` by SMILE (tau = 5) on the held-out 30%; the run passes if
A-B and C-D are the two highest-scoring pairs. For reference the k-NN estimator on
raw pixels is run on the same screen (the paper: k-NN is for low dimension).

Usage::

    python benchmarks/separability_images.py                      # GPU setting: 2,000 per condition, 128 px
    python benchmarks/separability_images.py --cpu-small          # 2-core CPU: 200 per condition, 32 px, 20 epochs
    python benchmarks/separability_images.py --n-per-condition 500 --size 64 --epochs 30

Prints the timings (generation, training, readout), the training curve summary,
the ranking of every pair and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pairint_jax as pj  # noqa: E402


def channels_for(size: int) -> tuple[int, ...]:
    """Conv blocks down to a 4x4 map: 32 px -> (32, 64, 128); 128 px -> (32, 64, 128, 256, 512) as in App. D.1.2."""
    blocks = max(3, int(np.log2(size)) - 2)
    return tuple(min(512, 32 * 2**i) for i in range(blocks))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-small", action="store_true", help="a setting that runs in minutes on a 2-core CPU")
    ap.add_argument("--n-per-condition", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="image side in pixels")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-knn", action="store_true", help="skip the k-NN baseline on raw pixels")
    args = ap.parse_args(argv)
    small = args.cpu_small
    n = args.n_per_condition or (200 if small else 2000)
    size = args.size or (32 if small else 128)
    epochs = args.epochs or (20 if small else 100)
    batch = args.batch_size or (128 if small else 512)
    lr = args.learning_rate or (1e-3 if small else 2e-4)
    dev = jax.devices()[0]
    print(f"# D.1.2 balls: {n} per condition, {size}x{size} px, CNN {channels_for(size)} -> dense (256, 128)")
    print(f"# device: {dev.platform} {dev.device_kind}; jax {jax.__version__}; epochs {epochs}, batch {batch}, lr {lr}")

    key = jax.random.key(args.seed)
    k_data, k_fit = jax.random.split(key)
    t0 = time.perf_counter()
    screen, truth = pj.synthetic.balls(k_data, n_per_condition=n, size=size)
    jax.block_until_ready(screen.x)
    t_gen = time.perf_counter() - t0
    print(f"# generated {screen.x.shape} in {t_gen:.1f} s")
    inseparable = {tuple(sorted((screen.perturbations[i], screen.perturbations[j]))) for i, j in zip(*np.nonzero(np.triu(truth)))}

    t0 = time.perf_counter()
    res = pj.separability_scores(
        screen,
        estimator="nre",
        encoder="cnn",
        encoder_kwargs={"channels": channels_for(size)},
        epochs=epochs,
        batch_size=batch,
        learning_rate=lr,
        key=k_fit,
        progress=True,
    )
    t_fit = time.perf_counter() - t0
    hist = res.settings["history"]
    trained = res.settings["nre_model"]
    t0 = time.perf_counter()
    pj.separability_scores(screen, estimator="nre", model=trained)  # readout only
    t_read = time.perf_counter() - t0
    n_train = int((~trained.heldout).sum())
    print(
        f"# NRE: train+readout {t_fit:.1f} s ({epochs * n_train / t_fit:,.0f} samples/s incl. compile); "
        f"readout alone {t_read * 1e3:.0f} ms; best epoch {hist['best_epoch']} "
        f"(val acc {hist['best_val_accuracy']:.3f}; final train acc {hist['accuracy'][-1]:.3f})"
    )

    rows = [("NRE + SMILE (CNN)", res)]
    if not args.no_knn:
        t0 = time.perf_counter()
        rows.append(("k-NN on raw pixels", pj.separability_scores(screen, estimator="knn")))
        print(f"# k-NN on raw pixels: {time.perf_counter() - t0:.1f} s")

    ok_all = True
    for name, r in rows:
        top = r.top(6)
        top2 = {tuple(sorted(p)) for p in zip(top.a[:2], top.b[:2])}
        ok = top2 == inseparable
        ok_all &= ok if name.startswith("NRE") else True
        print(f"\n## {name}: {'PASS' if ok else 'FAIL'} (A-B and C-D {'are' if ok else 'are not'} the top 2)")
        print("| rank | pair | score | kl_a | kl_b | kl_ab |")
        print("|---|---|---|---|---|---|")
        for _, row in top.iterrows():
            print(f"| {row['rank']} | {row.a}-{row.b} | {row.score:.3f} | {row.kl_a:.3f} | {row.kl_b:.3f} | {row.kl_ab:.3f} |")
    return ok_all


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
