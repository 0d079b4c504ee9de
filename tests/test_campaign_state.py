"""The campaign state on disk: every corrupted ``campaign.json`` is refused with one line naming
the field, by every command, without touching the file; files follow the umask; the batch is
capped at the pairs (issue 15, items 4, 5 and 9)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import pairint_jax as pj
from pairint_jax import _validate as V
from pairint_jax.cli import main
from pairint_jax.discovery import acquisition, campaign_round, campaign_schema, links, policies, posterior
from pairint_jax.discovery.campaign import Campaign
from pairint_jax.discovery.campaign_store import dump as _dump
from pairint_jax.discovery.campaign_schema import CampaignStateError, validate_state

NAMES = [f"G{i}" for i in range(6)]
SMALL = dict(steps=60, num_samples=16, rank=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A campaign in round 2: observations, two proposals (one pending batch) and a posterior."""
    folder = tmp_path_factory.mktemp("state") / "base"
    c = Campaign.create(folder, NAMES, batch=3, seed=1, **SMALL)
    first = c.propose()
    c.observe(first, [1.0, 2.5, -0.75])
    c.propose()
    state = json.loads((folder / "campaign.json").read_text())
    assert state["posterior"] is not None and len(state["proposals"]) == 2 and len(state["observations"]) == 3
    return folder


# ----------------------------------------------------------------------------- corrupted variants


def edit(fn):
    """A variant made by changing the decoded state: ``fn(state)`` mutates it in place."""
    def make(text: str) -> bytes:
        state = json.loads(text)
        fn(state)
        return json.dumps(state, indent=1).encode()  # NaN and Infinity are written as JSON allows them
    return make


def raw(fn):
    """A variant made by changing the file's text (``fn`` returns str or bytes)."""
    def make(text: str) -> bytes:
        out = fn(text)
        return out if isinstance(out, bytes) else out.encode()
    return make


