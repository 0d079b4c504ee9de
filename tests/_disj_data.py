"""Small synthetic screens for the disjointedness tests (NumPy, seeded).

``d13_screen`` follows ``DIGEST.md`` D.1.3 (a 1-D latent mixture pushed through a
random 10-layer LeakyReLU MLP); it is used until/unless ``pj.synthetic`` provides
the project's generator. ``disjoint_mixture_screen`` makes screens where every pair
is disjoint (each perturbation moves its own mixture component): all pairs are null.
"""

from __future__ import annotations

import numpy as np

import pairint_jax as pj

D13_PERTURBATIONS = tuple("ABCDEFG")
D13_INTERACTING = (("D", "E"), ("F", "G"))


def _mlp(rng, d_in, d_out, width=16, depth=10):
    dims = [d_in] + [width] * (depth - 1) + [d_out]
    layers = [(rng.normal(size=(a, b)) / np.sqrt(a), 0.1 * rng.normal(size=b)) for a, b in zip(dims[:-1], dims[1:])]

    def f(z):
        h = z
        for k, (w, b) in enumerate(layers):
            h = h @ w + b
            if k < len(layers) - 1:
                h = np.where(h > 0, h, 0.2 * h)
        return h

    return f


def d13_screen(n_per_condition: int, seed: int = 0, d_out: int = 8):
    """The D.1.3 screen: control, 7 singles, all 21 doubles; interacting pairs D-E and F-G."""
    rng = np.random.default_rng(seed)
    weights = np.array([1, 1, 1, 1, 2, 2]) / 8.0
    normal = lambda m, s: ("n", m, s)  # noqa: E731
    cauchy = lambda m, s: ("c", m, s)  # noqa: E731
    single = {
        "A": {1: normal(5, 1)},
        "B": {2: normal(10, 1)},
        "C": {3: normal(-5, 5)},
        "D": {4: normal(0, 5)},
        "E": {4: normal(-10, 5)},
        "F": {5: cauchy(15, 1)},
        "G": {5: cauchy(-15, 1)},
    }
    joint = {("D", "E"): {4: normal(10, 5)}, ("F", "G"): {5: cauchy(20, 1)}}
    g = _mlp(rng, 1, d_out)
    xs, labels = [], []
    names = D13_PERTURBATIONS
    conds = [()] + [(a,) for a in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    for cond in conds:
        comps = {}
        for p in cond:
            comps.update(single[p])
        if cond in joint:
            comps.update(joint[cond])
        k = rng.choice(6, size=n_per_condition, p=weights)
        z = rng.normal(size=n_per_condition)
        for c, (kind, m, s) in comps.items():
            hit = k == c
            draw = rng.normal(size=hit.sum()) if kind == "n" else rng.standard_cauchy(size=hit.sum())
            z[hit] = m + s * draw
        xs.append(g(z[:, None]))
        labels += ["ctrl" if not cond else "+".join(cond)] * n_per_condition
    return pj.Screen.from_arrays(np.concatenate(xs), labels, warn=False)


def disjoint_mixture_screen(
    n_perturbations: int, n_per_condition: int, seed: int, shift: float = 4.0, dim: int = 2, interact: float = 0.0
):
    """Every pair disjoint: perturbation p moves mixture component p (weight 1/(n+1)) by ``shift``.

    With ``interact > 0`` the double ``P0+P1`` also moves component 1 by ``interact`` more
    along P0's direction (a non-disjoint, weakly interacting pair); all other pairs stay null.
    """
    rng = np.random.default_rng(seed)
    n = n_perturbations
    directions = rng.normal(size=(n, dim))
    directions *= shift / np.linalg.norm(directions, axis=1, keepdims=True)
    names = [f"P{k}" for k in range(n)]
    conds = [()] + [(a,) for a in range(n)] + [(a, b) for a in range(n) for b in range(a + 1, n)]
    xs, labels = [], []
    for cond in conds:
        comp = rng.integers(0, n + 1, size=n_per_condition)
        x = rng.normal(size=(n_per_condition, dim))
        for p in cond:
            x[comp == p] += directions[p]
        if cond == (0, 1) and interact:
            x[comp == 1] += interact * directions[0] / shift
        xs.append(x)
        labels += ["ctrl" if not cond else "+".join(names[p] for p in cond)] * n_per_condition
    return pj.Screen.from_arrays(np.concatenate(xs), labels, warn=False)


def brute_mmd2(xs, bandwidth: float, kernel: str) -> float:
    """float64 double loop over all observation pairs: the digest's block formula."""
    def k(a, b):
        r = float(np.sqrt(np.sum((a - b) ** 2)))
        if kernel == "rbf":
            return np.exp(-r * r / (2 * bandwidth**2))
        u = np.sqrt(5.0) * r / bandwidth
        return (1 + u + u * u / 3) * np.exp(-u)

    def kbar(a, b, same):
        tot, cnt = 0.0, 0
        for p in range(len(a)):
            for q in range(len(b)):
                if same and p == q:
                    continue
                tot += k(a[p], b[q])
                cnt += 1
        return tot / cnt

    ij, c, i, j = (np.asarray(v, np.float64) for v in xs)
    return (
        0.25 * (kbar(ij, ij, True) + kbar(c, c, True) + 2 * kbar(ij, c, False))
        + 0.25 * (kbar(i, i, True) + kbar(j, j, True) + 2 * kbar(i, j, False))
        - 0.5 * (kbar(ij, i, False) + kbar(ij, j, False) + kbar(c, i, False) + kbar(c, j, False))
    )


def exact_cross_median(xs) -> float:
    """np.median of all distances between ij u 0 and i u j (float64)."""
    a = np.concatenate([np.asarray(xs[0], np.float64), np.asarray(xs[1], np.float64)])
    b = np.concatenate([np.asarray(xs[2], np.float64), np.asarray(xs[3], np.float64)])
    return float(np.median(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))))
