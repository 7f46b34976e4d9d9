"""``run --launcher submitit``: a benchmark run as cluster jobs, submitted through submitit.

A launched run is three stages of submitit jobs, whose scripts and logs land in the run's ``jobs/``:

1. **prepare**: decode the data into its cache and train (or load) the evaluator, once, so that the
   training jobs only read them;
2. **train**: one job per method x seed (a Slurm job array), each training and caching its model
   exactly as ``bench train --resume`` does (several GPUs per job: ``torchrun`` inside the job);
3. **evaluate**: once every training job has ended (Slurm: ``afterany``), the normal run in one
   process, which finds every model trained and writes the run folder; a (method, seed) whose job
   failed or never finished is recorded as failed with its log's path.

On Slurm the command submits the three stages with their dependencies and returns. ``--cluster
local`` runs the same jobs as local processes (submitit's LocalExecutor), ``--jobs`` training jobs at
a time, and waits for them: that is how a job is checked before queueing, and how the tests run it.

The run folder is reserved when the jobs are submitted: until the evaluation job renames it into
place, it is the hidden ``.NNNN_<tag>_<stamp>.submitit/`` under the runs folder (``launch.json``,
the plan; ``jobs/``, submitit's folder; one outcome file per job). A link under the hidden name to
the finished folder lets submitit write the evaluation job's result after the rename; the next launch
removes links whose job has ended. A run whose jobs failed is resumed by running the same command
again: models that finished are loaded, not retrained, and unfinished ones resume from their last
checkpoint.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import preflight, records
from bench.atomic import atomic_write_json
from bench.cli import exits
from bench.config import Config, to_dict
from bench.errors import BenchError
from bench.launch.jobs import JOBS, PLAN, TrainJob, evaluate_job, prepare_job, read_outcome, read_plan
from bench.records import rundir
from bench.train import parallel

SUFFIX = ".submitit"
DEFAULT_TIME_MIN = 120
JOB_ENV = {"TQDM_MININTERVAL": "30"}  # progress bars in a log file: a line every 30 s, not ten a second
_LINK = re.compile(r"^\.(\d{4,}_.+)\.submitit$")


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the jobs run: ``cluster`` 'slurm' or 'local', the Slurm partition, GPUs and
    minutes per job, training jobs at a time (``jobs``; Slurm: the array's limit), threads per job
    (None: every core the job has) and extra ``sbatch`` options."""

    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_job: int | None = None
    time_min: int = DEFAULT_TIME_MIN
    jobs: int | None = None
    threads: int | None = None
    slurm: tuple[tuple[str, str], ...] = ()


