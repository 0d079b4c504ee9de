"""Runs ``tests/mesh_cases.py`` (sharded == single device) on 8 virtual CPU devices.

``--xla_force_host_platform_device_count`` only takes effect before JAX initialises, and
this pytest process has already started JAX on one device, so the cases run in a fresh
``python -m pytest`` subprocess with the flag set. Its output is shown if it fails.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_sharded_equals_single_device_on_8_virtual_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "mesh_cases.py"), "-q", "-p", "no:cacheprovider", "-x"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"mesh cases failed (exit {proc.returncode}):\n{tail}"
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, tail
