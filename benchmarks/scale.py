"""Benchmark: genome-scale discovery rounds, all-pairs disjointedness, and sharding.

Run:
    python benchmarks/scale.py                    # every section, CPU-sized defaults
    python benchmarks/scale.py --quick            # smaller sizes, fewer repeats (a few minutes on CPU)
    python benchmarks/scale.py --sections ids --ids-n 100,1000,5000,20000 --ids-k 1000   # an H100 run

Sections (each workload runs in its own subprocess, so its peak memory is its own):

* ``ids``: one IDS discovery round against ``n`` (100; 1,000; 5,000; 20,000): fit the
  low-rank posterior (rank 5, compiled SVI) to ``obs`` observed pairs of a planted rank-5
  matrix, draw ``K`` samples, choose a batch of 10 with :func:`pairint_jax.discovery.tiled.ids_tiled`
  over all ``n (n - 1) / 2`` pairs. Correctness first: the batch must equal the in-memory
  ``acquisition.ids`` batch wherever that peer runs (``--peer-max-n``), and the peer's
  steady time is printed with the ratio. The FLOP floor is ``P (8 K m + 2 K B)`` (two
  passes of the factor products, one-hot group sums with ``B`` padded distinct optimal
  actions) divided by the float32 matmul rate measured in the same process. Where ``K``
  or ``n`` had to be reduced on CPU, the time at ``K = 1000`` is extrapolated (clearly
  labelled) from the largest run: ``K P`` sample-pair values at the measured rate of the
  passes plus the one-hot product at the measured matmul rate.
* ``disj``: :func:`pairint_jax.disjointedness_scores` of all scorable pairs against the
  number of perturbations (50; 200; 1,000 with a sampled fraction of the doubles), on
  ``pj.synthetic.latent_factor`` screens; in-memory and host-streamed (``stream=True``).
* ``mesh``: with 8 virtual CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``):
  the sharded versions on meshes of 1, 2, 4 and 8 devices, each checked against the
  single-device result. On one CPU the virtual devices share the cores: this is a
  correctness run, not a speed claim.

Memory: peak resident set of the worker process (``ru_maxrss``; it includes the JAX
runtime, about 0.3-0.5 GB, printed as ``base``) on CPU; ``peak_bytes_in_use`` of the
device on GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


# ----------------------------------------------------------------------------- worker helpers
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _device_peak_mb():
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


def _timed(fn, repeats: int):
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return out, first, (statistics.median(times) if times else first)


def _matmul_rate() -> float:
    """float32 (HIGHEST) matmul flops per second, measured here."""
    import jax
    import jax.numpy as jnp

    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: jnp.matmul(x, x, precision=jax.lax.Precision.HIGHEST))
    _, _, t = _timed(lambda: f(a), 3)
    return 2.0 * n**3 / t


# ----------------------------------------------------------------------------- ids worker
def worker_ids(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from pairint_jax.discovery import acquisition as acq
    from pairint_jax.discovery import posterior as post
    from pairint_jax.discovery.tiled import ids_tiled

    base = _rss_mb()
    n, k, m, b = args.n, args.k, args.rank, args.batch
    p_all = n * (n - 1) // 2
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n, m)) / np.sqrt(m)
    c = int(min(args.obs, p_all // 2))
    i = rng.integers(0, n, 3 * c)
    j = rng.integers(0, n, 3 * c)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    flat = np.unique((lo * n + hi)[lo < hi])[:c]
    pairs = np.stack([flat // n, flat % n], 1)
    values = np.sum(w[pairs[:, 0]] * w[pairs[:, 1]], 1) + 0.05 * rng.normal(size=len(pairs))
    model = post.LowRankModel(n=n, rank=m, steps=args.steps, num_samples=k)
    obs = post.Observations.from_pairs(pairs, values)
    state0 = post.init(jax.random.key(1), model)
    (state, _), fit_first, fit_t = _timed(lambda: post.fit_jit(jax.random.key(2), state0, obs, model=model), args.repeats)
    sample = jax.jit(lambda key, st: post.sample(key, st, model=model))
    samples, _, sample_t = _timed(lambda: sample(jax.random.key(3), state), args.repeats)
    res, ids_first, ids_t = _timed(lambda: ids_tiled(samples, jax.random.key(4), batch=b, exclude=pairs), args.repeats)
    out = dict(
        n=n, k=k, rank=m, pairs=p_all, obs=len(pairs), fit=fit_t, fit_first=fit_first, sample=sample_t,
        ids=ids_t, ids_first=ids_first, n_groups=res.n_groups, tile=res.tile_size, tiles=res.n_tiles,
        b_pad=res.n_columns,
    )
    if n <= args.peer_max_n:
        rem = np.triu(np.ones((n, n), bool), 1)
        rem[pairs[:, 0], pairs[:, 1]] = False
        remj = jnp.asarray(rem)
        ref, peer_first, peer_t = _timed(lambda: acq.acquire_jit("ids", samples, remj, jax.random.key(4), batch=b),
                                         args.repeats)
        out.update(peer=peer_t, peer_first=peer_first, same_batch=bool(np.array_equal(np.asarray(ref.pairs), res.pairs)))
    rate = _matmul_rate()
    flops = p_all * (8.0 * k * m + 2.0 * k * out["b_pad"])
    out.update(flops=flops, rate=rate, floor=flops / rate, rss=_rss_mb(), base=base, device_peak=_device_peak_mb(),
               backend=jax.default_backend(), device=str(jax.devices()[0].device_kind))
    return out


# ----------------------------------------------------------------------------- disjointedness worker
def worker_disjgen(args) -> dict:
    """Write a latent-factor screen to ``args.dir`` (x.npy, labels.npy): generation stays out of
    the scoring worker's peak memory."""
    import jax
    import numpy as np

    import pairint_jax as pj

    screen, _ = pj.synthetic.latent_factor(
        jax.random.key(0), args.n, n_per_condition=args.per, dim=args.dim, double_fraction=args.double_fraction
    )
    np.save(os.path.join(args.dir, "x.npy"), np.asarray(screen.x, np.float32))
    np.save(os.path.join(args.dir, "labels.npy"), np.asarray(screen.labels).astype(str))
    return dict(rows=int(screen.x.shape[0]))


