"""Progress reporting that follows where it goes: tqdm bars on a terminal, plain lines in a file or CI log.

Every progress bar of the engine and the methods comes from :func:`bar`, every stage line from
:func:`note`. The mode is process-wide: ``bar`` (tqdm, redrawn in place), ``plain`` (one line when a
stage starts, one each time another 10% of it is done or 30 s after the previous line, whichever
comes first, and one when it ends; no carriage returns), ``none`` (silent), or ``auto`` (``bar`` when
stderr is a terminal, else ``plain``). The CLI sets it for a command (:func:`use_mode`); worker
processes receive their parent's resolved mode. Progress is best effort: once the reader of stderr
has gone (a closed pipe), progress falls silent and the work carries on.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from bench.errors import BenchError

MODES = ("auto", "bar", "plain", "none")
PLAIN_EVERY_S = 30.0
PLAIN_EVERY_FRACTION = 0.1

_mode = "auto"
_reader_gone = False


def resolve(mode: str, stream: Any = None) -> str:
    """The concrete mode (``bar``, ``plain`` or ``none``) of ``mode`` for ``stream`` (default stderr)."""
    if mode not in MODES:
        raise BenchError(f"--progress must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "plain"


def current() -> str:
    """The concrete mode in force in this process."""
    return "none" if _reader_gone else resolve(_mode)


def set_mode(mode: str) -> str:
    """Set this process's mode (one of :data:`MODES`); returns the concrete mode it resolves to now."""
    global _mode
    concrete = resolve(mode)
    _mode = mode
    return concrete


@contextmanager
def use_mode(mode: str) -> Iterator[str]:
    """Run the block with ``mode``, restoring the previous mode after it; yields the concrete mode."""
    before = _mode
    concrete = set_mode(mode)
    try:
        yield concrete
    finally:
        set_mode(before)


def _write(text: str) -> None:
    """Write to the current stderr; a closed pipe silences all later progress instead of failing the work."""
    global _reader_gone
    if _reader_gone:
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BrokenPipeError:
        _reader_gone = True


class _Stderr:
    """The current ``sys.stderr`` for tqdm, with :func:`_write`'s closed-pipe rule."""

    def write(self, text: str) -> int:
        _write(text)
        return len(text)

    def flush(self) -> None:
        """Written text is flushed by :func:`_write` already."""

    @property
    def encoding(self) -> str:
        return getattr(sys.stderr, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return resolve("auto") == "bar"  # a terminal, by the same test as ``auto``

    def fileno(self) -> int:
        return sys.stderr.fileno()


_STDERR = _Stderr()  # one object, so that tqdm.write clears and redraws the bars written to it


def note(line: str) -> None:
    """One line about the run (a stage starting or ending); silent in ``none`` mode."""
    mode = current()
    if mode == "bar":
        tqdm.write(line, file=_STDERR)
    elif mode == "plain":
        _write(line + "\n")


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: float = 0,
    enabled: bool = True,
    **tqdm_options: Any,
) -> Any:
    """A progress bar in the current mode: a tqdm bar (``tqdm_options`` such as ``position`` apply to it),
    a :class:`PlainBar`, or a disabled tqdm bar when the mode is ``none`` or ``enabled`` is false. Each
    supports iteration, ``update``, ``set_postfix``, ``close`` and ``with``."""
    mode = current() if enabled else "none"
    if mode == "plain":
        return PlainBar(iterable, total=total, desc=desc, unit=unit, initial=initial)
    if mode == "bar":
        return tqdm(iterable, total=total, desc=desc or None, unit=unit, initial=initial, file=_STDERR, **tqdm_options)
    return tqdm(iterable, total=total, initial=initial, disable=True)


def _duration(seconds: float) -> str:
    return tqdm.format_interval(seconds) if math.isfinite(seconds) else "?"


def _rate(rate: float, unit: str) -> str:
    if rate <= 0 or not math.isfinite(rate):
        return f"? {unit}/s"
    return f"{rate:.1f} {unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{unit}"


class PlainBar:
    """Progress as whole lines (for files and CI logs): a start line, a line each time another 10% of
    ``total`` is done or ``PLAIN_EVERY_S`` seconds after the previous line (checked at each update),
    with rate and ETA, and an end line."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.unit = iterable, total, unit
        self.desc = desc or "progress"
        self.n = self.start_n = initial
        self.clock = clock
        self.emit = emit if emit is not None else (lambda line: _write(line + "\n"))
        self.t0 = self.last_t = clock()
        self.next_mark = self._mark_after(initial)
        self.postfix = ""
        self.closed = False
        size = f"{_count(initial)}/{_count(total)} {unit}" if total else unit
        self.emit(f"{self.desc}: start ({size})")

    def _mark_after(self, n: float) -> float:
        """The next multiple of 10% of the total above ``n`` (infinite without a total)."""
        if not self.total:
            return math.inf
        step = self.total * PLAIN_EVERY_FRACTION
        return (math.floor(n / step + 1e-9) + 1) * step

    def __iter__(self) -> Iterator[Any]:
        finished = False
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
            finished = True
        finally:
            self.close(stopped=not finished)

    def __enter__(self) -> PlainBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(stopped=exc_type is not None)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more; print a line when the next 10% mark or ``PLAIN_EVERY_S`` is reached."""
        self.n += n
        now = self.clock()
        if self.total and self.n >= self.total:
            return  # the end line says it
        if self.n >= self.next_mark or now - self.last_t >= PLAIN_EVERY_S:
            self.emit(self._line(now))
            self.last_t = now
            self.next_mark = self._mark_after(self.n)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown at the end of the next line (losses, scores), as tqdm's ``set_postfix``."""
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _done(self) -> str:
        """``n/total`` (or ``n`` without a total)."""
        return f"{_count(self.n)}/{_count(self.total)}" if self.total else _count(self.n)

    def _line(self, now: float) -> str:
        elapsed = now - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else math.nan
        parts = [f"{self._done()} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts += [_rate(rate, self.unit), f"elapsed {_duration(elapsed)}"]
        if self.total:
            parts.append(f"ETA {_duration((self.total - self.n) / rate if rate > 0 else math.inf)}")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: " + ", ".join(parts)

    def close(self, stopped: bool | None = None) -> None:
        """Print the end line (once): ``done``, or ``stopped`` when an error or interrupt ended the stage
        (``None``: when an exception is on its way, as in a ``finally`` block that closes the bar)."""
        if self.closed:
            return
        self.closed = True
        if stopped is None:
            stopped = sys.exc_info()[0] is not None
        elapsed = self.clock() - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else math.nan
        state = "stopped" if stopped else "done"
        took = f"in {_duration(elapsed)} ({_rate(rate, self.unit)})"
        tail = f", {self.postfix}" if self.postfix else ""
        self.emit(f"{self.desc}: {state}, {self._done()} {self.unit} {took}{tail}")


def _count(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