def _walk(state: dict, path: str) -> tuple:
    """The container of ``state[k1][k2]...`` for the dotted ``path`` (integer parts index lists) and its last key."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    obj = state
    for k in keys[:-1]:
        obj = obj[k]
    return obj, keys[-1]


def _set(path: str, value):
    """``edit`` that sets the field at ``path`` to ``value`` (or to ``value(old)`` when callable)."""
    def fn(state):
        obj, key = _walk(state, path)
        obj[key] = value(obj[key]) if callable(value) else value
    return edit(fn)


def _delete(path: str):
    def fn(state):
        obj, key = _walk(state, path)
        del obj[key]
    return edit(fn)


def _dup_observation(state):
    state["observations"].append(dict(state["observations"][0]))


def _swap_observation(state):
    o = state["observations"][0]
    o["a"], o["b"] = o["b"], o["a"]


def _rank_plus_one(state):
    state["posterior"]["params"]["V_scale"] = [row + [0.1] for row in state["posterior"]["params"]["V_scale"]]


NAN, INF = float("nan"), float("inf")

#: (id, how the file is damaged, regular expression the message must match: it names the field)
VARIANTS = [
    ("truncated", raw(lambda t: t[: len(t) // 2]), r"campaign\.json is not valid campaign JSON"),
    ("empty-file", raw(lambda t: b""), r"not valid campaign JSON"),
    ("not-utf8", raw(lambda t: b"\xff\xfe" + t.encode()), r"not UTF-8"),
    ("not-an-object", raw(lambda t: "[1, 2, 3]"), r"field '\(top level\)' must be a JSON object"),
    ("repeated-key", raw(lambda t: t.replace('"batch": 3,', '"batch": 3, "batch": 0,', 1)), r"'batch' appears twice"),
    ("format-other", _set("format", "other"), r"not a pairint campaign: field 'format'"),
    ("version-unknown", _set("version", 2), r"field 'version' must be 1"),
    ("version-string", _set("version", "1"), r"field 'version'"),
    ("missing-settings", _delete("settings"), r"field 'settings' is missing"),
    ("missing-rank", _delete("settings.rank"), r"field 'settings\.rank' is missing"),
    ("missing-observations", _delete("observations"), r"field 'observations' is missing"),
    ("unknown-top-field", _set("extra", 1), r"field 'extra' is not a known field"),
    ("unknown-model-key", _set("settings.lrate", 0.1), r"field 'settings\.lrate' is not a known field"),
    ("names-not-list", _set("perturbations", "G0,G1"), r"field 'perturbations' must be a list"),
    ("names-one", _set("perturbations", ["G0"]), r"field 'perturbations' must hold at least 2"),
    ("names-duplicated", _set("perturbations.3", "G1"), r"field 'perturbations\[3\]' repeats the name 'G1'"),
    ("name-empty", _set("perturbations.2", ""), r"field 'perturbations\[2\]' must be a non-empty name"),
    ("name-spaces", _set("perturbations.2", " G2"), r"field 'perturbations\[2\]'"),
    ("name-not-string", _set("perturbations.1", 7), r"field 'perturbations\[1\]' must be a name"),
    ("settings-not-object", _set("settings", [3]), r"field 'settings' must be an object"),
    ("batch-zero", _set("settings.batch", 0), r"field 'settings\.batch' must be an int >= 1, got 0"),
    ("batch-string", _set("settings.batch", "3"), r"field 'settings\.batch' must be an int"),
    ("batch-bool", _set("settings.batch", True), r"field 'settings\.batch' must be an int"),
    ("rank-negative", _set("settings.rank", -2), r"field 'settings\.rank' must be an int >= 1"),
    ("steps-float", _set("settings.steps", 60.5), r"field 'settings\.steps' must be an int"),
    ("num-samples-zero", _set("settings.num_samples", 0), r"field 'settings\.num_samples'"),
    ("lr-negative", _set("settings.lr", -0.01), r"field 'settings\.lr' must be a number > 0"),
    ("factor-scale-min-negative", _set("settings.factor_scale_min", -0.5),
     r"field 'settings\.factor_scale_min' must be a finite number >= 0"),
    ("factor-scale-min-string", _set("settings.factor_scale_min", "0.5"), r"field 'settings\.factor_scale_min'"),
    ("lr-nan", _set("settings.lr", NAN), r"field 'settings\.lr' must be a finite number"),
    ("sigma-scale-string", _set("settings.sigma_scale", "1.0"), r"field 'settings\.sigma_scale'"),
    ("link-unknown", _set("settings.link", "logit"), r"field 'settings\.link' must be one of 'identity'"),
    ("policy-unknown", _set("settings.policy", "best"), r"field 'settings\.policy' must be one of 'ids'"),
    ("policy-option-unknown", _set("settings.policy_options", {"beta": 1.0}),
     r"field 'settings\.policy_options\.beta' is not an option of policy 'ids'"),
    ("lam-zero", _set("settings.policy_options", {"lam": 0}), r"field 'settings\.policy_options\.lam'"),
    ("offset-string", _set("settings.offset", "yes"), r"field 'settings\.offset' must be true or false"),
    ("seed-huge", _set("settings.seed", 2**40), r"field 'settings\.seed' must be an int in \[0, 4294967295\]"),
    ("seed-negative", _set("settings.seed", -1), r"field 'settings\.seed'"),
    ("rng-seed-mismatch", _set("rng.seed", 2), r"field 'rng\.seed' must equal settings\.seed"),
    ("rng-round-wrong", _set("rng.round", 5), r"field 'rng\.round' must equal the round of the last proposal"),
    ("observations-not-list", _set("observations", {}), r"field 'observations' must be a list"),
    ("self-pair", edit(lambda s: s["observations"][0].update(b=s["observations"][0]["a"])),
     r"field 'observations\[0\]' pairs '.*' with itself"),
    ("duplicated-pair", edit(_dup_observation), r"field 'observations\[3\]' repeats the pair"),
    ("pair-out-of-order", edit(_swap_observation), r"field 'observations\[0\]' stores the pair .* out of order"),
    ("unknown-name-in-pair", _set("observations.0.a", "X9"), r"field 'observations\[0\]' names 'X9'"),
    ("index-instead-of-name", _set("observations.0.a", 0), r"field 'observations\[0\]' names perturbation a with 0"),
    ("score-string", _set("observations.1.score", "2.5"), r"field 'observations\[1\]\.score' must be a finite number"),
    ("score-nan", _set("observations.1.score", NAN), r"field 'observations\[1\]\.score' must be a finite number"),
    ("score-inf", _set("observations.1.score", INF), r"field 'observations\[1\]\.score'"),
    ("score-bool", _set("observations.1.score", True), r"field 'observations\[1\]\.score'"),
    ("score-null", _set("observations.1.score", None), r"field 'observations\[1\]\.score'"),
    ("score-missing", _delete("observations.1.score"), r"field 'observations\[1\]\.score' is missing"),
    ("observation-round-future", _set("observations.0.round", 7), r"field 'observations\[0\]\.round' must be an int in"),
    ("proposal-unknown-name", _set("proposals.0.pairs.0", ["G0", "Z"]), r"field 'proposals\[0\]\.pairs\[0\]' names 'Z'"),
    ("proposal-self-pair", _set("proposals.1.pairs.0", ["G4", "G4"]), r"field 'proposals\[1\]\.pairs\[0\]' pairs 'G4'"),
    ("proposal-n-observed", _set("proposals.1.n_observed", 9), r"field 'proposals\[1\]\.n_observed' must be an int in"),
    ("proposal-rounds", _set("proposals.1.round", 1), r"field 'proposals\[1\]\.round' must be an int >= 2"),
    ("posterior-wrong-shape", _set("posterior.params.U_loc", lambda m: m[:4]),
     r"field 'posterior\.params\.U_loc' must be an \[n, rank\] = \[6, 2\] array .* got shape \[4, 2\]"),
    ("posterior-wrong-rank", edit(_rank_plus_one), r"field 'posterior\.params\.V_scale' .* \[6, 2\] .* got shape \[6, 3\]"),
    ("posterior-nan", _set("posterior.params.V_loc.2.1", NAN), r"field 'posterior\.params\.V_loc\[2\]\[1\]'"),
    ("posterior-negative-scale", _set("posterior.params.U_scale.1.0", -0.1),
     r"field 'posterior\.params\.U_scale\[1\]\[0\]' must be a number > 0"),
    ("posterior-missing-offset", _delete("posterior.params.offset_loc"), r"field 'posterior\.params\.offset_loc' is missing"),
    ("posterior-unknown-param", _set("posterior.params.W_loc", 0.0), r"field 'posterior\.params\.W_loc' is not a known"),
    ("posterior-scale-zero", _set("posterior.scale", 0.0), r"field 'posterior\.scale' must be a number > 0"),
    ("posterior-shift-string", _set("posterior.shift", "0"), r"field 'posterior\.shift'"),
    ("posterior-not-object", _set("posterior", [1.0]), r"field 'posterior' must be an object"),
]


def damaged(base, tmp_path, variant) -> tuple:
    """A copy of the base campaign with ``variant`` applied: (folder, file bytes, state before)."""
    folder = tmp_path / "c"
    shutil.copytree(base, folder)
    file = folder / "campaign.json"
    good = json.loads(file.read_text())
    file.write_bytes(variant(file.read_text()))
    return folder, file.read_bytes(), good


def test_the_variants_are_many_and_distinct():
    assert len(VARIANTS) >= 29 and len({v[0] for v in VARIANTS}) == len(VARIANTS)


@pytest.mark.parametrize("name,variant,match", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_a_damaged_state_is_refused_by_every_command_and_left_alone(base, tmp_path, name, variant, match):
    folder, before, good = damaged(base, tmp_path, variant)
    opened = Campaign(folder, good)  # an object opened before the damage re-reads the file at every call
    calls = {
        "open": lambda: Campaign.open(folder),
        "propose": lambda: opened.propose(),
        "observe": lambda: opened.observe([("G0", "G5")], [1.0]),
    }
    for what, call in calls.items():
        with pytest.raises(CampaignStateError, match=match) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg and "campaign.json" in msg, (what, msg)
        assert (folder / "campaign.json").read_bytes() == before, what
    assert isinstance(info.value, ValueError) and pj.CampaignStateError is CampaignStateError


CLI_VARIANTS = ["truncated", "not-an-object", "batch-zero", "names-duplicated", "self-pair", "score-string",
                "posterior-wrong-rank", "unknown-model-key"]


@pytest.mark.parametrize("name", CLI_VARIANTS)
def test_the_cli_refuses_a_damaged_state_in_one_line(base, tmp_path, name):
    _, variant, match = next(v for v in VARIANTS if v[0] == name)
    folder, before, _ = damaged(base, tmp_path, variant)
    scores = tmp_path / "scores.csv"
    scores.write_text("a,b,score\nG0,G5,1.0\n")
    for args in (["propose", folder, "--no-progress"], ["observe", folder, scores], ["campaign-status", folder]):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 1, (args, res.output, res.exception)
        assert "Traceback" not in res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
        assert re.search(match, lines[0]), (match, lines[0])
        assert (folder / "campaign.json").read_bytes() == before, args


def test_a_state_is_checked_before_it_is_saved(base):
    state = json.loads((base / "campaign.json").read_text())
    assert validate_state(state) is state and _dump(state)  # the good state passes
    state["settings"]["batch"] = 0
    with pytest.raises(CampaignStateError, match=r"campaign\.json: field 'settings\.batch'"):
        _dump(state)


def test_the_schema_mirrors_the_constants_of_the_jax_modules():
    assert campaign_schema.SEED_LIMIT == V.SEED_LIMIT
    assert campaign_schema.LINK_CHOICES == links.LINK_CHOICES
    assert campaign_schema.DEFAULT_RANK == posterior.DEFAULT_RANK
    assert campaign_schema.FACTOR_PRIORS == posterior.FACTOR_PRIORS
    assert campaign_schema.IDS_LAMBDA == acquisition.IDS_LAMBDA == policies.REGISTRY["ids"].options["lam"]
    assert policies.REGISTRY["ids_tiled"].options["lam"] == acquisition.IDS_LAMBDA
    assert campaign_schema.MODEL_FIELDS == tuple(f.name for f in dataclasses.fields(posterior.LowRankModel) if f.name != "n")
    assert {k: set(v) for k, v in campaign_schema.POLICY_OPTIONS.items()} == {
        k: set(v) for k, v in acquisition.POLICY_OPTIONS.items()}


def test_a_state_without_nonnegative_still_loads(base, tmp_path):
    """Files written before the setting existed lack it; the campaign reads it as False."""
    folder, _, _ = damaged(base, tmp_path, _delete("settings.nonnegative"))
    assert "nonnegative" not in Campaign.open(folder).settings


def test_a_state_without_factor_scale_min_resumes_unbounded(base, tmp_path):
    """Files written before the floor existed lack it; they resume with the model they were
    created with (no floor), not with today's default."""
    from pairint_jax.discovery.campaign_round import model_from_settings

    folder, _, _ = damaged(base, tmp_path, _delete("settings.factor_scale_min"))
    settings = Campaign.open(folder).settings
    assert "factor_scale_min" not in settings
    assert model_from_settings(settings, len(NAMES)).factor_scale_min == 0.0
    assert model_from_settings({**settings, "factor_scale_min": 0.5}, len(NAMES)).factor_scale_min == 0.5


