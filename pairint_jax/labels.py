"""Condition labels: ``ctrl``, ``A``, ``A+B`` and their canonical form.

A label names the perturbations applied to one observation, joined by a separator
(default ``+``, the Norman et al. 2019 / GEARS convention). Control tokens inside a
label are dropped, so ``A+ctrl`` is the single ``A`` and ``ctrl+ctrl`` is the control.
Doubles are unordered: ``B+A`` is the same condition as ``A+B``.

:func:`parse_labels` parses a whole column at once and decides what to drop:

* *unassigned* observations (NaN, ``None`` or blank labels, e.g. cells without a
  guide call) are dropped and counted with ``drop_unassigned=True``;
* conditions with more perturbations than ``max_order`` (triples and up) are dropped
  and counted with ``max_order=2``;
* a column that yields no double at all, while another separator would parse it
  (``A_B``, ``A_ctrl`` read with ``sep="+"``), raises an error proposing that separator;
* a label with too many parts names the part that looks like one gene whose name
  contains the separator (``NKX2_1`` with ``sep="_"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "parse_label",
    "parse_labels",
    "format_condition",
    "as_control_set",
    "guess_separator",
    "ParsedLabels",
    "Grouping",
    "group_rows",
    "SEPARATORS",
]

#: Separators tried when a column parses into no double with the given one.
SEPARATORS = ("+", "_", "-", "|", ";", ",", ":", "/", ".", "&", " ", "__", "--")

#: Drop reasons, the keys of :attr:`ParsedLabels.dropped` and ``Screen.dropped``.
UNASSIGNED = "unassigned (empty or NaN label)"
HIGHER_ORDER = "more than two perturbations"


def as_control_set(control: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise the ``control=`` argument to a non-empty tuple of control tokens."""
    if isinstance(control, str):
        tokens = (control,)
    elif isinstance(control, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series)):
        tokens = tuple(control)
    else:
        how = "the default is control='ctrl'" if control is None else (
            f"labels are text, so pass control={str(control)!r} if that is how your control is written")
        raise TypeError(
            f"control must be a label (str) or a list of labels, got {control!r} ({type(control).__name__}); {how}."
        )
    if not tokens or any(not isinstance(t, str) or not t.strip() for t in tokens):
        raise ValueError(
            f"control must be a non-empty label or a list of non-empty labels, got {control!r}."
        )
    return tuple(t.strip() for t in tokens)


def _is_blank(label) -> bool:
    return label is None or (isinstance(label, float) and label != label) or not str(label).strip()


def _names(text: str, controls: tuple[str, ...], sep: str) -> list[str]:
    """The perturbation names of one label, in label order (no limit on their number)."""
    tokens = [t.strip() for t in text.split(sep)]
    if any(not t for t in tokens):
        raise ValueError(f"label {text!r} has an empty perturbation name around the separator {sep!r}.")
    names = [t for t in tokens if t not in controls]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"label {text!r} repeats perturbation {repeated[0]!r}; a double needs two "
            f"different perturbations (use {repeated[0]!r} alone for the single)."
        )
    return names


def _looks_like_fragment(part: str) -> bool:
    # "1" of NKX2_1, "A" of HLA_A: gene-name fragments rather than gene names.
    return part.isdigit() or len(part) <= 2


def gene_with_separator(parts: Sequence[str], sep: str, known: Iterable[str] = ()) -> str | None:
    """The adjacent parts of an over-split label that look like one name containing ``sep``.

    Args:
      parts: the label's parts after splitting on ``sep`` (controls removed).
      sep: the separator.
      known: names seen alone (as singles) elsewhere in the data, if available.

    Returns:
      The merged name (e.g. ``"NKX2_1"`` for ``("NKX2", "1", "FOXA1")``), or None when
      no merge looks likely.
    """
    known = set(known)
    best, best_score = None, 1  # a fragment (2) or both halves unknown with the rest known (2)
    for k in range(len(parts) - 1):
        a, b = parts[k], parts[k + 1]
        rest = [p for t, p in enumerate(parts) if t not in (k, k + 1)]
        score = 2 * (_looks_like_fragment(b) or _looks_like_fragment(a))
        score += bool(known) and a not in known and b not in known
        score += bool(known) and bool(rest) and all(p in known for p in rest)
        if score > best_score:
            best, best_score = f"{a}{sep}{b}", score
    return best