def require_submitit() -> ModuleType:
    """The submitit module, or a one-line error saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise BenchError(
            "--launcher submitit needs the submitit package: pip install -e '.[cluster]' (or pip install submitit)"
        ) from None
    return submitit


# ---------------------------------------------------------------- submission


def tidy_links(runs_root: Path) -> list[Path]:
    """Remove the links left by finished launches whose evaluation job has written its result."""
    removed = []
    for link in runs_root.iterdir():
        m = _LINK.match(link.name)
        if m is None or not link.is_symlink():
            continue
        final = runs_root / m.group(1)
        try:
            evaluate_id = read_plan(final)["jobs"]["evaluate"]["id"]
        except (OSError, KeyError, ValueError):
            continue
        if any((final / JOBS).glob(f"{evaluate_id}_*_result.pkl")):
            link.unlink()
            removed.append(link)
    return removed


def reserve_launch(runs_root: Path, commit: str | None, dirty: bool, now: datetime) -> rundir.RunFolder:
    """Take the next run number for a launched run: its final path and the hidden folder of its jobs
    (which holds the number until the evaluation job renames it)."""
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        with rundir.locked(runs_root):
            number = rundir.highest_number(runs_root) + 1
            while True:
                name = rundir.run_name(number, commit, dirty, now)
                launch = runs_root / f".{name}{SUFFIX}"
                try:
                    launch.mkdir()
                    break
                except FileExistsError:
                    number += 1
    except OSError as exc:
        raise BenchError(f"{runs_root}: cannot create a run folder there ({exc.strerror or exc})") from None
    (launch / JOBS).mkdir()
    return rundir.RunFolder(runs_root / name, launch)


def _plan(
    method_spec: str,
    names: list[str],
    cfg: Config,
    seeds: list[int],
    references: bool,
    folder: rundir.RunFolder,
    opts: ClusterOptions,
    layout: parallel.Layout | None,
    provenance: tuple[datetime, str | None, bool],
    track: str | None,
) -> dict[str, Any]:
    from bench.registry import get_method_class

    trainable = [n for n in names if not get_method_class(n).reference]
    started, commit, dirty = provenance
    t_eval = layout.eval_threads if layout else opts.threads
    return {
        "run": folder.final.name,
        "cluster": opts.cluster,
        "method_spec": method_spec,
        "references": references,
        "seeds": seeds,
        "config": to_dict(cfg),
        "tasks": [{"method": n, "seed": s} for n in trainable for s in seeds],
        "threads": {"prepare": t_eval, "train": layout.threads if layout else opts.threads, "evaluate": t_eval},
        "procs_per_job": max(1, opts.gpus_per_job or 1),
        "started": started.isoformat(),
        "commit": commit,
        "dirty": dirty,
        "track": track,
        "jobs": {},
    }


def _write_plan(folder: rundir.RunFolder, plan: dict[str, Any]) -> None:
    atomic_write_json(folder.tmp / PLAN, plan)


def job_env(threads: int | None) -> dict[str, str]:
    """Environment of every job: OpenMP sized to ``threads`` (when set) and waiting passively, and
    progress bars that write a line every 30 s."""
    env = dict(JOB_ENV)
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"})
    return env


def slurm_executor(submitit: ModuleType, folder: Path, opts: ClusterOptions, name: str, threads: int | None) -> Any:
    """A Slurm executor for one stage: partition, GPUs, time, CPUs, environment and extra options."""
    ex = submitit.SlurmExecutor(folder)
    params: dict[str, Any] = {
        "job_name": name,
        "time": opts.time_min,
        "setup": [f"export {k}={shlex.quote(v)}" for k, v in job_env(threads).items()],
        "additional_parameters": dict(opts.slurm),
    }
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_job:
        params["gpus_per_node"] = opts.gpus_per_job
    if threads:
        params["cpus_per_task"] = threads
    if opts.jobs:
        params["array_parallelism"] = opts.jobs
    ex.update_parameters(**params)
    return ex


def _log(job: Any) -> str:
    return str(job.paths.stderr)


def submit_slurm(submitit: ModuleType, folder: rundir.RunFolder, plan: dict[str, Any], opts: ClusterOptions) -> dict:
    """Queue the three stages with their dependencies; returns the plan's job table."""
    jobs_dir = folder.tmp / JOBS
    launch = str(folder.tmp)
    ex = slurm_executor(submitit, jobs_dir, opts, "lesionbench-prepare", plan["threads"]["prepare"])
    prep = ex.submit(prepare_job, launch)
    plan["jobs"]["prepare"] = {"id": prep.job_id, "log": _log(prep)}
    _write_plan(folder, plan)
    train = []
    if plan["tasks"]:
        ex = slurm_executor(submitit, jobs_dir, opts, "lesionbench-train", plan["threads"]["train"])
        extra = {**dict(opts.slurm), "kill-on-invalid-dep": "yes"}  # a failed prepare cancels the array
        ex.update_parameters(dependency=f"afterok:{prep.job_id}", additional_parameters=extra)
        n = len(plan["tasks"])
        train = ex.map_array(TrainJob(), [launch] * n, list(range(n)))
    plan["jobs"]["train"] = [{"id": j.job_id, "log": _log(j)} for j in train]
    _write_plan(folder, plan)
    after = sorted({j.job_id.split("_")[0] for j in train}) or [prep.job_id]
    ex = slurm_executor(submitit, jobs_dir, opts, "lesionbench-evaluate", plan["threads"]["evaluate"])
    ex.update_parameters(dependency="afterany:" + ":".join(after))
    evaluate = ex.submit(evaluate_job, launch)
    plan["jobs"]["evaluate"] = {"id": evaluate.job_id, "log": _log(evaluate)}
    _write_plan(folder, plan)
    return plan["jobs"]


def _local_executor(submitit: ModuleType, folder: Path, opts: ClusterOptions) -> Any:
    ex = submitit.LocalExecutor(folder)
    gpus = opts.gpus_per_job if opts.gpus_per_job is not None else _visible_gpus()
    ex.update_parameters(timeout_min=opts.time_min, gpus_per_node=gpus)
    return ex


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _wait(jobs: list[Any], poll_s: float = 0.5) -> None:
    while not all(j.done() for j in jobs):
        time.sleep(poll_s)


