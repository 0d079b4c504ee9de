"""The on-disk lab campaign: crash safety under SIGKILL, resume equality, idempotence, every
bad input, and the click commands (campaign-init, propose, observe, campaign-status)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from pairint_jax.discovery.campaign import Campaign

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = [f"G{i}" for i in range(12)]
SMALL = dict(steps=150, num_samples=64, rank=2)  # CI-sized posterior


def truth(n=12, seed=0):
    rng = np.random.default_rng(seed)
    w = np.abs(rng.normal(size=(n, 2)))
    return w @ w.T


def lab(pairs, r):
    ix = {p: i for i, p in enumerate(NAMES)}
    return [float(r[ix[a], ix[b]]) for a, b in pairs]


# ----------------------------------------------------------------------------- crash safety

CHILD = textwrap.dedent(
    """
    import os, sys, types
    root, folder, start, count, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if sys.argv[6] == "slow":  # widen the window between fsync and rename, so kills land mid-write
        import time
        _replace = os.replace
        os.replace = lambda a, b: (time.sleep(0.003), _replace(a, b))[1]
    # load only the campaign module (no JAX import: a fast child, so many kills fit in CI)
    for name, sub in (("pairint_jax", "pairint_jax"), ("pairint_jax.discovery", "pairint_jax/discovery")):
        mod = types.ModuleType(name)
        mod.__path__ = [os.path.join(root, sub)]
        sys.modules[name] = mod
    from pairint_jax.discovery.campaign import Campaign
    c = Campaign.open(folder)
    names = c.perturbations
    pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    score = lambda k: (k * 7919 % 1000) / 7.0 - 50.0  # deterministic per pair: re-observing is a no-op
    print("READY", flush=True)
    for k0 in range(start, min(start + count, len(pairs)), group):
        ks = list(range(k0, min(k0 + group, len(pairs))))
        c.observe([pairs[k] for k in ks], [score(k) for k in ks])
        print("ACK " + " ".join(str(k) for k in ks), flush=True)
    print("DONE", flush=True)
    """
)


def test_sigkill_during_observe_loses_no_acknowledged_observation(tmp_path):
    """SIGKILL a writer at random moments, 12 times; after each kill open() succeeds and every
    acknowledged observation is there (and groups of 3 are all-or-nothing). Every other child
    sleeps 3 ms before each rename, so that many kills land between writing the temporary
    file and renaming it (seen as a stale temporary file after the kill)."""
    names = [f"P{i}" for i in range(40)]  # 780 pairs
    folder = tmp_path / "c"
    Campaign.create(folder, names, **SMALL)
    rnd = random.Random(0)
    acked: set[int] = set()
    start = 0
    score = lambda k: (k * 7919 % 1000) / 7.0 - 50.0
    allpairs = [(names[i], names[j]) for i in range(40) for j in range(i + 1, 40)]
    kills = mid_write = 0
    for trial in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ROOT), str(folder), str(start), "600", "3", ("slow" if trial % 2 else "fast")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        t0 = time.time()
        while not any(ln.startswith("ACK") for ln in lines) and proc.poll() is None and time.time() - t0 < 20:
            time.sleep(0.002)
        time.sleep(rnd.uniform(0.0, 0.15))  # a random moment in the stream of observes
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        reader.join(5)
        mid_write += bool(list(folder.glob(".*.tmp")))
        assert any(ln.startswith("READY") for ln in lines), proc.stderr.read()
        for ln in lines:
            if ln.startswith("ACK"):
                acked.update(int(k) for k in ln.split()[1:])
        c = Campaign.open(folder)  # never corrupt
        state = json.loads((folder / "campaign.json").read_text())
        got = {(o["a"], o["b"]): o["score"] for o in state["observations"]}
        assert len(got) == len(state["observations"])  # no duplicates
        for k in acked:
            assert got[allpairs[k]] == score(k), k
        recorded = sorted(allpairs.index(p) for p in got)
        for g0 in range(0, max(recorded) + 1, 3):  # all-or-nothing per observe call
            grp = [k for k in range(g0, min(g0 + 3, len(allpairs)))]
            present = [allpairs[k] in got for k in grp]
            assert all(present) or not any(present), grp
        assert len(c.observations) == len(got)
        # the next writer starts a little before the last ack: it re-observes, idempotently
        start = max(0, max(acked) - 5) if acked else 0
    assert kills >= 8  # most children were killed mid-stream, not after finishing
    assert mid_write >= 2, mid_write  # some kills interrupted a write (temp file left behind)
    Campaign.open(folder).observe([allpairs[0]], [score(0)])
    assert not list(folder.glob(".*.tmp"))  # the next writer removes stale temporary files


# ----------------------------------------------------------------------------- resume


def test_resume_gives_the_same_proposals_as_an_uninterrupted_run(tmp_path):
    r = truth()
    one = Campaign.create(tmp_path / "one", NAMES, batch=4, seed=3, **SMALL)
    Campaign.create(tmp_path / "two", NAMES, batch=4, seed=3, **SMALL)
    seq_one, seq_two = [], []
    for rnd in range(4):
        p1 = one.propose()
        assert one.propose() == p1  # no new observation: the same pending batch
        two = Campaign.open(tmp_path / "two")  # a fresh session every step
        p2 = two.propose()
        seq_one.append(p1)
        seq_two.append(p2)
        one.observe(p1, lab(p1, r))
        Campaign.open(tmp_path / "two").observe(p2, lab(p2, r))
    assert seq_one == seq_two
    assert len({p for batch in seq_one for p in batch}) == 16  # never proposes an observed pair
    s1 = json.loads((tmp_path / "one" / "campaign.json").read_text())
    s2 = json.loads((tmp_path / "two" / "campaign.json").read_text())
    assert s1["posterior"] == s2["posterior"] and s1["observations"] == s2["observations"]
    assert one.round == 4 and Campaign.open(tmp_path / "two").round == 4
    # a different seed gives a different first (random) batch
    other = Campaign.create(tmp_path / "three", NAMES, batch=4, seed=4, **SMALL)
    assert other.propose() != seq_one[0]


def test_pending_pairs_are_not_proposed_again_and_exports(tmp_path):
    r = truth()
    c = Campaign.create(tmp_path / "c", NAMES, batch=3, seed=0, **SMALL)
    first = c.propose()
    c.observe(first[:1], lab(first[:1], r))  # one observed, two in flight
    second = c.propose()
    assert not set(second) & set(first)
    csv = (tmp_path / "c" / "next_batch.csv").read_text().splitlines()
    assert csv[0] == "round,a,b" and len(csv) == 4 and csv[1].startswith("2,")
    obs = (tmp_path / "c" / "observations.csv").read_text().splitlines()
    assert obs[0] == "a,b,score,round" and len(obs) == 2
    # observations recorded before the first proposal: the first batch uses the policy
    d = Campaign.create(tmp_path / "d", NAMES, batch=3, seed=0, **SMALL)
    d.observe([("G0", "G1"), ("G2", "G3")], [1.0, 2.0])
    assert d.propose() and json.loads((tmp_path / "d" / "campaign.json").read_text())["posterior"] is not None


def test_large_campaigns_use_the_tiled_ids_with_the_same_batch(tmp_path, monkeypatch):
    """From TILED_MIN_N perturbations on, IDS proposals come from ids_tiled (no [n, n] arrays).
    Forced here on 12 names: the batch equals the in-memory IDS on the same posterior samples
    (same keys, same fit), the first round is random, distinct and avoids pending pairs, and
    resuming from disk gives the same proposals."""
    import jax
    import jax.numpy as jnp

    from pairint_jax.discovery import acquisition as acq
    from pairint_jax.discovery import campaign_round as camp
    from pairint_jax.discovery import posterior as post
    from pairint_jax.discovery import tiled_round

    monkeypatch.setattr(camp, "TILED_MIN_N", 2)
    calls = []
    tiled = tiled_round.tiled_step
    monkeypatch.setattr(tiled_round, "tiled_step", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    r = truth()
    c = Campaign.create(tmp_path / "c", NAMES, batch=4, seed=1, **SMALL)
    first = c.propose()
    assert len(set(first)) == 4 and all(a != b for a, b in first)
    c.observe(first[:2], lab(first[:2], r))  # two observed, two in flight
    state = json.loads((tmp_path / "c" / "campaign.json").read_text())
    second = Campaign.open(tmp_path / "c").propose()
    assert not set(second) & set(first)

    # the in-memory IDS on the same fit and samples
    ix = {p: i for i, p in enumerate(NAMES)}
    model = post.LowRankModel(n=12, rank=2, steps=150, num_samples=64, link="abs")  # link="auto", scores >= 0
    obs = state["observations"]
    buf = post.Observations.from_pairs(np.array([[ix[o["a"]], ix[o["b"]]] for o in obs]),
                                       np.array([o["score"] for o in obs]), capacity=camp.bucket(len(obs)))
    kf, ks, ka = jax.random.split(jax.random.fold_in(jax.random.key(1), 2), 3)
    start = post.init(jax.random.fold_in(jax.random.key(1), 0), model)
    new, _ = post.fit_jit(kf, start, buf, model=model, lr=state["settings"]["lr"],
                          sigma_scale=state["settings"]["sigma_scale"])
    samples = post.sample(ks, new, model=model)
    remaining = np.triu(np.ones((12, 12), bool), 1)
    for a, b in first:
        remaining[min(ix[a], ix[b]), max(ix[a], ix[b])] = False
    ref = acq.ids(samples, jnp.asarray(remaining), ka, batch=4)
    expected = [(NAMES[int(i)], NAMES[int(j)]) for i, j in np.asarray(ref.pairs)]
    assert second == expected

    # resume equality on the tiled path
    d = Campaign.create(tmp_path / "d", NAMES, batch=4, seed=1, **SMALL)
    assert d.propose() == first
    d.observe(first[:2], lab(first[:2], r))
    assert Campaign.open(tmp_path / "d").propose() == second
    assert len(calls) == 4  # every proposal went through the tiled path


# ----------------------------------------------------------------------------- bad inputs


def test_observe_idempotent_conflict_and_bad_inputs(tmp_path):
    c = Campaign.create(tmp_path / "c", NAMES, batch=2, **SMALL)
    assert c.observe([("G0", "G1")], [0.5]) == (1, 0, 0)
    assert c.observe([("G1", "G0")], [0.5]) == (0, 1, 0)  # same pair, either order, same value
    assert c.observe([(0, 1)], [0.5 * (1 + 1e-12)]) == (0, 1, 0)  # equal within rel_tol 1e-9
    before = (tmp_path / "c" / "campaign.json").read_bytes()
    cases = [
        ([("G0", "G1")], [0.6], "conflicting score for pair \\(G0, G1\\): 0.5 was recorded"),
        ([("G0", "G2"), ("G0", "G2")], [1.0, 2.0], "appears twice"),
        ([("G0", "X9")], [1.0], "unknown perturbation 'X9'"),
        ([("G3", "G3")], [1.0], "with itself"),
        ([(0, 99)], [1.0], "outside 0..11"),
        ([("G0", "G2")], [float("nan")], "only finite scores"),
        ([("G0", "G2")], [float("inf")], "only finite scores"),
        ([("G0", "G2")], ["abc"], "is not a number"),
        ([("G0", "G2"), ("G0", "G3")], [1.0], "2 pairs but 1 scores"),
        ([("G0",)], [1.0], "a pair must be"),
        # all-or-nothing: the good first entry is not recorded when the second is bad
        ([("G4", "G5"), ("G4", "nope")], [1.0, 2.0], "unknown perturbation 'nope'"),
    ]
    for pairs, scores, msg in cases:
        with pytest.raises(ValueError, match=msg):
            c.observe(pairs, scores)
    assert (tmp_path / "c" / "campaign.json").read_bytes() == before

    with pytest.raises(FileExistsError, match="already holds a campaign"):
        Campaign.create(tmp_path / "c", NAMES)
    with pytest.raises(FileNotFoundError, match="no campaign"):
        Campaign.open(tmp_path / "nothing")
    with pytest.raises(ValueError, match="distinct"):
        Campaign.create(tmp_path / "e", ["A", "B", "A"])
    with pytest.raises(TypeError, match="not one string"):
        Campaign.create(tmp_path / "e", "ABC")
    with pytest.raises(TypeError, match="non-empty strings"):
        Campaign.create(tmp_path / "e", ["A", ""])
    with pytest.raises(ValueError, match="at least 2"):
        Campaign.create(tmp_path / "e", ["A"])
    with pytest.raises(ValueError, match="unknown policy"):
        Campaign.create(tmp_path / "e", NAMES, policy="best")
    with pytest.raises(ValueError, match="batch must be"):
        Campaign.create(tmp_path / "e", NAMES, batch=0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "campaign.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid campaign JSON"):
        Campaign.open(tmp_path / "bad")
    (tmp_path / "bad" / "campaign.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a pairint campaign"):
        Campaign.open(tmp_path / "bad")


def test_propose_until_exhausted(tmp_path):
    c = Campaign.create(tmp_path / "c", ["A", "B", "C"], batch=2, policy="random")
    first = c.propose()
    c.observe(first, [1.0, 2.0])
    last = c.propose()
    assert len(last) == 1
    c.observe(last, [3.0])
    with pytest.raises(ValueError, match="nothing left to propose"):
        c.propose()


# ----------------------------------------------------------------------------- CLI


def test_cli_init_propose_observe_status(tmp_path):
    from click.testing import CliRunner

    from pairint_jax.commands.campaign import COMMANDS

    cmds = {c.name: c for c in COMMANDS}
    run = CliRunner()
    folder = str(tmp_path / "camp")
    names = tmp_path / "names.txt"
    names.write_text("# genes\n" + "\n".join(NAMES) + "\n")
    res = run.invoke(cmds["campaign-init"], [folder, "-p", str(names), "--batch", "3", "--steps", "150",
                                              "--samples", "64", "--rank", "2"])
    assert res.exit_code == 0, res.output
    res = run.invoke(cmds["propose"], [folder, "--out", str(tmp_path / "b.csv"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    batch = Campaign.open(folder).pending
    assert "round 1: 3 pair(s)" in res.output and f"{batch[0][0]} + {batch[0][1]}" in res.output
    assert (tmp_path / "b.csv").read_text().startswith("round,a,b")

    # the CSV `pairint score` writes: a, b, score, p_value, ..., reason; NaN + reason is skipped
    r = truth()
    rows = ["a,b,score,p_value,q_value,reason"]
    for (a, b), s in zip(batch, lab(batch, r)):
        rows.append(f"{a},{b},{s!r},0.01,0.02,")
    rows.append("G0,G11,nan,nan,nan,no double A+B in the screen")
    scores = tmp_path / "scores.csv"
    scores.write_text("\n".join(rows) + "\n")
    res = run.invoke(cmds["observe"], [folder, str(scores)])
    assert res.exit_code == 0, res.output
    assert "skipped 1 unscorable pair" in res.output and "recorded 3 new observation(s)" in res.output
    res = run.invoke(cmds["observe"], [folder, str(scores)])  # again: idempotent
    assert res.exit_code == 0 and "recorded 0 new observation(s) in round 1; 3 already known" in res.output
    res = run.invoke(cmds["propose"], [folder, "--no-progress"])
    assert res.exit_code == 0 and "round 2: 3 pair(s)" in res.output, res.output
    res = run.invoke(cmds["campaign-status"], [folder])
    assert res.exit_code == 0 and "3 observed, round 2, 3 pending" in res.output

    # errors are one-line messages, not tracebacks
    bad = tmp_path / "bad.csv"
    for text, msg in [
        ("a,b,value\nG0,G1,1.0\n", "lacks column(s) ['score']"),
        ("a,b,score\nG0,G1,nan\n", "no reason"),
        ("a,b,score\nG0,ZZ,1.0\n", "unknown perturbation 'ZZ'"),
        ("a,b,score\nG0,G1,abc\n", "is not a number"),
        (f"a,b,score\n{batch[0][0]},{batch[0][1]},12345.0\n", "conflicting score"),
    ]:
        bad.write_text(text)
        res = run.invoke(cmds["observe"], [folder, str(bad)])
        assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output, (text, res.output)
    res = run.invoke(cmds["campaign-init"], [folder, "-p", "A,B,C"])
    assert res.exit_code == 1 and "already holds a campaign" in res.output
    res = run.invoke(cmds["propose"], [str(tmp_path)])
    assert res.exit_code == 1 and "no campaign" in res.output
