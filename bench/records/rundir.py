"""Run folders reserved atomically, safe under any number of concurrent runs into one runs folder.

A run takes its number while holding an exclusive ``flock`` on the runs folder itself: under the
lock it reads the highest number in use (finished run folders and the temporary folders of runs in
progress), creates its temporary folder ``.NNNN_<tag>_<stamp>.pid<PID>.tmp`` with that number + 1,
and lets go. The finished folder is renamed to ``NNNN_<tag>_<stamp>`` under the same lock, so no run
ever reads the folder half-way through another's rename. A temporary folder whose process is no
longer alive on this machine is removed by the next run, with one line on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError

OWNER = ".owner.json"
_NUMBER = re.compile(r"^\.?(\d{4,})_")
_TMP = re.compile(r"^\.(?P<name>\d{4,}_.+?)(?:\.pid(?P<pid>\d+))?\.tmp$")


@dataclass
class RunFolder:
    """A reserved run: its final path and the temporary folder it is built in."""

    final: Path
    tmp: Path


def _number(name: str) -> int | None:
    m = _NUMBER.match(name)
    return int(m.group(1)) if m else None


def highest_number(runs_root: Path) -> int:
    """The highest number in use: finished run folders and temporary folders of runs in progress."""
    return max((n for n in (_number(p.name) for p in runs_root.iterdir()) if n is not None), default=0)


@contextlib.contextmanager
def locked(runs_root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the runs folder (``flock`` on the folder itself; no extra file)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the exclusive mkdir below still keeps folders apart
        yield
        return
    fd = os.open(runs_root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(tmp: Path, pid_in_name: str | None) -> tuple[int | None, str | None]:
    try:
        info = json.loads((tmp / OWNER).read_text())
        return int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return (int(pid_in_name) if pid_in_name else None), None


def clean_stale(runs_root: Path, report: bool = True) -> list[Path]:
    """Remove temporary folders of runs whose process died on this machine; return them.

    A folder whose owner is unknown (made by an older version) or lives on another host is left in
    place and named on stderr, since its run may still be going on.
    """
    removed: list[Path] = []
    host = socket.gethostname()
    for tmp in sorted(Path(runs_root).iterdir()):
        m = _TMP.match(tmp.name)
        if m is None or not tmp.is_dir():
            continue
        pid, owner_host = _owner(tmp, m.group("pid"))
        if pid is None or (owner_host is not None and owner_host != host):
            if report:
                print(
                    f"note: {tmp} is the temporary folder of an unfinished run of unknown state; "
                    "remove it if no run is in progress",
                    file=sys.stderr,
                )
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
        if report:
            print(f"removed {tmp}: temporary folder of an interrupted run (process {pid} is gone)", file=sys.stderr)
    return removed


def run_name(number: int, commit: str | None, dirty: bool, now: datetime) -> str:
    """``NNNN_<commit7|nogit>[-dirty]_<YYYYmmddTHHMMSSZ>``."""
    tag = (commit[:7] if commit else "nogit") + ("-dirty" if dirty else "")
    stamp = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    return f"{number:04d}_{tag}_{stamp.strftime('%Y%m%dT%H%M%SZ')}"


def reserve(runs_root: str | Path, commit: str | None, dirty: bool, now: datetime) -> RunFolder:
    """Take the next run number and create the run's private temporary folder."""
    runs_root = Path(runs_root)
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        with locked(runs_root):
            clean_stale(runs_root)
            number = highest_number(runs_root) + 1
            while True:
                name = run_name(number, commit, dirty, now)
                tmp = runs_root / f".{name}.pid{os.getpid()}.tmp"
                try:
                    tmp.mkdir()
                    break
                except FileExistsError:
                    number += 1
            (tmp / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    except OSError as exc:
        raise BenchError(f"{runs_root}: cannot create a run folder there ({exc.strerror or exc})") from None
    return RunFolder(runs_root / name, tmp)


def publish(run: RunFolder) -> Path:
    """Rename the finished temporary folder to the run's final name (under the lock)."""
    (run.tmp / OWNER).unlink(missing_ok=True)
    with locked(run.tmp.parent):
        os.rename(run.tmp, run.final)
    return run.final


def discard(run: RunFolder) -> None:
    """Remove the temporary folder of a run that failed."""
    shutil.rmtree(run.tmp, ignore_errors=True)
