"""``run --jobs N``: methods trained side by side in worker processes give the run that one process gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from stub_run import record_values

from bench import registry
from bench.config import Config
from bench.errors import BenchError
from bench.method import Method
from bench.pipeline import run_benchmark
from bench.train import parallel

METHODS = "stargan,vagan,chexnet_cam"


def _run(cfg: Config, tmp_path: Path, jobs: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # each run trains into its own checkpoint folder (the evaluator's store stays shared)
    monkeypatch.setenv("LESIONBENCH_CHECKPOINTS", str(tmp_path / f"checkpoints-{jobs}"))
    result = run_benchmark(METHODS, cfg, runs_root=tmp_path / f"runs-{jobs}", progress=False, jobs=jobs, threads=1)
    assert result.ok, {n: m["error"] for n, m in result.record["methods"].items() if m["error"]}
    return result.record


def test_two_jobs_give_the_record_of_one(smoke_cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _run(smoke_cfg, tmp_path, 1, monkeypatch)
    two = _run(smoke_cfg, tmp_path, 2, monkeypatch)
    assert one["layout"] == {"jobs": 1, "threads": 1, "eval_threads": 1}
    assert two["layout"] == {"jobs": 2, "threads": 1, "eval_threads": 1}
    assert record_values(two) == record_values(one)
    assert len(two["methods"]["stargan"]["curves"]) >= 2
    assert any(k.startswith("train (2 processes") for k in two["times"])
    assert not any(k.startswith("train (") for k in one["times"])
    assert "training 2 method(s) at a time" in (next((tmp_path / "runs-2").glob("0001_*")) / "report.md").read_text()


class _Brightness(Method):
    """Registered at run time only: the lesion map is the image."""

    def fit(self, ctx) -> list:
        return []

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@pytest.fixture()
def runtime_method():
    registry.register_method("t_runtime_only")(_Brightness)
    yield
    registry._REGISTRY.pop("t_runtime_only", None)


def test_a_method_the_workers_cannot_find_fails_alone(
    smoke_cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime_method
) -> None:
    """A method registered at run time (unknown to a fresh process) is recorded as failed with the
    reason; the other methods of the run finish."""
    monkeypatch.setenv("LESIONBENCH_CHECKPOINTS", str(tmp_path / "checkpoints"))
    result = run_benchmark(
        "t_runtime_only,stargan", smoke_cfg, runs_root=tmp_path / "runs", progress=False, jobs=2, references=False
    )
    methods = result.record["methods"]
    assert not result.ok
    assert methods["stargan"]["status"] == "ok"
    assert methods["t_runtime_only"]["status"] != "ok"
    assert "not registered in a new process" in methods["t_runtime_only"]["error"]
    assert "--jobs 1" in methods["t_runtime_only"]["error"]


def test_plan_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cpu_count", lambda: 8)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert parallel.plan(None, None, 5, cpu) == parallel.Layout(5, 1, 8)  # one per method, at most one per core
    assert parallel.plan(None, None, 20, cpu) == parallel.Layout(8, 1, 8)
    assert parallel.plan(2, None, 5, cpu) == parallel.Layout(2, 4, 8)
    assert parallel.plan(3, None, 5, cpu) == parallel.Layout(3, 2, 8)
    assert parallel.plan(None, None, 5, cuda) == parallel.Layout(1, 8, 8)
    assert parallel.plan(2, 1, 5, cpu) == parallel.Layout(2, 1, 1)  # explicit threads hold for the run too
    assert parallel.plan(None, None, 0, cpu).jobs == 1


@pytest.mark.parametrize(("jobs", "threads", "word"), [(0, None, "--jobs"), (2, 0, "--threads")])
def test_plan_rejects_nonsense(jobs: int, threads: int | None, word: str) -> None:
    with pytest.raises(BenchError, match=word):
        parallel.plan(jobs, threads, 3, torch.device("cpu"))


def test_torch_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with parallel.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cli_rejects_zero_jobs_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli.main import main

    assert main(["run", "--preset", "smoke", "--jobs", "0", "--out", str(tmp_path / "runs")]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_record_layout_is_json(smoke_cfg: Config) -> None:
    layout = parallel.plan(2, 1, 2, torch.device("cpu"))
    assert json.loads(json.dumps(layout.describe())) == {"jobs": 2, "threads": 1, "eval_threads": 1}


def test_longest_training_starts_first(smoke_cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks go to the workers in decreasing ``training_cost`` (ties keep the run's order)."""
    from bench import pipeline

    seen: list[str] = []
    monkeypatch.setattr(
        parallel, "train_concurrently", lambda tasks, layout, progress: seen.extend(n for n, _ in tasks)
    )
    names = ["chexnet_cam", "stargan", "vagan", "pillet", "ref_random"]
    pipeline.train_side_by_side(names, smoke_cfg, [0], parallel.Layout(2, 1, 1), pipeline.Stopwatch(), False)
    assert seen == ["vagan", "stargan", "pillet", "chexnet_cam"]


def test_a_killed_worker_is_reported_with_the_way_out(monkeypatch: pytest.MonkeyPatch, smoke_cfg: Config) -> None:
    """A worker killed from outside breaks the pool: every unfinished method gets one line saying
    what happened and that the same command resumes (its checkpoints stay)."""
    monkeypatch.setattr(parallel, "_train_one", _die)
    results = parallel.train_concurrently([("stargan", smoke_cfg)], parallel.Layout(1, 1, 1), progress=False)
    assert results[("stargan", smoke_cfg.train.seed)].error == parallel.KILLED
    assert "run the same command again" in parallel.KILLED


def _die(name: str, table: dict[str, Any], progress: bool) -> parallel.Trained:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


_ORPHAN_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from bench.train.parallel import die_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_workers_end_when_the_run_is_killed(tmp_path: Path) -> None:
    """A run killed from outside (SIGKILL, no cleanup) must not leave its training workers running."""
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_PARENT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"worker {worker} outlived its killed parent by 10 s")
