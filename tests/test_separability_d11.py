"""Paper Fig. 2 (left and middle) on the D.1.1 tabular screen: A-B and C-D, the only
inseparable pairs, score above every other pair with both estimators.

CI sizes and why:
* one screen of 5,000 observations per condition (11 conditions, d = 16), generator
  key 0. The digest reports k-NN ranking A-B and C-D top-2 in 8/10 generator seeds at
  2,000 per condition and 10/10 at 5,000. With this package's float32 estimator and
  the generator's defaults we saw 10/10 keys (0-9) at both sizes, but with margins
  (lowest inseparable score / highest separable score) down to 1.04 at 2,000 against
  1.15 at 5,000; key 0 has 1.8 at 5,000.
* NRE + SMILE: MLP (128, 64), 20 epochs of batch 256 at lr 3e-3 on the 70% training
  split (38,500 rows), tau = 5 on the held-out 30%. Offline with these settings:
  10/10 generator keys (0-9) pass at 5,000 per condition, lowest margin 1.3 (the
  noise is SMILE's, at KLs of 9-13.5 where tau = 5 clips). ~5 s on 2 cores.
The test is deterministic (fixed keys); a failure means the estimators changed.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import pairint_jax as pj

INSEPARABLE = {("A", "B"), ("C", "D")}


@pytest.fixture(scope="module")
def d11():
    screen, truth = pj.synthetic.separability_tabular(jax.random.key(0), n_per_condition=5000)
    pairs = {tuple(sorted((screen.perturbations[i], screen.perturbations[j]))) for i, j in zip(*np.nonzero(np.triu(truth)))}
    assert pairs == INSEPARABLE
    return screen


def _check_top2(res):
    df = res.to_frame()
    assert (df.reason == "").all() and np.isfinite(df.score).all()
    ranked = df.sort_values("score", ascending=False)
    top2 = {tuple(sorted(p)) for p in zip(ranked.a[:2], ranked.b[:2])}
    assert top2 == INSEPARABLE, ranked
    inseparable = df.apply(lambda r: (r.a, r.b) in INSEPARABLE, axis=1)
    return df.score[inseparable].min() / df.score[~inseparable].max()


def test_knn_ranks_inseparable_pairs_first(d11):
    margin = _check_top2(pj.separability_scores(d11, estimator="knn"))
    assert margin > 1.1


def test_nre_smile_ranks_inseparable_pairs_first(d11):
    res = pj.separability_scores(d11, estimator="nre", epochs=20, batch_size=256, learning_rate=3e-3, key=jax.random.key(0))
    _check_top2(res)
    # The KLs themselves sit near SMILE's population values for the exact log-ratio
    # (4.88 for A, C, D: KL 4.5 in the latents, biased up by tau = 5): within 1.5 nats.
    kl = res.settings["condition_kl"]
    for cond in ("A", "C", "D", "C+D"):
        assert kl[cond] == pytest.approx(4.88, abs=1.5)
