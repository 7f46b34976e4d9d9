"""One metric across all runs of a runs folder, per method: the table and the plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.atomic import atomic_write_figure
from bench.errors import BenchError
from bench.markdown import MISSING, interval, markdown_table, number
from bench.records.provenance import short_commit
from bench.records.schema import ci_of
from bench.records.store import DEFAULT_RUNS, _run_dirs, load_record

HISTORY_COLUMNS = ["run_id", "created", "commit", "method", "value", "ci_lo", "ci_hi", "status"]


def _history_rows(rec: dict[str, Any], metric: str, method: str | None) -> list[list[Any]]:
    """Rows of one record for :func:`history`."""
    rows = []
    for name, m in rec["methods"].items():
        if method is not None and name != method:
            continue
        entry = m["metrics"].get(metric)
        if entry is None and m["status"] == "ok" and method is None:
            continue
        status = "failed" if m["status"] != "ok" else ("ok" if entry and entry["value"] is not None else "no value")
        value = entry["value"] if entry and entry["value"] is not None else math.nan
        ci = ci_of(entry) if entry else None
        rows.append(
            [
                rec["run_id"],
                rec["created"],
                short_commit(rec["commit"], bool(rec["dirty"])),
                name,
                value,
                ci[0] if ci else math.nan,
                ci[1] if ci else math.nan,
                status,
            ]
        )
    return rows


def history(runs_root: Path = DEFAULT_RUNS, metric: str = "pooled_auc", method: str | None = None) -> pd.DataFrame:
    """One row per run x method (run order) of ``metric``: run_id, created, commit, method, value,
    ci_lo, ci_hi, status.

    Failed methods appear with NaN values; runs whose record is unreadable are skipped and listed
    as ``warning:`` lines in ``df.attrs["warnings"]``; ``df.attrs["n_runs"]`` counts the run folders.
    """
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise BenchError(f"{runs_root}: runs folder not found")
    rows, warnings = [], []
    run_dirs = _run_dirs(runs_root)
    for run_dir in run_dirs:
        try:
            rec = load_record(run_dir)
        except BenchError as exc:
            warnings.append(f"warning: skipped {run_dir.name}: {exc}")
            continue
        rows.extend(_history_rows(rec, metric, method))
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    frame = frame.astype({"value": float, "ci_lo": float, "ci_hi": float})
    frame.attrs["warnings"] = warnings
    frame.attrs["metric"] = metric
    frame.attrs["n_runs"] = len(run_dirs)
    return frame


def format_history(df: pd.DataFrame) -> str:
    """Markdown table of :func:`history` output."""
    rows = [
        [
            r.run_id,
            r.created,
            r.commit,
            r.method,
            number(None if math.isnan(r.value) else r.value) if r.status != "failed" else "failed",
            MISSING if math.isnan(r.ci_lo) else interval(r.ci_lo, r.ci_hi),
        ]
        for r in df.itertuples(index=False)
    ]
    metric = df.attrs.get("metric", "value")
    return markdown_table(["run", "created", "commit", "method", metric, "95% CI"], rows)


def plot_history(df: pd.DataFrame, out_png: str | Path) -> Path:
    """Line per method over runs with the 95% CI as error bars; PNG written atomically."""
    from matplotlib.figure import Figure

    if df.empty:
        raise BenchError("history: nothing to plot")
    run_ids = list(dict.fromkeys(df["run_id"]))
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    commits = dict(zip(df["run_id"], df["commit"]))
    fig = Figure(figsize=(max(6.0, 0.7 * len(run_ids) + 3), 4.5), dpi=120)
    ax = fig.add_subplot()
    for method, g in df.groupby("method", sort=False):
        values = g["value"].to_numpy(float)
        err = np.vstack(
            [
                np.clip(values - g["ci_lo"].to_numpy(float), 0, None),
                np.clip(g["ci_hi"].to_numpy(float) - values, 0, None),
            ]
        )
        ax.errorbar([position[r] for r in g["run_id"]], values, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(run_ids)))
    ax.set_xticklabels([f"{r.split('_')[0]}\n{commits[r]}" for r in run_ids], fontsize=8)
    metric = df.attrs.get("metric", "value")
    ax.set(xlabel="run", ylabel=metric, title=f"{metric} across runs (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return atomic_write_figure(fig, out_png, bbox_inches="tight")
