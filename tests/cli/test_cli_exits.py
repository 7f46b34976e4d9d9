"""Issue 22, 2 and 3: each exit status of the CLI, its documentation, and a run's progress in a log file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from records.record_factory import write_runs
from stub_run import STUBS

import bench.cli.main
from bench.cli import exits
from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

# `python -m bench run ...` with a stub evaluator (the classifier's training is not what these tests are
# about). With "report" the report stage stalls after writing part of the run folder and touches READY.
RUN_SCRIPT = (
    """
import signal, sys, time
from pathlib import Path
import numpy as np, torch
import bench.evaluate.judge, bench.pipeline
from bench import Method, register_method
from bench.cli.main import main

signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, even when started in the background

"""
    + STUBS
    + """

register_method("t_identity")(Identity)
bench.evaluate.judge.get_evaluator = lambda cfg, data, progress=True, **kw: Judge()
mode, ready, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
if mode == "report":
    write_report = bench.pipeline.write_report
    def stalled(run_dir, *args, **kwargs):
        write_report(run_dir, *args, **kwargs)
        ready.touch()
        time.sleep(600)
    bench.pipeline.write_report = stalled
sys.exit(main(argv))
"""
)


def _start_run(tmp_path: Path, data_root: str, methods: str, mode: str = "plain") -> tuple[subprocess.Popen, Path]:
    """Start a smoke run in a fresh home (nothing trained yet) with stderr in a file; returns it and the file."""
    script, log = tmp_path / "run.py", tmp_path / "log"
    script.write_text(RUN_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["LESIONBENCH_HOME"] = str(tmp_path / "home")
    argv = ["run", "--methods", methods, "--preset", "smoke", "--data", data_root, "--no-references"]
    argv += ["--out", str(tmp_path / "runs"), "--set", "train.device='cpu'"]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), mode, str(tmp_path / "ready"), *argv],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    return proc, log


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


def _leftovers(*folders: Path) -> list[Path]:
    """Temporary files or folders (of a run folder, a checkpoint, a cache) under ``folders``."""
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if ".tmp" in p.name]


def test_smoke_run_log_in_a_file_has_lines_not_redraws(tmp_path: Path, smoke_cfg) -> None:
    """Issue 22: ``run --methods stargan --preset smoke 2>log`` leaves a log without carriage returns
    that shows each stage and the training progress."""
    proc, log = _start_run(tmp_path, smoke_cfg.data.root, "stargan")
    out, _ = proc.communicate(timeout=900)
    text = log.read_text()
    assert proc.returncode == exits.OK, text[-3000:]
    assert "\r" not in text
    lines = text.splitlines()
    for stage in ("data", "evaluator", "train stargan", "evaluate stargan", "report"):
        assert f"== {stage}" in lines and any(line.startswith(f"== {stage}: done in ") for line in lines), stage
    assert "stargan: start (0/12 it)" in lines
    steps = [line for line in lines if re.match(r"stargan: \d+/12 it \(\d+%\), .* ETA ", line)]
    assert len(steps) >= 5 and "D=" in steps[-1] and "G=" in steps[-1]
    assert any(line.startswith("stargan: done, 12/12 it in") for line in lines)
    assert out.startswith("report: ")


def test_interrupt_in_the_report_stage_leaves_nothing(tmp_path: Path, smoke_cfg) -> None:
    """SIGINT while the run folder is half-written: status 130, one line, no folder and no temporary left."""
    proc, log = _start_run(tmp_path, smoke_cfg.data.root, "t_identity", mode="report")
    _wait_for((tmp_path / "ready").exists, proc, "report stage")
    assert [p.name.startswith(".") and p.name.endswith(".tmp") for p in (tmp_path / "runs").iterdir()] == [True]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    assert proc.returncode == exits.INTERRUPTED
    assert log.read_text().splitlines()[-1] == "interrupted" and "Traceback" not in log.read_text()
    assert list((tmp_path / "runs").iterdir()) == []


def test_terminate_while_training_leaves_nothing_half_written(tmp_path: Path, smoke_cfg) -> None:
    """SIGTERM (a cancelled CI job) in the middle of training: status 143, no run folder, no temporary
    file of a checkpoint; the next run resumes from the last checkpoint."""
    proc, log = _start_run(tmp_path, smoke_cfg.data.root, "stargan")
    _wait_for(lambda: re.search(r"stargan: [1-9]\d*/12 it", log.read_text()), proc, "training progress")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    text = log.read_text()
    assert proc.returncode == exits.TERMINATED, text[-3000:]
    assert text.splitlines()[-1] == "terminated" and "Traceback" not in text
    assert re.search(r"^stargan: stopped, \d+/12 it in", text, re.M)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
    assert _leftovers(tmp_path / "runs", tmp_path / "home") == []


def test_status_0_and_1_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    write_runs(runs, [0.80, 0.80, 0.60])
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert main(["baseline", "set", "0001", *loc]) == exits.OK
    assert main(["compare", "0002", "--fail-on", "pooled_auc:abs=0.02", *loc]) == exits.OK
    assert main(["compare", "0003", "--fail-on", "pooled_auc:abs=0.02", *loc]) == exits.REGRESSION
    assert "**FAILED**" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "error: python -m bench: the following arguments are required: command"),
        (["lst"], "error: python -m bench: argument command: invalid choice: 'lst'"),
        (["run", "--jobs", "two"], "error: python -m bench run: argument --jobs: invalid int value: 'two'"),
        (["list", "--progress", "fancy"], "error: python -m bench list: argument --progress: invalid choice"),
        (["history", "--runs", "/nonexistent/runs"], "error: /nonexistent/runs"),
    ],
)
def test_status_2_usage_and_bad_input_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == exits.USAGE
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_status_4_unexpected_error_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(bench.cli.main, "cmd_list", broken)
    assert main(["list"]) == exits.UNEXPECTED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and "RuntimeError: boom" in err
    assert err[-1] == "error: unexpected error (traceback above); please report it"


def test_status_130_on_keyboard_interrupt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.cli.main, "cmd_list", interrupted)
    assert main(["list"]) == exits.INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_quiet_and_plain_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synth = ["data", "synth", "--n-pneumonia", "2", "--n-healthy", "2", "--size", "64"]
    assert main([*synth, "--out", str(tmp_path / "a"), "--quiet"]) == exits.OK
    assert capsys.readouterr().err == ""
    assert main([*synth, "--out", str(tmp_path / "b")]) == exits.OK  # stderr is no terminal here: plain lines
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[0] == "synthetic radiographs: start (0/4 img)"
    assert err.splitlines()[-1].startswith("synthetic radiographs: done, 4/4 img in")
    assert main([*synth, "--out", str(tmp_path / "c"), "--progress", "none"]) == exits.OK
    assert capsys.readouterr().err == ""


def test_help_epilog_and_readme_list_every_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == exits.OK
    out = capsys.readouterr().out
    for code, meaning in exits.TABLE:
        assert re.search(rf"^  {code}\s+{re.escape(meaning)}$", out, re.M), code
    readme = (ROOT / "README.md").read_text().split("## Exit status", 1)[1]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", readme, re.M)
    assert [int(code) for code, _ in rows] == [code for code, _ in exits.TABLE]
    assert len({code for code, _ in exits.TABLE}) == len(exits.TABLE)  # each status means one thing