def _too_many(text: str, names: Sequence[str], sep: str, known: Iterable[str] = ()) -> str:
    merged = gene_with_separator(names, sep, known)
    hint = (
        f" {merged!r} looks like one gene name that contains the separator {sep!r}: relabel with a "
        "separator that no name contains (e.g. '+')."
        if merged
        else ""
    )
    return (
        f"label {text!r} has {len(names)} perturbations with sep={sep!r} "
        f"({', '.join(repr(n) for n in names)}); only the control, singles and doubles are supported.{hint} "
        "To drop higher-order conditions (counted and reported) pass max_order=2."
    )


def parse_label(label, *, control: str | Iterable[str] = "ctrl", sep: str = "+") -> tuple[str, ...]:
    """Parse one condition label into the sorted tuple of its perturbations.

    Args:
      label: a condition label such as ``"ctrl"``, ``"A"``, ``"A+B"`` or ``"B+ctrl"``.
      control: the control token, or several (e.g. ``("ctrl", "NT")``).
      sep: the separator between perturbations.

    Returns:
      ``()`` for the control, ``(a,)`` for a single, ``(a, b)`` with ``a < b`` for a double.

    Raises:
      ValueError: on an empty label, an empty name (``"A+"``), a repeated perturbation
        (``"A+A"``) or more than two perturbations (the message names a part that looks
        like a gene containing the separator, e.g. ``NKX2_1`` with ``sep="_"``).

    Example:
      >>> parse_label("B+A")
      ('A', 'B')
      >>> parse_label("A+ctrl")
      ('A',)
    """
    controls = as_control_set(control)
    if _is_blank(label):
        raise ValueError(f"empty condition label {label!r}; every observation needs a label.")
    if not sep:
        raise ValueError("sep must be a non-empty string, e.g. '+'.")
    text = str(label).strip()
    names = _names(text, controls, sep)
    if len(names) > 2:
        raise ValueError(_too_many(text, names, sep))
    return tuple(sorted(names))


def format_condition(names: tuple[str, ...], *, control: str = "ctrl", sep: str = "+") -> str:
    """Canonical label of a condition: ``control``, ``"A"`` or ``"A+B"`` (names as given)."""
    if not names:
        return control
    return sep.join(names)


class ParsedLabels(NamedTuple):
    """A label column parsed once per distinct label (see :func:`parse_labels`).

    Attributes:
      keep: ``[N]`` bool, True for the observations that stay.
      inverse: ``[N]`` index into ``names`` of each observation; ``-1`` where dropped.
      names: per distinct kept label, its sorted perturbations (``()``, ``(a,)``, ``(a, b)``).
      labels: the distinct kept labels, aligned with ``names``.
      dropped: ``((reason, n_observations, examples), ...)`` for each kind of drop.
    """

    keep: np.ndarray
    inverse: np.ndarray
    names: list[tuple[str, ...]]
    labels: list[str]
    dropped: tuple[tuple[str, int, tuple[str, ...]], ...]


