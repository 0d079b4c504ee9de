"""The one discovery round: simulate, Campaign and the tiled path give the batch of one `step`
call on the same key and state; campaign states of the older layout and with features."""

from __future__ import annotations

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.discovery import campaign_round, rounds
from pairint_jax.discovery import posterior as post
from pairint_jax.discovery.campaign import Campaign

S = importlib.import_module("pairint_jax.discovery.simulate")
SMALL = dict(steps=60, num_samples=32, rank=2)


def truth(n=10, seed=0):
    w = np.abs(np.random.default_rng(seed).normal(size=(n, 2)))
    return w @ w.T


@pytest.mark.parametrize("policy,with_features", [("ids", False), ("hub", False), ("hub", True), ("greedy", False)])
def test_simulate_is_scan_of_step(policy, with_features):
    """Round by round, a one-seed simulation chooses what `step` chooses from the same key and state."""
    r = truth()
    feats = np.stack([r.sum(1), np.where(np.arange(10) == 4, np.nan, 1.0)], 1) if with_features else None
    n, batch, n_rounds = 10, 3, 3
    observed = np.array([[0, 1], [2, 5], [3, 4]])
    key = jax.random.key(7)
    res = S.simulate(r, policy, rounds=n_rounds, batch=batch, seeds=1, key=key, observed=observed, features=feats,
                     **SMALL)
    model = post.LowRankModel(n=n, rank=2, steps=60, num_samples=32, link="abs")  # "auto": W W^T is never negative
    k_init, k_rounds = jax.random.split(jax.random.fold_in(key, 0))
    cap = len(observed) + n_rounds * batch
    obs = post.Observations.from_pairs(observed, r[observed[:, 0], observed[:, 1]], capacity=cap)
    state = rounds.init(k_init, model, cap, observations=obs, features=feats)
    for t in range(n_rounds):
        state, info = rounds.step_jit(jax.random.fold_in(k_rounds, t), state, obs, model=model, policy=policy, batch=batch)
        np.testing.assert_array_equal(np.asarray(info.pairs), res.chosen[0, t])
        y = r[np.asarray(info.pairs)[:, 0], np.asarray(info.pairs)[:, 1]]
        obs = rounds.add_observations(obs, info.pairs, jnp.asarray(y, jnp.float32), info.valid, len(observed) + t * batch)
    assert np.isnan(res.fit_loss).all() == (policy == "hub")


def _campaign_reference(folder, names, policy, seed, batch, features=None):
    """The next proposal of a stored campaign, rebuilt by hand as one `step_jit` call."""
    state = json.loads((folder / "campaign.json").read_text())
    ix = {p: i for i, p in enumerate(names)}
    obs = state["observations"]
    pairs = np.sort(np.array([[ix[o["a"]], ix[o["b"]]] for o in obs]).reshape(-1, 2), axis=1)
    buf = post.Observations.from_pairs(pairs, [o["score"] for o in obs], capacity=campaign_round.bucket(len(obs)))
    link = "abs" if all(o["score"] >= 0 for o in obs) else "identity"  # the campaign's link="auto"
    model = post.LowRankModel(n=len(names), rank=2, steps=60, num_samples=32, link=link)
    rs = rounds.init(jax.random.fold_in(jax.random.key(seed), 0), model, buf.capacity, observations=buf, features=features)
    rnd = state["rng"]["round"] + 1
    _, info = rounds.step_jit(jax.random.fold_in(jax.random.key(seed), rnd), rs, buf, model=model, policy=policy,
                              batch=batch, lr=0.01, sigma_scale=1.0)
    return [(names[int(i)], names[int(j)]) for i, j in np.asarray(info.pairs)]


@pytest.mark.parametrize("policy", ["ids", "hub"])
def test_campaign_propose_is_one_step(tmp_path, policy):
    names = [f"G{i}" for i in range(10)]
    r = truth()
    feats = np.random.default_rng(1).normal(size=(10, 2)) if policy == "hub" else None
    c = Campaign.create(tmp_path / "c", names, batch=3, seed=5, policy=policy, features=feats, **SMALL)
    want = _campaign_reference(tmp_path / "c", names, policy, 5, 3)  # round 1: a uniform batch
    first = c.propose()
    assert first == want
    c.observe(first, [float(r[int(a[1:]), int(b[1:])]) for a, b in first])
    want = _campaign_reference(tmp_path / "c", names, policy, 5, 3, features=feats)
    assert c.propose() == want


@pytest.mark.parametrize("options,interactions", [({}, False), ({"lam": 2.0}, False), ({}, True)],
                         ids=["default-lambda", "lambda-2", "feature-interactions"])
