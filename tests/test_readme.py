"""The README's Python snippets run exactly as written.

Every fenced ```` ```python ```` block of ``README.md`` is executed, in order, in one shared
namespace (as a reader pasting them into one session would), inside a temporary working
directory, with matplotlib's Agg backend. A block that needs a GPU, several hosts or large
data may be skipped by putting this marker on the line right before its fence:

    <!-- readme-test: skip (the reason) -->

It is an HTML comment, so the rendered README does not show it. Keep every other block fast
by writing small sizes into the README itself.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b.*?-->\s*$")


def readme_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, code, skipped)`` of every python block, in order."""
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((line, m.group(1), bool(SKIP.search(before))))
    return out


def test_marker_and_extraction():
    text = "a\n```python\nx = 1\n```\n<!-- readme-test: skip (needs 8 GPUs) -->\n```python\ny = 2\n```\n```bash\nz\n```\n"
    assert readme_blocks(text) == [(2, "x = 1\n", False), (6, "y = 2\n", True)]


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for line, code, skipped in blocks:
        if skipped:
            continue
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - the README is ours
        except Exception as err:  # noqa: BLE001 - say which block failed
            raise AssertionError(f"the README's python block at line {line} failed: {err!r}") from err
