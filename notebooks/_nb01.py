"""Cells of 01_quickstart.ipynb: score a synthetic screen and read the table."""

CELLS = [
    ("md", r"""
# 01 · Quickstart: score a screen and read the table

A **screen** is a set of observations (cells, guide pairs, images, embeddings) grouped by
condition: the control, single perturbations `A`, and double perturbations `A+B`.
`pairint_jax` asks, for every pair `(A, B)`, whether the two perturbations interact, and
answers with one score per pair.

This notebook uses a synthetic screen whose true interactions are known, so that we can
check the answer:

1. build a screen,
2. score every pair with the **disjointedness** (mixture MMD²) and **additivity** scores,
3. read the ranked table and the heatmap,
4. do the same with your own arrays.

It runs in under a minute on a laptop CPU.
"""),
    ("code", r"""
# Settings. PAIRINT_NB_SMALL=1 (used by the tests) shrinks everything.
import os

SMALL = os.environ.get("PAIRINT_NB_SMALL") == "1"
N_PERTURBATIONS = 8 if SMALL else 20     # perturbations A..; all n(n-1)/2 doubles are measured
N_PER_CONDITION = 60 if SMALL else 200   # observations per condition
N_PERMUTATIONS = 20 if SMALL else 200    # permutation draws per pair for the p-values
SEED = 0
"""),
    ("code", r"""
%matplotlib inline
import jax
import numpy as np

import pairint_jax as pj
from pairint_jax.plotting import plot_pair_heatmap

print("pairint_jax", pj.__version__, "| jax", jax.__version__, "| device:", jax.devices()[0].platform)
"""),
    ("md", r"""
## 1. A screen

`pj.synthetic.latent_factor` draws a screen from a mixture of latent "programs": perturbations
in the same module act on the same program and interact there; the others act on
separate programs. `truth[i, j]` is True for the interacting pairs.
"""),
    ("code", r"""
screen, truth, model = pj.synthetic.latent_factor(
    jax.random.key(SEED), n_perturbations=N_PERTURBATIONS, n_per_condition=N_PER_CONDITION, return_model=True
)
# the generator's modules, for ordering the heatmaps (-1: a perturbation outside every module)
modules = {p: (f"module {m + 1}" if m >= 0 else "loners") for p, m in zip(screen.perturbations, model.module)}
print(screen.summary())
print("truly interacting pairs:", int(np.triu(truth).sum()))
"""),
    ("md", r"""
A `Screen` keeps the observations sorted by condition, with the bookkeeping every score needs:
"""),
    ("code", r"""
print("observations x:", screen.x.shape)                 # [N, d]
print("perturbations:", screen.perturbations[:6], "...")
print("conditions:", screen.conditions[:4], "...", screen.conditions[-2:])  # control, singles, doubles
print("observations per condition:", screen.counts[:4], "...")
print("scorable pairs (i, j):", screen.pairs.shape)
"""),
    ("md", r"""
## 2. Disjointedness: is the double the superposition of the two singles?

For each pair, `score = MMD²(½ p_AB + ½ p_ctrl, ½ p_A + ½ p_B)`. It is near 0 when A and B act
on disjoint parts of the system (the double then looks like "A's effect plus B's effect"), and
large when they interact. All pairs run in one compiled pass; the p-values come from a
permutation test and the q-values control the false discovery rate across pairs.
"""),
    ("code", r"""
res = pj.disjointedness_scores(screen, n_permutations=N_PERMUTATIONS, key=jax.random.key(1))
res
"""),
    ("code", r"""
res.top(10)
"""),
    ("md", r"""
How to read the table:

| column | meaning |
|---|---|
| `rank` | 1 = the strongest evidence of interaction |
| `a`, `b` | the pair |
| `score` | the mixture MMD² (unitless; compare within a screen, not across screens) |
| `p_value` | permutation p-value (smallest possible: `1 / (n_permutations + 1)`) |
| `q_value` | Benjamini-Hochberg q-value across the tested pairs (`res.with_correction("holm")` for Holm) |
| `bandwidth` | the RBF kernel bandwidth used for the pair (median heuristic) |
| `significant` | `q_value <= alpha` (`res.to_frame(alpha=0.05)`) |
| `p_floor` | the p-value sits at `1 / (n_permutations + 1)`: more permutations could make it smaller |
| `reason` | empty when scored; otherwise why the pair could not be scored |

`res.to_frame()` has every measured pair, best first (`all_pairs=True` adds the pairs the screen
never ran), `res.matrix` the symmetric `[n, n]` matrix (`res.to_matrix_frame()` with labels), and
`res.rank("P00", "P01")` the rank of one pair.
"""),
    ("code", r"""
frame = res.to_frame()
called = frame[frame.significant]
true_pairs = {(screen.perturbations[i], screen.perturbations[j]) for i, j in zip(*np.nonzero(np.triu(truth)))}
hits = sum((a, b) in true_pairs for a, b in zip(called.a, called.b))
print(f"{len(called)} pairs called at q <= 0.05; {hits} of them truly interact; "
      f"{len(true_pairs)} true pairs in all")
"""),
    ("md", r"""
## 3. Additivity, and how well each score recovers the truth

The additivity score is the size of the non-additive part of the mean shift,
`|| (mu_AB - mu_ctrl) - (mu_A - mu_ctrl) - (mu_B - mu_ctrl) ||`. It is fast and reads only
means; the disjointedness score sees whole distributions.
"""),
    ("code", r"""
add = pj.additivity_scores(screen)


def auroc(scores, truth):
    # area under the ROC curve of the pair scores for the true pairs (upper triangle)
    from scipy.stats import rankdata
    iu = np.triu_indices(len(truth), k=1)
    s, t = scores[iu], truth[iu]
    ok = np.isfinite(s)
    r = rankdata(s[ok])
    pos = t[ok].sum()
    return (r[t[ok]].sum() - pos * (pos + 1) / 2) / (pos * (~t[ok]).sum())


for name, r in [("disjointedness", res), ("additivity", add)]:
    print(f"{name:15s} AUROC against the truth: {auroc(r.matrix, truth):.3f}")
"""),
    ("code", r"""
from matplotlib.figure import Figure

fig = Figure(figsize=(13, 5.8), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
plot_pair_heatmap(res, ax=ax1, groups=modules, highlight=sorted(true_pairs), title="disjointedness (MMD²)")
plot_pair_heatmap(add, ax=ax2, groups=modules, highlight=sorted(true_pairs), title="additivity")
fig
"""),
    ("md", r"""
The perturbations are ordered by the generator's modules and the red outlines are the true
interactions: both scores light up the pairs inside each module.

## 4. Your own data

Any array of observations with one label per row is a screen. Labels name the control
(`"ctrl"` by default), the singles (`"A"`) and the doubles (`"A+B"`). Files (`.h5ad`, `.npz`,
`.parquet`) load with `pj.read_screen(path)`, and real screens ship with the package
(`pj.datasets`, see notebook 03).
"""),
    ("code", r"""
rng = np.random.default_rng(0)
labels = np.repeat(["ctrl", "A", "B", "C", "A+B", "A+C"], 40)
shift = {"ctrl": 0.0, "A": 1.0, "B": 1.0, "C": -1.0, "A+B": 4.0, "A+C": 0.0}   # A+B is not additive
x = rng.normal(size=(len(labels), 3)) + np.array([shift[l] for l in labels])[:, None]
mine = pj.Screen.from_arrays(x, labels)
print(mine.summary())
pj.additivity_scores(mine).to_frame()
"""),
    ("md", r"""
`B+C` was never measured, so it has no score and its `reason` says why; the scores never
return a silent NaN.

Next: `02_paper_synthetic` reproduces the paper's synthetic figures, and `03_real_screens`
validates the scores on published screens.
"""),
]