def test_an_auto_link_campaign_stores_no_floor_and_picks_it_with_the_link(tmp_path):
    """With ``link="auto"`` the floor is stored as null and picked every round from the link
    resolved from the observed scores: 0.5 while none is negative (abs), 1.0 after (identity)."""
    from pairint_jax.discovery.campaign_round import model_from_settings

    c = Campaign.create(tmp_path / "c", NAMES, batch=2, steps=20, num_samples=8)
    settings = json.loads((tmp_path / "c" / "campaign.json").read_text())["settings"]
    assert settings["link"] == "auto" and settings["factor_scale_min"] is None and settings["rank"] == 8
    assert c.settings["factor_scale_min"] is None
    abs_model = model_from_settings(settings, len(NAMES), [0.2, 1.5])
    id_model = model_from_settings(settings, len(NAMES), [0.2, -1.5])
    assert (abs_model.link, abs_model.factor_scale_min) == ("abs", 0.5)
    assert (id_model.link, id_model.factor_scale_min) == ("identity", 1.0)
    fixed = Campaign.create(tmp_path / "d", NAMES, batch=2, steps=20, num_samples=8, link="identity")
    assert fixed.settings["factor_scale_min"] == 1.0  # a fixed link stores its floor


def _lam_of_next_proposal(folder, monkeypatch) -> float:
    """The ``lam`` that the next ``propose`` of the campaign in ``folder`` passes to the round."""
    seen = {}
    real = campaign_round.rounds.step_jit

    def spy(*args, options, **kwargs):
        seen.update(options)
        return real(*args, options=options, **kwargs)

    c = Campaign.open(folder)
    pending = c.propose()  # the pending batch, returned again without a new round
    c.observe(pending, [0.5] * len(pending))
    monkeypatch.setattr(campaign_round.rounds, "step_jit", spy)
    c.propose()
    return seen["lam"]


