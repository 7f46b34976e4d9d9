"""``run --launcher submitit`` (cluster jobs) and ``run --track mlflow``: both optional extras.

The launched run goes through submitit's local executor, the way a user checks a job before queueing:
its record must equal the in-process run's, metric for metric. Slurm itself is not here: a stand-in
``sbatch`` records the job scripts, which must carry the partition, GPUs, time and dependencies.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from stub_run import record_values

from bench.cli.main import main
from bench.config import Config, to_dict
from bench.launch.submit import SUFFIX, tidy_links
from bench.records.tracking import flatten, store_uri

METHODS = "stargan,pillet"


def _argv(cfg: Config, out: Path, *extra: str) -> list[str]:
    """``run`` on the smoke preset pointed at the test data, one thread per process."""
    root = cfg.data.root
    sets = ["--set", f"data.root={root!r}", "--set", "train.device='cpu'"]
    return ["run", "--methods", METHODS, "--preset", "smoke", *sets, "--out", str(out), "--threads", "1", *extra]


def _has(module: str) -> bool:
    """Whether ``module`` (an optional extra) imports."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _record(runs: Path) -> tuple[Path, dict[str, Any]]:
    (run_dir,) = [p for p in sorted(runs.iterdir()) if not p.name.startswith(".")][-1:]
    return run_dir, json.loads((run_dir / "record.json").read_text())