def worker_disj(args) -> dict:
    """All-pairs disjointedness of the screen in ``args.dir``: in memory (x loaded) or host-streamed
    (x a read-only memory map of the .npy file)."""
    import numpy as np

    import jax
    import pairint_jax as pj
    from pairint_jax._validate import round_up

    labels = np.load(os.path.join(args.dir, "labels.npy"))
    grouping = pj.Screen.from_arrays(np.zeros((len(labels), 1), np.float32), labels, warn=False)
    if not np.array_equal(np.asarray(grouping.labels).astype(str), labels):
        raise RuntimeError("the saved rows are not in the screen's group order")
    base = _rss_mb()
    x = np.load(os.path.join(args.dir, "x.npy"), mmap_mode="r" if args.stream else None)
    screen = grouping.with_x(x)
    kw = dict(n_permutations=args.perms, key=jax.random.key(1))
    if args.stream:
        kw.update(stream=True, stream_block=args.stream_block)
    res, first, steady = _timed(lambda: pj.disjointedness_scores(screen, **kw), args.repeats)
    d = int(np.prod(screen.feature_shape))
    counts = screen.counts
    singles = np.unique(screen.pair_groups[:, 2:4])
    m_d = round_up(int(counts[screen.pair_groups[:, 0]].max()), 8)
    small = int(counts[0] + counts[singles].sum())
    if args.stream:  # control + singles, plus two blocks of doubles (the default block size)
        block = min(args.stream_block, len(screen.pairs))
        resident = (small + 2 * (int(counts[0]) + block * m_d)) * d * 4
    else:
        resident = int(screen.x.shape[0]) * d * 4
    return dict(n=args.n, pairs=int(len(screen.pairs)), rows=int(screen.x.shape[0]), dim=d, per=args.per,
                stream=bool(args.stream), first=first, steady=steady, rss=_rss_mb(), base=base,
                device_peak=_device_peak_mb(), data_mb=screen.x.nbytes / 2**20, resident_mb=resident / 2**20,
                score_sum=float(np.nansum(res.score)))