def test_an_ids_campaign_stores_its_lambda_and_an_old_file_resumes_with_2(base, tmp_path, monkeypatch):
    """A new IDS campaign stores ``lam`` (today's default, 4), so a later change of the default
    leaves it alone. A file that stores none was written when the default was 2 and resumes
    with 2: the proposals of an uninterrupted run."""
    assert json.loads((base / "campaign.json").read_text())["settings"]["policy_options"] == {"lam": 4.0}
    c = Campaign.create(tmp_path / "own", NAMES, batch=2, policy_options={"lam": 3.0}, **SMALL)
    assert c.settings["policy_options"] == {"lam": 3.0}
    ucb = Campaign.create(tmp_path / "ucb", NAMES, batch=2, policy="ucb", **SMALL)
    assert ucb.settings["policy_options"] == {}  # only IDS stores a default it did not get

    assert campaign_round.policy_options("ids", {})["lam"] == campaign_schema.LEGACY_IDS_LAMBDA == 2.0
    assert campaign_round.policy_options("ids", {"lam": 4.0})["lam"] == 4.0
    assert campaign_round.policy_options("ucb", {}) == {"beta": 1.0, "chunk_size": None}

    old, _, _ = damaged(base, tmp_path, _delete("settings.policy_options.lam"))
    assert "lam" not in Campaign.open(old).settings["policy_options"]
    assert _lam_of_next_proposal(old, monkeypatch) == 2.0
    new = tmp_path / "new"
    shutil.copytree(base, new)
    assert _lam_of_next_proposal(new, monkeypatch) == 4.0


