"""Run records, named baselines, run-vs-baseline comparison and history (SPEC section 4).

A run folder ``results/runs/<NNNN>_<commit7>[-dirty]_<YYYYmmddTHHMMSSZ>/`` holds ``record.json``
(one self-describing JSON record, format below) and ``per_image.csv`` (long format: ``method,
seed, patientId, domain, metric, value``) beside the report and figures.

Record format (``schema`` 1)::

    {"schema": 1, "run_id": str, "created": ISO-8601 UTC, "commit": str | null, "dirty": bool,
     "config": {...}, "config_hash": str, "seeds": [int, ...], "versions": {package: version},
     "device": str,
     "data": {"root": str, "synthetic": bool, "manifest_hash": str,
              "n_test": {"pneumonia": int, "healthy": int}, "n_tune": int, ...},
     "times": {stage: seconds}, "evaluator": {...},
     "methods": {name: {"status": "ok" | "failed", "error": str | null,
                        "metrics": {metric: {"value": float | null, "ci": [lo, hi] | null,
                                             "n": int, "direction": "higher" | "lower" | "none",
                                             "group": str, "seed_mean": float | null,
                                             "seed_std": float | null}}}}}

NaN and infinite numbers are stored as ``null``. A metric entry may carry an optional
``"per_image_metric"`` naming its rows in ``per_image.csv`` when they differ from the metric name;
without it the metric name is used, then the known aliases ``hit_rate -> hit`` and
``miou -> iou`` (with any prefix, e.g. ``mask_hit_rate -> mask_hit``).

A named baseline is a copy of a record, ``results/baselines/NAME.json``, with its per-image values
gzipped beside it as ``NAME.per_image.csv.gz``.

Regression rule (``compare``): a metric covered by a ``--fail-on`` rule regresses when it moved in
its bad direction by more than the rule's tolerance AND the move is beyond noise:

* with per-image values on both sides (paired by method, metric, domain, patientId and seed,
  patients present in both; values averaged over seeds per image), the 95% paired bootstrap CI of
  the mean per-image difference (run - baseline) lies entirely on the bad side of 0;
* for figures without per-image values (pooled AUC, detection AUC) or with fewer than
  ``MIN_PAIRS`` pairs, the run's value lies outside the baseline's CI on the bad side;
* when neither is available (no per-image values and no baseline CI), the tolerance alone decides.

Metrics with direction ``"none"`` and metrics no rule covers are shown but never fail. A method
present in the baseline but missing or failed in the run fails when any rule covers one of its
baseline metrics. A metric with a baseline value but no value in the run fails when a rule covers it.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bench.checkpoint import atomic_write_bytes, atomic_write_figure, atomic_write_json, atomic_write_text
from bench.errors import BenchError, first_line

SCHEMA = 1
RECORD_FILE = "record.json"
PER_IMAGE_FILE = "per_image.csv"
PER_IMAGE_COLUMNS = ["method", "seed", "patientId", "domain", "metric", "value"]
DIRECTIONS = ("higher", "lower", "none")
DEFAULT_RUNS = Path("results/runs")
DEFAULT_BASELINES = Path("results/baselines")
VERSION_PACKAGES = ("torch", "torchvision", "timm", "captum", "pydicom", "numpy", "scikit-learn",
                    "pandas", "lesionbench")
REQUIRED_KEYS = ("schema", "run_id", "created", "commit", "dirty", "config", "config_hash", "seeds",
                 "versions", "device", "data", "times", "evaluator", "methods")
METRIC_KEYS = ("value", "ci", "n", "direction")
PER_IMAGE_ALIASES = {"hit_rate": "hit", "miou": "iou"}
MIN_PAIRS = 5
"""Fewest paired images for the paired bootstrap; below it the baseline-CI test is used."""

_RUN_DIR_RE = re.compile(r"^(\d{4,})_")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_RULE_RE = re.compile(r"^(?P<target>[^:\s]+):(?P<kind>abs|rel)=(?P<num>[0-9.eE+-]+)(?P<pct>%?)$")
_PAIR_KEY = ["domain", "patientId", "seed"]
_EPS = 1e-9


# Environment of a run
# --------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str | None:
    """Stdout of ``git -C repo ARGS``, or None when git is absent or the command fails."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(repo: Path) -> tuple[str | None, bool]:
    """Full commit hash of ``repo``'s HEAD (None outside git or without git) and its dirty flag.

    Dirty means tracked files differ from HEAD (untracked files do not count, as ``git describe
    --dirty``); when ``git status`` itself fails the tree is reported dirty.
    """
    head = _git(Path(repo), "rev-parse", "--verify", "HEAD")
    if head is None or not head.strip():
        return None, False
    status = _git(Path(repo), "status", "--porcelain", "--untracked-files=no")
    return head.strip(), status is None or bool(status.strip())


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
    """Path of the next run folder ``NNNN_<commit7|nogit>[-dirty]_<YYYYmmddTHHMMSSZ>``.

    NNNN is one more than the highest number under ``runs_root`` (0001 for the first run). The
    folder is not created, so the caller can fill a temporary folder and rename it into place.
    """
    numbers = [_run_number(p.name) or 0 for p in _run_dirs(Path(runs_root))]
    tag = (commit[:7] if commit else "nogit") + ("-dirty" if dirty else "")
    stamp = _as_utc(now).strftime("%Y%m%dT%H%M%SZ")
    return Path(runs_root) / f"{max(numbers, default=0) + 1:04d}_{tag}_{stamp}"


