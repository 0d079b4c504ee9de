"""Bad inputs at the public boundary: one row per case, each a ValueError/TypeError (or OSError)
raised *before any work* whose message names the parameter or the file.

To add a case, append a ``Case`` to ``CASES``: an id, a function of the fixtures ``env``
(``env.screen`` a small vector screen, ``env.images`` a small image screen, ``env.tmp`` a
temporary folder), the exception type and a regular expression the message must match
(name the parameter or the file in it). Each case must fail fast: the whole table runs in
seconds because every check fires before any training, k-NN search or compilation.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import NamedTuple

import flax.serialization as fser
import numpy as np
import pytest

import pairint_jax as pj
from pairint_jax import _validate as V
from pairint_jax.nre import checkpoint, fit_nre, load_nre, make_encoder, nre_kl_all, nre_trainer, stratified_split
from pairint_jax.nre.model import TrainedNRE
from pairint_jax.scores.separability import condition_kls


class Case(NamedTuple):
    id: str
    call: Callable
    exc: type | tuple
    match: str


def sep(**kw):
    """``separability_scores`` on the vector screen with the given options."""
    return lambda env: pj.separability_scores(env.screen, **kw)


def nre(**kw):
    return sep(estimator="nre", **kw)


def _vectors():
    return np.zeros((6, 3), np.float32), np.array([0, 0, 0, 1, 1, 1])


def _fake_trained():
    """A TrainedNRE shell: enough to reach nre_kl_all's option checks, which come first."""
    return TrainedNRE(model=None, variables={}, shift=np.zeros(3), scale=np.ones(3), class_names=("ctrl", "A"),
                      heldout=np.ones(6, bool), history={}, config={})


def _file(env, name, data: bytes):
    path = env.tmp / name
    path.write_bytes(data)
    return str(path)


def _checkpoint_payload(**override):
    meta = {"class_names": ["ctrl", "A"], "history": {}, "config": {
        "encoder": "mlp", "encoder_kwargs": {}, "n_classes": 2, "feature_shape": [3]}}
    payload = {"format": checkpoint.FORMAT, "variables": {}, "shift": np.zeros(3, np.float32),
               "scale": np.ones(3, np.float32), "heldout": np.ones(6, bool), "meta": json.dumps(meta)}
    payload.update(override)
    return fser.msgpack_serialize(payload)


