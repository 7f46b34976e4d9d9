"""User-facing errors: one clear line, no library traceback."""

from __future__ import annotations


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (libraries often add pages of detail);
    ``default`` (the exception's type name when None) if the message is empty."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


class BenchError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line."""


class DataError(BenchError):
    """Malformed data: names the file (and row) and what is wrong."""

    def __init__(self, path: object, what: str, row: int | None = None) -> None:
        where = f"{path}" if row is None else f"{path}, row {row}"
        super().__init__(f"{where}: {what}")
        self.path = path
        self.row = row
        self.what = what


class ConfigError(BenchError):
    """A configuration key or value that does not exist or does not parse."""
