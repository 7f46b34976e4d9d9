"""Exit statuses of ``python -m bench``, one meaning each, for scripts and CI; and the signal and pipe
handling that gives them (used by :func:`bench.cli.main.main`, the one place that maps outcomes to codes)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OK = 0
REGRESSION = 1
USAGE = 2
METHOD_FAILED = 3
UNEXPECTED = 4
INTERRUPTED = 130
CLOSED_PIPE = 141
TERMINATED = 143

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "success"),
    (REGRESSION, "compare: a metric moved in its bad direction beyond its tolerance and beyond noise"),
    (USAGE, "bad input or usage: one line on stderr naming the file, option or setting"),
    (METHOD_FAILED, "run: a method failed; the others' results and the run folder are written (errors.log)"),
    (UNEXPECTED, "unexpected error (a bug or a broken environment): traceback on stderr"),
    (INTERRUPTED, "interrupted (SIGINT, Ctrl-C): nothing half-written is left behind"),
    (CLOSED_PIPE, "the reader of stdout closed the pipe (e.g. `| head`): the command stops quietly"),
    (TERMINATED, "terminated (SIGTERM, e.g. a cancelled CI job): cleaned up as for SIGINT"),
)


def epilog() -> str:
    """The exit-status table for ``--help``."""
    return "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in TABLE)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same cleanup runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def say(line: str) -> None:
    """Print ``line`` on stderr; nothing when stderr's reader has gone too."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):  # a closed pipe or a closed stream
        pass


def reader_gone() -> int:
    """stdout's reader closed the pipe: point stdout at /dev/null, so that the interpreter's last flush
    of what is still buffered does not fail again, and return :data:`CLOSED_PIPE`."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (a test's capture)
        pass
    return CLOSED_PIPE
