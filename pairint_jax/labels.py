"""Condition labels: ``ctrl``, ``A``, ``A+B`` and their canonical form.

A label names the perturbations applied to one observation, joined by a separator
(default ``+``, the Norman et al. 2019 / GEARS convention). Control tokens inside a
label are dropped, so ``A+ctrl`` is the single ``A`` and ``ctrl+ctrl`` is the control.
Doubles are unordered: ``B+A`` is the same condition as ``A+B``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["parse_label", "format_condition", "as_control_set"]


def as_control_set(control: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise the ``control=`` argument to a non-empty tuple of control tokens."""
    if isinstance(control, str):
        tokens = (control,)
    else:
        tokens = tuple(control)
    if not tokens or any(not isinstance(t, str) or not t.strip() for t in tokens):
        raise ValueError(
            f"control must be a non-empty label or a list of non-empty labels, got {control!r}."
        )
    return tuple(t.strip() for t in tokens)


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
        (``"A+A"``) or more than two perturbations.

    Example:
      >>> parse_label("B+A")
      ('A', 'B')
      >>> parse_label("A+ctrl")
      ('A',)
    """
    controls = as_control_set(control)
    if label is None or (isinstance(label, float) and label != label):
        raise ValueError("empty condition label (None/NaN); every observation needs a label.")
    text = str(label).strip()
    if not text:
        raise ValueError("empty condition label ''; every observation needs a label.")
    if not sep:
        raise ValueError("sep must be a non-empty string, e.g. '+'.")
    tokens = [t.strip() for t in text.split(sep)]
    if any(not t for t in tokens):
        raise ValueError(
            f"label {text!r} has an empty perturbation name around the separator {sep!r}."
        )
    names = [t for t in tokens if t not in controls]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"label {text!r} repeats perturbation {repeated[0]!r}; a double needs two "
            f"different perturbations (use {repeated[0]!r} alone for the single)."
        )
    if len(names) > 2:
        raise ValueError(
            f"label {text!r} has {len(names)} perturbations; only the control, singles and "
            "doubles are supported. Drop higher-order conditions before building the screen."
        )
    return tuple(sorted(names))


def format_condition(names: tuple[str, ...], *, control: str = "ctrl", sep: str = "+") -> str:
    """Canonical label of a condition: ``control``, ``"A"`` or ``"A+B"`` (names as given)."""
    if not names:
        return control
    return sep.join(names)
