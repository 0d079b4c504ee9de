"""The scores on real screens, validated against known biology (issue 7, part 2).

* Big Papi (Najm et al. 2018): the four known synthetic-lethal pairs must reach the top
  decile of additivity, and the first two (MAPK1-MAPK3, BCL2L1-MCL1) the top decile of
  disjointedness (RBF, per-pair median bandwidth). These thresholds are the issue's
  acceptance bar, not numbers our code produced. Why the MMD ranks the other two lower is
  checked by comparisons that hold for structural reasons (see each test), never by
  hard-coded ranks: the MMD follows the size of the single effects, and its
  large-bandwidth limit is the bias-corrected squared additivity score (an identity, checked
  in float64 against NumPy).
* SLKB 22Rv1: the Spearman correlation of the disjointedness scores with the authors' SL
  scores and the CORUM co-complex pairs in our top 5% (reported; checked against an exact
  combinatorial p-value, never tuned).
* Korkut 2015: the additivity matrix equals a float64 NumPy computation from the loader's data.

Run with ``-s`` to see every rank, correlation and count. The validation helpers
(``pj.datasets.known_pair_ranks`` etc.) are checked against brute-force oracles first.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy.stats import rankdata

import pairint_jax as pj

SL_PAIRS = pj.datasets.BIGPAPI_SYNTHETIC_LETHAL  # MAPK1-MAPK3, BCL2L1-MCL1, BCL2L1-BCL2L2, MAP2K1-MAP2K2


def _fmt(pairs, ranks, n) -> str:
    return ", ".join(f"{a}-{b}: {int(r) if np.isfinite(r) else 'NaN'}/{n}" for (a, b), r in zip(pairs, ranks))


# ----------------------------------------------------------------------------- helpers vs brute force
def test_validation_helpers_match_brute_force(rng):
    n = 9
    m = rng.normal(size=(n, n))
    m = np.round(m + m.T, 1)  # rounding makes ties
    np.fill_diagonal(m, np.nan)
    m[2, 5] = m[5, 2] = np.nan  # one unscored pair
    known = [(0, 1), (5, 2), (3, 7), (4, 8), (1, 6)]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if np.isfinite(m[i, j])]
    vals = np.array([m[i, j] for i, j in pairs])
    ranks = pj.datasets.known_pair_ranks(m, known)
    for (i, j), r in zip(known, ranks):
        if not np.isfinite(m[i, j]):
            assert np.isnan(r)
        else:
            assert r == 1 + sum(v > m[i, j] for v in vals)

    enr = pj.datasets.known_pair_enrichment(m, known, top_fraction=0.25)
    n_pairs, n_top = len(pairs), math.ceil(0.25 * len(pairs))
    top = [pairs[k] for k in np.argsort(-vals, kind="stable")[:n_top]]
    k_known = sum(np.isfinite(m[i, j]) for i, j in known)
    hits = sum(tuple(sorted(p)) in top for p in known)
    # exact hypergeometric tail by binomial coefficients
    p_exact = sum(math.comb(k_known, x) * math.comb(n_pairs - k_known, n_top - x) for x in range(hits, min(k_known, n_top) + 1)) / math.comb(n_pairs, n_top)
    assert (enr.hits, enr.n_known, enr.n_top, enr.n_pairs) == (hits, k_known, n_top, n_pairs)
    np.testing.assert_allclose(enr.p_value, p_exact, rtol=1e-10)
    np.testing.assert_allclose(enr.expected, k_known * n_top / n_pairs, rtol=1e-12)

    ref = rng.normal(size=(n, n))
    ref = ref + ref.T
    ra, rb = rankdata(vals), rankdata(np.array([ref[i, j] for i, j in pairs]))
    np.testing.assert_allclose(pj.datasets.score_correlation(m, ref), np.corrcoef(ra, rb)[0, 1], rtol=1e-10)
    np.testing.assert_allclose(pj.datasets.score_correlation(m, -ref, transform=np.negative), np.corrcoef(ra, rb)[0, 1], rtol=1e-10)

    with pytest.raises(ValueError, match="by name"):
        pj.datasets.known_pair_ranks(m, [("A", "B")])
    with pytest.raises(ValueError, match="top_fraction"):
        pj.datasets.known_pair_enrichment(m, known, top_fraction=0.0)
    with pytest.raises(ValueError, match="different"):
        pj.datasets.known_pair_ranks(m, [(1, 1)])


# ----------------------------------------------------------------------------- Big Papi
@pytest.fixture(scope="module")
def bigpapi():
    screen = pj.datasets.bigpapi()
    return {
        "screen": screen,
        "additivity": pj.additivity_scores(screen),
        "disj_pair": pj.disjointedness_scores(screen, bandwidth="pair", n_permutations=0),
    }


def _top_decile(n_pairs: int) -> float:
    return 0.1 * n_pairs


def test_bigpapi_additivity_ranks_known_sl_pairs_in_top_decile(bigpapi):
    res = bigpapi["additivity"]
    n = int(np.isfinite(res.score).sum())
    ranks = pj.datasets.known_pair_ranks(res, SL_PAIRS)
    print(f"\nBig Papi additivity ranks: {_fmt(SL_PAIRS, ranks, n)}")
    assert n == 325
    assert (ranks <= _top_decile(n)).all(), ranks


def test_bigpapi_disjointedness_ranks_first_two_in_top_decile(bigpapi):
    res = bigpapi["disj_pair"]
    n = int(np.isfinite(res.score).sum())
    ranks = pj.datasets.known_pair_ranks(res, SL_PAIRS)
    print(f"\nBig Papi disjointedness (RBF, pair median bandwidth) ranks: {_fmt(SL_PAIRS, ranks, n)}")
    assert (ranks[:2] <= _top_decile(n)).all(), ranks


def test_bigpapi_global_bandwidth_does_not_help_the_strong_pairs(bigpapi):
    """One bandwidth for all pairs ranks the two strong SL pairs lower than the per-pair median.

    The per-pair median grows with the spread of the pair's four groups, i.e. with the
    single effects (Spearman 0.95 with ``|a||b|`` here), so it partly normalises them away.
    With one global median the pairs of two strong singles (BCL2L1, EEF2, MTOR, CHEK1 ...)
    get a relatively narrow kernel, their shape differences dominate, and they push
    MAPK1-MAPK3 and BCL2L1-MCL1 down. Checked across three subsample keys.
    """
    screen = bigpapi["screen"]
    pair = pj.datasets.known_pair_ranks(bigpapi["disj_pair"], SL_PAIRS)
    for seed in range(3):
        res = pj.disjointedness_scores(screen, bandwidth="global", n_permutations=0, key=jax.random.key(seed))
        ranks = pj.datasets.known_pair_ranks(res, SL_PAIRS)
        print(f"\nBig Papi disjointedness, global median bandwidth {res.columns['bandwidth'][0]:.3f} (key {seed}): "
              f"{_fmt(SL_PAIRS, ranks, 325)}")
        assert (ranks[:2] > pair[:2]).all(), (ranks, pair)


def _single_effects(screen):
    """Float64 NumPy: per scorable pair, the single shifts a, b and the interaction delta."""
    mu = np.stack([screen.group(g).astype(np.float64).mean(0) for g in range(screen.n_groups)])
    ij, c0, i, j = screen.pair_groups.T
    return mu[i] - mu[c0], mu[j] - mu[c0], mu[ij] - mu[i] - mu[j] + mu[c0]


def _pair_values(res, screen):
    return res.matrix[screen.pairs[:, 0], screen.pairs[:, 1]]


def test_bigpapi_mmd_follows_the_single_effects(bigpapi):
    """Why the MMD ranks the weak SL pairs low: at the median bandwidth it measures shape, not the mean.

    For two mean shifts ``a`` and ``b`` that add exactly, ``1/2 p_ij + 1/2 p_0`` and
    ``1/2 p_i + 1/2 p_j`` still differ in their second moments by ``(a b^T + b a^T) / 2``:
    two perturbations that move the same readouts are not disjoint, additive or not. In
    Big Papi every gene moves viability in all six lines the same way, so the MMD ranks
    pairs by the product of the single effects far more than by the interaction. The
    Spearman gap is large (about 0.8 against 0.4), so the comparison is robust.
    """
    screen = bigpapi["screen"]
    a, b, delta = _single_effects(screen)
    mmd = _pair_values(bigpapi["disj_pair"], screen)
    from scipy.stats import spearmanr

    rho_single = spearmanr(mmd, np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))[0]
    rho_add = spearmanr(mmd, np.linalg.norm(delta, axis=1))[0]
    print(f"\nBig Papi: Spearman(MMD, |a||b|) = {rho_single:.3f}; Spearman(MMD, additivity) = {rho_add:.3f}")
    assert rho_single > rho_add + 0.2


def test_bigpapi_mmd_large_bandwidth_limit_is_additivity(x64):
    """As the bandwidth grows, the MMD becomes the mean-difference statistic, i.e. additivity.

    With ``k = exp(-r^2 / (2 s^2)) = 1 - r^2 / (2 s^2) + O(s^-4)``, the block estimator gives
    ``4 s^2 MMD^2 -> |delta|^2 - sum_g tr(S_g) / n_g`` over the four groups
    ``g in {ij, 0, i, j}`` (``delta = mu_ij - mu_i - mu_j + mu_0`` from sample means, ``S_g``
    the unbiased covariances): the squared additivity score less its noise bias. Checked in
    float64 against NumPy at ``s = 1e4`` (remainder ``O(r^4 / s^2)`` below 1e-3 here), then
    the four SL pairs' ranks along a path of bandwidths are printed: they improve towards the
    additivity ranks, and all four are in the top decile at the limit.
    """
    screen = pj.datasets.bigpapi(dtype=np.float64)
    s = 1e4
    res = pj.disjointedness_scores(screen, bandwidth=s, n_permutations=0)
    got = 4 * s * s * _pair_values(res, screen)
    _, _, delta = _single_effects(screen)
    groups = [screen.group(g).astype(np.float64) for g in range(screen.n_groups)]
    noise = np.array([np.trace(np.cov(x.T)) / len(x) for x in groups])
    want = (delta**2).sum(1) - noise[screen.pair_groups].sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    ranks_limit = pj.datasets.known_pair_ranks(res, SL_PAIRS)
    assert (ranks_limit <= _top_decile(325)).all(), ranks_limit
    glob = pj.disjointedness_scores(screen, bandwidth="global", n_permutations=0).columns["bandwidth"][0]
    for mult in (1, 4, 32):
        r = pj.datasets.known_pair_ranks(pj.disjointedness_scores(screen, bandwidth=mult * glob, n_permutations=0), SL_PAIRS)
        print(f"\nBig Papi MMD, fixed bandwidth {mult} x global median ({mult * glob:.1f}): {_fmt(SL_PAIRS, r, 325)}")
    print(f"Big Papi MMD, bandwidth {s:g} (additivity limit): {_fmt(SL_PAIRS, ranks_limit, 325)}")


def test_bigpapi_knn_separability_ranks_below_additivity(bigpapi):
    """k-NN separability does worse than additivity on every known pair.

    Reasons: the readout is nearly one-dimensional (one direction carries 91% of the single
    shifts' variance), so every pair of active genes shares a latent factor and is
    inseparable by Thm. 3.6 (for Gaussian shifts the population score is
    ``|a^T Sigma^-1 b|``); and KL(p0 || p_ij) is estimated from 16-18 guide pairs against
    107-108 for the singles. Each gap is tens of ranks or more.
    """
    screen = bigpapi["screen"]
    res = pj.separability_scores(screen, estimator="knn", k=1)
    ranks = pj.datasets.known_pair_ranks(res, SL_PAIRS)
    add = pj.datasets.known_pair_ranks(bigpapi["additivity"], SL_PAIRS)
    print(f"\nBig Papi separability (k-NN, k=1) ranks: {_fmt(SL_PAIRS, ranks, 325)}")
    assert np.isfinite(ranks).all()
    assert (ranks > add).all(), (ranks, add)


# ----------------------------------------------------------------------------- SLKB
def test_slkb_disjointedness_against_authors_scores_and_corum(shared_dir):
    screen = pj.datasets.slkb_22rv1()
    genes, S = pj.datasets.slkb_22rv1_scores()
    assert tuple(genes) == screen.perturbations
    res = pj.disjointedness_scores(screen, bandwidth="pair", n_permutations=0)
    assert np.isfinite(res.score).sum() == 1225
    rho = pj.datasets.score_correlation(res, S)
    rho_abs = pj.datasets.score_correlation(res, S, transform=np.abs)
    from scipy.stats import spearmanr

    iu = np.triu_indices(50, k=1)
    np.testing.assert_allclose(rho, spearmanr(res.matrix[iu], S[iu])[0], rtol=1e-10)
    corum = pj.datasets.corum_pairs(shared_dir / "data" / "known_interactions" / "corum_core_human_complexes.tsv", genes)
    enr = pj.datasets.known_pair_enrichment(res, corum, top_fraction=0.05)
    p_exact = sum(math.comb(enr.n_known, x) * math.comb(enr.n_pairs - enr.n_known, enr.n_top - x)
                  for x in range(enr.hits, min(enr.n_known, enr.n_top) + 1)) / math.comb(enr.n_pairs, enr.n_top)
    print(f"\nSLKB 22Rv1 disjointedness: Spearman with SL score {rho:+.3f}, with |SL score| {rho_abs:+.3f} "
          f"(negative SL score = synthetic lethal; our score is unsigned)")
    print(f"SLKB CORUM co-complex pairs in our top 5%: {enr.hits} of {enr.n_known} (top set {enr.n_top} of {enr.n_pairs}; "
          f"chance {enr.expected:.2f}; hypergeometric p = {enr.p_value:.3f})")
    assert enr.n_known == len(corum) and enr.n_top == math.ceil(0.05 * 1225)
    np.testing.assert_allclose(enr.p_value, p_exact, rtol=1e-10)
    assert np.isfinite(rho) and np.isfinite(rho_abs)


# ----------------------------------------------------------------------------- Korkut
def test_korkut_additivity_matches_float64_numpy(x64):
    screen = pj.datasets.korkut2015(dtype=np.float64)
    res = pj.additivity_scores(screen)
    mu = {screen.conditions[g]: screen.group(g).astype(np.float64).mean(0) for g in range(screen.n_groups)}
    names = screen.perturbations
    want = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j and f"{a}+{b}" in mu:
                want[i, j] = want[j, i] = np.linalg.norm(mu[f"{a}+{b}"] - mu[a] - mu[b] + mu["ctrl"])
    assert np.isfinite(want).sum() == 2 * len(screen.pairs)
    np.testing.assert_allclose(res.matrix, want, rtol=1e-12, equal_nan=True)
    top = res.top(5)
    print("\nKorkut 2015 additivity, top pairs: " + ", ".join(f"{a}+{b} {s:.2f}" for a, b, s in top[["a", "b", "score"]].values))
    # float32 default loader within float32 accuracy of the reference
    res32 = pj.additivity_scores(pj.datasets.korkut2015())
    np.testing.assert_allclose(res32.matrix, want, rtol=1e-4, atol=1e-5, equal_nan=True)
