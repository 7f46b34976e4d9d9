"""``python -m bench run``: train what is missing, evaluate every method, write the run folder.

A run folder is assembled under a hidden temporary name and renamed into place when complete,
so ``results/runs`` never holds a half-written run. A method that fails is recorded as failed
(with its traceback in ``errors.log``) and the others carry on.
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import preflight, records
from bench.atomic import atomic_write_text
from bench.config import Config
from bench.data import PreparedData, open_data
from bench.errors import BenchError, first_line
from bench.evaluate.figure import Example, MetricId, RocCurve
from bench.evaluate.protocol import evaluate, pick_examples, untranslated_accuracy
from bench.progress import note
from bench.records import rundir
from bench.records.build import MethodRun, RunContext, build_record, per_image_frame
from bench.records.record import RunRecord, load_run_record
from bench.registry import get_method_class, list_methods
from bench.report.document import title, write_report
from bench.settings import check_method_list
from bench.train import parallel
from bench.train.runner import checkpoints_root, train_method


@dataclass
class Prelaunched:
    """A run whose methods were trained by jobs elsewhere (:mod:`bench.launch.submit`): the run folder
    reserved when the jobs were submitted (its temporary folder holds their scripts and logs, and is
    kept if the run fails), the provenance read then, what each (method, seed) job reported, and the
    launch's description for the record."""

    folder: rundir.RunFolder
    started: datetime
    commit: str | None
    dirty: bool
    trained: dict[tuple[str, int], parallel.Trained]
    info: dict[str, Any]


@dataclass
class RunResult:
    """What a benchmark run produced: its folder, the record (``run_record``; ``record`` is its JSON
    form, as written to ``record.json``), and whether every method succeeded."""

    run_dir: Path
    run_record: RunRecord
    ok: bool

    @property
    def record(self) -> dict[str, Any]:
        """The record's JSON form."""
        return self.run_record.to_json()


def resolve_methods(spec: str) -> list[str]:
    """'all' (every registered non-reference method) or a comma-separated list of registered names
    (unknown names are an error). References are added later by :func:`with_references`."""
    if spec.strip() == "all":
        names = [n for n in list_methods() if not get_method_class(n).reference]
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise BenchError("no methods to run (--methods is empty)")
    for name in names:
        get_method_class(name)
    check_method_list(names)
    return names


def missing_needs(name: str, data: PreparedData) -> list[str]:
    """What method ``name`` needs (its ``needs``: batch keys) that the test split does not provide."""
    return sorted(get_method_class(name).needs - data.test.keys)


def with_references(names: list[str], data: PreparedData) -> list[str]:
    """``names`` followed by every registered reference map whose needs the data meets and that is not
    :meth:`~bench.method.Method.cannot_run` on it."""
    refs = [n for n in list_methods() if get_method_class(n).reference and not missing_needs(n, data)]
    refs = [n for n in refs if get_method_class(n).cannot_run(data) is None]
    return names + [n for n in refs if n not in names]


def unavailable_references(data: PreparedData) -> dict[str, str]:
    """The references whose needs the data meets but that cannot run on it, with the reason."""
    out = {}
    for name in list_methods():
        cls = get_method_class(name)
        if cls.reference and not missing_needs(name, data) and (why := cls.cannot_run(data)) is not None:
            out[name] = why
    return out


def check_needs(names: list[str], data: PreparedData) -> None:
    """A named method whose needs the data cannot meet is an error naming both."""
    for name in names:
        missing = missing_needs(name, data)
        if missing:
            raise BenchError(f"method {name!r} needs {', '.join(missing)}, which {data.root} does not provide")


class Stopwatch:
    """Wall time per named stage, in seconds."""

    def __init__(self, announce: bool = False) -> None:
        self.times: dict[str, float] = {}
        self.announce = announce

    def stage(self, name: str) -> _Timer:
        """Context manager adding the elapsed time of its block to ``name``."""
        return _Timer(self, name)