CASES = [
    # --- a Screen is required (issue 15, item 7) ---
    Case("screen-ndarray", lambda env: pj.separability_scores(np.zeros((10, 3))), TypeError, r"Screen\.from_arrays"),
    Case("screen-list", lambda env: pj.separability_scores([[0.0, 1.0]]), TypeError, r"expects a Screen as screen"),
    Case("screen-path", lambda env: pj.separability_scores(str(env.tmp / "s.h5ad")), TypeError, r"read_screen"),
    Case("screen-none", lambda env: condition_kls(None), TypeError, r"expects a Screen"),
    # --- k-NN options (item 1) ---
    Case("knn-k-zero", sep(k=0), ValueError, r"\bk must be an int >= 1"),
    Case("knn-k-float", sep(k=1.5), TypeError, r"\bk must be an int"),
    Case("knn-k-bool", sep(k=True), TypeError, r"\bk must be an int"),
    Case("knn-dim-zero", sep(dim=0), ValueError, r"\bdim must lie in \[1, inf\)"),
    Case("knn-dim-negative", sep(dim=-3), ValueError, r"\bdim must lie in"),
    Case("knn-dim-half", sep(dim=0.5), ValueError, r"\bdim must lie in"),
    Case("knn-dim-nan", sep(dim=float("nan")), ValueError, r"\bdim must be finite"),
    Case("knn-dim-inf", sep(dim=float("inf")), ValueError, r"\bdim must be finite"),
    Case("knn-dim-str", sep(dim="3"), TypeError, r"\bdim must be a number"),
    Case("knn-max-duplicates", sep(max_duplicates=-1), ValueError, r"max_duplicates"),
    Case("knn-conditions-per-chunk-zero", sep(conditions_per_chunk=0), ValueError, r"conditions_per_chunk"),
    Case("knn-conditions-per-chunk-str", sep(conditions_per_chunk="big"), TypeError, r"conditions_per_chunk"),
    Case("knn-block-size", sep(block_size=-2), ValueError, r"block_size"),
    Case("estimator-unknown", sep(estimator="mine"), ValueError, r"estimator must be one of 'knn', 'nre'"),
    Case("eval-on", sep(estimator="nre", eval_on="train"), ValueError, r"eval_on"),
    # --- SMILE tau (item 1): inf is allowed (MILE) ---
    Case("tau-zero", nre(tau=0), ValueError, r"\btau must be > 0"),
    Case("tau-negative", nre(tau=-5), ValueError, r"\btau must be > 0"),
    Case("tau-nan", nre(tau=float("nan")), ValueError, r"\btau must be a positive number"),
    Case("tau-minus-inf", nre(tau=float("-inf")), ValueError, r"\btau must be a positive number"),
    Case("tau-str", nre(tau="5"), TypeError, r"\btau must be a positive number"),
    # --- NRE training (item 1) ---
    Case("lr-negative", nre(learning_rate=-1), ValueError, r"learning_rate must be > 0"),
    Case("lr-zero", nre(learning_rate=0.0), ValueError, r"learning_rate must be > 0"),
    Case("lr-huge", nre(learning_rate=1e6), ValueError, r"learning_rate must be <= 1"),
    Case("lr-nan", nre(learning_rate=float("nan")), ValueError, r"learning_rate"),
    Case("lr-str", nre(learning_rate="1e-3"), TypeError, r"learning_rate"),
    Case("epochs-zero", nre(epochs=0), ValueError, r"epochs must be an int >= 1"),
    Case("epochs-float", nre(epochs=2.5), TypeError, r"epochs must be an int"),
    Case("batch-size-zero", nre(batch_size=0), ValueError, r"batch_size must be an int >= 1"),
    Case("batch-size-negative", nre(batch_size=-4), ValueError, r"batch_size"),
    Case("val-fraction-zero", nre(val_fraction=0.0), ValueError, r"val_fraction must lie in \(0, 1\)"),
    Case("val-fraction-one", nre(val_fraction=1.0), ValueError, r"val_fraction"),
    Case("val-fraction-big", nre(val_fraction=1.5), ValueError, r"val_fraction"),
    Case("val-fraction-str", nre(val_fraction="0.3"), TypeError, r"val_fraction"),
    Case("marginal", nre(marginal="half"), ValueError, r"marginal must be one of 'all', 'shuffle'"),
    Case("select", nre(select="best"), ValueError, r"select must be one of"),
    Case("encoder-cnn-on-vectors", nre(encoder="cnn"), ValueError, r"encoder='cnn' needs images .* use encoder='mlp'"),
    Case("encoder-unknown", nre(encoder="transformer"), ValueError, r"encoder must be one of"),
    Case("encoder-int", nre(encoder=3), TypeError, r"encoder must be 'mlp', 'cnn' or a flax"),
    Case("encoder-kwargs-unknown", nre(encoder_kwargs={"width": 3}), TypeError, r"encoder_kwargs: \['width'\]"),
    Case("encoder-kwargs-zero-width", nre(encoder_kwargs={"hidden": (0,)}), ValueError, r"encoder_kwargs\['hidden'\]"),
    Case("encoder-kwargs-width-str", nre(encoder_kwargs={"hidden": "64"}), TypeError, r"encoder_kwargs\['hidden'\]"),
    Case("encoder-kwargs-dropout", nre(encoder_kwargs={"dropout": 1.0}), ValueError, r"encoder_kwargs\['dropout'\]"),
    Case("encoder-kwargs-not-dict", nre(encoder_kwargs="big"), TypeError, r"encoder_kwargs must be a dict"),
    Case("cnn-images-too-small", lambda env: pj.separability_scores(env.images, estimator="nre", encoder="cnn"),
         ValueError, r"at least 8x8 pixels, got 4x4"),
    Case("model-not-trained-nre", nre(model="critic.msgpack"), TypeError, r"model must be a TrainedNRE"),
    # --- the NRE building blocks, called directly ---
    Case("fit-nre-lr", lambda env: fit_nre(0, *_vectors(), learning_rate=-1), ValueError, r"learning_rate"),
    Case("fit-nre-standardize", lambda env: fit_nre(0, *_vectors(), standardize="yes"), TypeError, r"standardize"),
    Case("fit-nre-cnn-vectors", lambda env: fit_nre(0, *_vectors(), encoder="cnn"), ValueError, r"encoder='cnn'"),
    Case("fit-nre-epochs", lambda env: fit_nre(0, *_vectors(), epochs=-1), ValueError, r"epochs"),
    Case("trainer-lr", lambda env: nre_trainer(None, class_prior=[0.5, 0.5], learning_rate=0), ValueError,
         r"learning_rate"),
    Case("trainer-marginal", lambda env: nre_trainer(None, class_prior=[0.5, 0.5], marginal="x"), ValueError,
         r"marginal"),
    Case("split-val-fraction", lambda env: stratified_split(0, np.array([0, 0, 1, 1]), val_fraction=2), ValueError,
         r"val_fraction"),
    Case("kl-all-not-trained", lambda env: nre_kl_all(None, *_vectors()), TypeError, r"TrainedNRE"),
    Case("kl-all-tau", lambda env: nre_kl_all(_fake_trained(), *_vectors(), tau=0), ValueError, r"\btau"),
    Case("kl-all-batch-size", lambda env: nre_kl_all(_fake_trained(), *_vectors(), batch_size=0), ValueError,
         r"batch_size"),
    Case("make-encoder-channels", lambda env: make_encoder("cnn", channels=()), ValueError, r"'channels'"),
    Case("make-encoder-hidden", lambda env: make_encoder("mlp", hidden=[64, -1]), ValueError, r"'hidden'"),
    # --- NRE checkpoints (item 2: a garbage --model) ---
    Case("model-file-missing", lambda env: load_nre(env.tmp / "nope.msgpack"), FileNotFoundError, r"nope\.msgpack"),
    Case("model-file-empty", lambda env: load_nre(_file(env, "empty.msgpack", b"")), ValueError,
         r"empty\.msgpack' is empty"),
    Case("model-file-garbage", lambda env: load_nre(_file(env, "junk.msgpack", bytes(range(256)) * 3)), ValueError,
         r"junk\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-truncated", lambda env: load_nre(_file(env, "cut.msgpack", _checkpoint_payload()[:40])),
         ValueError, r"cut\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-list", lambda env: load_nre(_file(env, "list.msgpack", fser.msgpack_serialize([1, 2]))),
         ValueError, r"list\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-missing-field", lambda env: load_nre(_file(
        env, "nometa.msgpack", fser.msgpack_serialize({"format": checkpoint.FORMAT}))), ValueError,
        r"nometa\.msgpack' is a damaged .*'meta'"),
    Case("model-file-bad-meta", lambda env: load_nre(_file(env, "meta.msgpack", _checkpoint_payload(meta="{oops"))),
         ValueError, r"meta\.msgpack' is a damaged"),
    Case("model-file-bad-encoder", lambda env: load_nre(_file(env, "enc.msgpack", _checkpoint_payload(meta=json.dumps(
        {"class_names": ["ctrl", "A"], "history": {}, "config": {
            "encoder": "rnn", "encoder_kwargs": {}, "n_classes": 2, "feature_shape": [3]}})))), ValueError,
        r"enc\.msgpack' is a damaged"),
    Case("model-file-bad-variables", lambda env: load_nre(_file(env, "vars.msgpack", _checkpoint_payload())),
         ValueError, r"vars\.msgpack': the stored variables do not fit"),
    # --- seeds and keys (item 2: --seed 10**23) ---
    Case("key-seed-huge", lambda env: V.as_key(10**23), ValueError, r"\bkey: an int seed must lie in \[0, 2\*\*32\)"),
    Case("key-seed-2-32", lambda env: V.as_key(2**32), ValueError, r"\bkey: an int seed"),
    Case("seed-negative", lambda env: V.seed("seed", -1), ValueError, r"\bseed: an int seed"),
    Case("seed-float", lambda env: V.seed("seed", 1.0), TypeError, r"\bseed must be an int seed"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rng = np.random.default_rng(0)
    labels = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(12)]
    screen = pj.Screen.from_arrays(rng.normal(size=(len(labels), 3)).astype(np.float32), labels, warn=False)
    images = pj.Screen.from_arrays(rng.normal(size=(len(labels), 1, 4, 4)).astype(np.float32), labels, warn=False)
    return types.SimpleNamespace(screen=screen, images=images, tmp=tmp_path_factory.mktemp("bad_inputs"))


def test_the_table_is_big_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(case, env):
    with pytest.raises(case.exc, match=case.match):
        case.call(env)


def test_infinite_tau_is_mile_and_accepted():
    assert V.positive_float("tau", float("inf"), allow_inf=True) == float("inf")
    from pairint_jax.nre.model import check_tau

    assert check_tau(float("inf")) == float("inf") and check_tau(5) == 5.0


def test_mlp_on_images_is_allowed():
    from pairint_jax.nre.model import check_encoder_input

    check_encoder_input("mlp", {}, (1, 4, 4))  # the MLP flattens images: a valid choice
    check_encoder_input("cnn", {}, (1, 8, 8))
    check_encoder_input("cnn", {"channels": (16,)}, (3, 2, 2))