def versions() -> dict[str, str]:
    """Python and package versions that matter for results; missing packages read "absent"."""
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def device_description(device: Any = None) -> str:
    """Human description of the compute device, e.g. ``cpu (2 threads)`` or ``cuda: NVIDIA H100 x 1``.

    ``device`` (a torch.device or string) names the device actually used; by default CUDA when
    available, else CPU.
    """
    try:
        import torch
    except ImportError:
        return f"cpu ({os.cpu_count()} cores, torch absent)"
    kind = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda") and torch.cuda.is_available():
        names = Counter(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return "cuda: " + ", ".join(f"{name} x {count}" for name, count in names.items())
    if kind.startswith("cpu"):
        return f"cpu ({torch.get_num_threads()} threads)"
    return kind


# Record files
# --------------------------------------------------------------------------------------------


def metric_entry(value: float | None, ci: Sequence[float | None] | None = None, n: int = 0,
                 direction: str = "higher", group: str = "", seed_mean: float | None = None,
                 seed_std: float | None = None) -> dict[str, Any]:
    """One metric of a record in the stored form (NaN becomes None, CI a list or None)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    ci_list = None if ci is None else [_clean(ci[0]), _clean(ci[1])]
    return {"value": _clean(value), "ci": ci_list, "n": int(n), "direction": direction,
            "group": group, "seed_mean": _clean(seed_mean), "seed_std": _clean(seed_std)}


def _clean(obj: Any) -> Any:
    """``obj`` as plain JSON: numpy scalars to Python, tuples to lists, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (Path, datetime)):
        return obj.isoformat() if isinstance(obj, datetime) else str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a run record")


def _record_problem(rec: Any) -> str | None:
    """What makes ``rec`` not a valid schema-1 record, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if "schema" in rec and rec["schema"] != SCHEMA:
        return f"schema {rec['schema']!r}; this version reads schema {SCHEMA}"
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        return "missing key(s) " + ", ".join(missing)
    if not isinstance(rec["data"], dict) or "manifest_hash" not in rec["data"]:
        return "'data' lacks 'manifest_hash'"
    if not isinstance(rec["methods"], dict):
        return "'methods' is not an object"
    for name, entry in rec["methods"].items():
        problem = _method_problem(entry)
        if problem:
            return f"method {name!r}: {problem}"
    return None


def _method_problem(entry: Any) -> str | None:
    """What is wrong with one method entry of a record, or None."""
    if not isinstance(entry, dict) or entry.get("status") not in ("ok", "failed"):
        return "'status' must be 'ok' or 'failed'"
    if not isinstance(entry.get("metrics"), dict):
        return "'metrics' is not an object"
    for metric, m in entry["metrics"].items():
        if not isinstance(m, dict) or any(k not in m for k in METRIC_KEYS):
            return f"metric {metric!r} lacks one of {', '.join(METRIC_KEYS)}"
        if m["direction"] not in DIRECTIONS:
            return f"metric {metric!r}: direction {m['direction']!r} not in {DIRECTIONS}"
        if m["value"] is not None and not isinstance(m["value"], (int, float)):
            return f"metric {metric!r}: value is not a number"
        if m["ci"] is not None and (not isinstance(m["ci"], list) or len(m["ci"]) != 2):
            return f"metric {metric!r}: ci is not [lo, hi]"
    return None


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Check ``record`` and write it as ``run_dir/record.json`` atomically; returns the path."""
    path = Path(run_dir) / RECORD_FILE
    clean = _clean(record)
    problem = _record_problem(clean)
    if problem:
        raise BenchError(f"{path}: refusing to write an invalid run record ({problem})")
    atomic_write_json(path, clean)
    return path


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


