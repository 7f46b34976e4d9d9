"""The run record format: what ``record.json`` and ``per_image.csv`` hold, checks, reading and writing.

Record format (``schema`` 2)::

    {"schema": 2, "run_id": str, "created": ISO-8601 UTC, "commit": str | null, "dirty": bool,
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

NaN and infinite numbers are stored as ``null``. The per-image values (``per_image.csv`` beside
``record.json``, ``NAME.per_image.csv.gz`` beside a baseline ``NAME.json``) are a long table
``method, seed, patientId, domain, metric, value`` whose metric names are the record's names.

Schema 1 differs only in the per-image names of two metrics: its rows ``hit`` and ``iou`` (with
any prefix, e.g. ``mask_hit``) hold the per-image values of ``hit_rate`` and ``miou``.
:data:`LEGACY_PER_IMAGE_NAMES` renames them when a schema-1 file is read, so the rest of the suite
sees schema-2 names only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.atomic import atomic_write_json, atomic_write_text
from bench.errors import BenchError, first_line

SCHEMA = 2
"""The schema this version writes."""
READABLE_SCHEMAS = (1, 2)
RECORD_FILE = "record.json"
PER_IMAGE_FILE = "per_image.csv"
BASELINE_PER_IMAGE_SUFFIX = ".per_image.csv.gz"
PER_IMAGE_COLUMNS = ["method", "seed", "patientId", "domain", "metric", "value"]
DIRECTIONS = ("higher", "lower", "none")
REQUIRED_KEYS = (
    "schema",
    "run_id",
    "created",
    "commit",
    "dirty",
    "config",
    "config_hash",
    "seeds",
    "versions",
    "device",
    "data",
    "times",
    "evaluator",
    "methods",
)
METRIC_KEYS = ("value", "ci", "n", "direction")
LEGACY_PER_IMAGE_NAMES = {"hit": "hit_rate", "iou": "miou"}
"""Schema-1 per-image name -> its record metric name; applies after any prefix (``mask_hit``)."""


def metric_entry(
    value: float | None,
    ci: Sequence[float | None] | None = None,
    n: int = 0,
    direction: str = "higher",
    group: str = "",
    seed_mean: float | None = None,
    seed_std: float | None = None,
) -> dict[str, Any]:
    """One metric of a record in the stored form (NaN becomes None, CI a list or None)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    ci_list = None if ci is None else [_clean(ci[0]), _clean(ci[1])]
    return {
        "value": _clean(value),
        "ci": ci_list,
        "n": int(n),
        "direction": direction,
        "group": group,
        "seed_mean": _clean(seed_mean),
        "seed_std": _clean(seed_std),
    }


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


def _is_number(v: Any) -> bool:
    """A JSON number (bool is not one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def record_problem(rec: Any) -> str | None:
    """What makes ``rec`` not a valid record of a readable schema, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if "schema" in rec and rec["schema"] not in READABLE_SCHEMAS:
        return f"schema {rec['schema']!r}; this version reads schema {', '.join(map(str, READABLE_SCHEMAS))}"
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
        if m["value"] is not None and not _is_number(m["value"]):
            return f"metric {metric!r}: value {m['value']!r} is not a number"
        if m["ci"] is not None and (not isinstance(m["ci"], list) or len(m["ci"]) != 2):
            return f"metric {metric!r}: ci is not [lo, hi]"
        if m["ci"] is not None and not all(v is None or _is_number(v) for v in m["ci"]):
            return f"metric {metric!r}: ci {m['ci']!r} holds a non-number"
    return None


def check_record(rec: Any, where: str) -> dict[str, Any]:
    """``rec`` when it is a valid record, else BenchError naming ``where`` (a file or run) and the problem."""
    problem = record_problem(rec)
    if problem:
        raise BenchError(f"{where}: not a valid run record ({problem})")
    return rec