# ----------------------------------------------------------------------------- mesh worker
def worker_mesh(args) -> dict:
    """Sharded runs on meshes of 1, 2, 4, 8 (virtual) devices, each checked against no mesh."""
    import jax
    import numpy as np

    import pairint_jax as pj
    from pairint_jax.discovery.posterior import FactorSamples
    from pairint_jax.discovery.tiled import ids_tiled
    from pairint_jax.parallel import make_mesh

    rng = np.random.default_rng(0)
    n, k = args.mesh_n, args.mesh_k
    s = FactorSamples(
        jax.numpy.asarray(rng.normal(size=(n, 5)) + 0.5 * rng.normal(size=(k, n, 5)), "float32"),
        jax.numpy.asarray(rng.normal(size=(n, 5)) + 0.5 * rng.normal(size=(k, n, 5)), "float32"),
        jax.numpy.zeros(k), jax.numpy.float32(0.0), jax.numpy.float32(1.0),
    )
    sep_screen, _ = pj.synthetic.separability_tabular(jax.random.key(0), n_per_condition=args.mesh_m)
    disj_screen, _ = pj.synthetic.latent_factor(jax.random.key(1), args.mesh_disj_n, n_per_condition=60, dim=16)
    work = {
        "ids_tiled": (lambda m: ids_tiled(s, batch=10, mesh=m), lambda a, b: float(np.abs(a.pairs - b.pairs).max() + np.max(np.abs(a.score - b.score) / np.abs(a.score)))),
        "separability knn": (lambda m: pj.separability_scores(sep_screen, estimator="knn", mesh=m),
                             lambda a, b: float(np.nanmax(np.abs(a.score - b.score) / np.abs(a.score)))),
    }
    if "mesh" in __import__("inspect").signature(pj.disjointedness_scores).parameters:
        work["disjointedness"] = (lambda m: pj.disjointedness_scores(disj_screen, n_permutations=0, mesh=m),
                                  lambda a, b: float(np.nanmax(np.abs(a.score - b.score) / np.abs(a.score))))
    rows = []
    for name, (run, diff) in work.items():
        ref, _, t_ref = _timed(lambda: run(None), 1)
        for d in (1, 2, 4, 8):
            mesh = make_mesh(jax.devices()[:d])
            out, first, t = _timed(lambda: run(mesh), 1)
            rows.append(dict(work=name, devices=d, first=first, steady=t, single=t_ref, rel_diff=diff(ref, out)))
    return {"rows": rows, "n_devices": len(jax.devices())}


