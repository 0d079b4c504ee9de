"""pj.pl: every plot returns a Figure (Agg), accepts ax=/save=/show=, a PairScores or a square DataFrame.

The heatmap's cost must not grow with the number of missing cells: at Norman's size
(112 genes, 131 doubles) it is two images and no per-cell artists. Its wall time is measured
in ``benchmarks/plots.py`` (not asserted here: a timed assertion would be flaky on a loaded
2-core CI machine).
"""

from __future__ import annotations

import subprocess
import sys
import types
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import pairint_jax as pj  # noqa: E402
from pairint_jax.results import PairScores  # noqa: E402


def _scores(n=4, measured=None, seed=0, p=False):
    rng = np.random.default_rng(seed)
    names = tuple("ABCDEFGHIJ"[:n]) if n <= 10 else tuple(f"GENE{k}" for k in range(n))
    iu, ju = np.triu_indices(n, 1)
    P = len(iu)
    measured = np.ones(P, bool) if measured is None else measured
    score = np.where(measured, rng.normal(size=P), np.nan)
    cols = {"p_value": np.where(measured, rng.uniform(size=P) ** 4, np.nan)} if p else {}
    reason = np.where(measured, "", "double not in screen").astype(object)
    return PairScores(names, np.stack([iu, ju], 1), score, reason, cols, test="disjointedness", measured=measured)


def _small():
    measured = np.array([1, 1, 1, 0, 1, 1], bool)  # A-D never measured
    res = _scores(4, measured)
    score = res.score.copy()
    score[1] = np.nan  # A-C measured, not scorable
    reason = res.reason.copy()
    reason[1] = "too few observations"
    return PairScores(res.perturbations, res.pairs, score, reason, test="disjointedness", measured=measured)


# ---------------------------------------------------------------- heatmap
def test_heatmap_one_image_masked_nan_labelled_colourbar(tmp_path):
    res = _small()
    fig = pj.pl.heatmap(res, groups={"A": "x", "B": "y", "C": "x", "D": "y"}, highlight=[("B", "D")], save=tmp_path / "h.png")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    data, overlay = ax.images
    mask = np.ma.getmaskarray(data.get_array())
    assert mask.sum() == 4 + 2 + 2  # diagonal, A-C (unscorable) and A-D (not measured), both triangles
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "C", "B", "D"]
    rgba = np.asarray(overlay.get_array())
    # A-C (rows 0/1 in the grouped order) is dark grey, A-D (0/3) is left to the light-grey "bad" colour
    assert rgba[0, 1, 3] == 1 and rgba[0, 3, 3] == 0 and rgba[0, 0].tolist() == [1, 1, 1, 1]
    assert not ax.patches  # no per-cell patches
    assert fig.axes[1].get_ylabel() == "disjointedness MMD² (unbiased)"  # the colour bar says what the score is
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"not measured", "measured, not scorable", "known pair"}
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_heatmap_at_norman_size_has_constant_artists():
    n = 112
    rng = np.random.default_rng(0)
    measured = np.zeros(n * (n - 1) // 2, bool)
    measured[rng.choice(measured.size, 131, replace=False)] = True
    fig = pj.pl.heatmap(_scores(n, measured), order="cluster")
    ax = fig.axes[0]
    assert len(ax.images) == 2 and not ax.patches and len(ax.collections) == 0
    assert len(ax.get_xticklabels()) == n  # every gene named (max_labels=150)
    assert int(np.isfinite(ax.images[0].get_array().filled(np.nan)).sum()) == 2 * 131
    few = pj.pl.heatmap(_scores(n, measured), max_labels=40)
    assert len(few.axes[0].get_xticklabels()) == 38  # every 3rd name


def test_heatmap_accepts_a_square_dataframe_and_orders():
    res = _scores(5)
    frame = res.to_matrix_frame()
    a = pj.pl.heatmap(res).axes[0].images[0].get_array()
    b = pj.pl.heatmap(frame).axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(a, -9), np.ma.filled(b, -9))
    order = ["E", "D", "C", "B", "A"]
    ax = pj.pl.heatmap(frame, order=order).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == order
    np.testing.assert_array_equal(np.ma.filled(ax.images[0].get_array(), -9), np.ma.filled(a, -9)[::-1, ::-1])
    with pytest.raises(ValueError, match="square"):
        pj.pl.heatmap(frame.iloc[:3])
    with pytest.raises(ValueError, match="each of the 5"):
        pj.pl.heatmap(res, order=["A", "B"])
    with pytest.raises(TypeError, match="PairScores"):
        pj.pl.heatmap(np.zeros((3, 3)))


