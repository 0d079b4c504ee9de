"""float64 NumPy oracles for the disjointedness tests.

The D.1.3 screens of the tests come from the project's generator,
``pj.synthetic.disjointedness_mixture``.
"""

from __future__ import annotations

import numpy as np


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
