"""File permissions: files written through a temporary file follow the umask, like ``open()``.

``tempfile.mkstemp`` creates its file with mode ``0600`` whatever the umask, so a file
renamed into place from it would be private to its owner even where the umask (say
``002``) asks for group-writable files. :func:`follow_umask` gives the temporary file the
mode ``open()`` would have given it, ``0o666 & ~umask``, before the rename.

This module imports only the standard library (the campaign module uses it without JAX).

Example:
  >>> import os, tempfile
  >>> old = os.umask(0o022)
  >>> fd, tmp = tempfile.mkstemp()
  >>> follow_umask(tmp)
  >>> oct(os.stat(tmp).st_mode & 0o777)
  '0o644'
  >>> os.close(fd); os.unlink(tmp); _ = os.umask(old)
"""

from __future__ import annotations

import os

__all__ = ["current_umask", "new_file_mode", "follow_umask"]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (the only portable way to read it)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def follow_umask(path) -> None:
    """Give the file ``path`` (typically from ``tempfile.mkstemp``) the mode of a new file."""
    os.chmod(path, new_file_mode())