def test_cluster_order_brings_blocks_together():
    # two modules {0, 2, 4} and {1, 3, 5} that interact within, not across
    n = 6
    m = np.full((n, n), 0.0)
    for block in ((0, 2, 4), (1, 3, 5)):
        for i in block:
            for j in block:
                m[i, j] = 5.0 + (i + j) % 2 * 0.1 if block[0] == 0 else 9.0
    np.fill_diagonal(m, np.nan)
    order = pj.pl.cluster_order(m)
    assert sorted(order.tolist()) == list(range(n))
    assert {frozenset(order[:3].tolist()), frozenset(order[3:].tolist())} == {frozenset({0, 2, 4}), frozenset({1, 3, 5})}


def test_ax_and_show(monkeypatch):
    from matplotlib.figure import Figure as F

    fig = F()
    ax = fig.add_subplot(1, 1, 1)
    assert pj.pl.heatmap(_small(), ax=ax) is fig
    shown = []
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    assert pj.pl.ranked(_small(), show=True) is None and shown == [1]
    plt.close("all")


# ---------------------------------------------------------------- pairs
def test_volcano_marks_and_names_the_significant_pairs(tmp_path):
    res = _scores(8, p=True, seed=3)
    df = res.to_frame(alpha=0.1)
    sig = df[df.significant]
    assert 0 < len(sig) < len(df)  # the test data have both kinds
    fig = pj.pl.volcano(res, alpha=0.1, max_labels=50, save=tmp_path / "v.png")
    ax = fig.axes[0]
    rest, red = ax.collections[:2]
    assert len(red.get_offsets()) == len(sig) and len(rest.get_offsets()) == len(df) - len(sig)
    np.testing.assert_allclose(np.sort(red.get_offsets()[:, 1]), np.sort(-np.log10(sig.q_value.to_numpy())), rtol=1e-12)
    named = {t.get_text() for t in ax.texts}
    assert named == {f"{a}+{b}" for a, b in zip(sig.a, sig.b)}
    assert ax.get_xlabel() == "disjointedness MMD² (unbiased)" and ax.get_ylabel() == "-log10 q"
    with pytest.raises(ValueError, match="pj.pl.ranked"):
        pj.pl.volcano(_scores(4))


def test_ranked_works_without_q_values_and_from_tables():
    res = _scores(6)
    for data in (res, res.to_frame(), res.to_matrix_frame()):
        ax = pj.pl.ranked(data, max_labels=3, highlight=[("A", "B")]).axes[0]
        y = ax.collections[0].get_offsets()[:, 1]
        np.testing.assert_allclose(y, np.sort(res.score)[::-1], rtol=1e-12)
        names = {t.get_text() for t in ax.texts}
        top = res.top(3)
        assert {f"{a}+{b}" for a, b in zip(top.a, top.b)} | {"A+B"} == names


# ---------------------------------------------------------------- observed vs expected
def _effects_screen():
    rng = np.random.default_rng(0)
    means = {"ctrl": [0, 0, 0], "A": [1, 0, 0], "B": [0, 2, 0], "C": [0, 0, 1],
             "A+B": [3, 2, 0], "A+C": [1, 0, 1], "B+C": [0, 1, 3]}
    xs, labels = [], []
    for lab, mu in means.items():
        xs.append(np.asarray(mu, float) + rng.normal(scale=0.3, size=(20, 3)))
        labels += [lab] * 20
    screen = pj.Screen.from_arrays(np.concatenate(xs), labels)
    return screen


