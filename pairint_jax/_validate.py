"""Checks of public parameters, shared by every entry point (validate once, at the boundary).

Each helper takes the parameter's *name* as the user wrote it and the value, and either
returns the value in canonical form or raises a ``ValueError``/``TypeError`` whose message
names the parameter, says what was expected and what was received. Entry points call these
before any array work, so users never see an exception raised inside JAX or NumPy.

Example:
  >>> positive_int("n_permutations", 200)
  200
  >>> ceil_div(10, 4)
  3
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np

__all__ = [
    "ceil_div",
    "listing",
    "round_up",
    "positive_int",
    "nonnegative_int",
    "optional_positive_int",
    "positive_float",
    "finite_float",
    "probability",
    "one_of",
    "as_key",
    "as_bool",
    "renamed_keywords",
    "moved_keywords",
    "seed",
    "float_in_range",
    "as_screen",
    "as_anndata",
    "SEED_LIMIT",
]

#: Int seeds lie in ``[0, SEED_LIMIT)``: JAX builds a key from the seed's low 32 bits when
#: 64-bit mode is off, so seed ``2**32`` would silently repeat the stream of seed 0.
SEED_LIMIT = 2**32


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative ints ``a`` and positive ints ``b``."""
    return -(-int(a) // int(b))


def round_up(a: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= a``."""
    return ceil_div(a, multiple) * int(multiple)


def _is_int(value) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as a Python int ``>= minimum``; ``TypeError`` for non-ints (bools included)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__}).{_h(hint)}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.{_h(hint)}")
    return int(value)


def nonnegative_int(name: str, value, *, hint: str = "") -> int:
    """``value`` as a Python int ``>= 0``."""
    return positive_int(name, value, minimum=0, hint=hint)


def optional_positive_int(name: str, value, *, minimum: int = 1, hint: str = "") -> int | None:
    """``None`` or a positive int (see :func:`positive_int`)."""
    return None if value is None else positive_int(name, value, minimum=minimum, hint=hint)


def finite_float(name: str, value, *, hint: str = "") -> float:
    """``value`` as a finite Python float (ints accepted, bools and strings refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).{_h(hint)}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}.{_h(hint)}")
    return out


def positive_float(
    name: str, value, *, allow_inf: bool = False, minimum: float = 0.0, maximum: float | None = None, hint: str = ""
) -> float:
    """``value`` as a float in ``(minimum, maximum]`` (``inf`` only with ``allow_inf``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, got {value!r} ({type(value).__name__}).{_h(hint)}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not (allow_inf and out > 0)):
        raise ValueError(f"{name} must be a positive {'number' if allow_inf else 'finite number'}, got {value!r}.{_h(hint)}")
    if not out > minimum:
        raise ValueError(f"{name} must be > {minimum:g}, got {value!r}.{_h(hint)}")
    if maximum is not None and out > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value!r}.{_h(hint)}")
    return out


def probability(name: str, value, *, open_interval: bool = True, hint: str = "") -> float:
    """``value`` as a float in ``(0, 1)`` (or ``[0, 1]`` with ``open_interval=False``)."""
    out = finite_float(name, value, hint=hint)
    ok = 0.0 < out < 1.0 if open_interval else 0.0 <= out <= 1.0
    if not ok:
        span = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must lie in {span}, got {value!r}.{_h(hint)}")
    return out


def one_of(name: str, value, options: Sequence, *, hint: str = ""):
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    try:
        ok = value in tuple(options)
    except TypeError:  # unhashable or odd comparisons
        ok = False
    if not ok:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}.{_h(hint)}")
    return value


def as_bool(name: str, value) -> bool:
    """``value`` as a bool; only ``True``/``False`` (and NumPy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return bool(value)


def as_key(key, *, name: str = "key", default_seed: int | None = 0) -> jax.Array:
    """A JAX PRNG key from ``key``.

    Accepted: a typed key (``jax.random.key(seed)``), a legacy ``uint32[2]`` key
    (``jax.random.PRNGKey(seed)``) or an int seed in ``[0, 2**32)`` (``key=3`` means
    ``jax.random.key(3)``; see :func:`seed`). ``None`` means ``jax.random.key(default_seed)``; entry points
    that pass ``default_seed=None`` require a key. Anything else is a ``TypeError`` that
    says how to make a key.
    """
    how = f"pass {name}=jax.random.key(0) (or an int seed such as {name}=0)."
    if key is None:
        if default_seed is None:
            raise TypeError(f"{name} is required: {how}")
        return jax.random.key(default_seed)
    if _is_int(key):
        if not 0 <= int(key) < SEED_LIMIT:
            raise ValueError(
                f"{name}: an int seed must lie in [0, 2**32), got {key!r} (JAX keeps 32 bits of a seed); {how}"
            )
        return jax.random.key(int(key))
    if isinstance(key, (jax.Array, np.ndarray)):
        dtype = key.dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            if key.shape != ():
                raise ValueError(f"{name} must be one key (shape ()), got a batch of shape {key.shape}; {how}")
            return key
        if dtype == np.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise TypeError(f"{name} must be a JAX PRNG key, got {type(key).__name__} {_short(key)}; {how}")


def renamed_keywords(**renames: str) -> Callable:
    """Decorator: keep accepting old keyword names (``old="new"``) after a rename.

    A call with an old name warns (``DeprecationWarning``, naming the new keyword) and is
    forwarded under the new name; passing both names is a ``TypeError``.

    Example:
      >>> @renamed_keywords(chunk_size="pairs_per_chunk")
      ... def f(*, pairs_per_chunk=1):
      ...     return pairs_per_chunk
      >>> f(pairs_per_chunk=3)
      3
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}: pass {new}= only ({old}= is its former name).")
                    warnings.warn(
                        f"{fn.__name__}: {old}= is now called {new}=; the old name will be removed.",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def moved_keywords(**moves: str) -> Callable:
    """Decorator: refuse old keyword names (``old="new"``) with a ``TypeError`` naming the new one.

    For renames where the old name now means something else (``key=`` is only ever a
    PRNG key), so forwarding it silently would be wrong.

    Example:
      >>> @moved_keywords(key="groupby")
      ... def f(*, groupby="perturbation"):
      ...     return groupby
      >>> f(key="guide")
      Traceback (most recent call last):
      TypeError: f: key= is now groupby= (key= only ever means a PRNG key).
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in moves.items():
                if old in kwargs:
                    why = " (key= only ever means a PRNG key)" if old == "key" else ""
                    raise TypeError(f"{fn.__name__}: {old}= is now {new}={why}.")
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def seed(name: str, value) -> int:
    """``value`` as an int seed in ``[0, 2**32)`` (:data:`SEED_LIMIT`).

    Larger seeds are refused rather than wrapped: with 64-bit mode off JAX keeps only the
    low 32 bits, so ``2**32`` would give the same random numbers as ``0``.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int seed in [0, 2**32), got {value!r} ({type(value).__name__}).")
    if not 0 <= int(value) < SEED_LIMIT:
        raise ValueError(
            f"{name}: an int seed must lie in [0, 2**32) = [0, {SEED_LIMIT - 1}], got {value!r} "
            "(JAX keeps 32 bits of a seed, so larger seeds would repeat smaller ones)."
        )
    return int(value)


def float_in_range(
    name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
    high_open: bool = False, hint: str = "",
) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high``.

    Each bound is inclusive unless ``low_open``/``high_open``; ``None`` leaves that side open.
    Bools and strings are a ``TypeError``; NaN, infinities and values outside the interval a
    ``ValueError`` that prints the interval.
    """
    out = finite_float(name, value, hint=hint)
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if below or above:
        left = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        right = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {left}, {right}, got {value!r}.{_h(hint)}")
    return out


def name_list(name: str, value) -> list[str]:
    """``value`` as a list of distinct perturbation names, each stripped of surrounding spaces.

    One string (not a sequence of them) or a non-string/blank name is a ``TypeError``; a
    repeated name a ``ValueError`` listing up to 5.
    """
    if isinstance(value, str):
        raise TypeError(f"{name} must be a sequence of names, not one string; e.g. ['A', 'B', 'C'].")
    names = list(value)
    bad = [p for p in names if not isinstance(p, str) or not p.strip()]
    if bad:
        raise TypeError(f"{name}: perturbation names must be non-empty strings; got {bad[:3]!r}.")
    names = [p.strip() for p in names]
    seen: set[str] = set()
    dup = sorted({p for p in names if p in seen or seen.add(p)})
    if dup:
        raise ValueError(f"{name}: perturbation names must be distinct; repeated: {dup[:5]}.")
    return names


def as_screen(value, *, caller: str, name: str = "screen"):
    """``value`` if it is a :class:`~pairint_jax.Screen`, else a ``TypeError`` saying how to build one.

    Args:
      value: what the user passed.
      caller: the public function, for the message (e.g. ``"separability_scores"``).
      name: the parameter's name.
    """
    from pairint_jax.screen import Screen  # lazy: screen.py sits above this module

    if isinstance(value, Screen):
        return value
    kind = type(value).__name__
    if kind == "AnnData":
        how = "build one with pj.io.from_anndata(adata, groupby='perturbation') (the obs column of condition labels), or score it directly with pj.score_adata(adata)"
    elif isinstance(value, str) or hasattr(value, "__fspath__"):
        how = "read the file first: screen = pj.read_screen(path)"
    elif kind == "PairScores":
        how = "that is a result (PairScores); pass the Screen it was computed from"
    elif isinstance(value, tuple) and value and isinstance(value[0], Screen):
        how = "the generators return (screen, truth): unpack it with screen, truth = pj.synthetic.<generator>(...)"
    else:
        how = (
            "build one with pj.Screen.from_arrays(x, labels, control='ctrl') (x: [N, ...] observations, labels: "
            "[N] condition labels such as 'ctrl', 'A', 'A+B'), or read a file with pj.read_screen(path)"
        )
    shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
    raise TypeError(f"{caller} expects a Screen as {name}, got {kind}{shape}; {how}.")


def as_anndata(value, *, caller: str, name: str = "adata"):
    """``value`` if it is an ``anndata.AnnData`` (in memory or backed), else a ``TypeError``
    saying what to pass instead.

    Args:
      value: what the user passed.
      caller: the public function, for the message (e.g. ``"score_adata"``).
      name: the parameter's name.
    """
    import anndata  # lazy: only the AnnData entry points need it

    if isinstance(value, anndata.AnnData):
        return value
    from pairint_jax.screen import Screen

    if isinstance(value, Screen):
        how = "it is already a Screen: score it with pj.disjointedness_scores(screen) (or another test)"
    elif isinstance(value, str) or hasattr(value, "__fspath__"):
        how = "read the file first: adata = anndata.read_h5ad(path), or screen = pj.read_screen(path)"
    else:
        how = (
            "build one with anndata.AnnData(X=x, obs=pandas.DataFrame({'perturbation': labels})), or a Screen with "
            "pj.Screen.from_arrays(x, labels)"
        )
    shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
    raise TypeError(f"{caller} expects an AnnData as {name}, got {type(value).__name__}{shape}; {how}.")


def listing(items: Sequence, *, shown: int = 5) -> str:
    """The first ``shown`` items as reprs, then how many more: for error messages.

    Example:
      >>> listing(["a", "b", "c"], shown=2)
      "'a', 'b' and 1 more"
    """
    items = list(items)
    head = ", ".join(repr(s) for s in items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _h(hint: str) -> str:
    return f" {hint}" if hint else ""
