"""A run's record and per-image table, built from the methods' evaluations.

The record (:class:`~bench.records.record.RunRecord`) is the one stored result of a run; the report
and ``compare`` read it. Each metric is a :class:`bench.evaluate.figure.Figure` keyed by its
:class:`~bench.evaluate.figure.MetricId`, with its spread over seeds; the verdict and the agreement
with the committed standard record are computed here, when the record is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from bench.config import Config, config_hash, to_dict
from bench.data import PreparedData
from bench.data.domains import DOMAINS, HEALTHY, PNEUMONIA
from bench.data.problems import data_problems
from bench.evaluate import metrics, verdict
from bench.evaluate.figure import TARGETS, Figure, MetricId, SeedSpread
from bench.evaluate.protocol import MethodEval
from bench.records.provenance import device_description, versions
from bench.records.record import Agreement, Evaluator, MethodResult, RunRecord
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


def _seed_figure(figs: list[Figure], resamples: list[np.ndarray | None]) -> Figure:
    """One metric over seeds: seed-mean value, the CI of the seed mean, seed spread.

    With several seeds the CI is the percentile interval of the seed-mean statistic of each bootstrap
    resample (every seed's resample r draws the same test images), not the mean of the seeds' bounds."""
    first = figs[0]
    value, ci = first.value, first.ci
    values = [f.value for f in figs if f.value is not None]
    if values:
        value = float(np.mean(values))
        if len(figs) > 1 and all(r is not None for r in resamples):
            lo, hi = metrics.seed_mean_ci(resamples)
            ci = (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return replace(first, value=value, ci=ci, seeds=SeedSpread(value, std))


def curve_fields(run: MethodRun) -> dict[str, Any]:
    """Learning-curve fields of a method trained with curves: ``curves`` (the first seed's points),
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


def summarize(run: MethodRun) -> MethodResult:
    """A method's result: status, error and per metric the seed-mean figure with its spread, plus its
    learning curves (:func:`curve_fields`) and what kind of row it is (reference, ceiling, classifier)."""
    flags = {"reference": run.reference, "ceiling": run.ceiling, "uses_classifier": run.uses_classifier}
    if run.error is not None or not run.evals:
        return MethodResult("failed", run.error, **flags)
    out: dict[MetricId, Figure] = {}
    for name in run.evals[0].figures:
        evals = [e for e in run.evals if name in e.figures]
        out[name] = _seed_figure([e.figures[name] for e in evals], [e.resamples.get(name) for e in evals])
    return MethodResult("ok", None, out, **flags, **curve_fields(run))


def per_image_frame(runs: list[MethodRun], seeds: list[int], data: PreparedData) -> pd.DataFrame:
    """Long table of per-image values: method, seed, patientId, domain, metric, value."""
    domain = dict(zip(data.test.patient_ids, np.asarray(data.test.domains).tolist()))
    rows = []
    for run in runs:
        for seed, ev in zip(seeds, run.evals):
            for metric, values in ev.per_image.items():
                for pid, v in values.items():
                    rows.append((run.name, seed, pid, DOMAINS[domain[pid]], metric.key, v))
    return pd.DataFrame(rows, columns=["method", "seed", "patientId", "domain", "metric", "value"])


def _counts(ds: Any) -> dict[str, int]:
    return {"pneumonia": int((ds.domains == PNEUMONIA).sum()), "healthy": int((ds.domains == HEALTHY).sum())}


@dataclass
class RunContext:
    """How a run was made, beyond its results: where it ran and what it left out (:class:`RunRecord` fields)."""

    layout: dict[str, int] | None = None
    references_left_out: dict[str, str] | None = None
    launch: dict[str, Any] | None = None
    standard: RunRecord | None = None  # the committed standard record to agree with
    standard_path: str | None = None


def build_record(
    run_id: str,
    started: datetime,
    commit: str | None,
    dirty: bool,
    cfg: Config,
    seeds: list[int],
    data: PreparedData,
    judge: Any,
    untranslated: dict[MetricId, Figure],
    runs: list[MethodRun],
    times: dict[str, float],
    context: RunContext | None = None,
) -> RunRecord:
    """The run record: provenance, data counts, the evaluator with Table 1's untranslated column,
    one entry per method (references included, flagged), the verdict and, for runs of other presets,
    the agreement with the committed standard record."""
    context = context or RunContext()
    settings = judge.describe() if hasattr(judge, "describe") else {"threshold": float(judge.threshold)}
    record = RunRecord(
        run_id=run_id,
        created=started.isoformat(timespec="seconds"),
        commit=commit,
        dirty=dirty,
        config=to_dict(cfg),
        config_hash=config_hash(cfg),
        seeds=seeds,
        versions=versions(),
        device=device_description(resolve_device(cfg.train.device)),
        data=_data_section(data),
        times=dict(times),
        evaluator=Evaluator(settings, dict(untranslated)),
        methods={r.name: summarize(r) for r in runs},
        layout=context.layout,
        references_left_out=context.references_left_out,
        launch=context.launch,
    )
    boards = [verdict.leaderboard(runs, record, target) for target in TARGETS]
    record.verdict = {b.target: b for b in boards if b is not None}
    record.agreement = agreement(record, context.standard, context.standard_path)
    return record


def _data_section(data: PreparedData) -> dict[str, Any]:
    """The record's ``data``: root, manifest, split counts and the data problems."""
    return {
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
    }


def agreement(record: RunRecord, standard: RunRecord | None, path: str | None) -> Agreement | None:
    """Kendall's tau between the record's order of methods on the headline and the ``standard``
    record's, for runs of other presets on the same kind of data, over every method and over the
    methods this run ranks (an untrained method's place says nothing); None otherwise."""
    if standard is None or record.preset == "standard" or standard.data.get("synthetic") != record.synthetic:
        return None
    found = verdict.rank_agreement(record.methods, standard)
    if found is None:
        return None
    board = (record.verdict or {}).get("boxes")
    ranked = {s.method for s in board.ranked} if board else set()
    among = verdict.rank_agreement({n: m for n, m in record.methods.items() if n in ranked}, standard)
    extra = {} if among is None else {"ranked_methods": among["methods"], "ranked_tau": among["kendall_tau"]}
    return Agreement(**found, other_path=path, **extra)
