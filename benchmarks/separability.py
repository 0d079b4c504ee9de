"""Benchmark: separability estimators on all conditions of a screen.

Workloads (``--workload``):

* ``ci``: n = 10 perturbations, all 45 doubles (56 conditions), 200 observations per
  condition, d = 64 (runs in seconds on a 2-core CPU);
* ``paper``: W-paper, n = 50, all 1,225 doubles (1,276 conditions), 1,000 observations
  per condition, d = 1024 (GPU; 5.2 GB of float32 observations).

Rows of the table:

1. k-NN KL for all conditions: ours (:func:`pairint_jax.stats.knn_kl_all`, first call
   with compilation and steady state) next to the straightforward peer measured in
   the same run, a per-condition SciPy ``cKDTree`` loop (the control's tree and
   ``rho`` built once, then one tree per condition queried with the control points).
   On ``paper`` the peer is timed on ``--peer-conditions`` conditions and scaled to all
   (printed as such). Floor: the distance products at the matmul rate measured here.
2. NRE training throughput (samples/s): the contrastive critic over all classes, MLP
   encoder (``(128, 64)`` on ci, the paper's ``(2048, 256)`` on paper), steady epochs.
3. SMILE readout for all conditions/pairs in one pass from held-out encoder features
   (:func:`pairint_jax.nre.smile_readout`), with its FLOP floor at the measured matmul
   rate; and the full readout including the encoder forward pass on held-out rows.

Correctness is checked before anything is timed: our k-NN KLs equal a float64
``cKDTree`` evaluation of the same formula on a few conditions, and the SMILE readout
equals :func:`pairint_jax.stats.smile` applied per condition.

Usage::

    python benchmarks/separability.py                   # W-ci on whatever device JAX has
    python benchmarks/separability.py --workload paper  # W-paper (GPU)
    python benchmarks/separability.py --quick           # smaller repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pairint_jax._validate import ceil_div  # noqa: E402
from pairint_jax.nre import fit_nre, smile_readout  # noqa: E402
from pairint_jax.nre.encoders import Critic, MLPEncoder  # noqa: E402
from pairint_jax.nre.model import _padded_index  # noqa: E402
from pairint_jax.nre.train import nre_trainer, run_epoch  # noqa: E402
from pairint_jax.stats import knn_kl_all, smile  # noqa: E402

WORKLOADS = {
    "ci": {"n": 10, "obs": 200, "d": 64, "hidden": (128, 64), "batch": 1024, "epochs": 4},
    "paper": {"n": 50, "obs": 1000, "d": 1024, "hidden": (2048, 256), "batch": 16384, "epochs": 3},
}


def timeit(fn, repeats):
    """(first call seconds, median steady seconds) with block_until_ready."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def matmul_rate(size=2048, repeats=5):
    """Measured float32 matmul FLOP/s at full precision (precision=HIGHEST) on this device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))
    _, t = timeit(lambda: f(a, a), repeats)
    return 2 * size**3 / t


def make_workload(key, n, obs, d):
    """Control + n singles + all doubles; condition g is N(mu_g, I) with small random means."""
    G = 1 + n + n * (n - 1) // 2
    k0, k1, k2 = jax.random.split(key, 3)
    means = jax.random.normal(k1, (G, d)) * (1.5 / np.sqrt(d))  # KL(p0 || pg) ~ 1.1 nats
    means = means.at[0].set(0.0)
    x0 = jax.random.normal(k0, (obs, d), jnp.float32)
    xg = jax.random.normal(k2, (G - 1, obs, d), jnp.float32) + means[1:, None, :]
    return x0, xg


def scipy_rho(x0):
    return cKDTree(x0).query(x0, k=2)[0][:, 1]


def scipy_one(x0, rho, y, k=1):
    nu = cKDTree(y).query(x0, k=[k])[0][:, 0]
    n, d = x0.shape
    return d / n * np.sum(np.log(nu / rho)) + np.log(len(y) / (n - 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="ci")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and epochs")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--peer-conditions", type=int, default=None, help="conditions timed for the SciPy peer (default: all on ci, 8 on paper)")
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="override the number of perturbations")
    ap.add_argument("--obs", type=int, default=None, help="override the observations per condition")
    ap.add_argument("--d", type=int, default=None, help="override the dimension")
    args = ap.parse_args(argv)
    w = WORKLOADS[args.workload]
    repeats = args.repeats or (3 if args.quick else 7)
    n, obs, d = args.n or w["n"], args.obs or w["obs"], args.d or w["d"]
    G = 1 + n + n * (n - 1) // 2
    dev = jax.devices()[0]
    print(f"# separability benchmark, workload {args.workload}: n={n}, {G} conditions, {obs} obs each, d={d}")
    print(f"# device: {dev.platform} {dev.device_kind}; jax {jax.__version__}")

    rate = matmul_rate(8192 if dev.platform != "cpu" else 1024, repeats=3)
    print(f"# measured float32 matmul rate (precision=HIGHEST): {rate / 1e12:.3f} TFLOP/s")

    x0, xg = make_workload(jax.random.key(0), n, obs, d)
    x0_np = np.asarray(x0, np.float64)

    # ---------------------------------------------------------------- k-NN: first call, correctness
    # The fast path (max_duplicates=0) is what separability_scores runs first; it redoes
    # only conditions where exact duplicates were met (none here) with the slack.
    knn_fast = lambda: knn_kl_all(x0, xg, groups_per_chunk=args.chunk_size, max_duplicates=0).kl  # noqa: E731
    knn_slack = lambda: knn_kl_all(x0, xg, groups_per_chunk=args.chunk_size, max_duplicates=2).kl  # noqa: E731
    t0 = time.perf_counter()
    ours = np.asarray(jax.block_until_ready(knn_fast()))
    first = time.perf_counter() - t0
    rho = scipy_rho(x0_np)
    check = [0, G // 3, G - 2]
    for g in check:
        want = scipy_one(x0_np, rho, np.asarray(xg[g], np.float64))
        if not abs(ours[g] - want) <= 1e-3 * max(1.0, abs(want)):
            raise SystemExit(f"k-NN correctness check failed on condition {g}: ours {ours[g]:.6f} vs cKDTree {want:.6f}")
    t0 = time.perf_counter()
    with_slack = np.asarray(jax.block_until_ready(knn_slack()))
    first_slack = time.perf_counter() - t0
    if not np.allclose(with_slack, ours, rtol=1e-5, atol=1e-5):
        raise SystemExit("k-NN with duplicate slack differs from the fast path on data without duplicates")
    print(f"# k-NN check: {len(check)} conditions equal the float64 cKDTree formula (rel 1e-3)")

    # ---------------------------------------------------------------- k-NN: timing
    _, steady = timeit(knn_fast, repeats)
    _, steady_slack = timeit(knn_slack, repeats)
    n_peer = args.peer_conditions or (G - 1 if args.workload == "ci" else 8)
    n_peer = min(n_peer, G - 1)
    xg_np = [np.asarray(xg[g], np.float64) for g in range(n_peer)]
    peer_times = []
    for _ in range(3 if args.workload == "ci" else 1):
        t0 = time.perf_counter()
        r = scipy_rho(x0_np)
        for g in range(n_peer):
            scipy_one(x0_np, r, xg_np[g])
        peer_times.append((time.perf_counter() - t0) * (G - 1) / n_peer)
    peer = statistics.median(peer_times)
    peer_note = "" if n_peer == G - 1 else f" (timed on {n_peer}, scaled to {G - 1})"
    flops_knn = 2.0 * obs * (d + 2) * (obs + (G - 1) * obs)
    rows = [
        (f"k-NN KL, all {G - 1} conditions (fast path)", first, steady, peer, f"SciPy cKDTree loop{peer_note}", flops_knn / rate),
        (f"k-NN KL, all {G - 1} conditions, max_duplicates=2", first_slack, steady_slack, peer, "same peer", flops_knn / rate),
    ]

    # ---------------------------------------------------------------- NRE training throughput
    epochs = 2 if args.quick else w["epochs"]
    C = G
    model = Critic(MLPEncoder(hidden=w["hidden"]), n_classes=C)
    x_all = jnp.concatenate([x0[None], xg], axis=0).reshape(C * obs, d)
    y_all = jnp.repeat(jnp.arange(C, dtype=jnp.int32), obs)
    n_train = int(0.7 * C * obs)
    perm = jax.random.permutation(jax.random.key(1), C * obs)
    tr_idx = perm[:n_train]
    x_tr, y_tr = x_all[tr_idx], y_all[tr_idx]
    prior = jnp.bincount(y_tr, length=C) / n_train
    trainer = nre_trainer(model, class_prior=prior, learning_rate=1e-4)
    state = trainer.init(jax.random.key(2), x_tr[:1])
    bs = min(w["batch"], n_train)
    steps = ceil_div(n_train, bs)
    t0 = time.perf_counter()
    state, info = run_epoch(jax.random.key(3), state, x_tr, y_tr, step_fn=trainer.step, batch_size=bs, n_steps=steps)
    jax.block_until_ready(info.loss)
    t_first_epoch = time.perf_counter() - t0
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        state, info = run_epoch(jax.random.key(4 + e), state, x_tr, y_tr, step_fn=trainer.step, batch_size=bs, n_steps=steps)
        jax.block_until_ready(info.loss)
        times.append(time.perf_counter() - t0)
    if not np.isfinite(float(info.loss)):
        raise SystemExit("NRE training produced a non-finite loss")
    ep = statistics.median(times)
    throughput = steps * bs / ep
    enc_flops = 2 * sum(a * b for a, b in zip((d, *w["hidden"]), w["hidden"])) + 2 * w["hidden"][-1] * C
    train_floor = 3 * enc_flops * steps * bs / rate  # fwd + bwd ~ 3x forward
    rows.append(
        (f"NRE epoch ({steps * bs} samples, batch {bs})", t_first_epoch, ep, None, f"{throughput:,.0f} samples/s", train_floor)
    )

    # ---------------------------------------------------------------- SMILE readout
    variables = {"params": state.params}
    ho = perm[n_train:]
    x_ho, y_ho = x_all[ho], np.asarray(y_all[ho])
    feats = model.apply(variables, x_ho, train=False, method="features")
    W = state.params["head"]["kernel"]
    is0 = np.flatnonzero(y_ho == 0)
    idx, mask = _padded_index(y_ho, C)
    args_ro = (feats[is0], feats, jnp.asarray(y_ho, jnp.int32), jnp.asarray(idx), jnp.asarray(mask), W, 5.0)
    kl_ro = np.asarray(smile_readout(*args_ro))
    # correctness: equals smile() per condition on the same log-ratios
    lg = np.asarray(model.apply(variables, x_ho, train=False), np.float64)
    for g in (1, C // 2, C - 1):
        f_p = lg[is0, 0] - lg[is0, g]
        sel = y_ho == g
        f_q = lg[sel, 0] - lg[sel, g]
        want = float(smile(jnp.asarray(f_p), jnp.asarray(f_q), tau=5.0))
        if not abs(kl_ro[g] - want) <= 1e-3 * max(1.0, abs(want)):
            raise SystemExit(f"SMILE readout check failed on class {g}: {kl_ro[g]} vs {want}")
    print("# SMILE readout check: equals smile() per condition (rel 1e-3)")
    h = w["hidden"][-1]
    ro_flops = 2.0 * len(is0) * h * C + 2.0 * len(y_ho) * h
    first_ro, steady_ro = timeit(lambda: smile_readout(*args_ro), repeats)
    rows.append((f"SMILE readout, all {C - 1} conditions ({len(y_ho)} held-out rows)", first_ro, steady_ro, None, "from features", ro_flops / rate))
    feat_fn = jax.jit(lambda v, x: model.apply(v, x, train=False, method="features"))

    def full():
        f = feat_fn(variables, x_ho)
        return smile_readout(f[is0], f, *args_ro[2:])

    first_full, steady_full = timeit(full, repeats)
    rows.append(("SMILE readout incl. encoder forward", first_full, steady_full, None, "", (enc_flops * len(y_ho) + ro_flops) / rate))

    # ---------------------------------------------------------------- table
    print()
    print(f"| workload ({args.workload}) | ours first call | ours steady | peer (same run) | ratio | floor | note |")
    print("|---|---|---|---|---|---|---|")
    for name, f, s, p, note, floor in rows:
        ptxt = f"{p * 1e3:.1f} ms" if p is not None else "-"
        ratio = f"{p / s:.1f}x" if p is not None else "-"
        print(f"| {name} | {f * 1e3:.1f} ms | {s * 1e3:.2f} ms | {ptxt} | {ratio} | {floor * 1e3:.3f} ms | {note} |")
    return rows


if __name__ == "__main__":
    main()