def _submit_stage(
    ex: Any, job: Any, stage: str, folder: rundir.RunFolder, plan: dict[str, Any], started: list[Any]
) -> Any:
    """Submit the one job of ``stage`` (prepare, evaluate) locally, record it in the plan and say so."""
    with parallel.environment(job_env(plan["threads"][stage])):
        submitted = ex.submit(job, str(folder.tmp))
    started.append(submitted)
    plan["jobs"][stage] = {"id": submitted.job_id, "log": _log(submitted)}
    _write_plan(folder, plan)
    print(f"{stage}: job {submitted.job_id} (log {_log(submitted)})", file=sys.stderr)
    return submitted


def run_local(
    submitit: ModuleType, folder: rundir.RunFolder, plan: dict[str, Any], opts: ClusterOptions, jobs: int
) -> str | None:
    """Run the three stages as local processes, ``jobs`` training jobs at a time, and wait for them;
    returns the run folder, or None when the prepare job failed (its error and log are printed)."""
    ex = _local_executor(submitit, folder.tmp / JOBS, opts)
    launch = str(folder.tmp)
    started: list[Any] = []
    try:
        prep = _submit_stage(ex, prepare_job, "prepare", folder, plan, started)
        _wait([prep])
        out = read_outcome(folder.tmp, "prepare")
        if out is None or not out["ok"]:
            print(f"error: the prepare job failed: {out['error'] if out else 'it did not finish'}", file=sys.stderr)
            print(f"  log: {_log(prep)}", file=sys.stderr)
            return None
        plan["jobs"]["train"] = _train_local(ex, launch, plan, jobs, started)
        _write_plan(folder, plan)
        evaluate = _submit_stage(ex, evaluate_job, "evaluate", folder, plan, started)
        return _evaluated(evaluate, folder)
    except BaseException:
        for job in started:
            if not job.done():
                job.cancel()
        raise


def _train_local(ex: Any, launch: str, plan: dict[str, Any], jobs: int, started: list[Any]) -> list[dict]:
    """Start the training jobs, at most ``jobs`` at a time, and wait for the last; returns their table."""
    table: list[dict[str, str]] = [{} for _ in plan["tasks"]]
    running: list[Any] = []
    for index, task in enumerate(plan["tasks"]):
        while len(running) >= jobs:
            running = [j for j in running if not j.done()]
            time.sleep(0.5)
        with parallel.environment(job_env(plan["threads"]["train"])):
            job = ex.submit(TrainJob(), launch, index)
        started.append(job)
        running.append(job)
        table[index] = {"id": job.job_id, "log": _log(job)}
        print(f"train {task['method']} seed {task['seed']}: job {job.job_id} (log {_log(job)})", file=sys.stderr)
    _wait(running)
    return table


def _evaluated(job: Any, folder: rundir.RunFolder) -> str | None:
    """Wait for the evaluation job: the run folder it wrote (the link it left is removed), or None."""
    _wait([job])
    try:
        run_dir = job.result()
    except Exception as exc:  # noqa: BLE001 (reported with the job's log)
        print(f"error: the evaluation job failed: {_last_error(exc)}", file=sys.stderr)
        print(f"  log: {_log(job)}", file=sys.stderr)
        return None
    if folder.tmp.is_symlink():
        folder.tmp.unlink()
    return run_dir


