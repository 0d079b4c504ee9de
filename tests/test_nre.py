"""Neural ratio estimator: learns the analytic log-ratio, (init, step) training, the
contrastive loss, stratified split, BatchNorm eval mode, checkpoints, bad input.

CI sizes: 2 classes x 2,000 2-d points, 30 epochs of batch 256 (MLP 128-64), ~3 s;
CNN tests use 8x8 images and 2 epochs.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pairint_jax.nre import (
    CNNEncoder,
    Critic,
    MLPEncoder,
    fit_nre,
    load_nre,
    nre_kl_all,
    nre_loss,
    nre_trainer,
    save_nre,
    stratified_split,
)
from pairint_jax.stats import smile

from _compiles import compile_log

SHIFT = np.array([1.5, -0.5])


@pytest.fixture(scope="module")
def gauss2():
    """Two Gaussians N(0, I) (class 0) and N(SHIFT, I) (class 1), 2,000 points each, and a fitted NRE."""
    rng = np.random.default_rng(3)
    n = 2000
    x = np.concatenate([rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + SHIFT]).astype(np.float32)
    y = np.repeat([0, 1], n)
    trained = fit_nre(jax.random.key(0), x, y, epochs=30, batch_size=256, learning_rate=3e-3)
    return x, y, trained


def test_learns_analytic_log_ratio(gauss2):
    x, y, trained = gauss2
    ho = trained.heldout
    got = np.asarray(trained.log_ratio(x[ho], 1))  # log p(x|1)/p(x|0)
    true = x[ho] @ SHIFT - SHIFT @ SHIFT / 2
    assert np.corrcoef(got, true)[0, 1] > 0.95
    # and the KL read out by SMILE on held-out points is near the analytic 1.25
    # (tau = 5 does not bite at this KL; finite-sample and fit error: +-0.25)
    kl = np.asarray(nre_kl_all(trained, x, y, tau=5.0))
    assert kl[0] == pytest.approx(0.0, abs=1e-5)
    assert kl[1] == pytest.approx(SHIFT @ SHIFT / 2, abs=0.25)
    assert trained.history["best_val_accuracy"] > 0.6
    assert len(trained.history["val_accuracy"]) == 30


def test_split_is_stratified_seeded_and_held_out(gauss2):
    x, y, trained = gauss2
    ho = trained.heldout
    assert ho[y == 0].sum() == 600 and ho[y == 1].sum() == 600
    labels = np.repeat([0, 1, 2], [10, 7, 2])
    a = stratified_split(jax.random.key(1), labels)
    b = stratified_split(jax.random.key(1), labels)
    c = stratified_split(jax.random.key(2), labels)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert [int(a[labels == k].sum()) for k in range(3)] == [3, 2, 1]  # round(0.3 n), >= 1, <= n-1


def test_split_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 2 classes"):
        stratified_split(jax.random.key(0), np.zeros(10, int))
    with pytest.raises(ValueError, match=r"'A\+B' \(1 obs\)"):
        stratified_split(jax.random.key(0), np.array([0, 0, 0, 1, 1, 2]), class_names=["ctrl", "A", "A+B"])
    with pytest.raises(ValueError, match=r"class 1 \(0 obs\)"):
        stratified_split(jax.random.key(0), np.array([0, 0, 0, 2, 2]))
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(jax.random.key(0), np.array([0, 0, 1, 1]), val_fraction=1.0)
    with pytest.raises(ValueError, match="labels must be"):
        fit_nre(jax.random.key(0), np.zeros((4, 2)), np.zeros(5, int))
    with pytest.raises(ValueError, match="encoder must be one of"):
        fit_nre(jax.random.key(0), np.zeros((4, 2)), np.array([0, 0, 1, 1]), encoder="rnn")


def test_loss_all_is_the_expectation_of_shuffle():
    # The "all" marginal term is the exact expectation of the in-batch shuffle over
    # uniformly random permutations when p(c) = the batch's label frequencies.
    rng = np.random.default_rng(0)
    B, C = 5, 3
    logits = jnp.asarray(rng.normal(size=(B, C)) * 2, jnp.float32)
    y = jnp.asarray([0, 2, 2, 1, 0])
    prior = jnp.bincount(y, length=C) / B
    want = nre_loss(logits, y, prior, marginal="all").loss
    perms = list(itertools.permutations(range(B)))
    joint = np.asarray(jax.nn.log_sigmoid(logits[jnp.arange(B), y]))
    shuffled = []
    for p in perms:
        yp = np.asarray(y)[list(p)]
        marg = np.asarray(jax.nn.log_sigmoid(-logits[jnp.arange(B), yp]))
        shuffled.append(-0.5 * (joint.mean() + marg.mean()))
    assert float(want) == pytest.approx(np.mean(shuffled), rel=1e-5)
    # the "shuffle" form itself draws one permutation from the key
    got = nre_loss(logits, y, prior, marginal="shuffle", key=jax.random.key(0)).loss
    assert any(float(got) == pytest.approx(s, rel=1e-6) for s in shuffled)


def test_init_step_are_pure_and_jitted():
    model = Critic(MLPEncoder(hidden=(16,)), n_classes=3)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 4)), jnp.float32) + jnp.repeat(jnp.arange(3.0), 22)[:64, None]
    y = jnp.asarray(np.repeat(np.arange(3), 22)[:64])
    tr = nre_trainer(model, class_prior=jnp.ones(3) / 3, learning_rate=1e-2)
    s0 = tr.init(jax.random.key(0), x[:1])
    s1, i1 = tr.step(jax.random.key(1), s0, (x, y))
    s1b, i1b = tr.step(jax.random.key(1), s0, (x, y))  # pure: same inputs, same outputs
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s1b)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    state, losses = s1, []
    with compile_log() as log:
        for t in range(60):
            state, info = tr.step(t if t % 2 else jax.random.key(t), state, (x, y))  # int seeds are keys too
            losses.append(float(info.loss))
    assert int(state.step) == 61
    assert losses[-1] < losses[0] - 0.1
    assert log.count("step") == 0  # compiled once for these shapes (above), int seeds included
    # lr is traced (in the optax state), not baked into the program
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-2)


def test_shuffle_marginal_also_learns(gauss2):
    x, y, _ = gauss2
    tr = fit_nre(jax.random.key(1), x, y, epochs=10, batch_size=256, learning_rate=3e-3, marginal="shuffle")
    ho = tr.heldout
    got = np.asarray(tr.log_ratio(x[ho], 1))
    true = x[ho] @ SHIFT
    assert np.corrcoef(got, true)[0, 1] > 0.9


def _images(rng, n=40):
    x = rng.normal(size=(3 * n, 2, 8, 8)).astype(np.float32)
    y = np.repeat([0, 1, 2], n)
    x[y == 1, 0, :4] += 1.0
    x[y == 2, 1, 4:] += 1.0
    return x, y


def test_cnn_batchnorm_eval_mode_and_checkpoint_round_trip(tmp_path, rng):
    x, y = _images(rng)
    enc = {"channels": (4, 8), "dense": (16, 8)}
    tr = fit_nre(jax.random.key(0), x, y, encoder="cnn", encoder_kwargs=enc, epochs=2, batch_size=32)
    assert "batch_stats" in tr.variables
    # eval mode uses running averages: a sample's output does not depend on its batch
    alone = np.asarray(tr.logits(x[:1]))
    batched = np.asarray(tr.logits(x[:17], batch_size=17))[:1]
    np.testing.assert_allclose(alone, batched, rtol=1e-5, atol=1e-5)
    # the one-pass SMILE readout equals smile() per class on the held-out logits
    kl = np.asarray(nre_kl_all(tr, x, y, tau=2.0))
    lg = np.asarray(tr.logits(x[tr.heldout]), np.float64)
    yh = y[tr.heldout]
    for g in range(3):
        f_p = lg[yh == 0, 0] - lg[yh == 0, g]
        f_q = lg[yh == g, 0] - lg[yh == g, g]
        assert kl[g] == pytest.approx(float(smile(f_p, f_q, tau=2.0)), rel=1e-4, abs=1e-5)
    # checkpoint round trip: identical outputs and KLs
    path = save_nre(tmp_path / "cnn.msgpack", tr)
    again = load_nre(path)
    np.testing.assert_array_equal(np.asarray(again.logits(x)), np.asarray(tr.logits(x)))
    np.testing.assert_array_equal(np.asarray(nre_kl_all(again, x, y)), np.asarray(nre_kl_all(tr, x, y)))
    np.testing.assert_array_equal(again.heldout, tr.heldout)
    assert again.class_names == tr.class_names and again.config == tr.config
    assert again.history["val_accuracy"] == tr.history["val_accuracy"]


def test_custom_encoder_module_and_its_checkpoint(tmp_path, rng):
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.repeat([0, 1], 30)
    module = MLPEncoder(hidden=(8, 4))
    tr = fit_nre(jax.random.key(0), x, y, encoder=module, epochs=2, batch_size=16)
    path = save_nre(tmp_path / "c.msgpack", tr)
    with pytest.raises(ValueError, match="custom encoder"):
        load_nre(path)
    again = load_nre(path, encoder=module)
    np.testing.assert_array_equal(np.asarray(again.logits(x)), np.asarray(tr.logits(x)))
    with pytest.raises(ValueError, match="do not fit the encoder"):
        load_nre(path, encoder=MLPEncoder(hidden=(8, 5)))
    (tmp_path / "junk.msgpack").write_bytes(b"\x81\xa1a\x01")
    with pytest.raises(ValueError, match="not a pairint_jax NRE checkpoint"):
        load_nre(tmp_path / "junk.msgpack")


def test_cnn_encoder_shapes():
    enc = CNNEncoder()  # the paper's App. D.2.2 encoder: 6x32x32 -> 128
    out, variables = jax.eval_shape(
        lambda: enc.init_with_output(jax.random.key(0), jnp.zeros((2, 6, 32, 32)), train=False)
    )
    assert out.shape == (2, 128)
    assert variables["params"]["Dense_0"]["kernel"].shape == (128 * 4 * 4, 256)
    assert set(variables) == {"params", "batch_stats"}