def parse_labels(
    labels,
    *,
    control: str | Iterable[str] = "ctrl",
    sep: str = "+",
    drop_unassigned: bool = True,
    max_order: int | None = 2,
) -> ParsedLabels:
    """Parse a column of condition labels, dropping (and counting) what cannot enter a screen.

    Args:
      labels: ``[N]`` labels (strings; NaN/None/blank mean unassigned).
      control: the control token, or several.
      sep: the separator between the perturbations of a double.
      drop_unassigned: drop NaN/None/blank labels (counted in ``dropped``); False raises.
      max_order: ``2`` drops conditions with more than two perturbations (counted in
        ``dropped``); ``None`` raises on them.

    Returns:
      :class:`ParsedLabels`.

    Raises:
      ValueError: unassigned labels with ``drop_unassigned=False``; higher-order labels
        with ``max_order=None``; malformed labels (``"A+"``, ``"A+A"``); a column without a
        single double that another separator would parse (the message proposes it).

    Example:
      >>> p = parse_labels(["ctrl", "A", "B+A", None, "A+B+C"])
      >>> p.names, [d[:2] for d in p.dropped]
      ([(), ('A',), ('A', 'B')], [('unassigned (empty or NaN label)', 1), ('more than two perturbations', 1)])
    """
    controls = as_control_set(control)
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty string, e.g. '+', got {sep!r}.")
    if max_order not in (2, None):
        raise ValueError(f"max_order must be 2 (drop triples and up) or None (raise on them), got {max_order!r}.")
    # Factorise the raw labels (hash-based, O(N) integers; NaN/None -> -1), then clean the few
    # distinct values: no per-row strings are made, which matters for 10^5-10^6 cells.
    raw_inverse, raw_uniq = pd.factorize(np.asarray(labels, dtype=object).reshape(-1), sort=False)
    stripped = np.asarray([str(u).strip() or None for u in raw_uniq], dtype=object)
    clean_inverse, uniq = pd.factorize(stripped, sort=False)  # blank -> -1; " A" and "A" merge
    inverse = np.append(clean_inverse, -1)[raw_inverse]
    blank = inverse < 0
    dropped = []
    if blank.any():
        rows = np.flatnonzero(blank)
        if not drop_unassigned:
            raise ValueError(
                f"{len(rows)} observation(s) have an empty condition label (rows {rows[:10].tolist()}"
                f"{' ...' if len(rows) > 10 else ''}); every observation needs a label. Pass "
                "drop_unassigned=True to drop them (they are counted and reported)."
            )
        dropped.append((UNASSIGNED, len(rows), ()))
    uniq = [str(u) for u in uniq]
    split = [_names(u, controls, sep) for u in uniq]
    known = {n[0] for n in split if len(n) == 1}
    too_many = [u for u, n in enumerate(split) if len(n) > 2]
    if too_many and max_order is None:
        u = too_many[0]
        raise ValueError(_too_many(uniq[u], split[u], sep, known))
    keep_label = np.ones(len(uniq), bool)
    if too_many:
        keep_label[too_many] = False
        n_rows = int(np.isin(inverse, too_many).sum())
        dropped.append((HIGHER_ORDER, n_rows, tuple(uniq[u] for u in too_many[:5])))
    kept = np.flatnonzero(keep_label)
    remap = np.full(len(uniq) + 1, -1, np.int64)
    remap[kept] = np.arange(len(kept))
    inverse = remap[inverse]  # -1 (blank) stays -1 through remap[-1]
    names = [tuple(sorted(split[u])) for u in kept]
    out_labels = [uniq[u] for u in kept]
    if names and not any(len(n) == 2 for n in names):
        _no_doubles(out_labels, names, controls, sep)
    return ParsedLabels(keep=inverse >= 0, inverse=inverse, names=names, labels=out_labels, dropped=tuple(dropped))


def perturbation_order(names, perturbations=None, *, controls=("ctrl",), sep="+") -> tuple[str, ...]:
    """The screen's perturbation order: sorted names from ``names`` (per-label tuples), or the
    explicit ``perturbations`` after checking that it lists every name once."""
    names_in_data = sorted({n for p in names for n in p})
    if perturbations is None:
        return tuple(names_in_data)
    perts = tuple(str(p) for p in perturbations)
    if len(set(perts)) != len(perts):
        raise ValueError("perturbations= lists a name twice; give each perturbation once.")
    missing = [n for n in names_in_data if n not in set(perts)]
    if missing:
        raise ValueError(
            f"perturbations= does not list {missing[:5]} ({len(missing)} in all) that "
            "the labels use; add them or leave perturbations=None."
        )
    bad = [p for p in perts if sep in p or p in controls]
    if bad:
        raise ValueError(f"perturbation names {bad[:5]} contain the separator or a control label.")
    return perts


class Grouping(NamedTuple):
    """Observations grouped by condition (see :func:`group_rows`)."""

    keys: tuple  # [G] member tuples: (), (i,), (i, j); the control first
    conditions: tuple  # [G] canonical labels
    order: np.ndarray  # [N_kept] input row of each group-sorted row
    counts: np.ndarray  # [G] rows per group
    offsets: tuple  # [G + 1] row offsets


