"""separability_scores: the score formula, unscorable pairs, ragged/large controls,
duplicates, reuse and checkpoints of the NRE, no recompilation, bad input."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from scipy.spatial import cKDTree

import pairint_jax as pj
from pairint_jax.nre import load_nre, save_nre
from pairint_jax.stats import knn, knn_kl_info


def small_screen(rng, *, n_ctrl=120, n=60, d=3, doubles=("A+B", "A+C", "B+C"), extra=None):
    """Control, singles A/B/C and some doubles; condition means differ."""
    means = {"ctrl": 0.0, "A": 1.0, "B": -1.0, "C": 0.5, "A+B": 2.5, "A+C": 1.5, "B+C": -0.5}
    xs, labels = [], []
    for cond in ("ctrl", "A", "B", "C", *doubles):
        m = n_ctrl if cond == "ctrl" else n
        xs.append(rng.normal(size=(m, d)) + means[cond] * np.eye(d)[0])
        labels += [cond] * m
    for cond, x in (extra or {}).items():
        xs.append(x)
        labels += [cond] * len(x)
    return pj.Screen.from_arrays(np.concatenate(xs).astype(np.float32), labels, warn=False)


def test_knn_scores_follow_the_formula(rng):
    screen = small_screen(rng)
    res = pj.separability_scores(screen, estimator="knn", k=2)
    assert res.test == "separability"
    df = res.to_frame()
    assert list(df.columns) == ["a", "b", "score", "kl_a", "kl_b", "kl_ab", "reason"]
    np.testing.assert_allclose(df.score, np.abs(df.kl_a + df.kl_b - df.kl_ab), rtol=1e-12)
    # each KL equals the functional core on that condition alone
    x0 = screen.group(0)
    for cond in ("A", "B+C"):
        want = float(knn_kl_info(x0, screen.group(cond), k=2).kl)
        assert res.settings["condition_kl"][cond] == pytest.approx(want, rel=1e-5)
    row = df[(df.a == "A") & (df.b == "C")].iloc[0]
    assert row.kl_a == pytest.approx(res.settings["condition_kl"]["A"])
    assert row.kl_ab == pytest.approx(res.settings["condition_kl"]["A+C"])
    m = res.matrix
    assert np.allclose(m, m.T, equal_nan=True) and np.isnan(np.diag(m)).all()
    assert res.settings["k"] == 2 and res.settings["dim"] == 3


def test_unscorable_pairs_are_nan_with_reason(rng):
    # B+C is missing; with k=3 the double A+B (2 observations) cannot be estimated.
    screen = small_screen(rng, doubles=("A+C",), extra={"A+B": rng.normal(size=(2, 3)) + 2.0})
    res = pj.separability_scores(screen, estimator="knn", k=3)
    df = res.to_frame().set_index(["a", "b"])
    assert np.isnan(df.loc[("B", "C"), "score"]) and "not in screen" in df.loc[("B", "C"), "reason"]
    assert np.isnan(df.loc[("A", "B"), "score"])
    assert "'A+B' has 2 observation(s); k-NN with k=3" in df.loc[("A", "B"), "reason"]
    assert np.isfinite(df.loc[("A", "C"), "score"]) and df.loc[("A", "C"), "reason"] == ""
    # with k=1 the 2-observation double is fine
    res1 = pj.separability_scores(screen, estimator="knn", k=1)
    assert np.isfinite(res1.to_frame().set_index(["a", "b"]).loc[("A", "B"), "score"])


def test_control_fifty_times_larger_and_ragged_groups(rng):
    # The architecture's trap: control 50x larger than every other group, groups of
    # different sizes (different buckets). The control is never padded with the groups.
    xs = [rng.normal(size=(2000, 4))]
    labels = ["ctrl"] * 2000
    sizes = {"A": 40, "B": 25, "C": 33, "A+B": 12, "A+C": 40, "B+C": 9}
    for i, (cond, m) in enumerate(sizes.items()):
        xs.append(rng.normal(size=(m, 4)) + 0.3 * i)
        labels += [cond] * m
    screen = pj.Screen.from_arrays(np.concatenate(xs).astype(np.float32), labels)
    res = pj.separability_scores(screen, estimator="knn", chunk_size=2, block_size=300)
    x0 = screen.group(0).astype(np.float64)
    rho = cKDTree(x0).query(x0, k=2)[0][:, 1]
    for cond in sizes:
        y = screen.group(cond).astype(np.float64)
        nu = cKDTree(y).query(x0, k=1)[0]
        want = 4 / len(x0) * np.log(nu / rho).sum() + np.log(len(y) / (len(x0) - 1))
        assert res.settings["condition_kl"][cond] == pytest.approx(want, rel=1e-4, abs=1e-4)


def test_duplicates_are_handled_and_reported(rng):
    base = small_screen(rng)
    x = base.x.copy()
    x[1] = x[0]  # a duplicated control point
    x[5] = x[0]  # ... three times
    screen = base.with_x(x)
    with pytest.warns(UserWarning, match="duplicate observations"):
        res = pj.separability_scores(screen, estimator="knn")
    assert np.isfinite(res.score[np.isfinite(res.score)]).all()
    assert (res.reason[np.isfinite(res.score)] == "").all()
    assert res.settings["n_duplicates"]  # counted per condition
    # the result equals the functional core with enough slack
    want = float(knn_kl_info(screen.group(0), screen.group("A"), max_duplicates=8).kl)
    assert res.settings["condition_kl"]["A"] == pytest.approx(want, rel=1e-5)
    # too many copies for the allowed slack: NaN with a reason, never inf
    with pytest.warns(UserWarning):
        res0 = pj.separability_scores(screen, estimator="knn", max_duplicates=1)
    assert np.isnan(res0.score[[i for i, r in enumerate(res0.reason) if r]]).all()
    assert any("max_duplicates=1" in r for r in res0.reason)


def test_no_recompilation_on_second_call(rng):
    screen = small_screen(rng)
    pj.separability_scores(screen, estimator="knn")
    before = knn._TRACES["knn_kl_all"]
    screen2 = screen.with_x(screen.x * 1.5 + 0.1)  # same shapes, new values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pj.separability_scores(screen2, estimator="knn")
        pj.separability_scores(screen2, estimator="knn", dim=2.0)
    assert knn._TRACES["knn_kl_all"] == before


@pytest.fixture(scope="module")
def nre_run():
    """One small NRE run shared by the tests below (3 epochs, batch 128). A+B has a single
    observation: unscorable by the screen's rule and left out of the NRE's classes."""
    rng = np.random.default_rng(7)
    screen = small_screen(rng, n_ctrl=200, n=100, doubles=("A+C", "B+C"), extra={"A+B": rng.normal(size=(1, 3))})
    res = pj.separability_scores(screen, estimator="nre", epochs=3, batch_size=128, key=jax.random.key(1))
    return screen, res


def test_nre_scores_reuse_and_checkpoint(tmp_path, nre_run):
    screen, res = nre_run
    df = res.to_frame().set_index(["a", "b"])
    ok = df.reason == ""
    assert ok.sum() == 2 and np.isfinite(df.score[ok]).all()
    np.testing.assert_allclose(df.score[ok], np.abs(df.kl_a + df.kl_b - df.kl_ab)[ok], rtol=1e-12)
    trained = res.settings["nre_model"]
    assert res.settings["tau"] == 5.0 and res.settings["encoder"] == "mlp"
    assert len(res.settings["history"]["val_accuracy"]) == 3
    # reuse: same scores without retraining
    again = pj.separability_scores(screen, estimator="nre", model=trained)
    np.testing.assert_array_equal(again.score, res.score)
    # checkpoint round trip: identical scores
    path = save_nre(tmp_path / "sep.msgpack", trained)
    loaded = load_nre(path)
    np.testing.assert_array_equal(pj.separability_scores(screen, estimator="nre", model=loaded).score, res.score)
    # tau is applied at readout (traced: no retraining, no recompilation)
    mile = pj.separability_scores(screen, estimator="nre", model=trained, tau=np.inf)
    assert mile.settings["tau"] == np.inf and np.isfinite(mile.score[ok.to_numpy()]).all()
    # evaluating on new data needs eval_on="all"
    rng = np.random.default_rng(8)
    bigger = small_screen(rng, n_ctrl=210, n=100, doubles=("A+C", "B+C"), extra={"A+B": rng.normal(size=(1, 3))})
    with pytest.raises(ValueError, match="eval_on='all'"):
        pj.separability_scores(bigger, estimator="nre", model=trained)
    new = pj.separability_scores(bigger, estimator="nre", model=trained, eval_on="all")
    assert np.isfinite(new.score[ok.to_numpy()]).all()


def test_nre_model_must_fit_the_screen(rng, nre_run):
    _, res = nre_run
    trained = res.settings["nre_model"]
    other = small_screen(rng, n_ctrl=60, n=30, doubles=("A+B",))
    with pytest.raises(ValueError, match="same conditions"):
        pj.separability_scores(other, estimator="nre", model=trained)
    with pytest.raises(TypeError, match="TrainedNRE"):
        pj.separability_scores(other, estimator="nre", model="model.msgpack")


def test_nre_too_small_classes(nre_run):
    _, res = nre_run
    df = res.to_frame().set_index(["a", "b"])
    assert np.isnan(df.loc[("A", "B"), "score"]) and "1 observation" in df.loc[("A", "B"), "reason"]
    assert "A+B" not in res.settings["nre_model"].class_names


def test_bad_input(rng):
    screen = small_screen(rng, n_ctrl=30, n=20)
    with pytest.raises(ValueError, match="estimator must be one of"):
        pj.separability_scores(screen, estimator="mine")
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        pj.separability_scores(screen, k=0)
    with pytest.raises(ValueError, match="control 'ctrl' has 30 observations; .* k=40"):
        pj.separability_scores(screen, k=40)
    with pytest.raises(TypeError, match="expects a Screen"):
        pj.separability_scores(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="select must be"):
        pj.separability_scores(screen, estimator="nre", select="best")
    with pytest.raises(ValueError, match="eval_on must be"):
        pj.separability_scores(screen, estimator="nre", epochs=1, eval_on="train")
    with pytest.raises(ValueError, match="encoder must be one of"):
        pj.separability_scores(screen, estimator="nre", encoder="transformer")
    with pytest.raises(ValueError, match="max_duplicates"):
        pj.separability_scores(screen, max_duplicates=-1)
