"""``run --track mlflow``: a finished run logged to MLflow, where a lab's other experiments are tracked.

One MLflow run per benchmark run (named by its run id) holds the resolved config as params, every
method's metrics as ``<method>.<metric>`` with ``.ci_low`` / ``.ci_high`` beside them, the evaluator's
figures, and ``report.md``, ``record.json`` and the figures as artifacts. Under it, one nested run per
method (tag ``method``) holds the same metrics unprefixed and its learning curves as step metrics
(``curve.<key>``, the step being the training iteration; ``curve.seed<S>.<key>`` with several seeds).

The store is ``MLFLOW_TRACKING_URI`` when set; otherwise a SQLite file beside the runs folder
(``results/mlflow.db``), no server needed; with a SQLite store a new experiment keeps its artifacts
in ``mlartifacts/`` beside the file. MLflow's own
default (``sqlite:///mlflow.db`` in the working directory since MLflow 3) is not used, so that the
store does not depend on where the command was started. The experiment is ``MLFLOW_EXPERIMENT_NAME``,
default ``lesionbench``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.errors import BenchError, first_line

TRACKERS = ("mlflow",)
EXPERIMENT = "lesionbench"
DB_FILE = "mlflow.db"
SQLITE = "sqlite:///"
ARTIFACTS_DIR = "mlartifacts"
ARTIFACTS = ("report.md", "record.json", "roc.png", "qualitative.png", "learning_curves.png")
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /:]")


def require_mlflow() -> ModuleType:
    """The mlflow module, or a one-line error saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise BenchError(
            "--track mlflow needs the mlflow package: pip install -e '.[track]' (or pip install mlflow)"
        ) from None
    return mlflow


def check_tracker(name: str | None) -> None:
    """Before any work: the tracker exists and its package is installed."""
    if name is None:
        return
    if name not in TRACKERS:
        raise BenchError(f"--track {name!r}: choose one of {', '.join(TRACKERS)}")
    require_mlflow()


def store_uri(runs_root: Path) -> tuple[str, str | None]:
    """The tracking URI, ``MLFLOW_TRACKING_URI`` or SQLite beside the runs folder, and where a new
    experiment keeps its artifacts: beside a SQLite file (MLflow would use ``./mlruns`` wherever the
    command runs), the server's choice otherwise (None)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        results = Path(runs_root).resolve().parent
        results.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{results / DB_FILE}"
    if not uri.startswith(SQLITE):
        return uri, None
    return uri, (Path(uri[len(SQLITE) :]).resolve().parent / ARTIFACTS_DIR).as_uri()


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``section.field`` -> text (lists as JSON), for MLflow params."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def metric_key(text: str) -> str:
    """``text`` with the characters MLflow refuses in a metric name replaced by '_'."""
    return _BAD_KEY_CHARS.sub("_", text)


def figures(metrics: dict[str, dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """Every metric's value and CI bounds (``<name>``, ``<name>.ci_low``, ``<name>.ci_high``);
    undefined values are left out."""
    out: dict[str, float] = {}
    for name, entry in metrics.items():
        key = metric_key(f"{prefix}{name}")
        if entry.get("value") is not None:
            out[key] = float(entry["value"])
        ci = entry.get("ci") or [None, None]
        for bound, value in zip(("ci_low", "ci_high"), ci):
            if value is not None:
                out[f"{key}.{bound}"] = float(value)
    return out


def run_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The benchmark run's own metrics: the evaluator's figures and every method's, prefixed."""
    ev = record.get("evaluator", {})
    out = {f"evaluator.{k}": float(v) for k, v in ev.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update(figures(ev.get("untranslated", {}), "untranslated."))
    for method, entry in record["methods"].items():
        out.update(figures(entry.get("metrics", {}), f"{method}."))
    return out


def curve_points(record: dict[str, Any], method: str) -> list[tuple[str, float, int]]:
    """A method's learning curves as (key, value, iteration), one series per seed."""
    entry = record["methods"][method]
    by_seed = entry.get("curves_by_seed") or ([entry["curves"]] if entry.get("curves") else [])
    seeds = record.get("seeds", [])
    out = []
    for k, curve in enumerate(by_seed):
        prefix = "curve." if len(by_seed) == 1 else f"curve.seed{seeds[k] if k < len(seeds) else k}."
        for point in curve:
            step = int(point.get("iteration", 0))
            for key, value in point.items():
                if key != "iteration" and isinstance(value, (int, float)) and value == value:
                    out.append((metric_key(prefix + key), float(value), step))
    return out


def track_run(tracker: str, run_dir: Path, record: dict[str, Any], runs_root: Path) -> str:
    """Log a finished run (its folder and record) to ``tracker``; returns one line saying where."""
    check_tracker(tracker)
    try:
        return _log_mlflow(Path(run_dir), record, Path(runs_root))
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 (an unreachable server or a bad URI: one line, the run stays)
        error = f"{type(exc).__name__}: {first_line(exc)}"
        raise BenchError(f"MLflow tracking failed ({error}); the run itself is complete in {run_dir}") from None


def _experiment(client: Any, artifact_location: str | None) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name, artifact_location=artifact_location)


