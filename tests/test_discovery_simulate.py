"""Simulated campaigns: metric bookkeeping against NumPy, input validation, no recompilation,
common random numbers across policies, and the statistical check that IDS beats random."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import importlib

# the package re-exports the function ``simulate``, which shadows the module attribute
S = importlib.import_module("pairint_jax.discovery.simulate")

from _compiles import compile_log  # noqa: E402


def planted_nonneg(n, rank, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    w = np.abs(rng.normal(size=(n, rank)))
    r = w @ w.T
    e = rng.normal(size=(n, n))
    return r + noise * r.std() * (e + e.T) / np.sqrt(2)


def check_metrics(res, r, known=None, observed=()):
    """Recompute top5_fraction, regret and known_found from the chosen pairs (float64 NumPy)."""
    n = r.shape[0]
    up = np.triu(np.ones((n, n), bool), 1)
    avail = up & np.isfinite(r)
    vals = r[avail]
    k = math.ceil(0.05 * avail.sum())
    top = avail & (np.nan_to_num(r, nan=-np.inf) >= np.sort(vals)[::-1][k - 1])
    init = {tuple(p) for p in observed}
    rest = np.sort([r[i, j] for i, j in zip(*np.nonzero(avail)) if (i, j) not in init])[::-1]
    b = res.chosen.shape[2]
    known_set = {tuple(sorted(p)) for p in (known if known is not None else [])}
    for s in range(res.seeds):
        seen = set(init)
        cum = inst = 0.0
        for t in range(res.rounds):
            left = np.sort([r[i, j] for i, j in zip(*np.nonzero(avail)) if (i, j) not in seen])[::-1]
            inst += left[:b].sum() - r[res.chosen[s, t, :, 0], res.chosen[s, t, :, 1]].sum()
            for i, j in res.chosen[s, t]:
                assert i < j and avail[i, j] and (i, j) not in seen, (s, t, i, j)
                seen.add((int(i), int(j)))
                cum += r[i, j]
            assert res.top5_fraction[s, t] == pytest.approx(sum(top[p] for p in seen) / top.sum())
            assert res.regret[s, t] == pytest.approx(rest[: (t + 1) * b].sum() - cum, rel=1e-4, abs=1e-3)
            assert res.known_found[s, t] == sum(p in seen for p in known_set)
            assert res.regret_remaining[s, t] == pytest.approx(inst, rel=1e-4, abs=1e-3)
            np.testing.assert_allclose(res.rewards[s, t], r[res.chosen[s, t, :, 0], res.chosen[s, t, :, 1]], rtol=1e-6)


def test_ids_beats_random_on_planted_low_rank():
    """Planted non-negative rank-3 30x30 matrix (435 pairs, 22 in the top 5%), 16 rounds of 10
    (160 pairs, 37%), 4 fixed seeds, 1000 SVI steps per round and K = 300 (CI sizes; the
    paper's 5000 steps and K = 1000 are the defaults).

    Required: mean(IDS) - mean(random) >= 0.25 in the final top-5% fraction. With the fixed
    seeds the test is deterministic. Its false-failure rate for fresh seeds, from 12 other
    seeds of this setting: per-seed IDS 0.90 (sd 0.08), random 0.42 (sd 0.09), so the
    difference of 4-seed means is 0.48 with sd 0.06 and falls below 0.25 with probability
    about 5e-5 (3.9 sd).
    """
    r = planted_nonneg(30, 3, seed=0)
    out = S.simulate_many(r, ("ids", "random"), rounds=16, batch=10, seeds=4, steps=1000, num_samples=300,
                          key=jax.random.key(0))
    ids, rnd = out["ids"], out["random"]
    assert ids.top5_fraction[:, -1].mean() - rnd.top5_fraction[:, -1].mean() >= 0.25, (
        ids.top5_fraction[:, -1], rnd.top5_fraction[:, -1])
    assert ids.regret[:, -1].mean() < rnd.regret[:, -1].mean()
    check_metrics(ids, r)
    check_metrics(rnd, r)
    # common random numbers: the first (random) round is the same for both policies
    np.testing.assert_array_equal(ids.chosen[:, 0], rnd.chosen[:, 0])
    assert not ids.fallback.any()
    assert np.all(np.isfinite(ids.fit_loss[:, 1:])) and np.all(np.isnan(ids.fit_loss[:, 0]))


def test_random_metrics_known_unavailable_and_observed(rng):
    n = 12
    r = planted_nonneg(n, 2, seed=1)
    r[2, 5] = r[5, 2] = np.nan  # unavailable pair
    r[np.diag_indices(n)] = 123.0  # diagonal is ignored
    known = [(0, 1), (3, 4), (5, 2), (7, 9)]
    observed = [(0, 3), (1, 2)]
    with pytest.warns(UserWarning, match="1 known pair.s. are unavailable"):
        res = S.simulate(r, "random", rounds=6, batch=4, seeds=3, known=known, observed=observed, key=jax.random.key(1))
    assert res.top5_fraction.shape == res.regret.shape == res.known_found.shape == (3, 6)
    assert res.n_known == 3  # (2, 5) is unavailable, warned and not counted
    check_metrics(res, np.where(np.eye(n, dtype=bool), np.nan, r), known=[(0, 1), (3, 4), (7, 9)], observed=observed)
    assert not np.any((res.chosen[..., 0] == 2) & (res.chosen[..., 1] == 5))
    # batched over seeds == looped: seed s of a 3-seed run equals a 1-seed run keyed fold_in(key, s)
    # (seed s uses fold_in(key, s), so a 1-seed run reproduces seed 0)
    one = S.simulate(r, "random", rounds=6, batch=4, seeds=1, known=known[:2], observed=observed,
                     key=jax.random.key(1))
    np.testing.assert_array_equal(one.chosen[0], res.chosen[0])


def test_no_recompilation_round_by_round_and_between_calls():
    r = planted_nonneg(10, 2, seed=2)
    kw = dict(rounds=4, batch=3, seeds=2, steps=20, num_samples=16)
    with compile_log() as log_a:
        a = S.simulate(r, "ucb", progress=True, **kw)  # one call of the compiled round per round
    assert log_a.count("_run_rounds") <= 1
    with compile_log() as log_b:
        b = S.simulate(r * 2.0, "ucb", progress=True, beta=0.3, **kw)  # new values, traced beta: same program
    assert log_b.count("_run_rounds") == 0
    with compile_log() as log_c:
        c = S.simulate(r, "ucb", **kw)  # all rounds in one scan: one more program, same results
    assert log_c.count("_run_rounds") <= 1
    with compile_log() as log_d:
        S.simulate(r, "ucb", **kw)
    assert log_d.count("_run_rounds") == 0
    np.testing.assert_array_equal(a.chosen, c.chosen)
    np.testing.assert_allclose(a.regret, c.regret, rtol=1e-5)
    assert b.settings["beta"] == 0.3


def test_bad_inputs():
    r = planted_nonneg(8, 2, seed=3)
    with pytest.raises(ValueError, match="square"):
        S.simulate(r[:, :7])
    asym = r.copy()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match=r"not symmetric: R\[0, 1\]"):
        S.simulate(asym)
    half_nan = r.copy()
    half_nan[0, 1] = np.nan
    with pytest.raises(ValueError, match="is NaN but"):
        S.simulate(half_nan)
    inf = r.copy()
    inf[0, 1] = inf[1, 0] = np.inf
    with pytest.raises(ValueError, match="infinite entry"):
        S.simulate(inf)
    with pytest.raises(ValueError, match="exceeds the 28 available"):
        S.simulate(r, rounds=10, batch=3)
    with pytest.raises(ValueError, match="unknown policy"):
        S.simulate(r, "best", rounds=2, batch=2)
    with pytest.raises(ValueError, match="cannot be simulated"):
        S.simulate(r, "ids_tiled", rounds=2, batch=2)
    with pytest.raises(ValueError, match="does not take"):
        S.simulate(r, "ts", rounds=2, batch=2, beta=1.0)
    with pytest.raises(ValueError, match="diagonal"):
        S.simulate(r, "random", rounds=2, batch=2, known=[(1, 1)])
    with pytest.raises(ValueError, match="outside 0..7"):
        S.simulate(r, "random", rounds=2, batch=2, observed=[(0, 8)])
    with pytest.raises(ValueError, match="seeds must be"):
        S.simulate(r, "random", rounds=2, batch=2, seeds=0)
    with pytest.raises(ValueError, match="rounds must be"):
        S.simulate(r, "random", rounds=0)
    with pytest.raises(TypeError, match="numeric"):
        S.simulate([["a", "b"], ["c", "d"]])


def test_plot_discovery_curves(tmp_path):
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    from pairint_jax.plotting import plot_discovery_curves

    r = planted_nonneg(10, 2, seed=4)
    res = S.simulate(r, "random", rounds=5, batch=3, seeds=3, known=[(0, 1), (2, 3)])
    other = dataclasses.replace(res, policy="ids", top5_fraction=np.minimum(res.top5_fraction * 2, 1))
    fig = plot_discovery_curves({"random": res, "ids": other}, title="t", path=tmp_path / "c.png")
    assert len(fig.axes) == 3 and (tmp_path / "c.png").stat().st_size > 1000
    ax = fig.axes[0]
    # one mean line per policy, equal to the mean over seeds
    np.testing.assert_allclose(ax.lines[0].get_ydata(), res.top5_fraction.mean(0))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), other.top5_fraction.mean(0))
    no_known = dataclasses.replace(res, n_known=0)
    assert len(plot_discovery_curves(no_known).axes) == 2
    with pytest.raises(TypeError, match="not a SimulationResult"):
        plot_discovery_curves({"x": object()})


def test_accepts_pair_scores_with_unscorable_pairs():
    from pairint_jax.results import PairScores

    r = planted_nonneg(8, 2, seed=5)
    i, j = np.triu_indices(8, 1)
    score = r[i, j].copy()
    score[3] = np.nan  # an unscorable pair: NaN in .matrix, never chosen
    ps = PairScores(tuple(f"p{k}" for k in range(8)), np.stack([i, j], 1), score, np.array([""] * len(i), object))
    res = S.simulate(ps, "random", rounds=4, batch=6, seeds=2, known=np.eye(8, k=1, dtype=bool))
    assert res.n_known == 7
    chosen = {tuple(p) for p in res.chosen.reshape(-1, 2)}
    assert (int(i[3]), int(j[3])) not in chosen
    check_metrics(res, ps.matrix, known=[(k, k + 1) for k in range(7)])