# ----------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    from pairint_jax.nre import save_nre
    from pairint_jax.nre.model import TrainedNRE

    old = os.umask(umask)
    try:
        c = Campaign.create(tmp_path / "c", NAMES, batch=2, policy="random", **SMALL)
        c.observe(c.propose(), [1.0, 2.0])  # every file rewritten at least once
        files = ["campaign.json", ".lock", "observations.csv", "next_batch.csv"]
        got = {f: oct((tmp_path / "c" / f).stat().st_mode & 0o777) for f in files}
        trained = TrainedNRE(model=None, variables={}, shift=np.zeros(3), scale=np.ones(3), class_names=("ctrl", "A"),
                             heldout=np.ones(6, bool), history={}, config={})
        got["model"] = oct(os.stat(save_nre(tmp_path / "m.msgpack", trained)).st_mode & 0o777)
        res = CliRunner().invoke(main, ["propose", str(tmp_path / "c"), "--no-progress", "--out", str(tmp_path / "b.csv")])
        assert res.exit_code == 0, res.output
        got["propose --out"] = oct((tmp_path / "b.csv").stat().st_mode & 0o777)
    finally:
        os.umask(old)
    assert got == {k: oct(mode) for k in got}


# ----------------------------------------------------------------------------- batch and pairs


def test_batch_defaults_and_limits(tmp_path):
    assert Campaign.create(tmp_path / "a", ["A", "B", "C"]).settings["batch"] == 3  # min(10, 3 pairs)
    assert Campaign.create(tmp_path / "b", NAMES).settings["batch"] == 10  # 15 pairs
    assert Campaign.create(tmp_path / "c", NAMES, batch=15).settings["batch"] == 15
    with pytest.raises(ValueError, match=r"batch must be at most the number of pairs, 15 for 6 perturbations; got 16"):
        Campaign.create(tmp_path / "d", NAMES, batch=16)
    with pytest.raises(ValueError, match=r"\bseed: an int seed must lie in \[0, 2\*\*32\)"):
        Campaign.create(tmp_path / "d", NAMES, seed=2**32)
    with pytest.raises(TypeError, match=r"\bseed must be an int seed"):
        Campaign.create(tmp_path / "d", NAMES, seed=1.0)
    assert not (tmp_path / "d").exists()
    res = CliRunner().invoke(main, ["campaign-init", str(tmp_path / "e"), "-p", "A,B,C", "--batch", "4"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.strip() == "Error: batch must be at most the number of pairs, 3 for 3 perturbations; got 4."
    assert not (tmp_path / "e" / "campaign.json").exists()
    res = CliRunner().invoke(main, ["campaign-init", str(tmp_path / "f"), "-p", "A,B,C"])
    assert res.exit_code == 0 and "batch=3" in res.output, res.output
    assert json.loads((tmp_path / "f" / "campaign.json").read_text())["settings"]["link"] == "auto"
    res = CliRunner().invoke(main, ["campaign-init", str(tmp_path / "g"), "-p", "A,B,C", "--link", "identity"])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "g" / "campaign.json").read_text())["settings"]
    assert (settings["link"], settings["elbo"]) == ("identity", "analytic")
    with pytest.raises(ValueError, match="link must be one of"):
        Campaign.create(tmp_path / "h", NAMES, link="log")