def write_record(run_dir: Path, record: Any) -> Path:
    """Check ``record`` (a :class:`~bench.records.record.RunRecord` or its JSON form) and write it as
    ``run_dir/record.json`` atomically; returns the path.

    The file is stamped with :data:`SCHEMA`, the format this function writes, whatever the record's
    schema said.
    """
    path = Path(run_dir) / RECORD_FILE
    if hasattr(record, "to_json"):
        record = record.to_json()
    clean = _clean({**record, "schema": SCHEMA})
    problem = record_problem(clean)
    if problem:
        raise BenchError(f"{path}: refusing to write an invalid run record ({problem})")
    atomic_write_json(path, clean)
    return path


def read_record(path: Path) -> dict[str, Any]:
    """Read and check the record file ``path``; a missing or bad file is a BenchError naming it."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: run record not found")
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not a valid run record (bad JSON at line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read run record ({exc})") from None
    return check_record(rec, str(path))


def per_image_path(record_path: Path) -> Path:
    """Where the per-image values of a record live: ``per_image.csv`` beside ``record.json``,
    ``NAME.per_image.csv.gz`` beside a baseline ``NAME.json``."""
    record_path = Path(record_path)
    if record_path.name == RECORD_FILE:
        return record_path.parent / PER_IMAGE_FILE
    stem = record_path.name.removesuffix(".json")
    return record_path.with_name(f"{stem}{BASELINE_PER_IMAGE_SUFFIX}")


def record_path_of(per_image: Path) -> Path:
    """The record a per-image file belongs to (the inverse of :func:`per_image_path`)."""
    per_image = Path(per_image)
    if per_image.name.endswith(BASELINE_PER_IMAGE_SUFFIX):
        return per_image.with_name(per_image.name[: -len(BASELINE_PER_IMAGE_SUFFIX)] + ".json")
    return per_image.parent / RECORD_FILE


def stored_schema(record_path: Path) -> int:
    """The ``schema`` of a record file; :data:`SCHEMA` when the file is absent or unreadable."""
    try:
        rec = json.loads(Path(record_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return SCHEMA
    return rec.get("schema", SCHEMA) if isinstance(rec, dict) else SCHEMA


def write_per_image(run_dir: Path, frame: pd.DataFrame) -> Path:
    """Write the long per-image table (``PER_IMAGE_COLUMNS``) as ``run_dir/per_image.csv`` atomically."""
    missing = [c for c in PER_IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"per-image table lacks column(s) {', '.join(missing)}")
    path = Path(run_dir) / PER_IMAGE_FILE
    atomic_write_text(path, frame[PER_IMAGE_COLUMNS].to_csv(index=False))
    return path


def legacy_metric_name(name: str) -> str:
    """The schema-2 name of a schema-1 per-image metric name (``mask_hit`` -> ``mask_hit_rate``)."""
    for old, new in LEGACY_PER_IMAGE_NAMES.items():
        if name == old or name.endswith("_" + old):
            return name[: -len(old)] + new
    return name


def read_per_image(csv: Path, schema: int = SCHEMA) -> pd.DataFrame:
    """Read a per-image CSV (or CSV.gz) written under ``schema``, with schema-2 metric names.

    A missing or malformed file is a BenchError naming it.
    """
    csv = Path(csv)
    if not csv.is_file():
        raise BenchError(f"{csv}: per-image values not found")
    try:
        frame = pd.read_csv(csv, dtype={"method": str, "patientId": str, "domain": str, "metric": str})
    except (OSError, ValueError, EOFError) as exc:
        raise BenchError(f"{csv}: unreadable per-image values ({first_line(exc)})") from None
    missing = [c for c in PER_IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise BenchError(f"{csv}: per-image values lack column(s) {', '.join(missing)}")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    if schema == 1:
        renames = {m: legacy_metric_name(m) for m in frame["metric"].dropna().unique()}
        frame["metric"] = frame["metric"].replace(renames)
    return frame
