"""progress=None means "bars when a person is watching": a terminal or a Jupyter kernel, never under pytest or CI."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from pairint_jax import _progress
from pairint_jax._progress import interactive, progress, resolve_progress


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty

    def write(self, s):
        return len(s)

    def flush(self):
        pass


def test_explicit_values_win():
    assert resolve_progress(True) is True and resolve_progress(False) is False
    assert resolve_progress(np.bool_(True)) is True
    with pytest.raises(TypeError, match="True, False or None"):
        resolve_progress("yes")
    with pytest.raises(TypeError):
        resolve_progress(1)


def test_none_follows_the_terminal(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    assert resolve_progress(None) is False and not interactive()
    monkeypatch.setattr(sys, "stderr", _Stream(True))
    assert resolve_progress(None) is True


def test_none_is_on_in_a_jupyter_kernel(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert resolve_progress(None) is True
    plain = types.SimpleNamespace(config={})  # a terminal IPython without a kernel: the tty decides
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: plain))
    assert resolve_progress(None) is False


def test_bars_and_silent_stand_ins_share_one_interface(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    quiet = progress(range(3), total=3, enabled=None)
    assert isinstance(quiet, _progress._Silent) and list(quiet) == [0, 1, 2]
    bar = progress(total=4, desc="x", enabled=True)
    assert type(bar).__name__ == "tqdm"
    for obj in (quiet, bar):
        obj.update(1)
        obj.set_postfix(loss=0.1)
        obj.set_description("y")
        obj.close()


def test_public_entry_points_default_to_auto():
    import inspect

    import pairint_jax as pj
    from pairint_jax.demo import DemoConfig

    for fn in (pj.separability_scores, pj.nre.fit_nre, pj.nre.train.train_loop):
        assert inspect.signature(fn).parameters["progress"].default is None, fn.__name__
    assert DemoConfig().progress is None


def test_public_score_functions_default_to_auto_progress():
    """Every public scoring entry point shows bars when a person is watching (progress=None)."""
    import inspect

    import pairint_jax as pj

    for fn in (pj.disjointedness_scores, pj.separability_scores, pj.score_adata):
        assert inspect.signature(fn).parameters["progress"].default is None, fn.__name__


def test_disjointedness_refuses_a_string_progress():
    import pairint_jax as pj

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.repeat(["ctrl", "A", "B", "A+B"], 10)
    screen = pj.Screen.from_arrays(x, labels, control="ctrl")
    with pytest.raises(TypeError, match="progress"):
        pj.disjointedness_scores(screen, progress="no")