def _log_mlflow(run_dir: Path, record: dict[str, Any], runs_root: Path) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri, artifact_location = store_uri(runs_root)
    client = MlflowClient(tracking_uri=uri)
    experiment = _experiment(client, artifact_location)
    now = int(time.time() * 1000)
    tags = {
        "lesionbench.run_id": record["run_id"],
        "lesionbench.run_dir": str(run_dir.resolve()),
        "lesionbench.commit": str(record.get("commit")),
        "lesionbench.dirty": str(record.get("dirty")),
        "lesionbench.preset": record["config"]["preset"],
    }
    parent = client.create_run(experiment, run_name=record["run_id"], tags=tags).info.run_id
    params = {**flatten(record["config"]), "seeds": json.dumps(record["seeds"]), "config_hash": record["config_hash"]}
    client.log_batch(
        parent,
        metrics=[Metric(k, v, now, 0) for k, v in run_metrics(record).items()],
        params=[Param(k, v) for k, v in params.items()],
    )
    for name, entry in record["methods"].items():
        _log_method(client, experiment, parent, record, name, entry, now, (Metric, RunTag))
    for artifact in ARTIFACTS:
        if (run_dir / artifact).is_file():
            client.log_artifact(parent, str(run_dir / artifact))
    ok = all(m["status"] == "ok" for m in record["methods"].values())
    client.set_terminated(parent, "FINISHED" if ok else "FAILED")
    name = client.get_experiment(experiment).name
    return f"tracked in MLflow ({uri}): run {parent} ({record['run_id']}) in experiment {name!r}"


def _log_method(
    client: Any,
    experiment: str,
    parent: str,
    record: dict[str, Any],
    name: str,
    entry: dict[str, Any],
    now: int,
    entities: tuple[Any, Any],
) -> None:
    """One nested run per method: its metrics unprefixed, its curves as step metrics."""
    Metric, RunTag = entities
    tags = {"mlflow.parentRunId": parent, "method": name, "reference": str(bool(entry.get("reference")))}
    tags["status"] = entry["status"]
    if entry.get("error"):
        tags["error"] = str(entry["error"])[:5000]
    child = client.create_run(experiment, run_name=f"{record['run_id']}/{name}", tags=tags).info.run_id
    metrics = [Metric(k, v, now, 0) for k, v in figures(entry.get("metrics", {})).items()]
    metrics += [Metric(k, v, now, step) for k, v, step in curve_points(record, name)]
    client.log_batch(child, metrics=metrics, tags=[RunTag("lesionbench.run_id", record["run_id"])])
    client.set_terminated(child, "FINISHED" if entry["status"] == "ok" else "FAILED")
