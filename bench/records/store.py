"""Where records live: numbered run folders, run ids, and named baselines (SPEC section 4).

A run folder ``results/runs/<NNNN>_<commit7>[-dirty]_<YYYYmmddTHHMMSSZ>/`` holds ``record.json``
and ``per_image.csv`` (format in :mod:`bench.records.schema`) beside the report and figures.

A named baseline is a copy of a record, ``results/baselines/NAME.json``, with its per-image values
gzipped beside it as ``NAME.per_image.csv.gz`` and, when it was set with ``--fail-on``, its gate
rules as ``NAME.rules.json`` (``{"fail_on": [RULE, ...]}``); the record copy stays byte for byte the
run's record.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.atomic import atomic_write_bytes, atomic_write_json
from bench.errors import BenchError
from bench.records.gate import parse_rules
from bench.records.record import RunRecord, load_run_record
from bench.records.schema import (
    RECORD_FILE,
    per_image_path,
    read_per_image,
    record_path_of,
    stored_schema,
)

DEFAULT_RUNS = Path("results/runs")
DEFAULT_BASELINES = Path("results/baselines")
RULES_SUFFIX = ".rules.json"

_RUN_DIR_RE = re.compile(r"^(\d{4,})_")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _as_utc(now: datetime) -> datetime:
    """``now`` in UTC; a naive datetime is taken to be UTC already."""
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


def _run_number(name: str) -> int | None:
    """The NNNN prefix of a run folder name, or None."""
    m = _RUN_DIR_RE.match(name)
    return int(m.group(1)) if m else None


def _run_dirs(runs_root: Path) -> list[Path]:
    """Run folders under ``runs_root`` (names starting ``NNNN_``), by number then name."""
    if not runs_root.is_dir():
        return []
    dirs = [p for p in runs_root.iterdir() if p.is_dir() and _run_number(p.name) is not None]
    return sorted(dirs, key=lambda p: (_run_number(p.name), p.name))


def next_run_dir(runs_root: Path, commit: str | None, dirty: bool, now: datetime) -> Path:
    """Path the next run folder would take (one more than the highest number under ``runs_root``),
    named by :func:`bench.records.rundir.run_name`; runs themselves reserve their number atomically with
    :func:`bench.records.rundir.reserve`."""
    from bench.records.rundir import run_name

    numbers = [_run_number(p.name) or 0 for p in _run_dirs(Path(runs_root))]
    return Path(runs_root) / run_name(max(numbers, default=0) + 1, commit, dirty, now)


def _match_run_id(text: str, runs_root: Path) -> Path | None:
    """Record path of the run whose folder name, number or name prefix is ``text`` (or 'latest')."""
    dirs = _run_dirs(runs_root)
    if text == "latest":
        matches = dirs[-1:]
    elif text.isdigit():
        matches = [d for d in dirs if _run_number(d.name) == int(text)]
    else:
        matches = [d for d in dirs if d.name == text] or [d for d in dirs if d.name.startswith(text)]
    if len(matches) > 1:
        names = ", ".join(d.name for d in matches[:5])
        raise BenchError(f"run {text!r} is ambiguous under {runs_root}: {names}")
    return matches[0] / RECORD_FILE if matches else None


def resolve_run(run: str | Path, runs_root: Path = DEFAULT_RUNS) -> Path:
    """Record path for a run folder, a record JSON file, or a run id / number / 'latest' under ``runs_root``."""
    path = Path(run)
    if path.is_file():
        return path
    if path.is_dir():
        return path / RECORD_FILE
    text = str(run)
    if "/" not in text and os.sep not in text:
        found = _match_run_id(text, Path(runs_root))
        if found is not None:
            return found
    raise BenchError(f"{run}: no such run folder or record file, and no run with that id under {runs_root}")


def load_record(path_or_dir: str | Path, runs_root: Path = DEFAULT_RUNS) -> RunRecord:
    """Read and check a record given as a run folder, JSON file, or run id / number under ``runs_root``."""
    return load_run_record(resolve_run(path_or_dir, runs_root))


def load_per_image(run: str | Path, missing_ok: bool = False, runs_root: Path = DEFAULT_RUNS) -> pd.DataFrame | None:
    """Per-image values of a run (folder, record file, run id, or the CSV / CSV.gz itself).

    Metric names come out in the current schema whatever the schema of the record the file belongs
    to. Returns None when the file does not exist and ``missing_ok``; otherwise a missing or
    malformed file is a BenchError naming it.
    """
    path = Path(run)
    csv = path if path.is_file() and not path.name.endswith(".json") else per_image_path(resolve_run(run, runs_root))
    if not csv.is_file() and missing_ok:
        return None
    return read_per_image(csv, stored_schema(record_path_of(csv)))


# Baselines
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    """``name`` when it is a valid baseline name (letters, digits, '-', '_'), else BenchError."""
    if not _NAME_RE.match(name or ""):
        raise BenchError(f"baseline name {name!r}: use letters, digits, '-' and '_' only")
    return name


def rules_path(record_path: Path) -> Path:
    """Where the gate rules stored with a baseline ``NAME.json`` live: ``NAME.rules.json`` beside it."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.name.removesuffix(".json") + RULES_SUFFIX)


