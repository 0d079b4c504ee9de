"""Every GPU section of the benchmarks in one call, and one table (``benchmarks/gpu_suite.sh``).

Run:
    bash benchmarks/gpu_suite.sh            # on a GPU machine (target: under 8 minutes)
    bash benchmarks/gpu_suite.sh --small    # the same sections at CPU sizes (a few minutes on 2 cores)

Sections (each in its own process, so that its device memory is its own, with a time limit):

* ``disj``: :func:`pairint_jax.disjointedness_scores` on W-paper (n = 50, 1,225 pairs,
  1,000 observations, d = 1024), RBF and Matern-2.5, pair-median bandwidth; the error gate
  (scores within 1e-3 and bandwidths within 0.5% of a float64 run) runs before any timing
  (``benchmarks/disjointedness.py``); peer: the paper's per-pair PyTorch loop where torch
  is installed.
* ``sep``: k-NN KL of all 1,275 W-paper conditions (peer: a SciPy cKDTree loop on a few
  conditions, scaled), an NRE epoch and the SMILE readout (``benchmarks/separability.py``,
  with its correctness checks).
* ``round``: one discovery round (SVI fit + 1,000 samples + IDS batch of 10) at n = 50 (peer:
  a Python loop of numpyro ``svi.update`` steps then IDS in NumPy) and n = 1,000
  (``benchmarks/discovery.py``).
* ``ids``: the genome-scale IDS round at n = 20,000, K = 1,000, rank 5
  (``benchmarks/scale.py``).

``--small`` uses W-ci and n = 50 / 200 / 1,000 with fewer SVI steps and samples. The
scripts' own tables and checks go to stderr as they run; stdout gets the one summary table
(device, first call, steady time, FLOP floor, peer measured in the same call, ratio, check).
Nothing outside the repository is needed (missing peers are skipped with a note).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SECTIONS = ("disj", "sep", "round", "ids")
#: Seconds each section may take before it is stopped (the whole suite targets 8 minutes on an H100).
LIMITS = {"disj": 180, "sep": 120, "round": 100, "ids": 140}


def _row(section, workload, *, first=None, time=None, floor=None, peer="", peer_time=None, check=""):
    return dict(section=section, workload=workload, first=first, time=time, floor=floor, peer=peer,
                peer_time=peer_time, check=check)


def section_disj(small: bool) -> list[dict]:
    import disjointedness as bench

    wl = "ci" if small else "paper"
    out = bench.main(["--workload", wl, "--repeats", "3", "--scores-only"])[wl]
    rows = []
    for kernel in ("rbf", "matern52"):
        ours = next(r for r in out["rows"] if r[0].startswith(kernel) and "pair median, scores" in r[0])
        peers = [r for r in out["rows"] if r[0].startswith(kernel) and r[5] is not None and "loop" in r[4]]
        peer = peers[0] if peers else None
        rows.append(_row(
            "disjointedness", f"{bench.WORKLOADS[wl]['name']} {kernel}, pair median", first=ours[1], time=ours[2],
            floor=out["floor"], peer=peer[4] if peer else "(torch not installed)", peer_time=peer[5] if peer else None,
            check=f"err {ours[7]:.1e} <= 1e-3, bw {ours[8]:.1e} <= 5e-3",
        ))
    return rows


def section_sep(small: bool) -> list[dict]:
    import separability as bench

    wl = "ci" if small else "paper"
    out = bench.main(["--workload", wl] + (["--quick"] if small else ["--repeats", "3"]))
    check = {"k-NN": "= float64 cKDTree (rel 1e-3)", "SMILE": "= smile() per condition (rel 1e-3)", "NRE": "finite loss"}
    rows = []
    for name, first, steady, peer_t, note, floor in out:
        tag = next((k for k in check if name.startswith(k)), "")
        peer = note if peer_t is not None else ""
        rows.append(_row("separability", f"W-{wl} {name}", first=first, time=steady, floor=floor, peer=peer,
                         peer_time=peer_t, check=check.get(tag, "")))
    return rows


def section_round(small: bool) -> list[dict]:
    import discovery as bench

    steps, k = (1000, 300) if small else (5000, 1000)
    first, ours, r, pairs = bench.our_round(50, 250, steps=steps, k=k)
    naive = bench.naive_round(r, pairs, steps=steps, k=k)
    rows = [_row("discovery", f"one round n=50, 250 obs, {steps} SVI steps, K={k}", first=first, time=ours,
                 peer="numpyro svi.update loop + NumPy IDS", peer_time=naive)]
    for n in ((200, 1000) if small else (1000,)):
        first, ours, _, _ = bench.our_round(n, 500, steps=steps, k=k, reps=1)
        rows.append(_row("discovery", f"one round n={n:,}, 500 obs, {steps} SVI steps, K={k}", first=first, time=ours))
    return rows


def section_ids(small: bool) -> list[dict]:
    import scale

    n, k, steps, peer_max = (1000, 200, 1000, 1000) if small else (20000, 1000, 5000, 0)
    r = scale._run_worker("ids", ["--n", str(n), "--k", str(k), "--steps", str(steps), "--obs", str(min(5000, 10 * n)),
                                  "--repeats", "1", "--peer-max-n", str(peer_max)])
    if "error" in r:
        raise RuntimeError(r["error"])
    same = r.get("same_batch")
    label = f"n={n:,}, K={k}, rank 5, {r['pairs']:.1e} candidate pairs"
    return [
        _row("IDS (tiled)", f"IDS step, {label}", first=r["ids_first"], time=r["ids"], floor=r["floor"],
             peer="in-memory acquisition.ids" if "peer" in r else "", peer_time=r.get("peer"),
             check="" if same is None else f"same batch as in-memory: {same}"),
        _row("IDS (tiled)", f"whole round (fit + sample + IDS), {label}", first=r["fit_first"] + r["sample"] + r["ids_first"],
             time=r["fit"] + r["sample"] + r["ids"]),
    ]


def _device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform}: {d.device_kind}" + (f" x{len(jax.devices())}" if len(jax.devices()) > 1 else "")


def run_section(name: str, small: bool) -> None:
    """Child process: run one section, its scripts printing to stderr; one JSON line to stdout."""
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        rows = globals()[f"section_{name}"](small)
        device = _device()
    for row in rows:
        row["device"] = device
    print(json.dumps(rows), file=stdout, flush=True)


def _spawn(name: str, small: bool, limit: float) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name] + (["--small"] if small else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=limit, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return [_row(name, "(whole section)", check=f"STOPPED after {limit:.0f} s")]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if proc.returncode != 0 or not lines:
        return [_row(name, "(whole section)", check=f"FAILED (exit {proc.returncode}, {time.perf_counter() - t0:.0f} s): "
                                                      "see the messages above")]
    return json.loads(lines[-1])


def _fmt(t) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def table(rows: list[dict]) -> str:
    """The one summary table (Markdown, ready for ``benchmarks/RESULTS.md``)."""
    lines = ["| section | workload | device | ours first call | ours steady | floor | peer (same call) | peer | ratio | check |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['peer_time'] / r['time']:.1f}x" if r.get("peer_time") and r.get("time") else "-"
        lines.append(f"| {r['section']} | {r['workload']} | {r.get('device', '-')} | {_fmt(r['first'])} | "
                     f"{_fmt(r['time'])} | {_fmt(r['floor'])} | {r['peer'] or '-'} | {_fmt(r['peer_time'])} | "
                     f"{ratio} | {r['check'] or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CPU sizes (W-ci, small rounds): checks the suite end to end")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--limit-scale", type=float, default=1.0, help="multiply every section's time limit")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--section", default=None, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args(argv)
    if args.section:
        run_section(args.section, args.small)
        return 0
    names = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        print(f"\n##### gpu_suite: section {name} (limit {LIMITS[name] * args.limit_scale:.0f} s)", file=sys.stderr, flush=True)
        rows += _spawn(name, args.small, LIMITS[name] * args.limit_scale)
    wall = time.perf_counter() - t0
    print(f"\n## gpu_suite{' --small' if args.small else ''}: {wall:.0f} s in all ({time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} CPU cores)\n")
    print(table(rows))
    print("\nfloor = FLOPs of the work at the matmul rate measured in the same process; ratio = peer / ours steady; "
          "first call includes compilation.")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, wall=wall, small=args.small), indent=1))
    failed = [r for r in rows if r["check"].startswith(("FAILED", "STOPPED"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