class _Timer:
    def __init__(self, watch: Stopwatch, name: str) -> None:
        self.watch, self.name = watch, name

    def __enter__(self) -> None:
        if self.watch.announce:
            note(f"== {self.name}")
        self.t0 = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        seconds = time.perf_counter() - self.t0
        self.watch.times[self.name] = round(self.watch.times.get(self.name, 0.0) + seconds, 3)
        if self.watch.announce:
            note(f"== {self.name}: {'stopped after' if exc_type is not None else 'done in'} {seconds:.1f} s")


def _seed_config(cfg: Config, seed: int) -> Config:
    out = copy.deepcopy(cfg)
    out.train.seed = seed
    return out


def train_side_by_side(
    names: list[str], cfg: Config, seeds: list[int], layout: parallel.Layout, watch: Stopwatch, progress: bool
) -> dict[tuple[str, int], parallel.Trained]:
    """With more than one job, train every method and seed in worker processes before evaluation
    (the run then loads their checkpoints); returns each one's seconds and error, if any."""
    trainable = sorted(
        (n for n in names if not get_method_class(n).reference), key=lambda n: -get_method_class(n).training_cost
    )  # longest first, so that no long training starts last while the other workers idle
    tasks = [(n, _seed_config(cfg, s)) for n in trainable for s in seeds]
    if layout.jobs < 2 or not tasks:
        return {}
    with watch.stage(f"train ({layout.jobs} processes x {layout.threads} threads)"):
        return parallel.train_concurrently(tasks, layout, progress)


def _run_method(
    name: str,
    cfg: Config,
    seeds: list[int],
    data: PreparedData,
    judge: Any,
    examples: list[str],
    watch: Stopwatch,
    log: list[str],
    progress: bool,
    trained: dict[tuple[str, int], parallel.Trained],
) -> MethodRun:
    cls = get_method_class(name)
    run = MethodRun(name, reference=cls.reference, ceiling=cls.ceiling, uses_classifier=cls.uses_classifier)
    try:
        for seed in seeds:
            worker = trained.get((name, seed))
            if worker is not None and worker.error is not None:
                raise BenchError(f"training in another process failed: {worker.error}\n{worker.trace}")
            scfg = _seed_config(cfg, seed)
            with watch.stage(f"train {name}"):
                done = train_method(name, scfg, data, progress=progress, judge=judge)
            run.curves.append(done.curves)
            with watch.stage(f"evaluate {name}"):
                run.evals.append(evaluate(done.method, data.test, judge, cfg.eval, examples, progress))
    except Exception as exc:  # noqa: BLE001 (one method's failure must not lose the others' results)
        run.error = f"{type(exc).__name__}: {first_line(exc, default='')}"
        log.append(f"== {name}\n{traceback.format_exc()}")
    return run


STANDARD_RECORD = Path("results/standard/record.json")
"""The committed record of the ``standard`` preset, the order other presets are checked against."""


def standard_record(repo: Path, cfg: Config) -> RunRecord | None:
    """The committed ``standard`` record that runs of other presets are checked against, when readable."""
    path = repo / STANDARD_RECORD
    if cfg.preset == "standard" or not path.is_file():
        return None
    try:
        return load_run_record(path)
    except BenchError:
        return None


def roc_curves(runs: list[MethodRun], record: RunRecord) -> list[RocCurve]:
    """Each evaluated method's pooled ROC (first seed), labelled with the record's pooled AUC."""
    pooled = MetricId("pooled_auc", target="boxes")
    curves = []
    for run in runs:
        if run.error is None and run.evals and run.evals[0].roc is not None:
            roc = run.evals[0].roc
            fig = record.methods[run.name].metrics.get(pooled)
            auc = None if fig is None else fig.value
            curves.append(RocCurve(run.name, title(run.name), roc["fpr"], roc["tpr"], auc, run.reference))
    return curves


def qualitative_examples(runs: list[MethodRun], data: PreparedData, ids: list[str]) -> list[Example]:
    """The example test images with their boxes and every evaluated method's map (first seed)."""
    position = {pid: i for i, pid in enumerate(data.test.patient_ids)}
    ids = [pid for pid in ids if pid in position]
    if not ids:
        return []
    batch = data.test.batch([position[p] for p in ids])
    shown = [r for r in runs if r.error is None and r.evals]
    return [
        Example(
            pid,
            int(batch["domain"][r]) == 1,
            batch["image"][r, 0].numpy(),
            batch["boxes"][r, : int(batch["n_boxes"][r])].numpy(),
            {run.name: run.evals[0].examples[pid] for run in shown if pid in run.evals[0].examples},
        )
        for r, pid in enumerate(ids)
    ]


