"""The ``pairint`` console command: how the process reacts to Ctrl-C and how it ends.

This module is the console-script entry point. It imports only the standard library
before it sets up Ctrl-C handling, so that an interrupt is handled even while
``pairint_jax`` (and JAX) are still being imported; the commands themselves live in
:mod:`pairint_jax.cli`.

Why the process ends with ``os._exit``: an interrupt usually lands while JAX runs a
compiled computation on its own threads. Python's normal shutdown then tears down the
XLA runtime (its thread pools, the live device buffers) while that computation is still
running, which crashed with SIGSEGV, or SIGABRT ("terminate called without an active
exception"). Raising ``KeyboardInterrupt`` was also unreliable: raised inside a garbage
collector callback (JAX registers one), it is printed and ignored, and the command went
on to finish. So:

* Ctrl-C ends the process at once with exit code 130 (128 + SIGINT), from the Python
  signal handler or, while the main thread waits inside a compiled call, from a watcher
  thread woken by the signal's wakeup file descriptor. Nothing is lost that was already
  saved: campaign files are replaced atomically (the same guarantee as for SIGKILL), so
  a campaign folder always holds its last complete state.
* Every other ending (success, a clean error) flushes stdout and stderr and also ends
  with ``os._exit``, skipping the interpreter's teardown.

A SIGINT that is ignored when the process starts (``nohup``, background jobs of a
non-interactive shell) stays ignored.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["main", "INTERRUPTED"]

#: Exit code after Ctrl-C (the shell's 128 + SIGINT).
INTERRUPTED = 130

_NOTICE = (
    b"\npairint: interrupted (Ctrl-C). Files already written are complete; a campaign folder "
    b"keeps its last saved state.\n"
)
_exiting = threading.Lock()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe, or a flush re-entered from the signal handler
            pass


def _exit_now(code: int) -> None:
    _flush()
    os._exit(code)


def _interrupted(*_args) -> None:
    """End the process with exit code 130 (signal handler and watcher thread)."""
    if not _exiting.acquire(blocking=False):
        # the other path (handler or watcher) is flushing and will exit; give it a moment
        _exiting.acquire(timeout=2.0)
        os._exit(INTERRUPTED)
    _flush()
    try:
        os.write(2, _NOTICE)
    except OSError:
        pass
    os._exit(INTERRUPTED)


def _watch(fd: int) -> None:
    """Wait on the signal wakeup fd; exit on SIGINT even while the main thread is inside a
    compiled call that has released the GIL (the Python-level handler runs only after it)."""
    while True:
        try:
            data = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        if signal.SIGINT in data:
            _interrupted()


def install_interrupt_handler() -> bool:
    """Make Ctrl-C end the process with exit code 130 (main thread only).

    Returns:
      False when SIGINT was ignored at start (then it stays ignored), else True.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    signal.signal(signal.SIGINT, _interrupted)
    try:
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (OSError, ValueError):  # pragma: no cover - platforms without pipe wakeup fds
        return True
    threading.Thread(target=_watch, args=(r,), name="pairint-sigint", daemon=True).start()
    return True


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def main() -> None:
    """Run ``pairint`` with the arguments of ``sys.argv`` and end the process."""
    install_interrupt_handler()
    try:
        from pairint_jax.cli import main as command

        command(prog_name="pairint")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:  # raised by code that re-raised our interrupt, or SIGINT not from a terminal
        _interrupted()
        code = INTERRUPTED
    except BaseException:  # an import failure (broken install): show it, it is not a user error
        import traceback

        traceback.print_exc()
        code = 1
    _exit_now(code)


if __name__ == "__main__":  # pragma: no cover
    main()
