"""A campaign's state on disk: ``<path>/campaign.json`` read and written crash-safely.

Every change is a read-modify-write of ``campaign.json`` under an exclusive ``flock`` on
``<path>/.lock`` (:func:`locked`): the new state goes to a temporary file in the same folder,
which is flushed and ``fsync``-ed, atomically renamed over the old file, and the folder is
``fsync``-ed (:func:`atomic_write`). A process killed at any moment leaves either the old or
the new state, never a mix. ``next_batch.csv`` and ``observations.csv`` are convenience
exports rewritten after every change (never read back).

No JAX here: a process that only observes never imports it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import tempfile

from pairint_jax._files import follow_umask
from pairint_jax.discovery.campaign_schema import read_state, validate_state

__all__ = [
    "LOCK_FILE", "STATE_FILE", "atomic_write", "dump", "load", "locked", "observed_keys",
    "pending", "write_exports",
]

STATE_FILE = "campaign.json"
LOCK_FILE = ".lock"


def fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        follow_umask(tmp)  # mkstemp makes 0600; the campaign's files follow the umask, like open()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(folder: pathlib.Path):
    """Exclusive advisory lock on ``folder/.lock`` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies (group-shared campaigns)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # temp files left by a writer that was killed: safe to remove while we hold the lock
        for name in (STATE_FILE, "observations.csv", "next_batch.csv"):
            for stale in glob.glob(str(folder / f".{name}.*.tmp")):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        yield
    finally:
        os.close(fd)


def dump(state: dict) -> bytes:
    """``state`` as UTF-8 JSON (no NaN; floats in shortest round-trip form), checked first."""
    validate_state(state, where=STATE_FILE)  # never write a state that would not load
    return (json.dumps(state, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


def load(path: pathlib.Path) -> dict:
    """The state stored in the folder ``path`` (checked against the schema)."""
    file = path / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"no campaign at {path}: {STATE_FILE} is missing. Create one with Campaign.create(path, perturbations) "
            "or `pairint campaign-init`."
        )
    return read_state(file)  # decoded and checked against the schema (CampaignStateError naming the field)


def write_exports(path: pathlib.Path, state: dict) -> None:
    """Rewrite ``observations.csv`` and ``next_batch.csv`` (the pending pairs) from ``state``."""
    rows = ["a,b,score,round"] + [
        f"{csv_field(o['a'])},{csv_field(o['b'])},{o['score']!r},{o['round']}" for o in state["observations"]
    ]
    atomic_write(path / "observations.csv", ("\n".join(rows) + "\n").encode("utf-8"))
    rnd = state["proposals"][-1]["round"] if state["proposals"] else 0
    rows = ["round,a,b"] + [f"{rnd},{csv_field(a)},{csv_field(b)}" for a, b in pending(state)]
    atomic_write(path / "next_batch.csv", ("\n".join(rows) + "\n").encode("utf-8"))


def csv_field(name: str) -> str:
    """A name quoted for CSV where it needs it."""
    if any(c in name for c in ',"\n\r'):
        return '"' + name.replace('"', '""') + '"'
    return name


def observed_keys(state: dict) -> dict:
    """``{(a, b): observation}`` of every recorded observation."""
    return {(o["a"], o["b"]): o for o in state["observations"]}


def pending(state: dict) -> list[tuple[str, str]]:
    """Pairs of the latest proposal that are not observed yet (in flight)."""
    if not state["proposals"]:
        return []
    seen = observed_keys(state)
    return [tuple(p) for p in state["proposals"][-1]["pairs"] if tuple(p) not in seen]
