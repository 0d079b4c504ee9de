"""The README's Python snippets run exactly as written.

Every fenced ```` ```python ```` block of ``README.md`` is executed, in order, in one shared
namespace (as a reader pasting them into one session would), inside a temporary working
directory, with matplotlib's Agg backend. The blocks run in a fresh interpreter, as a
reader's session starts, not inside the test process: that keeps them independent of the
hundreds of programs the rest of the suite has compiled before them. A block that needs a GPU, several hosts or large
data may be skipped by putting this marker on the line right before its fence:

    <!-- readme-test: skip (the reason) -->

It is an HTML comment, so the rendered README does not show it. Keep every other block fast
by writing small sizes into the README itself.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

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


RUNNER = """
import matplotlib, sys
matplotlib.use("Agg")
namespace = {"__name__": "__readme__"}
for line, code in BLOCKS:
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    except Exception as err:
        print(f"the README's python block at line {line} failed: {err!r}", file=sys.stderr)
        raise
"""


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path):
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    runnable = [(line, code) for line, code, skipped in blocks if not skipped]
    script = tmp_path / "readme_blocks.py"
    script.write_text(f"BLOCKS = {runnable!r}\n{RUNNER}", encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"the README's python blocks failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