def _set_batch(folder, batch):
    """A hand-set batch larger than the pairs (valid in the file: the cap applies at propose)."""
    file = folder / "campaign.json"
    state = json.loads(file.read_text())
    state["settings"]["batch"] = batch
    file.write_text(json.dumps(state))


@pytest.mark.parametrize("policy", ["random", "ids"])
def test_propose_caps_the_batch_at_the_remaining_pairs(tmp_path, policy):
    names = ["A", "B", "C", "D"]  # 6 pairs; a batch of 100 also exceeds the 16 entries of the [n, n] mask
    c = Campaign.create(tmp_path / "c", names, batch=2, policy=policy, seed=0, **SMALL)
    c.observe([("A", "B"), ("C", "D")], [1.0, -1.0])  # so the first proposal fits the posterior
    _set_batch(tmp_path / "c", 100)
    pairs = c.propose()
    assert sorted(pairs) == [("A", "C"), ("A", "D"), ("B", "C"), ("B", "D")]  # every remaining pair, once
    c.observe(pairs[:3], [0.5, 0.25, 2.0])
    with pytest.raises(ValueError, match=r"nothing left to propose: of the 6 pairs, 5 are observed and 1 pending"):
        c.propose()
    c.observe(pairs[3:], [3.0])
    with pytest.raises(ValueError, match=r"nothing left to propose: all 6 pairs of this campaign are observed"):
        c.propose()


def test_the_tiled_proposal_caps_the_batch_too(tmp_path, monkeypatch):
    from pairint_jax.discovery import campaign_round

    monkeypatch.setattr(campaign_round, "TILED_MIN_N", 4)
    c = Campaign.create(tmp_path / "c", ["A", "B", "C", "D", "E"], batch=2, seed=0, **SMALL)  # 10 pairs
    first = c.propose()  # random first batch, by rejection sampling
    c.observe(first, [1.0, 2.0])
    _set_batch(tmp_path / "c", 50)
    second = c.propose()
    assert len(second) == 8 and not set(second) & set(first)
    assert len(set(second)) == 8 and all(a < b for a, b in second)