def test_observed_vs_expected_projects_like_numpy():
    screen = _effects_screen()
    x = np.asarray(screen.x, np.float64)
    lab = np.asarray(screen.conditions)[screen.group_ids]
    mu = {c: x[lab == c].mean(0) for c in screen.conditions}
    d = {c: mu[c] - mu["ctrl"] for c in screen.conditions}
    pairs = [(screen.perturbations[i], screen.perturbations[j]) for i, j in screen.pairs]
    exp = np.array([d[a] + d[b] for a, b in pairs])
    obs = np.array([d[f"{a}+{b}"] for a, b in pairs])
    ax = pj.pl.observed_vs_expected(screen).axes[0]
    xy = ax.collections[0].get_offsets()
    norm = np.linalg.norm(exp, axis=1)
    np.testing.assert_allclose(xy[:, 0], norm, rtol=1e-5)
    np.testing.assert_allclose(xy[:, 1], (obs * exp).sum(1) / norm, rtol=1e-5)
    u = np.array([0.0, 0.0, 1.0])
    xy = pj.pl.observed_vs_expected(screen, direction=u).axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(xy, np.stack([exp @ u, obs @ u], 1), rtol=1e-5, atol=1e-6)
    add = pj.additivity_scores(screen)
    fig = pj.pl.observed_vs_expected(screen, add, direction="pc1", max_labels=1)
    assert fig.axes[1].get_ylabel() == "additivity ||Δ_ij - Δ_i - Δ_j||"
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{add.top(1).a[0]}+{add.top(1).b[0]}"]
    names, mat = list(add.perturbations), np.asarray(add.matrix, float)  # colour = each pair's score
    want = [mat[names.index(a), names.index(b)] for a, b in pairs]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_array(), want, rtol=1e-6)
    a, b = pairs[-1]  # a highlighted pair (either order) is circled and named
    ax = pj.pl.observed_vs_expected(screen, highlight=[(b, a)], max_labels=0).axes[0]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), ax.collections[0].get_offsets()[-1:])
    assert [t.get_text() for t in ax.texts] == [f"{a}+{b}"]
    with pytest.raises(ValueError, match="direction"):
        pj.pl.observed_vs_expected(screen, direction=[1.0, 0.0])


# ---------------------------------------------------------------- discovery curves
def _sim(policy, seeds=2, rounds=4, known=0):
    rng = np.random.default_rng(len(policy))
    return types.SimpleNamespace(
        policy=policy, seeds=seeds, n_known=known, settings={"n": 10, "batch": 2},
        top5_fraction=rng.uniform(size=(seeds, rounds)), regret=rng.uniform(size=(seeds, rounds)).cumsum(1),
        regret_remaining=rng.uniform(size=(seeds, rounds)).cumsum(1), known_found=rng.integers(0, 3, (seeds, rounds)))


def test_discovery_curves_name_every_policy_and_label_regret_honestly(tmp_path):
    sims = {p: _sim(p, known=3) for p in ("ids", "ucb", "ts", "us", "greedy", "hub", "uniform", "my_policy")}
    fig = pj.pl.discovery_curves(sims, save=tmp_path / "c.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:4] == ["IDS (Information Directed Sampling)", "UCB (upper confidence bound)",
                          "TS (Thompson sampling)", "US (uncertainty sampling)"]
    assert legend[-1] == "my_policy" and len({line.get_color() for line in fig.axes[0].lines}) == 8
    assert "can fall" in fig.axes[1].get_ylabel()
    line = fig.axes[1].lines[0]
    np.testing.assert_allclose(line.get_ydata(), sims["ids"].regret.mean(0))
    rem = pj.pl.discovery_curves([_sim("ids")], regret="remaining")
    assert len(rem.axes) == 2 and "never" not in rem.axes[1].get_ylabel() and "still-unmeasured" in rem.axes[1].get_ylabel()
    with pytest.raises(ValueError, match="regret"):
        pj.pl.discovery_curves(sims, regret="cumulative")
    with pytest.raises(TypeError, match="SimulationResult"):
        pj.pl.discovery_curves({"x": object()})


# ---------------------------------------------------------------- module access
def test_plotting_alias_and_lazy_matplotlib():
    assert pj.plotting.plot_pair_heatmap is pj.pl.heatmap
    fig = pj.plotting.plot_discovery_curves([_sim("ids")], path=None)
    assert isinstance(fig, Figure) and isinstance(fig.axes[0], Axes)
    code = ("import sys, pairint_jax as pj; assert 'matplotlib' not in sys.modules; pj.pl; pj.plotting; "
            "assert 'matplotlib' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_figures_are_not_registered_with_pyplot():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            pj.pl.heatmap(_small())
            pj.pl.ranked(_small())
    assert len(plt.get_fignums()) == before


def test_observed_vs_expected_on_a_sparse_screen_equals_dense():
    """A sparse screen (what an h5ad with sparse X gives) is never densified and plots the same
    points as the dense one (it used to raise in ``group_means``, and so did the score report)."""
    import scipy.sparse

    dense = _effects_screen()
    x = np.asarray(dense.x)
    labels = np.asarray(dense.conditions)[dense.group_ids]
    sparse = pj.Screen.from_arrays(scipy.sparse.csr_matrix(x), labels)
    assert sparse.is_sparse
    np.testing.assert_allclose(pj.pl.group_means(sparse), pj.pl.group_means(dense), rtol=1e-12)
    got = pj.pl.observed_vs_expected(sparse).axes[0].collections[0].get_offsets()
    want = pj.pl.observed_vs_expected(dense).axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(got, want, rtol=1e-6)
