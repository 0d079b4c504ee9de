"""Count JAX compilations in tests, without counters in production code.

``with compile_log() as log: ...`` records every program JAX compiles inside the block
(through ``jax.log_compiles`` and the ``jax`` logger); ``log.count("name")`` is how many
times a jitted function called ``name`` was compiled. A second call with the same
shapes must compile nothing: ``assert log.count("name") == 0``.
"""

from __future__ import annotations

import contextlib
import logging
import re

import jax

_COMPILING = re.compile(r"Compiling (?:jit|pjit|pmap|xla_pmap)\((?P<name>[^)]*)\)")


class CompileLog(logging.Handler):
    """A logging handler that keeps the names of the programs compiled while attached."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _COMPILING.search(record.getMessage())
        if match:
            self.names.append(match.group("name"))

    def count(self, name: str | None = None) -> int:
        """Compilations of programs named ``name`` (substring match); all of them for ``None``."""
        if name is None:
            return len(self.names)
        return sum(name in n for n in self.names)


@contextlib.contextmanager
def compile_log():
    """Record the programs JAX compiles inside the ``with`` block."""
    log = CompileLog()
    logger = logging.getLogger("jax")
    old_level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            yield log
    finally:
        logger.removeHandler(log)
        logger.setLevel(old_level)