def test_tiled_step_equals_in_memory_step(options, interactions):
    """policy "ids_tiled" (host, pair lists) picks what "ids" picks from the same state, key and
    options (the default lambda of both, and an explicit one), also with features and the
    feature-interaction term folded into the factor samples."""
    r = truth(12)
    model = post.LowRankModel(n=12, rank=2, steps=60, num_samples=32, feature_interactions=interactions)
    feats = np.stack([r.sum(1), np.arange(12.0) % 3], 1) if interactions else None
    observed = np.array([[0, 1], [2, 5], [3, 4], [1, 7], [6, 9]])
    obs = post.Observations.from_pairs(observed, r[observed[:, 0], observed[:, 1]], capacity=16)
    in_flight = np.array([[0, 2], [8, 11]])
    rem = np.triu(np.ones((12, 12), bool), 1)
    rem[in_flight[:, 0], in_flight[:, 1]] = False
    key = jax.random.key(3)
    dense = rounds.init(jax.random.key(0), model, 16, observations=obs, remaining=rem, features=feats)
    tiled = rounds.init(jax.random.key(0), model, 16, observations=obs, remaining=False, exclude=in_flight,
                        features=feats)
    assert ("B_loc" in dense.posterior.params) == interactions
    _, a = rounds.step_jit(key, dense, obs, model=model, policy="ids", batch=4, options=options)
    new, b = rounds.step(key, tiled, obs, model=model, policy="ids_tiled", batch=4, options=options)
    np.testing.assert_array_equal(np.asarray(a.pairs), np.asarray(b.pairs))
    np.testing.assert_allclose(np.asarray(a.score), np.asarray(b.score), rtol=1e-5)
    assert new.remaining is None and len(new.exclude) == 2 + 4


def test_old_state_layout_and_missing_keys_load(tmp_path):
    """A state written before the whole model was stored (no elbo/layout/nonnegative, no features) still proposes."""
    names = [f"G{i}" for i in range(8)]
    c = Campaign.create(tmp_path / "c", names, batch=2, seed=0, **SMALL)
    file = tmp_path / "c" / "campaign.json"
    state = json.loads(file.read_text())
    assert state["settings"]["rank"] == 2 and state["settings"]["layout"] == "auto" and state["features"] is None
    del state["features"]
    for key in ("elbo", "layout", "nonnegative"):  # older files lack them
        del state["settings"][key]
    file.write_text(json.dumps(state))
    model = campaign_round.model_from_settings(state["settings"], 8)
    assert (model.rank, model.steps, model.num_samples, model.link, model.offset) == (2, 60, 32, "abs", True)
    state["settings"]["link"] = "identity"  # files written before link="auto" store the link itself
    model = campaign_round.model_from_settings(state["settings"], 8, [1.0])
    assert (model.link, model.elbo) == ("identity", "analytic")
    c = Campaign.open(tmp_path / "c")
    first = c.propose()
    c.observe(first, [1.0, 2.0])
    assert len(c.propose()) == 2


def test_features_are_stored_and_resume_holds(tmp_path):
    names = [f"G{i}" for i in range(10)]
    feats = np.random.default_rng(0).normal(size=(10, 2))
    feats[3, 1] = np.nan
    r = truth()
    seqs = []
    for folder in ("one", "two"):
        Campaign.create(tmp_path / folder, names, batch=3, seed=2, policy="hub", features=feats, **SMALL)
        seq = []
        for _ in range(3):
            p = Campaign.open(tmp_path / folder).propose()
            Campaign.open(tmp_path / folder).observe(p, [float(r[int(a[1:]), int(b[1:])]) for a, b in p])
            seq.append(p)
        seqs.append(seq)
    assert seqs[0] == seqs[1]
    stored = json.loads((tmp_path / "one" / "campaign.json").read_text())["features"]
    assert stored[3][1] is None and stored[0] == pytest.approx(feats[0].tolist(), rel=1e-6)
    with pytest.raises(ValueError, match=r"features must be \[n, f\]"):
        Campaign.create(tmp_path / "bad", names, features=np.zeros((9, 2)))


def test_auto_link_follows_the_scores(tmp_path):
    """``link="auto"``: a simulation fits "abs" on a matrix that is never negative and "identity"
    on one with negative entries; a campaign stores "auto" and re-resolves it every round, so a
    negative score switches it to "identity" (and a resumed campaign proposes what one step does)."""
    r = truth()
    kw = dict(rounds=1, batch=2, seeds=1, **SMALL)
    assert S.simulate(r, "greedy", **kw).settings["link"] == "abs"
    assert S.simulate(r - r.mean(), "greedy", **kw).settings["link"] == "identity"
    assert S.simulate(r, "greedy", link="identity", **kw).settings["link"] == "identity"

    names = [f"G{i}" for i in range(10)]
    c = Campaign.create(tmp_path / "c", names, batch=3, seed=3, **SMALL)
    settings = json.loads((tmp_path / "c" / "campaign.json").read_text())["settings"]
    assert (settings["link"], settings["elbo"]) == ("auto", None)
    first = c.propose()
    c.observe(first, [0.5, -0.25, 1.0])
    model = campaign_round.model_from_settings(settings, 10, [0.5, -0.25, 1.0])
    assert (model.link, model.elbo) == ("identity", "analytic")
    assert campaign_round.model_from_settings(settings, 10, [0.5, 1.0]).link == "abs"
    want = _campaign_reference(tmp_path / "c", names, "ids", 3, 3)
    assert Campaign.open(tmp_path / "c").propose() == want
