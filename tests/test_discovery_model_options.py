"""``model_options`` and the hub-driven preset ``pj.HUB_MODEL``: the floors on the learned prior
scales of the main effects (``tau_a``) and of the feature interactions (``tau_B``) enter the ELBO
exactly as a prior scale at the floor would, in both ELBOs; the options are checked once for
``simulate``, ``Campaign.create`` and the CLI, stored by a campaign and resumed."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import pairint_jax as pj
from pairint_jax.cli import main
from pairint_jax.discovery import campaign_round
from pairint_jax.discovery import posterior as P
from pairint_jax.discovery import posterior_model as PM
from pairint_jax.discovery.campaign import Campaign
from pairint_jax.discovery.model_options import HUB_MODEL, MODEL_OPTIONS, split_model_options

NAMES = [f"G{i}" for i in range(6)]
SMALL = dict(steps=40, num_samples=16, rank=2)


def _problem(n=7, seed=0):
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    pairs = np.stack([i, j], 1)[:15]
    obs = P.Observations.from_pairs(pairs, rng.normal(size=15), capacity=20)
    feats = rng.normal(size=(n, 2))
    return obs, feats


def _params(model, feats, a_tau, b_tau):
    state = P.init(jax.random.key(0), model, features=feats, init_loc_scale=0.8)
    p = dict(state.params)
    n = model.n
    p["a_loc"] = jnp.asarray(np.linspace(-0.5, 0.7, n), jnp.float32)
    p["a_scale"] = jnp.asarray(np.linspace(0.2, 0.4, n), jnp.float32)
    p["w_loc"], p["w_scale"] = jnp.asarray([0.3, -0.2]), jnp.asarray([0.2, 0.3])
    p["B_loc"] = jnp.asarray(np.linspace(-0.6, 0.5, 4).reshape(2, 2), jnp.float32)
    p["B_scale"] = jnp.asarray(np.linspace(0.1, 0.5, 4).reshape(2, 2), jnp.float32)
    p["a_tau"], p["B_tau"] = jnp.float32(a_tau), jnp.float32(b_tau)
    return state, p


@pytest.mark.parametrize("link", ["identity", "abs"])
def test_a_binding_floor_is_the_prior_scale_at_the_floor(link):
    """With ``tau_a = 0.05 < main_effect_scale_min = 0.6`` and ``tau_B = 0.02 < interaction_scale_min
    = 0.45``, the negative ELBO equals that of the unbounded model with ``tau_a = 0.6``, ``tau_B =
    0.45`` (closed form: to float32 rounding, rel 1e-6; numpyro's Monte-Carlo ELBO with the same
    key: the same draws, rel 1e-5), and differs from the unbounded model at the learned values.
    A floor below the learned value changes nothing."""
    from numpyro.infer import Trace_ELBO

    obs, feats = _problem()
    kw = dict(n=7, rank=2, link=link, feature_interactions=True)
    floored = P.LowRankModel(**kw, main_effect_scale_min=0.6, interaction_scale_min=0.45)
    free = P.LowRankModel(**kw)
    state, p_low = _params(floored, feats, 0.05, 0.02)
    _, p_at = _params(free, feats, 0.6, 0.45)
    data = PM.model_data(obs, state.features, 0.0, 1.0, 0.8, 1.5, model=free)

    def mc(model, p):
        m = functools.partial(P._numpyro_model, model=model)
        g = functools.partial(P._numpyro_guide, model=model)
        return float(Trace_ELBO(num_particles=64).loss(jax.random.key(3), p, m, g, *data))

    assert mc(floored, p_low) == pytest.approx(mc(free, p_at), rel=1e-5)
    assert abs(mc(free, p_low) - mc(free, p_at)) > 1.0
    if link == "identity":
        exact = lambda model, p: float(P._analytic_neg_elbo(p, *data, model=model))
        assert exact(floored, p_low) == pytest.approx(exact(free, p_at), rel=1e-6)
        assert abs(exact(free, p_low) - exact(free, p_at)) > 1.0
        # a floor under the learned scale is inactive
        _, p_high = _params(free, feats, 0.9, 0.8)
        assert exact(floored, p_high) == pytest.approx(exact(free, p_high), rel=1e-7)


def test_a_fit_with_floors_keeps_the_prior_scales_at_the_floors():
    """On scores with no main effect the learned ``tau_a`` shrinks below 0.1 without a floor; with
    the floors the scale the model uses, ``max(tau, floor)``, is the floor (the learned value itself
    may sit anywhere under it, since the ELBO does not depend on it there)."""
    rng = np.random.default_rng(1)
    n = 20
    i, j = np.triu_indices(n, 1)
    obs = P.Observations.from_pairs(np.stack([i, j], 1), rng.normal(size=len(i)))
    feats = rng.normal(size=(n, 2))
    kw = dict(n=n, rank=2, steps=1500, feature_interactions=True)
    fits = {}
    for name, extra in (("free", {}), ("floored", dict(main_effect_scale_min=0.4, interaction_scale_min=0.3))):
        model = P.LowRankModel(**kw, **extra)
        st, info = P.fit_jit(jax.random.key(0), P.init(jax.random.key(1), model, features=feats), obs, model=model)
        assert bool(info.finite)
        fits[name] = (model, st.params)
    assert float(fits["free"][1]["a_tau"]) < 0.1
    model, params = fits["floored"]
    assert float(PM.main_effect_scale(params["a_tau"], model)) == pytest.approx(0.4)
    assert float(PM.interaction_scale(params["B_tau"], model)) == pytest.approx(0.3)


def test_model_validation_of_the_floors():
    assert P.LowRankModel(n=4).main_effect_scale_min == 0.0 and P.LowRankModel(n=4).interaction_scale_min == 0.0
    assert P.LowRankModel(n=4, main_effect_scale_min=1).main_effect_scale_min == 1.0
    for bad in (-0.1, float("nan"), float("inf"), True, "0.3"):
        with pytest.raises(ValueError, match="main_effect_scale_min must be a finite number >= 0"):
            P.LowRankModel(n=4, main_effect_scale_min=bad)
        with pytest.raises(ValueError, match="interaction_scale_min must be a finite number >= 0"):
            P.LowRankModel(n=4, interaction_scale_min=bad)


def test_split_model_options():
    assert split_model_options("auto", False, None) == ("auto", False, {})
    link, fi, extra = split_model_options("auto", False, HUB_MODEL)
    assert (link, fi) == ("identity", True)
    assert extra == dict(factor_scale_min=0.25, main_effect_scale_min=0.4, interaction_scale_min=0.25)
    assert split_model_options("identity", True, HUB_MODEL)[:2] == ("identity", True)  # the same value twice is fine
    assert set(HUB_MODEL) <= set(MODEL_OPTIONS)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['rank'\]"):
        split_model_options("auto", False, {"rank": 3})
    with pytest.raises(ValueError, match="link is given twice: 'abs' as an argument and 'identity'"):
        split_model_options("abs", False, HUB_MODEL)
    with pytest.raises(ValueError, match="model_options must be a dict"):
        split_model_options("auto", False, [("link", "abs")])
    with pytest.raises(ValueError, match="model_options must be a dict"):
        split_model_options("auto", False, "hub")  # a preset's name is not the preset
    with pytest.raises(TypeError):
        HUB_MODEL["link"] = "abs"  # the preset is read-only


def test_simulate_takes_the_preset_and_records_it():
    """``simulate(model_options=HUB_MODEL)`` fits the preset's model (the settings record every
    field) and equals ``simulate_many`` with the same options; without features it is the
    feature-interaction error."""
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=(12, 2)))
    r = a @ a.T
    f = rng.normal(size=(12, 2))
    kw = dict(rounds=3, batch=2, seeds=2, steps=60, num_samples=32, features=f)
    one = pj.simulate(r, "ids", model_options=pj.HUB_MODEL, **kw)
    for k, v in HUB_MODEL.items():
        assert one.settings[k] == v
    many = pj.simulate_many(r, ("ids",), model_options=pj.HUB_MODEL, **kw)["ids"]
    np.testing.assert_array_equal(one.top5_fraction, many.top5_fraction)
    with pytest.raises(ValueError, match="need features"):
        pj.simulate(r, "ids", rounds=2, batch=2, seeds=1, steps=10, num_samples=8, model_options=pj.HUB_MODEL)


def test_a_campaign_stores_the_preset_and_resumes_with_it(tmp_path):
    """``Campaign.create(model_options=HUB_MODEL)`` stores every field of the preset; the stored
    settings rebuild the same ``LowRankModel``; a file written before the floors existed resumes
    without them; a bad floor in the file is refused naming the field."""
    f = np.arange(12, dtype=float).reshape(6, 2)
    c = Campaign.create(tmp_path / "c", NAMES, batch=2, features=f, model_options=HUB_MODEL, **SMALL)
    settings = json.loads((tmp_path / "c" / "campaign.json").read_text())["settings"]
    for k, v in HUB_MODEL.items():
        assert settings[k] == v
    model = campaign_round.model_from_settings(settings, len(NAMES), [0.3, 1.2])
    assert model == P.LowRankModel(n=len(NAMES), rank=2, steps=40, num_samples=16, **HUB_MODEL)
    batch = c.propose()
    c.observe(batch, [0.5, 1.5])
    assert len(c.propose()) == 2
    old = {k: v for k, v in settings.items() if k not in ("main_effect_scale_min", "interaction_scale_min")}
    legacy = campaign_round.model_from_settings(old, len(NAMES), [0.3])
    assert (legacy.main_effect_scale_min, legacy.interaction_scale_min) == (0.0, 0.0)
    state = json.loads((tmp_path / "c" / "campaign.json").read_text())
    state["settings"]["interaction_scale_min"] = -1.0
    (tmp_path / "c" / "campaign.json").write_text(json.dumps(state))
    with pytest.raises(pj.CampaignStateError, match=r"settings\.interaction_scale_min' must be a finite number >= 0"):
        Campaign.open(tmp_path / "c")
    auto = Campaign.create(tmp_path / "d", NAMES, batch=2, model_options={"factor_scale_min": 0.3}, **SMALL)
    assert auto.settings["link"] == "auto" and auto.settings["factor_scale_min"] == 0.3  # kept, not null


def test_cli_model_hub(tmp_path):
    """``pairint campaign-init --model hub`` stores the preset; without features, or with a
    conflicting ``--link``, it is one line of error and creates nothing."""
    csv = tmp_path / "f.csv"
    csv.write_text("name,x\n" + "\n".join(f"{n},{i}" for i, n in enumerate(NAMES)) + "\n")
    runner = CliRunner()
    small = ["--steps", "20", "--samples", "8", "--rank", "2"]
    ok = runner.invoke(main, ["campaign-init", str(tmp_path / "a"), "-p", ",".join(NAMES), "--features", str(csv),
                              "--model", "hub", *small])
    assert ok.exit_code == 0, ok.output
    settings = json.loads((tmp_path / "a" / "campaign.json").read_text())["settings"]
    assert {k: settings[k] for k in HUB_MODEL} == dict(HUB_MODEL)
    for args, match in ((["--model", "hub"], "need features"),
                        (["--model", "hub", "--features", str(csv), "--link", "abs"], "link is given twice")):
        res = runner.invoke(main, ["campaign-init", str(tmp_path / "b"), "-p", ",".join(NAMES), *args, *small])
        assert res.exit_code != 0 and match in res.output
        assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "b" / "campaign.json").exists()