def run_benchmark(
    method_spec: str,
    cfg: Config,
    n_seeds: int = 1,
    runs_root: Path = Path("results/runs"),
    progress: bool = True,
    repo: Path | None = None,
    references: bool = True,
    jobs: int | None = 1,
    threads: int | None = None,
    prelaunched: Prelaunched | None = None,
) -> RunResult:
    """Train (or reuse) and evaluate methods (plus the reference maps the data allows, unless
    ``references`` is false), then write record, per-image values, report and figures. ``jobs``
    methods train at a time with ``threads`` threads each (:mod:`bench.train.parallel`; None: its default);
    with ``prelaunched`` the methods were trained by cluster jobs and the run only loads them."""
    from bench.train.device import resolve_device

    if n_seeds < 1:
        raise BenchError(f"--seeds must be at least 1, got {n_seeds}")
    names = resolve_methods(method_spec)
    preflight.check_writable_dir(runs_root, "runs folder")
    preflight.check_writable_dir(checkpoints_root(), "checkpoints folder")
    seeds = [cfg.train.seed + k for k in range(n_seeds)]
    trainable = [n for n in names if not get_method_class(n).reference]
    layout = parallel.plan(jobs, threads, len(trainable) * n_seeds, resolve_device(cfg.train.device))
    with parallel.torch_threads(layout.eval_threads):
        return _run(names, cfg, seeds, runs_root, progress, repo, references, layout, prelaunched)


def _run(
    names: list[str],
    cfg: Config,
    seeds: list[int],
    runs_root: Path,
    progress: bool,
    repo: Path | None,
    references: bool,
    layout: parallel.Layout,
    pre: Prelaunched | None = None,
) -> RunResult:
    from bench.evaluate.judge import get_evaluator

    watch, log = Stopwatch(announce=progress), []
    if pre is None:
        started = datetime.now(timezone.utc)
        commit, dirty = records.git_state(repo or Path.cwd())  # the code that runs, read before any work
    else:
        started, commit, dirty = pre.started, pre.commit, pre.dirty
    with watch.stage("data"):
        data = open_data(cfg.data, progress=progress)
    preflight.check_splits(data, cfg.data, preflight.NEEDS_RUN)
    check_needs(names, data)
    if references:
        names = with_references(names, data)
    with watch.stage("evaluator"):
        judge = get_evaluator(cfg, data, progress=progress)
        untranslated = untranslated_accuracy(data.test, judge, cfg.eval)
    examples = pick_examples(data.test, cfg.eval.n_qualitative)
    trained = pre.trained if pre else train_side_by_side(names, cfg, seeds, layout, watch, progress)
    runs = [_run_method(n, cfg, seeds, data, judge, examples, watch, log, progress, trained) for n in names]

    reserved = pre.folder if pre else rundir.reserve(runs_root, commit, dirty, started)
    run_dir, tmp = reserved.final, reserved.tmp
    try:
        context = RunContext(
            layout=layout.describe(),
            references_left_out=unavailable_references(data) if references else None,
            launch=pre.info if pre else None,
            standard=standard_record(repo or Path.cwd(), cfg),
            standard_path=str(STANDARD_RECORD),
        )
        record = build_record(
            run_dir.name, started, commit, dirty, cfg, seeds, data, judge, untranslated, runs, watch.times, context
        )
        records.write_per_image(tmp, per_image_frame(runs, seeds, data))
        with watch.stage("report"):
            write_report(tmp, record, roc_curves(runs, record), qualitative_examples(runs, data, examples))
        record = replace(record, times=dict(watch.times))  # the report's time included
        records.write_record(tmp, record)
        if log:
            atomic_write_text(tmp / "errors.log", "\n".join(log))
        rundir.publish(reserved)
    except BaseException:
        if pre is None:  # a launched run's folder holds its jobs' logs
            rundir.discard(reserved)
        raise
    return RunResult(run_dir, record, all(r.error is None for r in runs))
