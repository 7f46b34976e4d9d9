"""What runs inside the jobs of ``run --launcher submitit`` (:mod:`bench.launch.submit` submits them): the
prepare job, one training job per method x seed (one torchrun rank each with several GPUs), the
evaluation job, and the outcome file each writes for the evaluation job to read.

``python -m bench.launch.jobs train LAUNCH_DIR INDEX`` is one torchrun rank of a training job.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import preflight
from bench.atomic import atomic_write_json
from bench.config import from_dict
from bench.errors import BenchError, first_line
from bench.records import rundir
from bench.train import parallel
from bench.train.distributed import env_info

PLAN = "launch.json"
JOBS = "jobs"


def task_key(name: str, seed: int) -> str:
    """The name of a training job's outcome file and of its entry in the record."""
    return f"train-{name}-seed{seed}"


def read_plan(launch_dir: str | Path) -> dict[str, Any]:
    """The launch plan written at submission."""
    return json.loads((Path(launch_dir) / PLAN).read_text(encoding="utf-8"))


def _outcome_path(launch_dir: str | Path, key: str) -> Path:
    return Path(launch_dir) / JOBS / f"outcome-{key}.json"


def read_outcome(launch_dir: str | Path, key: str) -> dict[str, Any] | None:
    """What job ``key`` reported (ok, error, trace, seconds), or None when it never finished."""
    path = _outcome_path(launch_dir, key)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@contextlib.contextmanager
def _reporting(launch_dir: str | Path, key: str) -> Iterator[None]:
    """Write the block's outcome for the evaluation job, then let an error fail the job as usual."""
    t0 = time.perf_counter()
    try:
        yield
    except Exception as exc:
        error = f"{type(exc).__name__}: {first_line(exc, default='')}"
        outcome = {"ok": False, "error": error, "trace": traceback.format_exc()}
        atomic_write_json(_outcome_path(launch_dir, key), {**outcome, "seconds": time.perf_counter() - t0})
        raise
    atomic_write_json(_outcome_path(launch_dir, key), {"ok": True, "seconds": time.perf_counter() - t0})


def _threads(plan: dict[str, Any], stage: str) -> int:
    return plan["threads"][stage] or parallel.cpu_count()


def prepare_job(launch_dir: str) -> None:
    """Job 1: build the data cache and the evaluator, so that the training jobs only load them."""
    from bench.data import open_data
    from bench.evaluate.judge import get_evaluator

    plan = read_plan(launch_dir)
    with _reporting(launch_dir, "prepare"), parallel.torch_threads(_threads(plan, "prepare")):
        cfg = from_dict(plan["config"])
        data = open_data(cfg.data, progress=True)
        preflight.check_splits(data, cfg.data, preflight.NEEDS_RUN)
        get_evaluator(cfg, data, progress=True)


def train_task(plan: dict[str, Any], index: int) -> None:
    """Train one method and seed of the plan as ``bench train --resume`` does (also each torchrun rank)."""
    from bench.data import open_data
    from bench.evaluate.judge import get_evaluator
    from bench.registry import get_method_class
    from bench.train.runner import train_method

    task = plan["tasks"][index]
    cfg = from_dict(plan["config"])
    cfg.train.seed = task["seed"]
    cls = get_method_class(task["method"])
    data = open_data(cfg.data, progress=False)
    judge = get_evaluator(cfg, data, progress=False) if cls.translates and cfg.train.eval_every > 0 else None
    out_dir = train_method(task["method"], cfg, data, resume=True, progress=True, judge=judge).out_dir
    if env_info().is_main:
        print(f"trained {task['method']} seed {task['seed']}; checkpoints in {out_dir}", flush=True)


