"""``python -m bench run``: train what is missing, evaluate every method, write the run folder.

A run folder is assembled under a hidden temporary name and renamed into place when complete,
so ``results/runs`` never holds a half-written run. A method that fails is recorded as failed
(with its traceback in ``errors.log``) and the others carry on.
"""
from __future__ import annotations

import copy
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench import preflight, records, rundir
from bench.checkpoint import atomic_write_text
from bench.config import Config, config_hash, to_dict
from bench.data import PreparedData, open_data
from bench.device import resolve_device
from bench.errors import BenchError, first_line
from bench.evaluate import MethodEval, evaluate, pick_examples, untranslated_accuracy
from bench.registry import get_method_class, list_methods
from bench.report_data import data_problems
from bench.runner import checkpoints_root, train_method
from bench.validate import check_method_list


@dataclass
class MethodRun:
    """One method's results over all seeds, or its failure."""

    name: str
    evals: list[MethodEval] = field(default_factory=list)
    error: str | None = None


@dataclass
class RunResult:
    """What a benchmark run produced: its folder, the record, and whether every method succeeded."""

    run_dir: Path
    record: dict[str, Any]
    ok: bool


def resolve_methods(spec: str) -> list[str]:
    """'all' or a comma-separated list of registered names (unknown names are an error)."""
    names = list_methods() if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise BenchError("no methods to run (--methods is empty)")
    for name in names:
        get_method_class(name)
    check_method_list(names)
    return names


class Stopwatch:
    """Wall time per named stage, in seconds."""

    def __init__(self, announce: bool = False) -> None:
        self.times: dict[str, float] = {}
        self.announce = announce

    def stage(self, name: str) -> "_Timer":
        """Context manager adding the elapsed time of its block to ``name``."""
        return _Timer(self, name)


class _Timer:
    def __init__(self, watch: Stopwatch, name: str) -> None:
        self.watch, self.name = watch, name

    def __enter__(self) -> None:
        if self.watch.announce:
            tqdm.write(f"== {self.name}", file=sys.stderr)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.watch.times[self.name] = round(self.watch.times.get(self.name, 0.0) + time.perf_counter() - self.t0, 3)


def _seed_config(cfg: Config, seed: int) -> Config:
    out = copy.deepcopy(cfg)
    out.train.seed = seed
    return out


def _run_method(name: str, cfg: Config, seeds: list[int], data: PreparedData, judge: Any,
                examples: list[str], watch: Stopwatch, log: list[str], progress: bool) -> MethodRun:
    run = MethodRun(name)
    try:
        for seed in seeds:
            scfg = _seed_config(cfg, seed)
            with watch.stage(f"train {name}"):
                method, _ = train_method(name, scfg, data, progress=progress)
            with watch.stage(f"evaluate {name}"):
                run.evals.append(evaluate(method, data.test, judge, cfg.eval, examples, progress))
    except Exception as exc:  # one method's failure must not lose the others' results
        run.error = f"{type(exc).__name__}: {first_line(exc, default='')}"
        log.append(f"== {name}\n{traceback.format_exc()}")
    return run