def _last_error(exc: BaseException) -> str:
    """The last line of a job's traceback (submitit puts the whole traceback in the message)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def launch_run(
    method_spec: str,
    cfg: Config,
    n_seeds: int,
    runs_root: Path,
    references: bool,
    opts: ClusterOptions,
    track: str | None = None,
) -> int:
    """Submit a run as jobs (Slurm: queue them and return; local: run them and wait); the exit status."""
    from bench.pipeline import resolve_methods
    from bench.registry import get_method_class
    from bench.train.device import resolve_device
    from bench.train.runner import checkpoints_root

    submitit = require_submitit()
    if opts.cluster == "slurm" and submitit.SlurmExecutor.affinity() < 0:
        raise BenchError("--cluster slurm: no srun on this machine (use --cluster local to run the jobs here)")
    if n_seeds < 1:
        raise BenchError(f"--seeds must be at least 1, got {n_seeds}")
    names = resolve_methods(method_spec)
    trainable = [n for n in names if not get_method_class(n).reference]
    preflight.check_writable_dir(runs_root, "runs folder")
    preflight.check_writable_dir(checkpoints_root(), "checkpoints folder")
    runs_root = Path(runs_root).resolve()
    seeds = [cfg.train.seed + k for k in range(n_seeds)]
    layout = None
    if opts.cluster == "local":
        layout = parallel.plan(opts.jobs, opts.threads, len(trainable) * n_seeds, resolve_device(cfg.train.device))
    started = datetime.now(timezone.utc)
    commit, dirty = records.git_state(Path.cwd())
    runs_root.mkdir(parents=True, exist_ok=True)
    tidy_links(runs_root)
    folder = reserve_launch(runs_root, commit, dirty, started)
    plan = _plan(method_spec, names, cfg, seeds, references, folder, opts, layout, (started, commit, dirty), track)
    _write_plan(folder, plan)
    if opts.cluster == "slurm":
        return _report_queued(submit_slurm(submitit, folder, plan, opts), folder)
    run_dir = run_local(submitit, folder, plan, opts, layout.jobs if layout else 1)
    return _report_local(run_dir, folder)


def _report_queued(jobs: dict[str, Any], folder: rundir.RunFolder) -> int:
    train = jobs["train"]
    array = f"training array {train[0]['id'].split('_')[0]} ({len(train)} jobs)" if train else "no training jobs"
    ids = [jobs["prepare"]["id"], *sorted({j["id"].split("_")[0] for j in train}), jobs["evaluate"]["id"]]
    print(
        f"submitted to Slurm: prepare job {jobs['prepare']['id']}, {array}, evaluation job {jobs['evaluate']['id']}\n"
        f"job scripts and logs: {folder.tmp / JOBS}\n"
        f"the run folder will be {folder.final} (follow with: squeue -j {','.join(ids)})"
    )
    return 0


def _report_local(run_dir: str | None, folder: rundir.RunFolder) -> int:
    if run_dir is None:
        print(f"job scripts and logs: {folder.tmp / JOBS}; run the same command again to resume", file=sys.stderr)
        return exits.METHOD_FAILED
    record = records.read_record(Path(run_dir) / records.RECORD_FILE)
    failed = {n: m["error"] for n, m in record["methods"].items() if m["status"] != "ok"}
    for name, error in failed.items():
        print(f"error: method {name} failed: {error}", file=sys.stderr)
    if failed:
        print("run the same command again to train what failed; finished models are reused", file=sys.stderr)
    print(f"report: {Path(run_dir) / 'report.md'}")
    return exits.METHOD_FAILED if failed else exits.OK


# ---------------------------------------------------------------- command line


def add_launch_args(p: argparse.ArgumentParser) -> None:
    """The ``run`` options of launched runs."""
    p.add_argument(
        "--launcher",
        choices=["submitit"],
        help="run as cluster jobs through submitit: one per method x seed, then one that evaluates",
    )
    p.add_argument("--cluster", choices=["slurm", "local"], help="with --launcher submitit: where (default slurm)")
    p.add_argument("--partition", metavar="P", help="Slurm partition of every job")
    p.add_argument("--gpus-per-job", type=int, metavar="N", help="GPUs per job (N > 1: torchrun over N processes)")
    p.add_argument("--time", type=int, metavar="MIN", help=f"time limit of every job (default {DEFAULT_TIME_MIN})")
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sbatch option for every job, e.g. --slurm account=lab --slurm mem=16G (repeatable)",
    )


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The launch options of ``run``, or None for an in-process run (a launch option without
    ``--launcher submitit`` is an error)."""
    given = [
        flag
        for flag, value in (
            ("--cluster", args.cluster),
            ("--partition", args.partition),
            ("--gpus-per-job", args.gpus_per_job),
            ("--time", args.time),
            ("--slurm", args.slurm),
        )
        if value
    ]
    if args.launcher is None:
        if given:
            raise BenchError(f"{given[0]} needs --launcher submitit")
        return None
    if args.gpus_per_job is not None and args.gpus_per_job < 0:
        raise BenchError(f"--gpus-per-job must be 0 or more, got {args.gpus_per_job}")
    if args.time is not None and args.time < 1:
        raise BenchError(f"--time must be at least 1 minute, got {args.time}")
    if args.jobs is not None and args.jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be at least 1, got {args.threads}")
    return ClusterOptions(
        cluster=args.cluster or "slurm",
        partition=args.partition,
        gpus_per_job=args.gpus_per_job,
        time_min=args.time or DEFAULT_TIME_MIN,
        jobs=args.jobs,
        threads=args.threads,
        slurm=tuple(_key_value(item) for item in args.slurm),
    )


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise BenchError(f"--slurm {item!r}: expected KEY=VALUE, e.g. --slurm account=lab")
    return key.strip(), value.strip()
