"""Run pairint_jax on every device of one or several hosts, and check it against one device.

One machine, all its GPUs (or 8 virtual CPU devices)::

    python examples/multihost.py
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/multihost.py   # CPU only

Several hosts (one process per host; every process runs the same script)::

    # on a SLURM / Open MPI / TPU cluster the arguments are found automatically:
    srun python examples/multihost.py --distributed
    # anywhere else, give them (process 0's address is the coordinator):
    python examples/multihost.py --distributed --coordinator host0:12355 --num-processes 2 --process-id 0
    python examples/multihost.py --distributed --coordinator host0:12355 --num-processes 2 --process-id 1

Two processes on one CPU machine stand in for two hosts (4 virtual devices each)::

    export XLA_FLAGS=--xla_force_host_platform_device_count=4
    python examples/multihost.py --distributed --cpu-collectives --coordinator localhost:12355 --num-processes 2 --process-id 0 &
    python examples/multihost.py --distributed --cpu-collectives --coordinator localhost:12355 --num-processes 2 --process-id 1

Every process builds the same data (same seeds), and the mesh spans the devices of all
processes (``jax.devices()``); every result comes back replicated, so each process can
read it. The script scores a screen (separability, k-NN; disjointedness), runs a
genome-style IDS round and a small simulated campaign, each with ``mesh=`` and without,
and prints the largest difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize first")
    ap.add_argument("--coordinator", default=None, help="host:port of process 0 (default: from the cluster)")
    ap.add_argument("--num-processes", type=int, default=None)
    ap.add_argument("--process-id", type=int, default=None)
    ap.add_argument("--cpu-collectives", action="store_true", help="CPU-only multi-process runs: use gloo collectives")
    ap.add_argument("--n", type=int, default=300, help="perturbations of the IDS round")
    args = ap.parse_args(argv)

    import jax

    if args.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.distributed:
        jax.distributed.initialize(
            coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
        )
    import numpy as np

    import pairint_jax as pj
    from pairint_jax.discovery import posterior as post
    from pairint_jax.discovery.tiled import ids_tiled
    from pairint_jax.parallel import make_mesh

    mesh = make_mesh()  # every device of every process
    lead = jax.process_index() == 0

    def say(*a):
        if lead:
            print(*a, flush=True)

    say(f"{jax.process_count()} process(es), {len(jax.devices())} devices ({len(jax.local_devices())} local): {mesh}")

    def compare(name, run, diff):
        t0 = time.perf_counter()
        one = run(None)
        t1 = time.perf_counter()
        many = run(mesh)
        t2 = time.perf_counter()
        say(f"{name:<34} one device {t1 - t0:6.2f} s | mesh {t2 - t1:6.2f} s | max difference {diff(one, many):.2e}")

    # 1. separability (k-NN): conditions split over the devices
    screen, _ = pj.synthetic.separability_tabular(jax.random.key(0), n_per_condition=500)
    compare(
        "separability (k-NN)",
        lambda m: pj.separability_scores(screen, estimator="knn", mesh=m),
        lambda a, b: float(np.nanmax(np.abs(a.score - b.score))),
    )

    # 2. disjointedness: pairs split over the devices
    screen2, _ = pj.synthetic.latent_factor(jax.random.key(1), 12, n_per_condition=60, dim=16)
    compare(
        "disjointedness (all pairs)",
        lambda m: pj.disjointedness_scores(screen2, n_permutations=50, mesh=m),
        lambda a, b: float(np.nanmax(np.abs(a.score - b.score))),
    )

    # 3. one IDS round over every pair: samples (pass 1) and tiles of pairs (pass 2) split
    n = args.n
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n, 5)) / np.sqrt(5)
    iu = np.stack(np.triu_indices(n, 1), 1)
    seen = iu[rng.choice(len(iu), 4 * n, replace=False)]
    model = post.LowRankModel(n=n, rank=5, steps=500, num_samples=256)
    obs = post.Observations.from_pairs(seen, np.sum(w[seen[:, 0]] * w[seen[:, 1]], 1))
    state, _ = post.fit_jit(jax.random.key(2), post.init(jax.random.key(3), model), obs, model=model)
    samples = post.sample(jax.random.key(4), state, model=model)
    compare(
        f"IDS round (n = {n}, K = 256)",
        lambda m: ids_tiled(samples, jax.random.key(5), batch=10, exclude=seen, mesh=m),
        lambda a, b: float(np.abs(a.pairs - b.pairs).max() + np.abs(a.score - b.score).max()),
    )

    # 4. a simulated campaign: seeds split over the devices
    r = rng.normal(size=(30, 3))
    compare(
        "simulate (IDS, 8 seeds)",
        lambda m: pj.simulate(r @ r.T, "ids", rounds=3, batch=5, seeds=8, steps=200, num_samples=64, mesh=m),
        lambda a, b: float(np.abs(a.top5_fraction - b.top5_fraction).max()),
    )
    say("done")


if __name__ == "__main__":
    main()