# ----------------------------------------------------------------------------- driver
def _run_worker(kind: str, extra: list[str], env=None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    return json.loads(lines[-1])


def _fmt(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"


def _mem(r):
    if r.get("device_peak") is not None:
        return f"{r['device_peak']:.0f} MB dev"
    return f"{r['rss']:.0f} MB rss"


def section_ids(args) -> list[dict]:
    rows = []
    ks = dict(zip(args.ids_n, args.ids_k))
    print("\n## IDS discovery round (fit + sample + tiled IDS over all pairs), rank 5, batch 10")
    hdr = "| n | pairs | K | obs | fit | IDS first | IDS steady | round | B (pad) | T / tiles | peak mem | FLOP floor | in-memory ids | ratio | same batch |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for n in args.ids_n:
        k = ks[n]
        r = _run_worker("ids", ["--n", str(n), "--k", str(k), "--steps", str(args.steps), "--obs", str(min(args.obs, 10 * n)),
                                "--repeats", str(args.repeats), "--peer-max-n", str(args.peer_max_n)])
        r["requested_k"] = args.k_target
        rows.append(r)
        if "error" in r:
            print(f"| {n} | error: {r['error'][-300:]!r} |")
            continue
        round_t = r["fit"] + r["sample"] + r["ids"]
        ratio = f"{r['peer'] / r['ids']:.1f}x" if "peer" in r else "-"
        print(
            f"| {n:,} | {r['pairs']:.2e} | {k} | {r['obs']} | {_fmt(r['fit'])} | {_fmt(r['ids_first'])} | {_fmt(r['ids'])} | "
            f"{_fmt(round_t)} | {r['n_groups']} ({r['b_pad']}) | {r['tile']} / {r['tiles']} | {_mem(r)} (base {r['base']:.0f}) | "
            f"{_fmt(r['floor'])} | {_fmt(r.get('peer'))} | {ratio} | {r.get('same_batch', '-')} |"
        )
    # extrapolation to the target K and n: the passes do O(K) elementwise work per pair
    # (measured rate, K P values per second) plus the one-hot product (2 K B_2 flops per pair,
    # at the measured matmul rate); B_2 as measured at the target K where available.
    done = [r for r in rows if "error" not in r]
    if done:
        last = max(done, key=lambda r: r["k"] * r["pairs"])
        mm = 2.0 * last["k"] * last["b_pad"] * last["pairs"] / last["rate"]
        elem_rate = last["k"] * last["pairs"] / max(last["ids"] - mm, 1e-9)
        at_target = [r for r in done if r["k"] == args.k_target]
        b2 = max(r["b_pad"] for r in at_target) if at_target else 64
        print(f"\nIDS passes at n = {last['n']:,}, K = {last['k']}: {elem_rate / 1e9:.2f} x 10^9 sample-pair values/s "
              f"(matmul rate here {last['rate'] / 1e9:.1f} GFLOP/s, {last['backend']}: {last['device']})")
        for n in sorted(set(args.extrapolate_n)):
            k = args.k_target
            p = n * (n - 1) // 2
            measured = [r for r in done if r["n"] == n and r["k"] == k]
            if measured:
                print(f"  n = {n:,}, K = {k}: IDS {measured[0]['ids']:.1f} s (measured)")
                continue
            t = k * p / elem_rate + 2.0 * k * b2 * p / last["rate"]
            floor = p * (8.0 * k * 5 + 2.0 * k * b2) / last["rate"]
            print(f"  n = {n:,}, K = {k}: IDS ~{t:.0f} s (extrapolated from the row above, B_2 = {b2}; "
                  f"FLOP floor at this matmul rate {floor:.1f} s)")
        # nominal H100 SXM floors (spec sheet: 67 TFLOP/s float32, 3.35 TB/s): the flops of both passes,
        # and the bytes of writing and reading every sampled value once per pass
        n, k = 20000, args.k_target
        p = n * (n - 1) // 2
        fl = p * (8.0 * k * 5 + 2.0 * k * b2)
        print(f"  nominal H100 floors for n = 20,000, K = {k} (not measured): {fl / 67e12:.2f} s of float32 flops "
              f"({fl:.2e}), {2 * 2 * 4.0 * k * p / 3.35e12:.2f} s of memory traffic ({2 * 2 * 4.0 * k * p:.2e} B)")
    return rows


def section_disj(args) -> list[dict]:
    ns = [int(x) for x in args.disj_n.split(",")]
    fr = [float(x) for x in args.disj_fraction.split(",")]
    print(f"\n## All-pairs disjointedness (latent_factor screens: {args.per} per condition, d = {args.dim}, "
          f"{args.perms} permutations, per-pair median bandwidth; streamed: x a memmap, blocks of {args.stream_block} pairs)")
    print("(peak mem on CPU is the scoring process's peak RSS, compilation included; 'observations on device' is what "
          "the two modes keep resident: all rows, or control + singles + two blocks of doubles)")
    print("| n | doubles scored | rows (data) | mode | first call | steady | per pair | peak mem | observations on device | score sum |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for n, f in zip(ns, fr):
        tmp = tempfile.mkdtemp(prefix="pairint_scale_")
        gen = ["--n", str(n), "--double-fraction", str(f), "--per", str(args.per), "--dim", str(args.dim), "--dir", tmp]
        made = _run_worker("disjgen", gen)
        if "error" in made:
            print(f"| {n} | error: {made['error'][-300:]!r} |")
            continue
        for stream in (False, True):
            extra = gen + ["--perms", str(args.perms), "--repeats", str(args.repeats), "--stream-block",
                           str(args.stream_block)] + (["--stream"] if stream else [])
            r = _run_worker("disj", extra)
            rows.append(r)
            if "error" in r:
                print(f"| {n} | error: {r['error'][-300:]!r} |")
                continue
            print(f"| {n} | {r['pairs']:,} | {r['rows']:,} ({r['data_mb']:.0f} MB) | {'streamed' if stream else 'in memory'} | "
                  f"{_fmt(r['first'])} | {_fmt(r['steady'])} | {r['steady'] / max(r['pairs'], 1) * 1e3:.2f} ms | "
                  f"{_mem(r)} (base {r['base']:.0f}) | {r['resident_mb']:.0f} MB | {r['score_sum']:.6g} |")
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def section_mesh(args) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    extra = ["--mesh-n", str(args.mesh_n), "--mesh-k", str(args.mesh_k), "--mesh-m", str(args.mesh_m),
             "--mesh-disj-n", str(args.mesh_disj_n)]
    r = _run_worker("mesh", extra, env=env)
    print("\n## Sharded versions on 8 virtual CPU devices (correctness run: the devices share this CPU's cores)")
    print(f"workloads: ids_tiled n = {args.mesh_n}, K = {args.mesh_k}, batch 10; separability k-NN, "
          f"{args.mesh_m} per condition; disjointedness n = {args.mesh_disj_n} (60 per condition, d = 16, no permutations)")
    if "error" in r:
        print("error:", r["error"])
        return r
    print("| workload | devices | first call | steady | single device (no mesh) | max rel. difference |")
    print("|---|---|---|---|---|---|")
    for row in r["rows"]:
        print(f"| {row['work']} | {row['devices']} | {_fmt(row['first'])} | {_fmt(row['steady'])} | {_fmt(row['single'])} | "
              f"{row['rel_diff']:.1e} |")
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="ids,disj,mesh")
    ap.add_argument("--ids-n", default=None, help="comma-separated n (default 100,1000,5000 on CPU)")
    ap.add_argument("--ids-k", default=None, help="K per n (default 1000, 1000, 200 on CPU)")
    ap.add_argument("--k-target", type=int, default=1000)
    ap.add_argument("--extrapolate-n", default="5000,20000")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--obs", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-max-n", type=int, default=None)
    ap.add_argument("--json", default=None)
    # worker arguments
    ap.add_argument("--n", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--rank", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--disj-n", default="50,200,1000")
    ap.add_argument("--disj-fraction", default="1,1,0.04", help="fraction of the doubles measured, per n")
    ap.add_argument("--per", type=int, default=50, help="observations per condition (disj)")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--perms", type=int, default=0)
    ap.add_argument("--double-fraction", type=float, default=1.0)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--stream-block", type=int, default=2048, help="pairs per streamed block (disj)")
    ap.add_argument("--mesh-n", type=int, default=1000)
    ap.add_argument("--mesh-k", type=int, default=256)
    ap.add_argument("--mesh-m", type=int, default=2000)
    ap.add_argument("--mesh-disj-n", type=int, default=20)
    args = ap.parse_args(argv)

    if args.worker:
        fn = {"ids": worker_ids, "mesh": worker_mesh, "disj": worker_disj, "disjgen": worker_disjgen}[args.worker]
        print(json.dumps(fn(args)))
        return

    import jax

    cpu = jax.default_backend() == "cpu"
    if args.quick:
        args.repeats = 1
    default_n = ("100,1000" if args.quick else "100,1000,5000") if cpu else "100,1000,5000,20000"
    default_k = ("1000,200" if args.quick else "1000,1000,1000") if cpu else "1000,1000,1000,1000"
    args.ids_n = [int(x) for x in (args.ids_n or default_n).split(",")]
    args.ids_k = [int(x) for x in (args.ids_k or default_k).split(",")]
    if len(args.ids_k) == 1:
        args.ids_k = args.ids_k * len(args.ids_n)
    args.extrapolate_n = [int(x) for x in args.extrapolate_n.split(",") if x]
    if args.peer_max_n is None:
        args.peer_max_n = 1000 if cpu else 5000
    if args.quick:
        args.steps = min(args.steps, 1000)
    print(f"# scale benchmark ({jax.default_backend()}: {jax.devices()[0].device_kind}; {os.cpu_count()} CPUs)")
    results = {}
    sections = args.sections.split(",")
    if "ids" in sections:
        results["ids"] = section_ids(args)
    if "disj" in sections:
        results["disj"] = section_disj(args)
    if "mesh" in sections:
        results["mesh"] = section_mesh(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
