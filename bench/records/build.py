"""A run's record and per-image table, built from the methods' evaluations.

The record is the one stored result of a run (``record.json``); the report and ``compare`` read
it. Each metric entry is a :class:`bench.evaluate.figure.Figure` in JSON form plus its spread over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from bench.config import Config, config_hash, to_dict
from bench.data import PreparedData
from bench.data.domains import DOMAINS, HEALTHY, PNEUMONIA
from bench.data.problems import data_problems
from bench.evaluate import metrics, verdict
from bench.evaluate.figure import Figure
from bench.evaluate.protocol import MethodEval
from bench.records.provenance import device_description, versions
from bench.records.schema import SCHEMA
from bench.train.device import resolve_device


@dataclass
class MethodRun:
    """One method's results over all seeds, or its failure; ``reference`` marks a reference map."""

    name: str
    evals: list[MethodEval] = field(default_factory=list)
    error: str | None = None
    reference: bool = False
    ceiling: bool = False  # a reference that sees what methods may not (a ceiling, not a baseline to beat)
    uses_classifier: bool = False
    curves: list[list[dict[str, float]]] = field(default_factory=list)  # learning-curve points per seed


def _seed_entry(figs: list[Figure], resamples: list[np.ndarray | None]) -> dict[str, Any]:
    """Record entry of one metric over seeds: seed-mean value, the CI of the seed mean, seed spread.

    With several seeds the CI is the percentile interval of the seed-mean statistic of each bootstrap
    resample (every seed's resample r draws the same test images), not the mean of the seeds' bounds."""
    entry = figs[0].as_dict()
    values = [f.value for f in figs if f.value is not None]
    if values:
        entry["value"] = float(np.mean(values))
        if len(figs) > 1 and all(r is not None for r in resamples):
            lo, hi = metrics.seed_mean_ci(resamples)
            entry["ci"] = [lo, hi] if np.isfinite(lo) and np.isfinite(hi) else None
    entry["seed_mean"] = entry["value"]
    entry["seed_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return entry


def curve_fields(run: MethodRun) -> dict[str, Any]:
    """Learning-curve entries of a method trained with curves: ``curves`` (the first seed's points),
    ``curves_by_seed`` (with several seeds), ``curve_eval_seconds`` (the first seed's total evaluation
    cost) and ``curve_train_seconds`` (its training seconds at the last point); empty without curves."""
    if not run.curves or not run.curves[0]:
        return {}
    first = run.curves[0]
    out: dict[str, Any] = {
        "curves": first,
        "curve_eval_seconds": float(sum(p["eval_seconds"] for p in first)),
        "curve_train_seconds": float(first[-1]["seconds"]),
    }
    if len(run.curves) > 1:
        out["curves_by_seed"] = run.curves
    return out


def summarize(run: MethodRun) -> dict[str, Any]:
    """A method's record entry: status, error and per metric the seed-mean figure with its spread,
    plus its learning curves (:func:`curve_fields`); reference maps carry ``"reference": true``, ceilings
    ``"ceiling": true`` and classifier-based methods ``"uses_classifier": true``."""
    flag = {k: True for k in ("reference", "ceiling", "uses_classifier") if getattr(run, k)}
    if run.error is not None or not run.evals:
        return {"status": "failed", "error": run.error, "metrics": {}, **flag}
    out: dict[str, Any] = {}
    for name in run.evals[0].figures:
        evals = [e for e in run.evals if name in e.figures]
        out[name] = _seed_entry([e.figures[name] for e in evals], [e.resamples.get(name) for e in evals])
    return {"status": "ok", "error": None, "metrics": out, **flag, **curve_fields(run)}


def per_image_frame(runs: list[MethodRun], seeds: list[int], data: PreparedData) -> pd.DataFrame:
    """Long table of per-image values: method, seed, patientId, domain, metric, value."""
    domain = dict(zip(data.test.patient_ids, np.asarray(data.test.domains).tolist()))
    rows = []
    for run in runs:
        for seed, ev in zip(seeds, run.evals):
            for metric, values in ev.per_image.items():
                for pid, v in values.items():
                    rows.append((run.name, seed, pid, DOMAINS[domain[pid]], metric, v))
    return pd.DataFrame(rows, columns=["method", "seed", "patientId", "domain", "metric", "value"])


def _counts(ds: Any) -> dict[str, int]:
    return {"pneumonia": int((ds.domains == PNEUMONIA).sum()), "healthy": int((ds.domains == HEALTHY).sum())}


def build_record(
    run_id: str,
    started: datetime,
    commit: str | None,
    dirty: bool,
    cfg: Config,
    seeds: list[int],
    data: PreparedData,
    judge: Any,
    untranslated: dict[str, Figure],
    runs: list[MethodRun],
    times: dict[str, float],
) -> dict[str, Any]:
    """The run record: provenance, data counts, the evaluator with Table 1's untranslated column,
    and one entry per method (references included, flagged)."""
    evaluator = judge.describe() if hasattr(judge, "describe") else {"threshold": float(judge.threshold)}
    evaluator["untranslated"] = {k: f.as_dict() for k, f in untranslated.items()}
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "created": started.isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "seeds": seeds,
        "versions": versions(),
        "device": device_description(resolve_device(cfg.train.device)),
        "data": {
            "root": str(data.root),
            "synthetic": data.synthetic,
            "manifest_hash": data.manifest_hash,
            "n_test": _counts(data.test),
            "n_tune": len(data.tune),
            "n_tune_by_domain": _counts(data.tune),
            "n_train": len(data.train),
            "split_counts": data.split_counts,
            "missing": len(data.cache.missing),
            "skipped": len(data.problems),
            **data_problems(data),
        },
        "times": dict(times),
        "evaluator": evaluator,
        "methods": {r.name: summarize(r) for r in runs},
    }


def add_verdict(record: dict[str, Any], runs: list[MethodRun]) -> None:
    """The leaderboards of the headline (boxes, and exact masks where scored) into ``record["verdict"]``."""
    boards = [verdict.leaderboard(runs, record, prefix) for prefix in ("", "mask_")]
    record["verdict"] = {b.prefix or "boxes": b.as_dict() for b in boards if b is not None}
