"""Exploration of the real screens for issue 7 (part 2 preparation). Float64 NumPy only.

Run from the repository root:  PYTHONPATH=. python notes/data_explore.py [--shared ../shared/data]
Prints group sizes, CORUM coverage, data oddities, and quick float64 additivity /
disjointedness rankings of the Big Papi known synthetic-lethal pairs. Takes ~20 s on a CPU.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import pairint_jax as pj


def sizes(screen) -> str:
    c, k = screen.counts, screen.kinds
    out = []
    for name, sel in (("control", k == 0), ("singles", k == 1), ("doubles", k == 2)):
        v = c[sel]
        out.append(f"{name}: n={len(v)} min={v.min()} median={int(np.median(v))} max={v.max()}")
    hist = pd.Series(c[k == 2]).value_counts().sort_index().to_dict()
    return "; ".join(out) + f"\n    doubles size histogram {hist}"


def additivity(screen) -> np.ndarray:
    mu = np.stack([screen.group(g).astype(np.float64).mean(0) for g in range(screen.n_groups)])
    ij, c0, i, j = screen.pair_groups.T
    return np.linalg.norm(mu[ij] - mu[i] - mu[j] + mu[c0], axis=1)


def _kbar(K, same):
    if same:
        n = K.shape[0]
        return (K.sum() - np.trace(K)) / (n * (n - 1))
    return K.mean()


def disjointedness(screen, bandwidth="pair") -> np.ndarray:
    """Block-form unbiased MMD^2 between 1/2(p_ij+p_0) and 1/2(p_i+p_j), RBF, median heuristic."""
    x = [screen.group(g).astype(np.float64) for g in range(screen.n_groups)]
    if bandwidth == "global":
        allx = screen.x.astype(np.float64)
        sub = allx[np.random.default_rng(0).choice(len(allx), min(2000, len(allx)), replace=False)]
        d = np.sqrt(((sub[:, None] - sub[None]) ** 2).sum(-1))
        s_glob = np.median(d[np.triu_indices(len(sub), 1)])
    out = []
    for gij, g0, gi, gj in screen.pair_groups:
        A, B = np.concatenate([x[gij], x[g0]]), np.concatenate([x[gi], x[gj]])
        if bandwidth == "pair":
            s = np.median(np.sqrt(((A[:, None] - B[None]) ** 2).sum(-1)))
        else:
            s = s_glob
        k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * s * s))  # noqa: E731
        X = {"ij": x[gij], "0": x[g0], "i": x[gi], "j": x[gj]}
        kb = lambda p, q: _kbar(k(X[p], X[q]), p == q)  # noqa: E731
        m = 0.25 * (kb("ij", "ij") + kb("0", "0") + 2 * kb("ij", "0")) + 0.25 * (kb("i", "i") + kb("j", "j") + 2 * kb("i", "j")) - 0.5 * (kb("ij", "i") + kb("ij", "j") + kb("0", "i") + kb("0", "j"))
        out.append(m)
    return np.asarray(out)


def ranks(screen, score, pairs) -> list[int]:
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(score), int)
    rank[order] = np.arange(1, len(score) + 1)
    names = screen.perturbations
    where = {(names[i], names[j]): r for (i, j), r in zip(screen.pairs, rank)}
    return [where[tuple(sorted(p))] for p in pairs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data")
    args = ap.parse_args()
    corum = pathlib.Path(args.shared) / "known_interactions" / "corum_core_human_complexes.tsv"

    print("== Big Papi")
    bp = pj.datasets.bigpapi(dtype=np.float64)
    print("   ", sizes(bp))
    raw = pd.read_csv(pathlib.Path(args.shared) / "najm2018_bigpapi" / "bigpapi_lfcs.csv.gz")
    print(f"    raw rows {len(raw)}, U6 guides {raw['U6 Sequence'].nunique()}, H1 guides {raw['H1 Sequence'].nunique()}, "
          f"same-gene rows dropped {int(((raw['U6 gene'] == raw['H1 gene']) & ~raw['U6 gene'].isin(pj.datasets.BIGPAPI_CONTROLS)).sum())}, "
          f"NaNs {int(raw.isna().sum().sum())}, duplicated guide pairs {int(raw.duplicated(['U6 Sequence', 'H1 Sequence']).sum())}")
    a = additivity(bp)
    print(f"    additivity ranks of {pj.datasets.BIGPAPI_SYNTHETIC_LETHAL} of {len(a)}: {ranks(bp, a, pj.datasets.BIGPAPI_SYNTHETIC_LETHAL)}")
    top = np.argsort(-a)[:12]
    print("    additivity top 12:", [f"{bp.perturbations[i]}-{bp.perturbations[j]}" for i, j in bp.pairs[top]])
    for bw in ("pair", "global"):
        d = disjointedness(bp, bw)
        print(f"    disjointedness ({bw} median bandwidth) ranks: {ranks(bp, d, pj.datasets.BIGPAPI_SYNTHETIC_LETHAL)}")
    bp25 = pj.datasets.bigpapi(keep_eef2=False, dtype=np.float64)
    print(f"    keep_eef2=False: additivity ranks of {len(bp25.pairs)}: {ranks(bp25, additivity(bp25), pj.datasets.BIGPAPI_SYNTHETIC_LETHAL)}")
    cp = pj.datasets.corum_pairs(corum, bp.perturbations, as_names=True)
    in_corum = sorted({g for p in cp for g in p})
    print(f"    CORUM: {len(in_corum)} of {bp.n_perturbations} genes in a co-complex pair with another screen gene; pairs: {cp}")

    print("== SLKB 22Rv1")
    sl = pj.datasets.slkb_22rv1(dtype=np.float64)
    print("   ", sizes(sl))
    genes, S = pj.datasets.slkb_22rv1_scores()
    assert tuple(genes) == sl.perturbations
    a = additivity(sl)
    sc = np.array([S[i, j] for i, j in sl.pairs])
    mu = np.stack([sl.group(g).mean(0) for g in range(sl.n_groups)])
    ij, c0, i, j = sl.pair_groups.T
    signed = (mu[ij] - mu[i] - mu[j] + mu[c0]).mean(1)
    print(f"    Spearman(signed additive GI (mean of replicates), SL_score) = {spearmanr(signed, sc)[0]:.3f}")
    print(f"    Spearman(additivity, |SL_score|) = {spearmanr(a, np.abs(sc))[0]:.3f}")
    print(f"    Spearman(additivity, -SL_score) = {spearmanr(a, -sc)[0]:.3f}; SL calls (score < {pj.datasets.SLKB_SL_CUTOFF}): {int((sc < pj.datasets.SLKB_SL_CUTOFF).sum())}")
    cp = pj.datasets.corum_pairs(corum, sl.perturbations, as_names=True)
    print(f"    CORUM: {len(cp)} co-complex pairs among the 50 genes: {cp}")
    print(f"    lfc rep1 vs rep2 Pearson r over guide pairs: {np.corrcoef(sl.x.T)[0, 1]:.3f}")

    print("== Norman 2019")
    g, M = pj.datasets.norman2019_gi()
    cp = pj.datasets.corum_pairs(corum, g)
    iu = np.triu_indices(len(g), 1)
    print(f"    {len(g)} genes, GI range [{np.nanmin(M):.2f}, {np.nanmax(M):.2f}], CORUM pairs {len(cp)}; "
          f"top-5% |GI| threshold {np.quantile(np.abs(M[iu]), 0.95):.2f}")
    if len(cp):
        absgi = np.abs(M[iu])
        hit = np.zeros_like(M, bool); hit[cp[:, 0], cp[:, 1]] = True
        print(f"    CORUM pairs in top 5% of |GI|: {int((hit[iu] & (absgi >= np.quantile(absgi, 0.95))).sum())} of {len(cp)}")

    print("== Korkut 2015")
    ko = pj.datasets.korkut2015(dtype=np.float64)
    a = additivity(ko)
    top = np.argsort(-a)[:8]
    print("    additivity top 8:", [(f"{ko.perturbations[i]}+{ko.perturbations[j]}", round(float(a[t]), 2)) for t, (i, j) in zip(top, ko.pairs[top])])


if __name__ == "__main__":
    main()