@pytest.fixture(scope="module")
def inprocess(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> dict[str, Any]:
    """One in-process smoke run of METHODS (logged to a temporary MLflow store when mlflow is installed)."""
    from bench.settings import load_config

    cfg = load_config("smoke", sets=[f"data.root={str(synth_root)!r}", "train.device='cpu'"])
    tmp = tmp_path_factory.mktemp("inprocess")
    tracked = _has("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LESIONBENCH_CHECKPOINTS", str(tmp / "checkpoints"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        code = main(_argv(cfg, tmp / "runs", *(["--track", "mlflow"] if tracked else [])))
    assert code == 0
    run_dir, record = _record(tmp / "runs")
    return {"cfg": cfg, "run_dir": run_dir, "record": record, "uri": f"sqlite:///{tmp / 'mlflow.db'}"}


# ---------------------------------------------------------------- submitit, local executor


def _plant_foreign_checkpoint(cfg: Config) -> Path:
    """A final.pt of another method where stargan's model goes: its training job must fail on it."""
    from bench.data import open_data
    from bench.train.checkpoint import save_checkpoint
    from bench.train.runner import FINAL, default_out_dir

    data = open_data(cfg.data, progress=False)
    out = default_out_dir("stargan", cfg, data)
    out.mkdir(parents=True)
    save_checkpoint(
        out / FINAL, {"method": "pillet", "config": to_dict(cfg), "data_hash": data.manifest_hash, "state": {}}
    )
    return out / FINAL


@pytest.mark.slow
@pytest.mark.skipif(not _has("submitit"), reason="the [cluster] extra (submitit) is not installed")
def test_local_launch_reports_a_failed_job_resumes_and_equals_the_in_process_run(
    inprocess: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("submitit", reason="the [cluster] extra (submitit) is not installed")
    cfg, runs, checkpoints = inprocess["cfg"], tmp_path / "runs", tmp_path / "checkpoints"
    monkeypatch.setenv("LESIONBENCH_CHECKPOINTS", str(checkpoints))
    foreign = _plant_foreign_checkpoint(cfg)
    launch = _argv(cfg, runs, "--launcher", "submitit", "--cluster", "local")

    assert main(launch) == 3  # a method failed (bench.cli.exits.METHOD_FAILED)
    run_dir, record = _record(runs)
    err = capsys.readouterr().err
    stargan, pillet = record["methods"]["stargan"], record["methods"]["pillet"]
    assert stargan["status"] == "failed" and pillet["status"] == "ok"
    assert f"log {run_dir}/jobs/" in stargan["error"] and "error: method stargan failed" in err
    log = run_dir / record["launch"]["jobs"]["train-stargan-seed0"]["log"]
    assert "holds method 'pillet', not 'stargan'" in log.read_text()
    assert record["launch"]["jobs"]["train-pillet-seed0"]["status"] == "ok"
    assert record["launch"]["cluster"] == "local"
    assert not any(p.name.endswith(SUFFIX) for p in runs.iterdir())  # hidden folder renamed, its link removed
    pillet_model = next(checkpoints.glob("pillet-*/final.pt"))
    trained_at = pillet_model.stat().st_mtime_ns

    foreign.unlink()
    assert main(launch) == 0  # the same command again: stargan trains, pillet is reused
    run_dir, record = _record(runs)
    assert pillet_model.stat().st_mtime_ns == trained_at
    assert record_values(record) == record_values(inprocess["record"])
    assert sorted(p.name for p in (run_dir / "jobs").glob("*_log.err")) != []
    assert len(list((run_dir / "jobs").glob("outcome-*.json"))) == 3  # prepare + two training jobs


# ---------------------------------------------------------------- submitit, Slurm (stand-in sbatch)


FAKE_SBATCH = """#!/bin/sh
n=$(cat "$FAKE_SBATCH_STATE" 2>/dev/null || echo 100)
n=$((n + 1))
echo "$n" > "$FAKE_SBATCH_STATE"
echo "Submitted batch job $n"
"""


def test_slurm_launch_queues_prepare_array_and_dependent_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, smoke_cfg: Config
) -> None:
    pytest.importorskip("submitit", reason="the [cluster] extra (submitit) is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SBATCH_STATE", str(tmp_path / "state"))
    runs = tmp_path / "runs"
    extra = ["--partition", "gpu", "--gpus-per-job", "1", "--time", "90", "--jobs", "3", "--slurm", "account=lab"]
    argv = _argv(smoke_cfg, runs, "--launcher", "submitit", "--seeds", "2", *extra)
    argv[argv.index("--threads") + 1] = "4"

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prepare job 101, training array 102 (4 jobs), evaluation job 103" in out
    (launch,) = list(runs.iterdir())
    assert launch.name.startswith(".0001_") and launch.name.endswith(SUFFIX)  # no run folder until evaluated
    jobs = launch / "jobs"
    prepare, train, evaluate = (jobs / f"{i}_submission.sh" for i in (101, 102, 103))
    for script in (prepare, train, evaluate):
        text = script.read_text()
        for flag in ("--partition=gpu", "--gpus-per-node=1", "--time=90", "--cpus-per-task=4", "--account=lab"):
            assert f"#SBATCH {flag}\n" in text, (script.name, flag)
        assert "export OMP_NUM_THREADS=4" in text
    assert "--dependency" not in prepare.read_text()
    assert "#SBATCH --array=0-3%3\n" in train.read_text()
    assert "#SBATCH --dependency=afterok:101\n" in train.read_text()
    assert "#SBATCH --kill-on-invalid-dep=yes\n" in train.read_text()
    assert "#SBATCH --dependency=afterany:102\n" in evaluate.read_text()
    plan = json.loads((launch / "launch.json").read_text())
    assert [(t["method"], t["seed"]) for t in plan["tasks"]] == [
        ("stargan", 0),
        ("stargan", 1),
        ("pillet", 0),
        ("pillet", 1),
    ]
    assert [j["id"] for j in plan["jobs"]["train"]] == ["102_0", "102_1", "102_2", "102_3"]
    assert plan["jobs"]["evaluate"]["id"] == "103"


def test_slurm_without_srun_points_to_the_local_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, smoke_cfg: Config
) -> None:
    pytest.importorskip("submitit", reason="the [cluster] extra (submitit) is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    assert main(_argv(smoke_cfg, tmp_path / "runs", "--launcher", "submitit")) == 2
    assert "use --cluster local" in capsys.readouterr().err


def test_a_training_job_that_times_out_is_resubmitted_as_the_same_task() -> None:
    pytest.importorskip("submitit", reason="the [cluster] extra (submitit) is not installed")
    from bench.launch.jobs import TrainJob

    job = TrainJob()
    again = job.checkpoint("/runs/.0001_x.submitit", 3)
    assert again.function is job and again.args == ("/runs/.0001_x.submitit", 3)


def test_tidy_links_removes_only_links_of_finished_evaluations(tmp_path: Path) -> None:
    done, busy = tmp_path / "0001_abc_x", tmp_path / "0002_abc_y"
    for run, evaluate in ((done, "7"), (busy, "8")):
        (run / "jobs").mkdir(parents=True)
        (run / "launch.json").write_text(json.dumps({"jobs": {"evaluate": {"id": evaluate}}}))
        (tmp_path / f".{run.name}{SUFFIX}").symlink_to(run.name)
    (done / "jobs" / "7_0_result.pkl").write_bytes(b"")
    assert tidy_links(tmp_path) == [tmp_path / f".{done.name}{SUFFIX}"]
    assert (tmp_path / f".{busy.name}{SUFFIX}").is_symlink()


def _launch_dir(tmp_path: Path, outcomes: dict[str, dict[str, Any]]) -> Path:
    """A hidden launch folder with two training jobs and the given outcome files."""
    launch = tmp_path / f".0001_abc_x{SUFFIX}"
    (launch / "jobs").mkdir(parents=True)
    plan = {
        "run": "0001_abc_x",
        "tasks": [{"method": "a", "seed": 0}, {"method": "b", "seed": 0}],
        "jobs": {
            "prepare": {"id": "9", "log": f"{launch}/jobs/9_0_log.err"},
            "train": [
                {"id": "10_0", "log": f"{launch}/jobs/10_0_0_log.err"},
                {"id": "10_1", "log": "x/10_1_0_log.err"},
            ],
        },
    }
    (launch / "launch.json").write_text(json.dumps(plan))
    for key, outcome in outcomes.items():
        (launch / "jobs" / f"outcome-{key}.json").write_text(json.dumps(outcome))
    return launch


def test_a_job_without_outcome_is_reported_unfinished_with_its_log(tmp_path: Path) -> None:
    from bench.launch.jobs import _trained, read_plan

    launch = _launch_dir(tmp_path, {"train-a-seed0": {"ok": True, "seconds": 3.0}})
    trained, table = _trained(launch, read_plan(launch), tmp_path / "0001_abc_x")
    assert trained[("a", 0)].error is None and trained[("a", 0)].seconds == 3.0
    error = trained[("b", 0)].error
    assert "did not finish" in error and f"job 10_1, log {tmp_path / '0001_abc_x' / 'jobs' / '10_1_0_log.err'}" in error
    assert table["train-b-seed0"] == {"id": "10_1", "log": "jobs/10_1_0_log.err", "status": "unfinished", "seconds": 0}


def test_the_evaluation_job_stops_on_a_failed_prepare_job_naming_its_log(tmp_path: Path) -> None:
    from bench.errors import BenchError
    from bench.launch.jobs import evaluate_job

    launch = _launch_dir(tmp_path, {"prepare": {"ok": False, "error": "DataError: x.csv: bad", "seconds": 1.0}})
    with pytest.raises(BenchError, match=r"prepare job failed \(DataError: x.csv: bad\); log .*9_0_log.err"):
        evaluate_job(str(launch))


# ---------------------------------------------------------------- MLflow


@pytest.mark.skipif(not _has("mlflow"), reason="the [track] extra (mlflow) is not installed")
def test_tracking_logs_the_run_with_nested_method_runs(inprocess: dict[str, Any]) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the [track] extra (mlflow) is not installed")
    from mlflow.tracking import MlflowClient

    record, run_dir = inprocess["record"], inprocess["run_dir"]
    mlflow.set_tracking_uri(inprocess["uri"])
    runs = mlflow.search_runs(experiment_names=["lesionbench"])
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1 and parent.iloc[0]["tags.lesionbench.run_id"] == record["run_id"]
    top = parent.iloc[0]
    assert top["params.train.iterations"] == "12" and top["params.data.size"] == "32"
    auc = record["methods"]["stargan"]["metrics"]["pooled_auc"]
    assert top["metrics.stargan.pooled_auc"] == pytest.approx(auc["value"])
    assert top["metrics.stargan.pooled_auc.ci_low"] == pytest.approx(auc["ci"][0])
    assert top["metrics.stargan.pooled_auc.ci_high"] == pytest.approx(auc["ci"][1])
    children = runs[runs["tags.mlflow.parentRunId"] == top["run_id"]]
    assert sorted(children["tags.method"]) == sorted(record["methods"])
    stargan = children[children["tags.method"] == "stargan"].iloc[0]
    assert stargan["metrics.pooled_auc"] == pytest.approx(auc["value"])

    client = MlflowClient(inprocess["uri"])
    history = client.get_metric_history(stargan["run_id"], "curve.pooled_auc")
    curve = record["methods"]["stargan"]["curves"]
    assert [(m.step, m.value) for m in history] == [(p["iteration"], pytest.approx(p["pooled_auc"])) for p in curve]
    artifacts = {a.path for a in client.list_artifacts(top["run_id"])}
    assert {"report.md", "roc.png", "record.json"} <= artifacts
    local = client.download_artifacts(top["run_id"], "report.md")
    assert Path(local).read_text() == (run_dir / "report.md").read_text()
    stored = Path(inprocess["uri"][len("sqlite:///") :]).parent / "mlartifacts" / top["run_id"] / "artifacts"
    assert (stored / "record.json").read_text() == (run_dir / "record.json").read_text()  # beside the store


def test_default_store_is_sqlite_beside_the_runs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = store_uri(tmp_path / "results" / "runs")
    assert uri == f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "results" / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert store_uri(tmp_path / "runs") == ("http://tracking.example:5000", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere' / 'x.db'}")
    assert store_uri(tmp_path / "runs")[1] == (tmp_path / "elsewhere" / "mlartifacts").as_uri()


def test_config_is_flattened_into_params() -> None:
    assert flatten({"train": {"iterations": 12, "tolerances": [2, 8]}, "method": {"m": {"x": 1.5}}}) == {
        "train.iterations": "12",
        "train.tolerances": "[2, 8]",
        "method.m.x": "1.5",
    }


# ---------------------------------------------------------------- without the extras


@pytest.mark.parametrize(
    ("module", "flags", "message"),
    [
        ("submitit", ["--launcher", "submitit", "--cluster", "local"], "pip install -e '.[cluster]'"),
        ("mlflow", ["--track", "mlflow"], "pip install -e '.[track]'"),
    ],
)
def test_a_missing_extra_is_one_line_before_any_work(
    module: str,
    flags: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    smoke_cfg: Config,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as when the package is absent
    assert main(_argv(smoke_cfg, tmp_path / "runs", *flags)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--partition", "gpu"], "--partition needs --launcher submitit"),
        (["--cluster", "local"], "--cluster needs --launcher submitit"),
        (["--launcher", "submitit", "--time", "0"], "--time must be at least 1 minute"),
        (["--launcher", "submitit", "--slurm", "account"], "expected KEY=VALUE"),
    ],
)
def test_bad_launch_options_are_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture, smoke_cfg: Config
) -> None:
    assert main(_argv(smoke_cfg, tmp_path / "runs", *flags)) == 2
    assert message in capsys.readouterr().err