def summarize(run: MethodRun) -> dict[str, Any]:
    """A method's record entry: per metric the seed-mean value, CI, n, direction and seed spread."""
    if run.error is not None or not run.evals:
        return {"status": "failed", "error": run.error, "metrics": {}}
    out: dict[str, Any] = {}
    for name, first in run.evals[0].figures.items():
        figs = [e.figures[name] for e in run.evals if name in e.figures]
        values = [f.value for f in figs if f.value is not None]
        entry = first.as_dict()
        if values:
            entry["value"] = float(np.mean(values))
            cis = [f.ci for f in figs if f.ci is not None and None not in f.ci]
            if cis:
                entry["ci"] = [float(np.mean([c[0] for c in cis])), float(np.mean([c[1] for c in cis]))]
        entry["seed_mean"] = entry["value"]
        entry["seed_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out[name] = entry
    return {"status": "ok", "error": None, "metrics": out}


def per_image_frame(runs: list[MethodRun], seeds: list[int], data: PreparedData) -> pd.DataFrame:
    """Long table of per-image values: method, seed, patientId, domain, metric, value."""
    domain = dict(zip(data.test.patient_ids, np.asarray(data.test.domains).tolist()))
    rows = []
    for run in runs:
        for seed, ev in zip(seeds, run.evals):
            for metric, values in ev.per_image.items():
                for pid, v in values.items():
                    rows.append((run.name, seed, pid, "pneumonia" if domain[pid] == 1 else "healthy", metric, v))
    return pd.DataFrame(rows, columns=["method", "seed", "patientId", "domain", "metric", "value"])


def run_benchmark(method_spec: str, cfg: Config, n_seeds: int = 1, runs_root: Path = Path("results/runs"),
                  progress: bool = True, repo: Path | None = None) -> RunResult:
    """Train (or reuse) and evaluate methods, then write record, per-image values, report and figures."""
    from bench.evaluator import get_evaluator
    from bench.report import write_report

    if n_seeds < 1:
        raise BenchError(f"--seeds must be at least 1, got {n_seeds}")
    names = resolve_methods(method_spec)
    preflight.check_writable_dir(runs_root, "runs folder")
    preflight.check_writable_dir(checkpoints_root(), "checkpoints folder")
    seeds = [cfg.train.seed + k for k in range(n_seeds)]
    watch, log = Stopwatch(announce=progress), []
    started = datetime.now(timezone.utc)
    with watch.stage("data"):
        data = open_data(cfg.data, progress=progress)
    preflight.check_splits(data, cfg.data, preflight.NEEDS_RUN)
    with watch.stage("evaluator"):
        judge = get_evaluator(cfg, data, progress=progress)
        reference = untranslated_accuracy(data.test, judge, cfg.eval)
    examples = pick_examples(data.test, cfg.eval.n_qualitative)
    runs = [_run_method(n, cfg, seeds, data, judge, examples, watch, log, progress) for n in names]

    commit, dirty = records.git_state(repo or Path.cwd())
    reserved = rundir.reserve(runs_root, commit, dirty, started)
    run_dir, tmp = reserved.final, reserved.tmp
    try:
        record = _record(run_dir.name, started, commit, dirty, cfg, seeds, data, judge, runs, watch)
        record["evaluator"]["untranslated"] = {k: f.as_dict() for k, f in reference.items()}
        records.write_per_image(tmp, per_image_frame(runs, seeds, data))
        with watch.stage("report"):
            write_report(tmp, record, runs, data, examples)
        record["times"] = dict(watch.times)
        records.write_record(tmp, record)
        if log:
            atomic_write_text(tmp / "errors.log", "\n".join(log))
        rundir.publish(reserved)
    except BaseException:
        rundir.discard(reserved)
        raise
    return RunResult(run_dir, record, all(r.error is None for r in runs))


def _record(run_id: str, started: datetime, commit: str | None, dirty: bool, cfg: Config, seeds: list[int],
            data: PreparedData, judge: Any, runs: list[MethodRun], watch: Stopwatch) -> dict[str, Any]:
    def counts(ds: Any) -> dict[str, int]:
        return {"pneumonia": int((ds.domains == 1).sum()), "healthy": int((ds.domains == 0).sum())}

    return {
        "schema": 1,
        "run_id": run_id,
        "created": started.isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "seeds": seeds,
        "versions": records.versions(),
        "device": records.device_description(resolve_device(cfg.train.device)),
        "data": {"root": str(data.root), "synthetic": data.synthetic, "manifest_hash": data.manifest_hash,
                 "n_test": counts(data.test), "n_tune": len(data.tune),
                 "n_tune_by_domain": counts(data.tune), "n_train": len(data.train), "split_counts": data.split_counts,
                 "missing": len(data.cache.missing), "skipped": len(data.problems), **data_problems(data)},
        "times": dict(watch.times),
        "evaluator": judge.describe() if hasattr(judge, "describe") else {"threshold": float(judge.threshold)},
        "methods": {r.name: summarize(r) for r in runs},
    }