def stored_rules(record_path: Path) -> list[str] | None:
    """The ``--fail-on`` rules stored with a baseline, or None when it has none; a malformed rules
    file is a BenchError naming it."""
    path = rules_path(record_path)
    if not path.is_file():
        return None
    bad = f'{path}: not a baseline rules file (expected {{"fail_on": [RULE, ...]}})'
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BenchError(bad) from None
    texts = content.get("fail_on") if isinstance(content, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BenchError(bad)
    try:
        parse_rules(texts)
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from None
    return texts


def _check_rules_match(texts: Sequence[str], record: RunRecord, where: str) -> list[str]:
    """The rule texts, parsed to check them, when each covers a metric of ``record``; else BenchError."""
    pairs = [(name, metric.key) for name, m in record.methods.items() for metric in m.metrics]
    rules = parse_rules(texts)
    for rule in rules:
        if not any(rule.covers(name, metric) for name, metric in pairs):
            raise BenchError(f"--fail-on {rule.text!r} matches no metric of {where}")
    return [r.text for r in rules]


def set_baseline(
    run: str | Path,
    name: str = "quick",
    baselines_dir: Path = DEFAULT_BASELINES,
    runs_root: Path = DEFAULT_RUNS,
    fail_on: Sequence[str] | None = None,
) -> Path:
    """Copy a run's record to ``baselines_dir/NAME.json`` and its per-image values to
    ``NAME.per_image.csv.gz`` (gzip), both atomically; returns the record copy's path.

    ``fail_on`` rules (each must cover a metric of the run) are stored as ``NAME.rules.json``, the
    gate ``compare`` uses when given no rules. A stale per-image or rules file of an earlier baseline
    of that name is removed when the run has none or no rules are given.
    """
    _check_name(name)
    src = resolve_run(run, runs_root)
    record = load_record(src)
    rules = _check_rules_match(fail_on, record, f"run {record.run_id}") if fail_on else None
    dest = Path(baselines_dir) / f"{name}.json"
    per_src, per_dest = per_image_path(src), per_image_path(dest)
    if per_src.is_file():
        load_per_image(per_src)
        data = per_src.read_bytes()
        if not per_src.name.endswith(".gz"):
            data = gzip.compress(data, compresslevel=9, mtime=0)
        atomic_write_bytes(per_dest, data)
    else:
        per_dest.unlink(missing_ok=True)
    if rules:
        atomic_write_json(rules_path(dest), {"fail_on": rules})
    else:
        rules_path(dest).unlink(missing_ok=True)
    atomic_write_bytes(dest, src.read_bytes())
    return dest


def resolve_baseline(
    baseline: str | Path, baselines_dir: Path = DEFAULT_BASELINES, runs_root: Path = DEFAULT_RUNS
) -> Path:
    """Record path of a baseline given by name (``baselines_dir/NAME.json``), by path, or by run id."""
    text = str(baseline)
    if _NAME_RE.match(text):
        named = Path(baselines_dir) / f"{text}.json"
        if named.is_file():
            return named
        try:
            return resolve_run(text, runs_root)
        except BenchError:
            raise BenchError(
                f"{named}: no baseline {text!r}; create it with 'python -m bench baseline set RUN --name {text}'"
            ) from None
    return resolve_run(baseline, runs_root)
