"""One progress-bar helper for every slow loop (tqdm; works in terminals and notebooks)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["progress"]


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", enabled: bool = False, unit: str = "it"):
    """Wrap ``iterable`` in a tqdm bar when ``enabled``; otherwise return a silent stand-in.

    The returned object always supports ``update(n)``, ``set_postfix(**kw)`` and
    ``close()``, so callers need no ``if progress:`` branches.
    """
    if enabled:
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