def load_record(path_or_dir: str | Path, runs_root: Path = DEFAULT_RUNS) -> dict[str, Any]:
    """Read and check a record given as a run folder, JSON file, or run id / number under ``runs_root``."""
    path = resolve_run(path_or_dir, runs_root)
    if not path.is_file():
        raise BenchError(f"{path}: run record not found")
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not a valid run record (bad JSON at line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read run record ({exc})") from None
    problem = _record_problem(rec)
    if problem:
        raise BenchError(f"{path}: not a valid run record ({problem})")
    return rec


def per_image_path(record_path: Path) -> Path:
    """Where the per-image values of a record live: ``per_image.csv`` beside ``record.json``,
    ``NAME.per_image.csv.gz`` beside a baseline ``NAME.json``."""
    record_path = Path(record_path)
    if record_path.name == RECORD_FILE:
        return record_path.parent / PER_IMAGE_FILE
    stem = record_path.name[:-5] if record_path.name.endswith(".json") else record_path.name
    return record_path.with_name(f"{stem}.per_image.csv.gz")


def write_per_image(run_dir: Path, frame: pd.DataFrame) -> Path:
    """Write the long per-image table (``PER_IMAGE_COLUMNS``) as ``run_dir/per_image.csv`` atomically."""
    missing = [c for c in PER_IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"per-image table lacks column(s) {', '.join(missing)}")
    path = Path(run_dir) / PER_IMAGE_FILE
    atomic_write_text(path, frame[PER_IMAGE_COLUMNS].to_csv(index=False))
    return path


def load_per_image(run: str | Path, missing_ok: bool = False,
                   runs_root: Path = DEFAULT_RUNS) -> pd.DataFrame | None:
    """Per-image values of a run (folder, record file, run id, or the CSV / CSV.gz itself).

    Returns None when the file does not exist and ``missing_ok``; otherwise a missing or
    malformed file is a BenchError naming it.
    """
    path = Path(run)
    csv = path if path.is_file() and not path.name.endswith(".json") else per_image_path(resolve_run(run, runs_root))
    if not csv.is_file():
        if missing_ok:
            return None
        raise BenchError(f"{csv}: per-image values not found")
    try:
        frame = pd.read_csv(csv, dtype={"method": str, "patientId": str, "domain": str, "metric": str})
    except (OSError, ValueError, EOFError) as exc:
        raise BenchError(f"{csv}: unreadable per-image values ({first_line(exc)})") from None
    missing = [c for c in PER_IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise BenchError(f"{csv}: per-image values lack column(s) {', '.join(missing)}")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


# Baselines
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    """``name`` when it is a valid baseline name (letters, digits, '-', '_'), else BenchError."""
    if not _NAME_RE.match(name or ""):
        raise BenchError(f"baseline name {name!r}: use letters, digits, '-' and '_' only")
    return name


def set_baseline(run: str | Path, name: str = "quick", baselines_dir: Path = DEFAULT_BASELINES,
                 runs_root: Path = DEFAULT_RUNS) -> Path:
    """Copy a run's record to ``baselines_dir/NAME.json`` and its per-image values to
    ``NAME.per_image.csv.gz`` (gzip), both atomically; returns the record copy's path.

    A stale per-image file of an earlier baseline of that name is removed when the run has none.
    """
    _check_name(name)
    src = resolve_run(run, runs_root)
    load_record(src)
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
    atomic_write_bytes(dest, src.read_bytes())
    return dest


def resolve_baseline(baseline: str | Path, baselines_dir: Path = DEFAULT_BASELINES,
                     runs_root: Path = DEFAULT_RUNS) -> Path:
    """Record path of a baseline given by name (``baselines_dir/NAME.json``), by path, or by run id."""
    text = str(baseline)
    if _NAME_RE.match(text):
        named = Path(baselines_dir) / f"{text}.json"
        if named.is_file():
            return named
        try:
            return resolve_run(text, runs_root)
        except BenchError:
            raise BenchError(f"{named}: no baseline {text!r}; create it with "
                             f"'python -m bench baseline set RUN --name {text}'") from None
    return resolve_run(baseline, runs_root)


# Tolerance rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One ``--fail-on`` tolerance: ``[method/]metric:abs=X`` or ``[method/]metric:rel=Y%``."""

    text: str
    method: str | None  # None: every method
    metric: str  # "*": every metric
    kind: str  # "abs" | "rel"
    amount: float  # absolute units, or a fraction of the baseline value for "rel"

    def covers(self, method: str, metric: str) -> bool:
        """Whether this rule applies to ``method``'s ``metric``."""
        return self.method in (None, method) and self.metric in ("*", metric)

    @property
    def specificity(self) -> int:
        """Rank among rules covering the same metric: method/metric > metric > method/* > *."""
        return 2 * (self.metric != "*") + (self.method is not None)

    def tolerance(self, base: float) -> float:
        """Largest allowed move in the bad direction from the baseline value ``base``."""
        return self.amount if self.kind == "abs" else self.amount * abs(base)

    def describe(self) -> str:
        """Short form for tables, e.g. ``abs 0.02`` or ``rel 5%``."""
        return f"abs {self.amount:g}" if self.kind == "abs" else f"rel {100 * self.amount:g}%"


def parse_rule(text: str) -> Rule:
    """Parse ``METRIC:abs=X`` / ``METRIC:rel=Y%`` (METRIC: ``*``, ``name`` or ``method/name``)."""
    bad = (f"--fail-on {text!r}: expected METRIC:abs=X or METRIC:rel=Y% "
           "(METRIC is a metric name, '*', or 'method/metric')")
    m = _RULE_RE.match(text.replace(" ", ""))
    if not m or (m["kind"] == "rel") != (m["pct"] == "%"):
        raise BenchError(bad)
    try:
        amount = float(m["num"])
    except ValueError:
        raise BenchError(bad) from None
    if not math.isfinite(amount) or amount < 0:
        raise BenchError(f"--fail-on {text!r}: the tolerance must be a non-negative number")
    method, _, metric = m["target"].rpartition("/")
    if not metric or (m["target"].count("/") and not method) or m["target"].count("/") > 1:
        raise BenchError(bad)
    return Rule(text, None if method in ("", "*") else method, metric, m["kind"],
                amount / 100 if m["kind"] == "rel" else amount)


def parse_rules(texts: Sequence[str | Rule] | None) -> list[Rule]:
    """Parse several rules; each text may hold several comma-separated rules."""
    rules: list[Rule] = []
    for item in texts or []:
        if isinstance(item, Rule):
            rules.append(item)
            continue
        rules.extend(parse_rule(part.strip()) for part in item.split(",") if part.strip())
    return rules


def _rule_for(rules: Sequence[Rule], method: str, metric: str) -> Rule | None:
    """The most specific rule covering ``method``'s ``metric`` (the later one on ties)."""
    covering = [r for r in rules if r.covers(method, metric)]
    return max(reversed(covering), key=lambda r: r.specificity) if covering else None


# Comparison
# --------------------------------------------------------------------------------------------


@dataclass
class CompareRow:
    """One line of the comparison table."""

    method: str
    metric: str
    baseline: dict[str, Any] | None
    run: dict[str, Any] | None
    delta: float | None
    change: str
    status: str
    regressed: bool = False
    rule: Rule | None = None


@dataclass
class CompareResult:
    """Outcome of :func:`compare`: table rows, warnings, and whether anything regressed."""

    run_id: str
    baseline_id: str
    rows: list[CompareRow]
    warnings: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    @property
    def regressions(self) -> list[CompareRow]:
        """Rows that regressed beyond tolerance and noise."""
        return [r for r in self.rows if r.regressed]

    @property
    def failed(self) -> bool:
        """True when at least one metric regressed (the CLI then exits 1)."""
        return bool(self.regressions)


class _PerImage:
    """Per-image values of one side, grouped by (method, per-image metric) for quick lookup."""

    def __init__(self, frame: pd.DataFrame | None) -> None:
        self.groups: dict[tuple[str, str], pd.DataFrame] = {}
        if frame is not None and len(frame):
            clean = frame.dropna(subset=["value"])
            self.groups = {key: g for key, g in clean.groupby(["method", "metric"], sort=False)}

    def get(self, method: str, metric: str) -> pd.DataFrame | None:
        """Rows of ``method``'s per-image ``metric``, or None."""
        return self.groups.get((method, metric))


def _per_image_names(metric: str, entry: dict[str, Any]) -> list[str]:
    """Candidate per-image metric names of a record metric, most specific first."""
    names = [entry["per_image_metric"]] if entry.get("per_image_metric") else []
    names.append(metric)
    for full, short in PER_IMAGE_ALIASES.items():
        if metric.endswith(full):
            names.append(metric[: -len(full)] + short)
    return names


def _paired(base: _PerImage, run: _PerImage, method: str, metric: str,
            entry: dict[str, Any]) -> pd.DataFrame | None:
    """Per-image (baseline, run) values paired by domain+patientId+seed, averaged over seeds."""
    for name in _per_image_names(metric, entry):
        b, r = base.get(method, name), run.get(method, name)
        if b is not None and r is not None:
            b = b.drop_duplicates(_PAIR_KEY, keep="last")
            r = r.drop_duplicates(_PAIR_KEY, keep="last")
            both = b.merge(r, on=_PAIR_KEY, suffixes=("_base", "_run"))
            return both.groupby(["domain", "patientId"])[["value_base", "value_run"]].mean()
    return None


def _ci_of(entry: dict[str, Any]) -> tuple[float, float] | None:
    """The entry's CI as floats, or None when absent or undefined."""
    ci = entry.get("ci")
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return None
    return float(ci[0]), float(ci[1])


def _noise_test(direction: str, run_value: float, base_entry: dict[str, Any],
                pairs: pd.DataFrame | None, n_resamples: int, seed: int) -> tuple[bool | None, str]:
    """Whether a bad move is beyond noise (None: no test possible) and a short explanation."""
    if pairs is not None and len(pairs) >= MIN_PAIRS:
        from bench.metrics import paired_bootstrap_diff_ci

        lo, hi = paired_bootstrap_diff_ci(pairs["value_base"].to_numpy(), pairs["value_run"].to_numpy(),
                                          n_resamples=n_resamples, seed=seed)
        significant = hi < 0 if direction == "higher" else lo > 0
        return significant, f"paired Δ CI [{_num(lo)}, {_num(hi)}], n={len(pairs)}"
    ci = _ci_of(base_entry)
    if ci is not None:
        outside = run_value < ci[0] if direction == "higher" else run_value > ci[1]
        return outside, ("outside" if outside else "inside") + " baseline CI"
    return None, "no per-image values or baseline CI"


def _change(direction: str, delta: float | None, base: float) -> str:
    """Arrow of the table: judged by direction, plain up/down for direction 'none'."""
    if delta is None:
        return ""
    if abs(delta) <= _EPS * max(1.0, abs(base)):
        return "= same"
    if direction == "none":
        return "↑" if delta > 0 else "↓"
    better = delta > 0 if direction == "higher" else delta < 0
    return "▲ better" if better else "▼ worse"


def _compare_metric(method: str, metric: str, base: dict[str, Any] | None, run: dict[str, Any] | None,
                    rule: Rule | None, pairs_of: Any, n_resamples: int, seed: int) -> CompareRow:
    """Compare one metric of one method; ``pairs_of()`` gives its paired per-image values."""
    row = CompareRow(method, metric, base, run, None, "", "", rule=rule)
    gate = f" ({rule.describe()})" if rule else ""
    if base is None:
        row.status = "new"
        return row
    if run is None or (run["value"] is None and base["value"] is not None):
        row.regressed = rule is not None and base["direction"] != "none"
        row.status = "**REGRESSION**: no value in run" if row.regressed else "no value in run"
        return row
    if base["value"] is None:
        row.status = "new value" if run["value"] is not None else "no value"
        return row
    direction = base["direction"]
    row.delta = run["value"] - base["value"]
    row.change = _change(direction, row.delta, base["value"])
    if direction == "none":
        row.status = "not judged"
        return row
    bad_move = -row.delta if direction == "higher" else row.delta
    if rule is None:
        row.status = "not gated"
    elif bad_move <= rule.tolerance(base["value"]) + _EPS * max(1.0, abs(base["value"])):
        row.status = "ok" if bad_move <= 0 else f"ok: within tolerance{gate}"
    else:
        significant, why = _noise_test(direction, run["value"], base, pairs_of(), n_resamples, seed)
        row.regressed = significant is not False
        row.status = f"**REGRESSION**{gate}; {why}" if row.regressed else f"ok: within noise{gate}; {why}"
    return row


def _method_rows(method: str, base_m: dict[str, Any] | None, run_m: dict[str, Any] | None,
                 rules: Sequence[Rule], base_pi: _PerImage, run_pi: _PerImage,
                 n_resamples: int, seed: int) -> list[CompareRow]:
    """Comparison rows of one method (one summary row when it is missing or failed in the run)."""
    base_ok = base_m is not None and base_m["status"] == "ok"
    run_ok = run_m is not None and run_m["status"] == "ok"
    if not run_ok:
        what = "missing in run" if run_m is None else f"failed in run: {run_m.get('error') or 'no error text'}"
        if not base_ok:
            was = "new method" if base_m is None else "failed in baseline"
            return [CompareRow(method, "*", None, None, None, "", f"{was}, {what}")]
        covered = any(_rule_for(rules, method, m) for m in base_m["metrics"])
        status = f"**REGRESSION**: {what}" if covered else f"{what} (not gated)"
        return [CompareRow(method, "*", None, None, None, "", status, regressed=covered)]
    base_metrics = base_m["metrics"] if base_ok else {}
    run_metrics = run_m["metrics"]
    rows = []
    for metric in list(base_metrics) + [m for m in run_metrics if m not in base_metrics]:
        base, run = base_metrics.get(metric), run_metrics.get(metric)
        entry = base or run or {}

        def pairs_of(metric: str = metric, entry: dict[str, Any] = entry) -> pd.DataFrame | None:
            return _paired(base_pi, run_pi, method, metric, entry)

        rows.append(_compare_metric(method, metric, base, run, _rule_for(rules, method, metric),
                                    pairs_of, n_resamples, seed))
    return rows


def _short(commit: str | None, dirty: bool = False) -> str:
    """Seven-character commit with a -dirty suffix, or 'nogit'."""
    return (commit[:7] if commit else "nogit") + ("-dirty" if dirty else "")


def _record_warnings(run: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Warnings about run and baseline not being like for like."""
    out = []
    if run["config_hash"] != base["config_hash"]:
        out.append(f"warning: config differs (run {run['config_hash']}, baseline {base['config_hash']}); "
                   "figures may not be comparable")
    rh, bh = run["data"].get("manifest_hash"), base["data"].get("manifest_hash")
    if rh != bh:
        out.append(f"warning: data differs (manifest {rh} in run, {bh} in baseline); figures may not be comparable")
    if run["commit"] and run["commit"] == base["commit"]:
        out.append(f"warning: run and baseline come from the same commit {_short(run['commit'])} "
                   f"(run dirty: {run['dirty']}, baseline dirty: {base['dirty']})")
    if list(run["seeds"]) != list(base["seeds"]):
        out.append(f"warning: seeds differ (run {run['seeds']}, baseline {base['seeds']})")
    return out


def _rule_warnings(rules: Sequence[Rule], run: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Warnings for rules that match no metric of either record (typos)."""
    pairs = {(name, metric) for rec in (run, base) for name, m in rec["methods"].items() for metric in m["metrics"]}
    return [f"warning: --fail-on rule {r.text!r} matches no metric" for r in rules
            if not any(r.covers(method, metric) for method, metric in pairs)]


def compare(run_record: dict[str, Any], baseline_record: dict[str, Any],
            run_per_image: pd.DataFrame | None = None, base_per_image: pd.DataFrame | None = None,
            fail_on: Sequence[str | Rule] | None = None, n_resamples: int = 1000,
            seed: int = 0) -> CompareResult:
    """Compare a run record against a baseline record under ``fail_on`` tolerance rules.

    See the module docstring for the regression rule and its noise tests. Rule texts that do not
    parse raise BenchError.
    """
    rules = parse_rules(fail_on)
    base_pi, run_pi = _PerImage(base_per_image), _PerImage(run_per_image)
    warnings = _record_warnings(run_record, baseline_record) + _rule_warnings(rules, run_record, baseline_record)
    if rules and (run_per_image is None or base_per_image is None):
        side = "run" if run_per_image is None else "baseline"
        warnings.append(f"warning: no per-image values for the {side}; noise tests use the baseline's CI")
    base_methods, run_methods = baseline_record["methods"], run_record["methods"]
    rows: list[CompareRow] = []
    for method in list(base_methods) + [m for m in run_methods if m not in base_methods]:
        rows.extend(_method_rows(method, base_methods.get(method), run_methods.get(method), rules,
                                 base_pi, run_pi, n_resamples, seed))
    return CompareResult(run_record["run_id"], baseline_record["run_id"], rows, warnings, rules)


def _num(v: float | None) -> str:
    """A figure for tables: 4 decimals (1 for large values), '—' when missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.4f}"


def _value_ci(entry: dict[str, Any] | None) -> str:
    """``value [lo, hi]`` of a metric entry."""
    if entry is None:
        return "—"
    ci = _ci_of(entry)
    return _num(entry["value"]) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "")


def _delta(row: CompareRow) -> str:
    """Signed difference, with the relative change when the baseline is non-zero."""
    if row.delta is None:
        return "—"
    text = f"{row.delta:+.1f}" if abs(row.delta) >= 100 else f"{row.delta:+.4f}"
    base = row.baseline["value"] if row.baseline else None
    return text + (f" ({100 * row.delta / abs(base):+.1f}%)" if base else "")


def _md_cell(text: str) -> str:
    """Escape a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_compare(result: CompareResult) -> str:
    """Markdown report: title, warning lines, the diff table, and a PASSED/FAILED verdict."""
    parts = [f"### Run `{result.run_id}` vs baseline `{result.baseline_id}`", ""]
    if result.warnings:
        parts += result.warnings + [""]
    header = ["method", "metric", "baseline", "run", "delta", "change", "status"]
    parts.append(markdown_table(header, [[r.method, r.metric, _value_ci(r.baseline), _value_ci(r.run),
                                          _delta(r), r.change, r.status] for r in result.rows]))
    parts.append("")
    rules = ", ".join(r.text for r in result.rules) or "none: nothing can fail"
    if result.failed:
        names = ", ".join(f"{r.method}/{r.metric}" for r in result.regressions)
        parts.append(f"**FAILED**: {len(result.regressions)} regression(s): {names} (rules: {rules})")
    else:
        parts.append(f"**PASSED**: no regression beyond tolerance and noise (rules: {rules})")
    return "\n".join(parts)


# History
# --------------------------------------------------------------------------------------------

HISTORY_COLUMNS = ["run_id", "created", "commit", "method", "value", "ci_lo", "ci_hi", "status"]


def _history_rows(rec: dict[str, Any], metric: str, method: str | None) -> list[list[Any]]:
    """Rows of one record for :func:`history`."""
    rows = []
    for name, m in rec["methods"].items():
        if method is not None and name != method:
            continue
        entry = m["metrics"].get(metric)
        if entry is None and m["status"] == "ok" and method is None:
            continue
        status = "failed" if m["status"] != "ok" else ("ok" if entry and entry["value"] is not None else "no value")
        value = entry["value"] if entry and entry["value"] is not None else math.nan
        ci = _ci_of(entry) if entry else None
        rows.append([rec["run_id"], rec["created"], _short(rec["commit"], bool(rec["dirty"])), name, value,
                     ci[0] if ci else math.nan, ci[1] if ci else math.nan, status])
    return rows


def history(runs_root: Path = DEFAULT_RUNS, metric: str = "pooled_auc", method: str | None = None) -> pd.DataFrame:
    """One row per run x method (run order) of ``metric``: run_id, created, commit, method, value,
    ci_lo, ci_hi, status.

    Failed methods appear with NaN values; runs whose record is unreadable are skipped and listed
    as ``warning:`` lines in ``df.attrs["warnings"]``.
    """
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise BenchError(f"{runs_root}: runs folder not found")
    rows, warnings = [], []
    for run_dir in _run_dirs(runs_root):
        try:
            rec = load_record(run_dir)
        except BenchError as exc:
            warnings.append(f"warning: skipped {run_dir.name}: {exc}")
            continue
        rows.extend(_history_rows(rec, metric, method))
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    frame = frame.astype({"value": float, "ci_lo": float, "ci_hi": float})
    frame.attrs["warnings"] = warnings
    frame.attrs["metric"] = metric
    return frame


def format_history(df: pd.DataFrame) -> str:
    """Markdown table of :func:`history` output."""
    rows = [[r.run_id, r.created, r.commit, r.method,
             _num(None if math.isnan(r.value) else r.value) if r.status != "failed" else "failed",
             "—" if math.isnan(r.ci_lo) else f"[{_num(r.ci_lo)}, {_num(r.ci_hi)}]"]
            for r in df.itertuples(index=False)]
    metric = df.attrs.get("metric", "value")
    return markdown_table(["run", "created", "commit", "method", metric, "95% CI"], rows)


def plot_history(df: pd.DataFrame, out_png: str | Path) -> Path:
    """Line per method over runs with the 95% CI as error bars; PNG written atomically."""
    from matplotlib.figure import Figure

    if df.empty:
        raise BenchError("history: nothing to plot")
    run_ids = list(dict.fromkeys(df["run_id"]))
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    commits = dict(zip(df["run_id"], df["commit"]))
    fig = Figure(figsize=(max(6.0, 0.7 * len(run_ids) + 3), 4.5), dpi=120)
    ax = fig.add_subplot()
    for method, g in df.groupby("method", sort=False):
        values = g["value"].to_numpy(float)
        err = np.vstack([np.clip(values - g["ci_lo"].to_numpy(float), 0, None),
                         np.clip(g["ci_hi"].to_numpy(float) - values, 0, None)])
        ax.errorbar([position[r] for r in g["run_id"]], values, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(run_ids)))
    ax.set_xticklabels([f"{r.split('_')[0]}\n{commits[r]}" for r in run_ids], fontsize=8)
    metric = df.attrs.get("metric", "value")
    ax.set(xlabel="run", ylabel=metric, title=f"{metric} across runs (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return atomic_write_figure(fig, out_png, bbox_inches="tight")


# Command line
# --------------------------------------------------------------------------------------------


def cmd_baseline_set(args: argparse.Namespace) -> int:
    """``baseline set RUN [--name NAME]``: copy a run's record and per-image values to a baseline."""
    name = getattr(args, "name", None) or "quick"
    dest = set_baseline(args.run, name, Path(getattr(args, "baselines", None) or DEFAULT_BASELINES),
                        Path(getattr(args, "runs", None) or DEFAULT_RUNS))
    per_image = per_image_path(dest)
    extra = f" and {per_image}" if per_image.is_file() else " (the run has no per-image values)"
    print(f"baseline {name!r}: wrote {dest}{extra}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare RUN [--baseline NAME] [--fail-on RULE ...]``: print the diff; 1 on regression."""
    rules = parse_rules(getattr(args, "fail_on", None) or [])
    runs_root = Path(getattr(args, "runs", None) or DEFAULT_RUNS)
    baselines = Path(getattr(args, "baselines", None) or DEFAULT_BASELINES)
    run_path = resolve_run(args.run, runs_root)
    base_path = resolve_baseline(getattr(args, "baseline", None) or "quick", baselines, runs_root)
    result = compare(load_record(run_path), load_record(base_path),
                     load_per_image(run_path, missing_ok=True), load_per_image(base_path, missing_ok=True), rules)
    text = format_compare(result)
    print(text)
    if getattr(args, "out", None):
        atomic_write_text(args.out, text + "\n")
    return 1 if result.failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    """``history [--metric M] [--method NAME] [--runs DIR] [--plot FILE.png]``: a metric over runs."""
    metric = getattr(args, "metric", None) or "pooled_auc"
    runs_root = Path(getattr(args, "runs", None) or DEFAULT_RUNS)
    df = history(runs_root, metric, getattr(args, "method", None))
    for line in df.attrs.get("warnings", []):
        print(line, file=sys.stderr)
    if df.empty:
        if not _run_dirs(runs_root):
            print(f"no runs under {runs_root}")
            return 0
        raise BenchError(f"no run under {runs_root} has metric {metric!r}"
                         + (f" for method {args.method!r}" if getattr(args, "method", None) else ""))
    print(format_history(df))
    plot = getattr(args, "plot", None) or runs_root / f"history_{metric}.png"
    print(f"wrote {plot_history(df, plot)}")
    return 0


_COMPARE_EPILOG = """\
tolerance rules (--fail-on, repeatable or comma-separated):
  METRIC:abs=X     fail when METRIC got worse by more than X (absolute)
  METRIC:rel=Y%    fail when METRIC got worse by more than Y% of the baseline value
  METRIC is a metric name, '*' (every metric) or 'method/metric' (one method only).
  "Worse" follows each metric's direction (higher or lower is better); metrics without a
  direction never fail. A move beyond tolerance also has to be beyond noise: the paired
  bootstrap 95% CI of the per-image differences must exclude 0 (for pooled figures without
  per-image values: the run's value must lie outside the baseline's CI). A method of the
  baseline that is missing or failed in the run fails when a rule covers it.
  Metrics no rule covers are shown but never fail.

exit status: 0 no regression, 1 regression, 2 usage or data error.
example: python -m bench compare latest --fail-on pooled_auc:abs=0.02 '*:rel=5%'"""


def _add_location_args(p: argparse.ArgumentParser, baselines: bool = True) -> None:
    """--runs (and --baselines) folder options."""
    p.add_argument("--runs", default=str(DEFAULT_RUNS), metavar="DIR",
                   help=f"folder of run folders, for run ids (default {DEFAULT_RUNS})")
    if baselines:
        p.add_argument("--baselines", default=str(DEFAULT_BASELINES), metavar="DIR",
                       help=f"folder of named baselines (default {DEFAULT_BASELINES})")


def add_record_commands(sub: Any) -> None:
    """Add the ``baseline set``, ``compare`` and ``history`` commands to an argparse subparsers object."""
    run_help = "run folder, its record.json, a run id or number under --runs (e.g. 0003), or 'latest'"
    baseline = sub.add_parser("baseline", help="manage named baselines (committed copies of run records)",
                              description="Named baselines are copies of run records in results/baselines/.")
    bsub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="{set}")
    p = bsub.add_parser("set", help="make a run the named baseline",
                        description="Copy a run's record.json to BASELINES/NAME.json and its per-image "
                                    "values to BASELINES/NAME.per_image.csv.gz.")
    p.add_argument("run", metavar="RUN", help=run_help)
    p.add_argument("--name", default="quick", help="baseline name: letters, digits, '-', '_' (default quick)")
    _add_location_args(p)
    p.set_defaults(func=cmd_baseline_set)

    p = sub.add_parser("compare", help="compare a run against a baseline; exit 1 on regression",
                       description="Print a Markdown table of every method x metric of a run against a\n"
                                   "baseline, with warnings when config or data differ.",
                       epilog=_COMPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help=run_help)
    p.add_argument("--baseline", default="quick", metavar="NAME",
                   help="baseline name, record path or run id (default quick)")
    p.add_argument("--fail-on", dest="fail_on", action="extend", nargs="+", default=None, metavar="RULE",
                   help="tolerance rule(s), see below; without rules nothing fails "
                        "(give RUN before --fail-on)")
    p.add_argument("--out", metavar="FILE.md", help="also write the Markdown report to this file")
    _add_location_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("history", help="one metric across all runs, per method",
                       description="Table (and optional plot) of a metric over the runs in --runs, "
                                   "oldest first, with 95% CIs.")
    p.add_argument("--metric", default="pooled_auc", help="metric name (default pooled_auc)")
    p.add_argument("--method", help="only this method (default: every method with the metric)")
    p.add_argument("--plot", metavar="FILE.png", help="where to draw the plot (default <runs>/history_<metric>.png)")
    _add_location_args(p, baselines=False)
    p.set_defaults(func=cmd_history)
