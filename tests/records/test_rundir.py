"""Run folders: concurrent runs into one folder each keep their own folder and number; stale temporaries go."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from stub_run import STUBS

ROOT = Path(__file__).resolve().parents[2]

# One `python -m bench run --preset smoke` with a trivial method and a stub evaluator (no training), all
# started in the same second: its clock is fixed. Its report stage waits until every other run has
# reached its own report stage (a barrier of files), or, with "kill", the process kills itself there.
RUN_SCRIPT = (
    """
import datetime as dt, os, signal, sys, time
from pathlib import Path
import numpy as np, torch
import bench.evaluate.judge, bench.pipeline, bench.report.document
from bench import Method, register_method
from bench.cli.main import main

data_root, out, barrier, n_runs, mode = sys.argv[1:]

"""
    + STUBS
    + """

class Clock(dt.datetime):
    @classmethod
    def now(cls, tz=None): return dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

register_method("t_identity")(Identity)
bench.evaluate.judge.get_evaluator = lambda cfg, data, progress=True, **kw: Judge()
bench.pipeline.datetime = Clock
write_report = bench.pipeline.write_report

def report_stage(run_dir, *args, **kwargs):
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    Path(barrier, str(os.getpid())).touch()
    deadline = time.time() + 120
    while len(os.listdir(barrier)) < int(n_runs) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    write_report(run_dir, *args, **kwargs)

bench.pipeline.write_report = report_stage
sys.exit(main(["run", "--preset", "smoke", "--methods", "t_identity", "--data", data_root, "--out", out,
               "--set", "train.device='cpu'"]))
"""
)


def _start(script: Path, data_root: str, out: Path, barrier: Path, n_runs: int, mode: str = "wait") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.Popen(
        [sys.executable, str(script), data_root, str(out), str(barrier), str(n_runs), mode],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture()
def script(tmp_path: Path, smoke_data) -> Path:
    """The run script; ``smoke_data`` builds the data cache once, so the runs only read it."""
    path = tmp_path / "run_once.py"
    path.write_text(RUN_SCRIPT)
    return path


def test_two_runs_in_the_same_second_keep_two_folders(script: Path, smoke_cfg, tmp_path: Path) -> None:
    """Issue 11, 1: the second run deleted the first's temporary folder and one run was lost."""
    out, barrier = tmp_path / "runs", tmp_path / "barrier"
    barrier.mkdir()
    procs = [_start(script, smoke_cfg.data.root, out, barrier, 2) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    runs = sorted(p.name for p in out.iterdir())
    assert [name[:5] for name in runs] == ["0001_", "0002_"]
    assert all(name.endswith("_20240501T120000Z") for name in runs)
    for name in runs:
        assert {"record.json", "report.md", "per_image.csv"} <= {p.name for p in (out / name).iterdir()}


def test_killed_report_stage_is_cleaned_by_the_next_run(script: Path, smoke_cfg, tmp_path: Path) -> None:
    """Issue 11, 8: a killed report stage left R/.NNNN_*.tmp behind forever."""
    out, barrier = tmp_path / "runs", tmp_path / "barrier"
    barrier.mkdir()
    killed = _start(script, smoke_cfg.data.root, out, barrier, 1, mode="kill")
    killed.communicate(timeout=300)
    assert killed.returncode == -9
    left = [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1
    after = _start(script, smoke_cfg.data.root, out, barrier, 1)
    _, err = after.communicate(timeout=300)
    assert after.returncode == 0, err[-2000:]
    assert f"removed {left[0]}: temporary folder of an interrupted run (process {killed.pid} is gone)" in err
    assert [p.name[:5] for p in out.iterdir()] == ["0001_"]


def test_reservations_under_threads_are_distinct(tmp_path: Path) -> None:
    """Many runs reserving at once in one second all get their own number and folder."""
    from bench.records import rundir

    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    start = threading.Barrier(8)
    folders: list = []

    def one() -> None:
        start.wait()
        folders.append(rundir.reserve(tmp_path, "abcdef0123", False, now))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f.final.name[:4] for f in folders) == [f"{n:04d}" for n in range(1, 9)]
    for folder in folders:
        (folder.tmp / "record.json").write_text("{}")
        rundir.publish(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.final.name for f in folders)
    assert rundir.reserve(tmp_path, None, True, now).final.name == "0009_nogit-dirty_20240501T120000Z"


def test_live_and_foreign_temporaries_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.records import rundir

    live = tmp_path / f".0001_nogit_20240501T120000Z.pid{os.getppid()}.tmp"
    legacy = tmp_path / ".0002_nogit_20240501T120000Z.tmp"
    live.mkdir()
    legacy.mkdir()
    assert rundir.clean_stale(tmp_path) == []
    assert live.is_dir() and legacy.is_dir()
    assert f"note: {legacy} is the temporary folder of an unfinished run" in capsys.readouterr().err
    assert rundir.reserve(tmp_path, None, False, datetime(2024, 5, 1)).final.name.startswith("0003_")
