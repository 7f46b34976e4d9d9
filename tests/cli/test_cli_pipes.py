"""Issue 22, 1: every command that writes to stdout stops quietly when the reader of its pipe closes it.

A driver process imports the CLI once and forks one child per try (a fresh interpreter per try costs
seconds of CPU): the child's stdout is a pipe whose reader reads a few bytes and closes it, or one that
has no reader at all. The child then ends as the interpreter does, by a last flush of stdout (where a
closed pipe surfaced as "Exception ignored ... BrokenPipeError"), and leaves with ``os._exit``: the
interpreter's full teardown of a forked process holding torch takes about 10 s each on this machine.
One real ``python -m bench list --json | head -c 10`` checks that teardown too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from records.record_factory import write_runs
from stub_run import STUBS

from bench.cli import exits
from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

DRIVER = (
    r"""
import json, os, sys, tempfile, traceback
import matplotlib.pyplot, numpy as np, torch
import bench.evaluate.judge, bench.data.inspect, bench.pipeline, bench.records, bench.evaluate.score
from bench import Method, register_method
from bench.cli.main import main
from bench.registry import list_methods

list_methods()  # imports every method once, before the forks

"""
    + STUBS
    + r"""

register_method("t_identity")(Identity)
bench.evaluate.judge.get_evaluator = lambda cfg, data, progress=True, **kw: Judge()

def attempt(argv, n_bytes):
    # main(argv) in a forked child; its stdout's reader reads n_bytes and closes (None: there is no reader)
    r, w = os.pipe()
    if n_bytes is None:
        os.close(r)
    err = tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.dup2(err.fileno(), 2)
        os.close(w)
        if n_bytes is not None:
            os.close(r)
        try:
            code = main(argv)
            sys.stdout.flush()  # the interpreter's exit flushes stdout first
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    os.close(w)
    got = b""
    if n_bytes is not None:
        while len(got) < n_bytes:
            chunk = os.read(r, n_bytes - len(got))
            if not chunk:
                break
            got += chunk
        os.close(r)
    _, status = os.waitpid(pid, 0)
    err.seek(0)
    code, said = os.waitstatus_to_exitcode(status), err.read().decode()
    err.close()
    return {"code": code, "read": got.decode(errors="replace"), "stderr": said}

results = []
for argv, tries in json.loads(sys.argv[1]):
    full = attempt(argv, 1 << 30)
    rows = [attempt(argv, None)] + [attempt(argv, 1 + k % 9) for k in range(tries)]
    results.append({"argv": argv, "full": full, "tries": rows})
sys.stdout.write(json.dumps(results))
"""
)


def _maps(root: Path, path: Path) -> Path:
    """Random maps for every Lung Opacity patient of the data set at ``root``."""
    labels = pd.read_csv(root / "stage_2_train_labels.csv")
    ids = labels.loc[labels["Target"] == 1, "patientId"].unique()
    rng = np.random.default_rng(0)
    np.savez(path, **{pid: rng.random((16, 16), dtype=np.float32) for pid in ids})
    return path


@pytest.fixture()
def commands(tmp_path: Path, smoke_cfg, smoke_data) -> list[tuple[list[str], int]]:
    """Every command that writes to stdout, with its number of tries (``smoke_data`` builds the cache first)."""
    data = smoke_cfg.data.root
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    write_runs(runs, [0.80, 0.80, 0.60])
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert main(["baseline", "set", "0001", "--name", "quick", *loc]) == 0
    smoke = ["--preset", "smoke", "--data", data, "--set", "train.device='cpu'"]
    return [
        (["--help"], 4),
        (["list", "--json"], 12),
        (["list"], 4),
        (["data", "info", "--data", data, "--json"], 6),
        (["score", "--maps", str(_maps(Path(data), tmp_path / "maps.npz")), *smoke, "--json"], 3),
        (["compare", "0003", "--fail-on", "pooled_auc:abs=0.02", *loc], 6),
        (["history", "--plot", str(tmp_path / "h.png"), "--runs", str(runs)], 4),
        (["run", "--methods", "t_identity", "--no-references", "--out", str(tmp_path / "out"), *smoke, "--quiet"], 1),
    ]


def test_closed_pipe_is_quiet_for_every_command(commands: list[tuple[list[str], int]], tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)], env=env, cwd=ROOT, capture_output=True, timeout=900
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results = json.loads(done.stdout)
    assert [r["argv"] for r in results] == [argv for argv, _ in commands]
    for result in results:
        argv, full = result["argv"], result["full"]
        assert full["code"] in (exits.OK, exits.REGRESSION) and full["read"], (argv, full)
        closed, *tries = result["tries"]
        # no reader at all: the first write fails, always (argparse ignores a failed write of its help)
        assert closed["code"] == (exits.OK if argv == ["--help"] else exits.CLOSED_PIPE), (argv, closed)
        assert closed["stderr"] == "", (argv, closed)
        for t in tries:
            assert t["code"] in (full["code"], exits.CLOSED_PIPE), (argv, t)
            assert "Traceback" not in t["stderr"] and "Exception ignored" not in t["stderr"], (argv, t["stderr"])
            if argv[0] != "run":  # a run's output names its own new folder
                assert full["read"].startswith(t["read"]), (argv, t["read"])
    run_codes = [t["code"] for r in results if r["argv"][0] == "run" for t in [r["full"], *r["tries"]]]
    assert run_codes[0] == exits.OK
    assert len(list((tmp_path / "out").iterdir())) == len(run_codes)  # every run finished its folder, pipe or not


def test_list_json_into_head_through_a_shell() -> None:
    """The issue's own reproduction, once: ``python -m bench list --json | head -c 10``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(
        ["bash", "-c", f'{sys.executable} -m bench list --json | head -c 10; echo " ${{PIPESTATUS[0]}}"'],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stderr == ""
    assert done.stdout.startswith("[\n  {") and done.stdout.split()[-1] in ("0", str(exits.CLOSED_PIPE))
