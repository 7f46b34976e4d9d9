"""Concurrent training for ``run --jobs N``: methods train side by side in separate processes.

Small networks use several threads poorly, so on a CPU N processes with cores/N threads each finish
a set of methods sooner than one process after another with every thread. A worker trains exactly
as :func:`bench.train.runner.train_method` does in-process (same config, seed and thread count give the
same weights) and leaves the finished checkpoint where the run then loads it; the evaluator is
trained by the run before any worker starts, so the workers only load it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from bench.config import Config, from_dict, to_dict
from bench.errors import BenchError, first_line
from bench.progress import bar as progress_bar
from bench.progress import current as progress_mode
from bench.progress import set_mode as set_progress_mode


@dataclass(frozen=True)
class Layout:
    """How a run uses the machine: ``jobs`` training processes with ``threads`` threads each, and
    ``eval_threads`` for everything the run does itself (evaluator, evaluation)."""

    jobs: int
    threads: int
    eval_threads: int

    def describe(self) -> dict[str, int]:
        """Plain values for the run record."""
        return {"jobs": self.jobs, "threads": self.threads, "eval_threads": self.eval_threads}


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan(jobs: int | None, threads: int | None, n_trainable: int, device: torch.device) -> Layout:
    """The layout of a run. Default jobs: one per core (at most one per method to train) on a CPU,
    where that was measured fastest (docs/decisions.md), one on a GPU; default threads: cores/jobs.
    An explicit ``threads`` applies to the run's own process too (so that ``--jobs 1`` and ``--jobs 2``
    with equal threads compute the same numbers)."""
    cores = cpu_count()
    if jobs is not None and jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise BenchError(f"--threads must be at least 1, got {threads}")
    if jobs is None:
        jobs = 1 if device.type == "cuda" else max(1, min(cores, n_trainable))
    per_job = threads if threads is not None else max(1, cores // jobs)
    return Layout(jobs, per_job, threads if threads is not None else max(1, cores))


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` for the processes started inside the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def worker_env(threads: int) -> contextlib.AbstractContextManager[None]:
    """Environment the worker processes start with: OpenMP sized to ``threads`` and waiting passively
    (busy-waiting threads of two processes on shared cores slow both)."""
    return environment({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"})


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, restoring the previous count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Trained:
    """What a worker reports for one (method, seed): its wall seconds, and the error line and
    traceback when training failed (``error`` None when it finished)."""

    seconds: float
    error: str | None = None
    trace: str = ""


KILLED = (
    "a training worker process was killed (by a signal or for lack of memory) before this method finished; "
    "run the same command again to resume from its last checkpoint"
)
_ROW = 0
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` dies (Linux; elsewhere a no-op), so that a run killed from
    outside leaves no worker training on its own."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _init_worker(threads: int, rows: Any, parent: int, mode: str) -> None:
    global _ROW
    die_with_parent(parent)
    torch.set_num_threads(threads)
    set_progress_mode(mode)  # the parent's concrete mode: its stderr, not the worker's, decided it
    _ROW = rows.get()


def _train_one(name: str, table: dict[str, Any], progress: bool) -> Trained:
    """Train one method and seed in a worker."""
    from bench.data import open_data
    from bench.evaluate.judge import get_evaluator
    from bench.registry import get_method_class
    from bench.train.runner import train_method

    t0 = time.perf_counter()
    try:
        try:
            get_method_class(name)
        except BenchError:
            raise BenchError(
                f"method {name!r} is not registered in a new process (registered at run time?); train it with --jobs 1"
            ) from None
        cfg = from_dict(table)
        data = open_data(cfg.data, progress=False)
        judge = get_evaluator(cfg, data, progress=False) if get_method_class(name).translates else None
        train_method(name, cfg, data, progress=progress, judge=judge, progress_row=_ROW)
    except Exception as exc:  # noqa: BLE001 (reported to the run, which records the method as failed)
        return Trained(time.perf_counter() - t0, _error_line(exc), traceback.format_exc())
    return Trained(time.perf_counter() - t0)


def _error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc, default='')}"


def train_concurrently(
    tasks: list[tuple[str, Config]], layout: Layout, progress: bool = True
) -> dict[tuple[str, int], Trained]:
    """Train every (method, config) of ``tasks`` in ``layout.jobs`` processes; returns what each
    worker reported, per (method, seed)."""
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's OpenMP state
    rows = context.Queue()
    for row in range(1, layout.jobs + 1):
        rows.put(row)
    results: dict[tuple[str, int], Trained] = {}
    with worker_env(layout.threads):
        with ProcessPoolExecutor(
            layout.jobs,
            mp_context=context,
            initializer=_init_worker,
            initargs=(layout.threads, rows, os.getpid(), progress_mode()),
        ) as pool:
            try:
                _collect(pool, tasks, results, progress)
            except BaseException:  # interrupted (SIGINT, SIGTERM): stop the workers instead of waiting for them
                stop_workers(pool)
                raise
    return results


def _collect(
    pool: ProcessPoolExecutor,
    tasks: list[tuple[str, Config]],
    results: dict[tuple[str, int], Trained],
    progress: bool,
) -> None:
    """Submit every task and gather what each worker reports into ``results`` as they finish."""
    futures = {pool.submit(_train_one, name, to_dict(cfg), progress): (name, cfg.train.seed) for name, cfg in tasks}
    with progress_bar(total=len(futures), desc="methods trained", unit="method", enabled=progress, position=0) as bar:
        for future in as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except BrokenProcessPool:  # a worker was killed from outside (a signal, out of memory)
                results[futures[future]] = Trained(0.0, KILLED)
            except Exception as exc:  # noqa: BLE001 (reported to the run, which records the method as failed)
                results[futures[future]] = Trained(0.0, _error_line(exc))
            bar.update(1)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the tasks not started and end the worker processes now. A worker's checkpoints are written
    atomically, so the next run resumes each method from its last one."""
    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():
        child.terminate()