def group_rows(parsed: ParsedLabels, perts: Sequence[str], *, controls: tuple[str, ...], sep: str) -> Grouping:
    """Group the kept rows of ``parsed`` by condition: the control, singles, then doubles by ``(i, j)``.

    Args:
      parsed: the parsed label column (:func:`parse_labels`).
      perts: the perturbation order (:func:`perturbation_order`).
      controls, sep: the control tokens and the separator.

    Raises:
      ValueError: no observation is a control (the message lists labels seen).
    """
    index = {p: i for i, p in enumerate(perts)}
    # Group key per distinct label: tuple of perturbation indices, i < j.
    key_of_label = [tuple(sorted(index[n] for n in names)) for names in parsed.names]
    keys = sorted(set(key_of_label), key=lambda k: (len(k), k))
    if () not in keys:
        uniq = parsed.labels
        shown = ", ".join(repr(u) for u in uniq[:8]) + (" ..." if len(uniq) > 8 else "")
        raise ValueError(
            f"no control observations: no label equals {controls[0]!r} (labels seen: "
            f"{shown}). Pass control='<your control label>'."
        )
    gid_of_key = {k: g for g, k in enumerate(keys)}
    gid_of_label = np.asarray([gid_of_key[k] for k in key_of_label] + [len(keys)], dtype=np.int64)
    row_group = gid_of_label[parsed.inverse]  # dropped rows (-1) get the sentinel len(keys)
    conditions = tuple(format_condition(tuple(perts[i] for i in k), control=controls[0], sep=sep) for k in keys)
    order = np.argsort(row_group, kind="stable")[: int(parsed.keep.sum())]
    counts = np.bincount(row_group[order], minlength=len(keys))
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(counts)]))
    return Grouping(tuple(keys), conditions, order, counts, offsets)


def drop_message(dropped, sep: str) -> str:
    """One sentence per drop, for warnings and provenance."""
    parts = []
    for reason, count, examples in dropped:
        text = f"dropped {count} observation(s): {reason}"
        if examples:
            text += f" (e.g. {', '.join(repr(e) for e in examples[:3])})"
            merged = [gene_with_separator([t.strip() for t in e.split(sep)], sep) for e in examples]
            merged = [m for m in merged if m]
            if merged:
                text += f"; {merged[0]!r} looks like one gene name containing sep={sep!r}: check the separator"
        parts.append(text)
    return "; ".join(parts) + "."


def guess_separator(labels: Sequence[str], *, control: str | Iterable[str] = "ctrl", sep: str = "+") -> str | None:
    """A separator other than ``sep`` under which ``labels`` contain doubles of measured singles.

    A candidate (from :data:`SEPARATORS`) qualifies when every label parses under it into at
    most two perturbations and at least one double names two perturbations that are also
    measured alone (``A_B`` with ``A`` or ``A_ctrl``). Among those, the one giving most
    such doubles wins.

    Returns:
      The separator, or None when no candidate qualifies.

    Example:
      >>> guess_separator(["ctrl", "A_ctrl", "B_ctrl", "A_B"])
      '_'
    """
    controls = as_control_set(control)
    best, best_n = None, 0
    for cand in SEPARATORS:
        if cand == sep:
            continue
        try:
            parsed = [_names(str(lab).strip(), controls, cand) for lab in labels]
        except ValueError:
            continue
        if any(len(p) > 2 for p in parsed):
            continue
        singles = {p[0] for p in parsed if len(p) == 1}
        n_ok = sum(1 for p in parsed if len(p) == 2 and p[0] in singles and p[1] in singles)
        if n_ok > best_n:
            best, best_n = cand, n_ok
    return best


def _no_doubles(labels, names, controls, sep) -> None:
    """Raise when a column without doubles would parse into doubles with another separator."""
    cand = guess_separator(labels, control=controls, sep=sep)
    if cand is None:
        return
    n_double = sum(1 for lab in labels if len(_names(lab, controls, cand)) == 2)
    shown = ", ".join(repr(lab) for lab in labels if lab not in controls)
    shown = shown if len(shown) < 120 else shown[:117] + "..."
    raise ValueError(
        f"no label parses as a double with sep={sep!r}: all {sum(1 for n in names if n)} non-control conditions "
        f"would be singles ({shown}). With sep={cand!r} they parse into {n_double} double(s). "
        f"Pass sep={cand!r} (CLI: --sep {cand!r})."
    )
