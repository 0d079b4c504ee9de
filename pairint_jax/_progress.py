"""One progress-bar helper for every slow loop (``tqdm.auto``: a text bar in a terminal, a widget in a notebook).

Every public entry point that can take long has ``progress: bool | None = None``:

* ``None`` (the default) shows bars when a person is watching: ``stderr`` is a terminal,
  or the code runs in a Jupyter kernel. Under pytest, in a batch job or with output
  redirected to a file, bars stay off.
* ``True`` / ``False`` force bars on or off.

:func:`resolve_progress` is the one place that decides; :func:`progress` wraps an
iterable (or a manual counter) in a bar or in a silent stand-in with the same methods.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import numpy as np

__all__ = ["progress", "resolve_progress", "interactive"]


def interactive() -> bool:
    """True when a person is likely watching: ``stderr`` is a terminal, or this is a Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # closed or replaced streams
        pass
    return _in_jupyter_kernel()


def _in_jupyter_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except AttributeError:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def resolve_progress(progress: bool | None) -> bool:
    """Resolve a ``progress=`` argument: ``None`` means "on when interactive" (see :func:`interactive`).

    Args:
      progress: ``None``, ``True`` or ``False`` (numpy booleans are accepted).

    Returns:
      Whether to show progress bars.

    Raises:
      TypeError: anything else (e.g. a string), so that ``progress="no"`` is not silently truthy.
    """
    if progress is None:
        return interactive()
    if isinstance(progress, (bool, np.bool_)):
        return bool(progress)
    raise TypeError(
        f"progress must be True, False or None (None: on when interactive), got {progress!r} ({type(progress).__name__})."
    )


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    unit: str = "it",
):
    """Wrap ``iterable`` in a ``tqdm.auto`` bar when enabled; otherwise return a silent stand-in.

    Args:
      iterable: what to iterate over, or None for a manual bar (``update(n)``).
      total: the expected number of steps.
      desc: the bar's label.
      enabled: ``True``/``False``, or ``None`` for :func:`resolve_progress`'s automatic choice.
      unit: the unit shown after the rate.

    Returns:
      An object that always supports iteration, ``update(n)``, ``set_postfix(**kw)``,
      ``set_description(s)`` and ``close()``, so callers need no ``if progress:`` branches.
    """
    if resolve_progress(enabled):
        import importlib.util

        # tqdm.auto needs ipywidgets for notebook bars and warns without it: use the text bar then.
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return _Silent(iterable)


class _Silent:
    def __init__(self, iterable):
        self._it = iterable

    def __iter__(self):
        return iter(self._it if self._it is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_description(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
