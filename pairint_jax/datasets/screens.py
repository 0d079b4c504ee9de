"""Real screens as :class:`~pairint_jax.Screen` objects: SLKB 22Rv1, Big Papi, Korkut 2015.

Each loader reads a small file bundled with the package (see
``pairint_jax/datasets/data/README.md`` for the source, commit, licence and processing of
each) or, with ``path=``, the raw source file, and returns a ``Screen`` whose labels are
``ctrl``, ``A`` and ``A+B``. With ``return_info=True`` it also returns a
:class:`~pairint_jax.datasets.ScreenInfo` whose ``obs`` table is aligned with
``screen.x`` (guides, orientation, raw counts, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pairint_jax._validate import positive_int
from pairint_jax.datasets._common import build_screen, bundled, check_columns, resolve_dtype, user_path
from pairint_jax.datasets._prepare import KORKUT_TARGETS, korkut_raw_frame
from pairint_jax.screen import MIN_OBSERVATIONS

__all__ = [
    "BIGPAPI_CELL_LINES",
    "BIGPAPI_CONTROLS",
    "BIGPAPI_SYNTHETIC_LETHAL",
    "KORKUT_TARGETS",
    "SLKB_SAFE_PREFIX",
    "bigpapi",
    "korkut2015",
    "slkb_22rv1",
]

#: Prefix of the safe-targeting control "genes" of the SLKB 22Rv1 screen (9 of them, 25 guides).
SLKB_SAFE_PREFIX = "0Safe-safe"
_SLKB_SAMPLES = ("T0_1", "T0_2", "T12_1", "T12_2")
_SLKB_SOURCE = (
    "SLKB demo screen (22Rv1, PMID 36060092), PyPI SLKB==1.0.11 demo_data.pickle (GPL-3.0); "
    "cite the SLKB paper and the original study."
)

#: Negative-control "genes" of Big Papi: guides in an HPRT intron, 6T (non-targeting) and CD81.
BIGPAPI_CONTROLS = ("HPRT intron", "6T", "CD81")
#: The six cell lines of Big Papi, in the order of the readout columns.
BIGPAPI_CELL_LINES = ("786O", "A375", "A549", "HT29", "Meljuso", "OVCAR8")
#: Known paralog synthetic-lethal pairs of Big Papi (Najm et al. 2018).
BIGPAPI_SYNTHETIC_LETHAL = (("MAPK1", "MAPK3"), ("BCL2L1", "MCL1"), ("BCL2L1", "BCL2L2"), ("MAP2K1", "MAP2K2"))
_BIGPAPI_SOURCE = (
    "Najm et al. 2018 Nat Biotechnol 36:179 (Big Papi); LFCs processed by P. DeWeirdt, "
    "github.com/PeterDeWeirdt/bigpapi @ 62fec3556a6dc88bf4407705ececa5fcaaf14c43 (no licence file)."
)
_KORKUT_SOURCE = (
    "Korkut et al. 2015 eLife 4:e04640 (CC-BY 4.0), as shipped in github.com/sanderlab/CellBox "
    "@ 6bed6b941dad7c668f2f0d0daeb99ada2189b85d (MIT); cite Korkut 2015 and Yuan et al. 2021."
)
_KORKUT_PHENOTYPES = ("G2M", "G1arrest", "G2arrest", "Sarrest", "cellviab")


# ---------------------------------------------------------------------------- SLKB 22Rv1
def _read_slkb_counts(path) -> pd.DataFrame:
    frame = pd.read_csv(bundled("slkb_22rv1_counts.csv.gz") if path is None else user_path(path))
    if "count_replicates" in frame.columns and not set(_SLKB_SAMPLES) <= set(frame.columns):
        # Raw SLKB layout: one ';'-separated string of the four counts.
        check_columns(frame, ["study_conditions"], "the SLKB counts file")
        conds = set(frame["study_conditions"].astype(str))
        if conds != {";".join(_SLKB_SAMPLES)}:
            raise ValueError(f"SLKB study_conditions are {sorted(conds)[:3]}; expected {';'.join(_SLKB_SAMPLES)!r}.")
        counts = frame["count_replicates"].astype(str).str.split(";", expand=True)
        if counts.shape[1] != 4:
            raise ValueError(f"count_replicates has {counts.shape[1]} fields per row; expected 4 ({_SLKB_SAMPLES}).")
        frame = frame.assign(**{s: counts[k].astype(np.int64) for k, s in enumerate(_SLKB_SAMPLES)})
    check_columns(frame, ["guide_1", "guide_2", "gene_1", "gene_2", *_SLKB_SAMPLES], "the SLKB counts file")
    return frame[["guide_1", "guide_2", "gene_1", "gene_2", *_SLKB_SAMPLES]].reset_index(drop=True)


def slkb_22rv1(*, path=None, pseudocount: float = 1.0, dtype=np.float32, return_info: bool = False):
    """The SLKB 22Rv1 double-knockout screen, one observation per guide pair.

    Readout: for replicate ``r`` in {1, 2} and guide pair ``g``, the log2 fold change of
    day 12 against day 0, centred on the safe-targeting controls,

        raw_r(g) = log2(T12_r(g) + c) - log2(T0_r(g) + c)
        lfc_r(g) = raw_r(g) - median_{g' in control} raw_r(g')

    with pseudo-count ``c`` (default 1 read). Sequencing depth needs no separate step:
    it is a per-replicate constant in ``raw_r`` and the median subtraction removes it.
    Each observation is the replicate vector ``[lfc_1, lfc_2]``.

    Conditions (the guide pairs of ``counts_ref``, both vector orientations pooled):

    * ``ctrl``: safe-targeting x safe-targeting guides (614 pairs, a guide paired with
      itself included);
    * single ``A``: a guide of gene ``A`` x a safe-targeting guide, either position
      (100-200 per gene);
    * double ``A+B``: a guide of ``A`` x a guide of ``B``, ``A != B`` (12-32 per pair;
      all 1,225 pairs of the 50 genes).

    The 772 same-gene pairs (two guides of one gene) are dropped: ``A+A`` is not a
    condition of the data model.

    Args:
      path: the raw SLKB ``counts_ref.csv(.gz)`` (columns ``guide_1, guide_2, gene_1,
        gene_2, count_replicates, study_conditions``); default: the bundled copy.
      pseudocount: ``c`` above, added to every count; must be > 0.
      dtype: float32 (default) or float64.
      return_info: also return a :class:`ScreenInfo` (guides, genes and counts per row).

    Returns:
      A ``Screen`` with 48,159 observations of shape ``(2,)``, 50 perturbations and
      all 1,225 pairs scorable; with ``return_info``, ``(screen, info)``.

    Example:
      >>> screen = pj.datasets.slkb_22rv1()
      >>> screen.n_perturbations, screen.feature_shape
      (50, (2,))
    """
    c = float(pseudocount)
    if not np.isfinite(c) or c <= 0:
        raise ValueError(f"pseudocount must be a positive number of reads, got {pseudocount!r}.")
    dt = resolve_dtype(dtype)
    frame = _read_slkb_counts(path)
    counts = frame[list(_SLKB_SAMPLES)].to_numpy(np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("SLKB counts must be finite and non-negative; the file has bad rows.")
    safe1 = frame["gene_1"].astype(str).str.startswith(SLKB_SAFE_PREFIX).to_numpy()
    safe2 = frame["gene_2"].astype(str).str.startswith(SLKB_SAFE_PREFIX).to_numpy()
    same = (frame["gene_1"] == frame["gene_2"]).to_numpy() & ~safe1
    control = safe1 & safe2
    if control.sum() < MIN_OBSERVATIONS:
        raise ValueError(f"the SLKB file has {int(control.sum())} safe x safe guide pairs; at least 2 are needed.")
    raw = np.log2(counts[:, 2:] + c) - np.log2(counts[:, :2] + c)  # [rows, 2]: T12_r vs T0_r
    lfc = raw - np.median(raw[control], axis=0)
    g1 = frame["gene_1"].astype(str).to_numpy(dtype=object)
    g2 = frame["gene_2"].astype(str).to_numpy(dtype=object)
    labels = np.where(control, "ctrl", np.where(safe1, g2, np.where(safe2, g1, g1 + "+" + g2)))
    keep = ~same
    return build_screen(
        lfc[keep],
        labels[keep],
        frame.loc[keep],
        perturbations=None,
        dtype=dt,
        features=("lfc_rep1", "lfc_rep2"),
        source=_SLKB_SOURCE,
        return_info=return_info,
    )


# ---------------------------------------------------------------------------- Big Papi
def bigpapi(
    *,
    path=None,
    keep_eef2: bool = True,
    controls: Sequence[str] = BIGPAPI_CONTROLS,
    cell_lines: Sequence[str] | None = None,
    dtype=np.float32,
    return_info: bool = False,
):
    """The Big Papi combinatorial knockout screen (Najm et al. 2018), one observation per guide pair.

    Each row of the source is one SpCas9 (U6) x SaCas9 (H1) guide pair; its readout is
    the vector of day-21 log2 fold changes in the six cell lines
    (:data:`BIGPAPI_CELL_LINES`), as processed by the source (no further normalisation:
    the scores compare each condition with the control group, so a common offset cancels).

    Conditions (both orientations, A on U6 x B on H1 and B on U6 x A on H1, pooled):

    * ``ctrl``: control x control guide pairs (HPRT intron, 6T and CD81 guides; 323);
    * single ``A``: a guide of ``A`` x a control guide, either side (107-108 per gene);
    * double ``A+B``: a guide of ``A`` x a guide of ``B`` (16-18 per pair).

    Same-gene pairs (a U6 and an H1 guide both on gene ``A``; 228 rows) are dropped, as
    ``A+A`` is not a condition. EEF2 is an essential gene used by the authors as a
    positive control. By default (``keep_eef2=True``) it stays a perturbation, giving
    26 genes and 325 pairs, the convention under which a float64 additivity trial ranked
    the known synthetic-lethal pairs 1, 2, 5 and 11 of 325. ``keep_eef2=False`` drops every
    guide pair involving EEF2 (25 genes, 300 pairs). EEF2 pairs dominate the top of the
    additivity ranking because EEF2's lethality saturates, so expect them there.

    Args:
      path: the raw ``bigpapi_lfcs.csv(.gz)`` (columns ``U6 Sequence, H1 Sequence, U6 gene,
        H1 gene, Day 21_<cell line> x 6``); default: the bundled copy.
      keep_eef2: keep the positive control EEF2 as a perturbation (default) or drop it.
      controls: the gene names that count as controls.
      cell_lines: a subset of :data:`BIGPAPI_CELL_LINES` to use as the readout (default all six).
      dtype: float32 (default) or float64.
      return_info: also return a :class:`ScreenInfo` (guide sequences and genes per row).

    Returns:
      A ``Screen`` with observations of shape ``(len(cell_lines),)``: 8,956 of them,
      26 perturbations and 325 scorable pairs by default; with ``return_info``,
      ``(screen, info)``.

    Example:
      >>> screen = pj.datasets.bigpapi()
      >>> screen.n_perturbations, len(screen.pairs), screen.feature_shape
      (26, 325, (6,))
    """
    dt = resolve_dtype(dtype)
    lines = BIGPAPI_CELL_LINES if cell_lines is None else tuple(str(c) for c in cell_lines)
    bad = [c for c in lines if c not in BIGPAPI_CELL_LINES]
    if bad or not lines:
        raise ValueError(f"cell_lines {bad or '[]'} are not Big Papi cell lines; choose from {BIGPAPI_CELL_LINES}.")
    controls = (controls,) if isinstance(controls, str) else tuple(controls)
    if not controls:
        raise ValueError("controls must name at least one control gene, e.g. ('HPRT intron', '6T', 'CD81').")
    frame = pd.read_csv(bundled("bigpapi_lfcs.csv.gz") if path is None else user_path(path))
    value_cols = [f"Day 21_{c}" for c in lines]
    check_columns(frame, ["U6 Sequence", "H1 Sequence", "U6 gene", "H1 gene", *value_cols], "the Big Papi LFC file")
    u6 = frame["U6 gene"].astype(str).to_numpy(dtype=object)
    h1 = frame["H1 gene"].astype(str).to_numpy(dtype=object)
    c6, c1 = np.isin(u6, controls), np.isin(h1, controls)
    if not (c6 & c1).any():
        raise ValueError(f"no guide pair has both genes in controls={controls}; check the control names.")
    keep = ~((u6 == h1) & ~c6)
    if not keep_eef2:
        keep &= (u6 != "EEF2") & (h1 != "EEF2")
    labels = np.where(c6 & c1, "ctrl", np.where(c6, h1, np.where(c1, u6, u6 + "+" + h1)))
    return build_screen(
        frame[value_cols].to_numpy(np.float64)[keep],
        labels[keep],
        frame.loc[keep, ["U6 Sequence", "H1 Sequence", "U6 gene", "H1 gene"]],
        perturbations=None,
        dtype=dt,
        features=lines,
        source=_BIGPAPI_SOURCE,
        return_info=return_info,
    )


# ---------------------------------------------------------------------------- Korkut 2015
def _read_korkut(path) -> pd.DataFrame:
    if path is None:
        src = bundled("korkut2015_rppa.csv")
    else:
        src = user_path(path)
        if src.is_dir():  # CellBox's raw data/ folder
            return korkut_raw_frame(src)
    frame = pd.read_csv(src, dtype={"condition": str, "drug_a": str, "drug_b": str}, keep_default_na=False,
                        na_values={"dose_b": [""]})  # fmt: skip
    check_columns(frame, ["condition", "drug_a", "dose_a", "drug_b", "dose_b"], "the Korkut table")
    return frame


def korkut2015(
    *,
    path=None,
    names: str = "target",
    phenotypes: bool = True,
    repeat: int = 2,
    dtype=np.float32,
    return_info: bool = False,
):
    """Korkut et al. 2015 drug-pair RPPA profiles (SKMEL-133 melanoma), one profile per condition.

    12 drugs, each alone at the dose used in the combinations and all 66 pairs; the
    readout is the log2 ratio against DMSO of 82 (phospho-)proteins plus 5 phenotypes
    (``G2M, G1arrest, G2arrest, Sarrest, cellviab``), 87-d. The control (DMSO) is the
    zero vector by construction of the data. The 11 singles measured again at twice the
    dose are dropped (a perturbation has one single condition in the data model).

    **One observation per condition.** The data model needs at least 2 observations in
    every group for a pair to be scorable, so each profile is repeated ``repeat`` times
    (default 2) and the control is ``max(repeat, 2)`` zero rows. Copies leave every
    group mean unchanged, so the additivity score is exactly
    ``|| x_ij - x_i - x_j ||_2`` (control at 0). It is **the only meaningful score here**:
    the copies have no spread, so disjointedness and separability would measure the
    copying, not the biology. ``repeat=1`` keeps one row per condition (pairs are then
    reported unscorable).

    Args:
      path: the CellBox ``data/`` folder (``expr.csv``, ``pert.csv``, ``expr_index.txt``,
        ``node_Index.csv``) or a table in the bundled layout; default: the bundled copy.
      names: ``"target"`` (default: ``MEK``, ``AKT``, ..., from the drug's target node)
        or ``"code"`` (the source's drug codes ``901``, ``AK``, ...); see :data:`KORKUT_TARGETS`.
      phenotypes: include the 5 phenotype columns (87-d, default) or only the 82 proteins.
      repeat: copies of each profile (>= 1).
      dtype: float32 (default) or float64.
      return_info: also return a :class:`ScreenInfo` (source label, drugs and doses per row).

    Returns:
      A ``Screen`` of ``78 * repeat + max(repeat, 2)`` observations of shape ``(87,)``
      (``(82,)`` without phenotypes), 12 perturbations, 66 pairs; with ``return_info``,
      ``(screen, info)``.

    Example:
      >>> screen = pj.datasets.korkut2015()
      >>> screen.n_perturbations, len(screen.pairs), screen.feature_shape
      (12, 66, (87,))
    """
    if names not in ("target", "code"):
        raise ValueError(f"names must be 'target' or 'code', got {names!r}.")
    repeat = positive_int("repeat", repeat)
    dt = resolve_dtype(dtype)
    frame = _read_korkut(path)
    features = list(frame.columns[5:])
    if len(features) != 87 or tuple(features[-5:]) != _KORKUT_PHENOTYPES:
        raise ValueError(f"the Korkut table should hold 82 proteins then {_KORKUT_PHENOTYPES}; got {len(features)} columns.")
    if not phenotypes:
        features = features[:82]
    unknown = sorted((set(frame["drug_a"]) | set(frame["drug_b"])) - set(KORKUT_TARGETS) - {""})
    if unknown:
        raise ValueError(f"unknown Korkut drug codes {unknown}; known: {sorted(KORKUT_TARGETS)}.")
    double = frame["drug_b"] != ""
    # The combination dose of each drug: the one dose it has in the doubles.
    combo = pd.concat([frame.loc[double, ["drug_a", "dose_a"]].set_axis(["drug", "dose"], axis=1),
                       frame.loc[double, ["drug_b", "dose_b"]].set_axis(["drug", "dose"], axis=1)])  # fmt: skip
    doses = combo.groupby("drug")["dose"].unique()
    if any(len(v) != 1 for v in doses):
        raise ValueError(f"a Korkut drug appears at several doses in the combinations: {doses.to_dict()}.")
    combo_dose = {d: float(v[0]) for d, v in doses.items()}
    at_combo = frame["dose_a"].to_numpy() == frame["drug_a"].map(combo_dose).to_numpy()
    keep = (double | at_combo).to_numpy()
    rows = frame.loc[keep].reset_index(drop=True)
    rename = (lambda d: KORKUT_TARGETS[d]) if names == "target" else (lambda d: d)
    labels = [rename(a) if b == "" else f"{rename(a)}+{rename(b)}" for a, b in zip(rows["drug_a"], rows["drug_b"])]
    n_ctrl = max(int(repeat), MIN_OBSERVATIONS)
    x = np.concatenate([np.zeros((n_ctrl, len(features))), np.repeat(rows[features].to_numpy(np.float64), repeat, 0)])
    obs = pd.concat([
        pd.DataFrame({"source_condition": ["DMSO"] * n_ctrl, "drug_a": "", "dose_a": np.nan, "drug_b": "", "dose_b": np.nan}),
        rows[["condition", "drug_a", "dose_a", "drug_b", "dose_b"]].rename(columns={"condition": "source_condition"})
        .loc[np.repeat(np.arange(len(rows)), repeat)],
    ], ignore_index=True)  # fmt: skip
    obs["copy"] = np.concatenate([np.arange(n_ctrl), np.tile(np.arange(repeat), len(rows))])
    return build_screen(
        x,
        ["ctrl"] * n_ctrl + list(np.repeat(np.asarray(labels, dtype=object), repeat)),
        obs,
        perturbations=None,
        dtype=dt,
        features=features,
        source=_KORKUT_SOURCE,
        return_info=return_info,
    )
