"""Builders of run records and per-image tables for the tests of bench.records and its commands."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import records as R

N_PATIENTS = 40
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def entry(
    value: float | None, ci: tuple[float, float] | None = None, direction: str = "higher", group: str = "localization"
) -> dict[str, Any]:
    """A metric entry with a CI of +-0.02 unless given."""
    if ci is None and value is not None:
        ci = (value - 0.02, value + 0.02)
    return R.metric_entry(value, ci, N_PATIENTS, direction, group, value, None)


def make_record(
    run_id: str = "0001_aaaaaaa_20240101T000000Z",
    metrics: dict[str, dict] | None = None,
    commit: str | None = COMMIT_A,
    config_hash: str = "cfg1",
    manifest: str = "data1",
    extra_methods: dict[str, dict] | None = None,
    schema: int = R.SCHEMA,
    preset: str = "smoke",
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete record with one method 'pillet' (and optional others); ``config`` replaces the
    resolved config's sections (the preset is ``preset``)."""
    metrics = metrics if metrics is not None else {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)}
    methods = {"pillet": {"status": "ok", "error": None, "metrics": metrics}}
    methods.update(extra_methods or {})
    return {
        "schema": schema,
        "run_id": run_id,
        "created": "2024-01-01T00:00:00+00:00",
        "commit": commit,
        "dirty": False,
        "config": {"train": {"iterations": 10}, **(config or {}), "preset": preset},
        "config_hash": config_hash,
        "seeds": [0],
        "versions": R.versions(),
        "device": "cpu (2 threads)",
        "data": {
            "root": "synthetic",
            "synthetic": True,
            "manifest_hash": manifest,
            "n_val": {"pneumonia": N_PATIENTS, "healthy": N_PATIENTS},
        },
        "times": {"data": 0.5, "train pillet": 3.0},
        "evaluator": {"threshold": 0.5},
        "methods": methods,
    }


def per_image(values: dict[str, np.ndarray], method: str = "pillet") -> pd.DataFrame:
    """Long per-image table for ``method`` from metric -> values over patients p0..pN."""
    rows = [
        (method, 0, f"p{i}", "pneumonia", metric, float(v))
        for metric, vals in values.items()
        for i, v in enumerate(vals)
    ]
    return pd.DataFrame(rows, columns=R.PER_IMAGE_COLUMNS)


def base_values(metric: str = "per_image_auc", centre: float = 0.80) -> np.ndarray:
    """Reproducible per-image values around ``centre``."""
    return centre + np.random.default_rng(1).normal(0, 0.05, N_PATIENTS)


def noisy_shift(base: np.ndarray, shift: float, sd: float) -> np.ndarray:
    """``base`` plus zero-mean noise of ``sd`` plus exactly ``shift`` on average."""
    noise = np.random.default_rng(2).normal(0, sd, base.size)
    return base + noise - noise.mean() + shift


def write_runs(runs: Path, values: list[float], presets: list[str] | None = None) -> list[Path]:
    """Run folders with pooled_auc ``values`` (the second one dirty), one a day from 2024-01-01, of
    ``presets`` (default: all 'smoke'; config hash 'cfg-<preset>')."""
    out = []
    for i, v in enumerate(values):
        preset = presets[i] if presets else "smoke"
        run_dir = R.next_run_dir(runs, COMMIT_A, i == 1, datetime(2024, 1, 1 + i, tzinfo=timezone.utc))
        rec = make_record(run_dir.name, metrics={"pooled_auc": entry(v)}, preset=preset, config_hash=f"cfg-{preset}")
        rec["dirty"] = i == 1
        R.write_record(run_dir, rec)
        out.append(run_dir)
    return out


def schema1_copy_of_baseline(dest: Path) -> Path:
    """The committed quick baseline written back in schema 1 (per-image rows named ``hit``/``iou``, as
    baselines were stored before schema 2) into ``dest``; returns the record path."""
    root = Path(__file__).resolve().parents[2] / "results" / "baselines"
    record = json.loads((root / "quick.json").read_text())
    record["schema"] = 1
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "quick.json").write_text(json.dumps(record))
    frame = pd.read_csv(root / "quick.per_image.csv.gz")
    old = {"hit_rate": "hit", "miou": "iou", "mask_hit_rate": "mask_hit", "mask_miou": "mask_iou"}
    frame["metric"] = frame["metric"].replace(old)
    frame.to_csv(dest / "quick.per_image.csv.gz", index=False)
    return dest / "quick.json"