def torchrun_command(launch_dir: str, index: int, nproc: int) -> list[str]:
    """The command that trains task ``index`` over ``nproc`` processes (one per GPU) with torchrun."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "bench.launch.jobs",
        "train",
        launch_dir,
        str(index),
    ]


class TrainJob:
    """Job 2 (one per method x seed): train and cache one model. A job that runs out of time is
    requeued by submitit (``checkpoint``; at most 3 times) and resumes from its last checkpoint."""

    def __call__(self, launch_dir: str, index: int) -> None:
        plan = read_plan(launch_dir)
        task = plan["tasks"][index]
        with _reporting(launch_dir, task_key(task["method"], task["seed"])):
            nproc = plan["procs_per_job"]
            if nproc > 1:
                code = subprocess.run(torchrun_command(launch_dir, index, nproc), check=False).returncode
                if code != 0:
                    raise BenchError(f"torchrun over {nproc} processes exited with status {code}")
            else:
                with parallel.torch_threads(_threads(plan, "train")):
                    train_task(plan, index)

    def checkpoint(self, launch_dir: str, index: int) -> Any:
        """What submitit resubmits when the job times out: the same task (training resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, launch_dir, index)


def _trained(launch_dir: Path, plan: dict[str, Any], final: Path) -> tuple[dict[tuple[str, int], Any], dict]:
    """What each training job reported, as :class:`bench.train.parallel.Trained`, and the record's job table."""
    trained, table = {}, {}
    for task, job in zip(plan["tasks"], plan["jobs"]["train"]):
        key, log = task_key(task["method"], task["seed"]), f"{JOBS}/{Path(job['log']).name}"
        out = read_outcome(launch_dir, key)
        where = f"job {job['id']}, log {final / log}"
        if out is None:
            result = parallel.Trained(0.0, f"the job did not finish (killed, cancelled or out of time; {where})")
        elif not out["ok"]:
            result = parallel.Trained(out["seconds"], f"{out['error']} ({where})", out["trace"])
        else:
            result = parallel.Trained(out["seconds"])
        trained[(task["method"], task["seed"])] = result
        status = "ok" if out and out["ok"] else ("failed" if out else "unfinished")
        table[key] = {"id": job["id"], "log": log, "status": status, "seconds": result.seconds}
    return trained, table


def evaluate_job(launch_dir: str) -> str:
    """Job 3 (after every training job): evaluate every method, write the run folder; returns its path."""
    from bench.pipeline import Prelaunched, run_benchmark

    launch, plan = Path(launch_dir), read_plan(launch_dir)
    final = launch.parent / plan["run"]
    prep = read_outcome(launch, "prepare")
    if prep is None or not prep["ok"]:
        log = launch / JOBS / Path(plan["jobs"]["prepare"]["log"]).name
        raise BenchError(f"the prepare job failed ({prep['error'] if prep else 'it did not finish'}); log {log}")
    trained, table = _trained(launch, plan, final)
    info = {"launcher": "submitit", "cluster": plan["cluster"], "jobs": table}
    pre = Prelaunched(
        rundir.RunFolder(final, launch),
        datetime.fromisoformat(plan["started"]),
        plan["commit"],
        plan["dirty"],
        trained,
        info,
    )
    result = run_benchmark(
        plan["method_spec"],
        from_dict(plan["config"]),
        n_seeds=len(plan["seeds"]),
        runs_root=launch.parent,
        progress=True,
        references=plan["references"],
        jobs=1,
        threads=_threads(plan, "evaluate"),
        prelaunched=pre,
    )
    os.symlink(final.name, launch)  # submitit writes this job's result under the old name
    if plan.get("track"):
        from bench.records.tracking import track_run

        print(track_run(plan["track"], result.run_dir, result.record, launch.parent), flush=True)
    for name, entry in result.record["methods"].items():
        if entry["status"] != "ok":
            print(f"method {name} failed: {entry['error']}", flush=True)
    print(f"report: {result.run_dir / 'report.md'}", flush=True)
    return str(result.run_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.launch.jobs train LAUNCH_DIR INDEX``: one torchrun rank of a training job."""
    args = (argv if argv is not None else sys.argv[1:])[:]
    if len(args) != 3 or args[0] != "train":
        print("usage: python -m bench.launch.jobs train LAUNCH_DIR INDEX", file=sys.stderr)
        return 2
    train_task(read_plan(args[1]), int(args[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
