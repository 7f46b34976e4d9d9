"""One metric across the runs of a runs folder, per method: the table and the plot.

Runs of different presets are not comparable, so a history shows one preset at a time (by default
the newest run's) and names each run's preset and config hash.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.atomic import atomic_write_figure
from bench.errors import BenchError
from bench.evaluate.figure import MetricId
from bench.records.likeness import preset_of
from bench.records.provenance import short_commit
from bench.records.record import RunRecord
from bench.records.store import DEFAULT_RUNS, _run_dirs, load_record
from bench.report.markdown import MISSING, interval, markdown_table, number

HISTORY_COLUMNS = [
    "run_id",
    "created",
    "commit",
    "preset",
    "config_hash",
    "method",
    "value",
    "ci_lo",
    "ci_hi",
    "status",
]
ALL_PRESETS = "all"
"""``preset`` value of :func:`history` that keeps the runs of every preset."""


def _history_rows(rec: RunRecord, metric: MetricId, method: str | None) -> list[list[Any]]:
    """Rows of one record for :func:`history`."""
    rows = []
    for name, m in rec.methods.items():
        if method is not None and name != method:
            continue
        entry = m.metrics.get(metric)
        if entry is None and m.ok and method is None:
            continue
        status = "failed" if not m.ok else ("ok" if entry and entry.value is not None else "no value")
        value = entry.value if entry and entry.value is not None else math.nan
        ci = entry.bounds if entry else None
        rows.append(
            [
                rec.run_id,
                rec.created,
                short_commit(rec.commit, bool(rec.dirty)),
                preset_of(rec) or MISSING,
                rec.config_hash,
                name,
                value,
                ci[0] if ci else math.nan,
                ci[1] if ci else math.nan,
                status,
            ]
        )
    return rows


def _metric_id(name: str) -> MetricId | None:
    """The metric a history asks for; None for a name no record can hold (a grouped metric without its group)."""
    try:
        return MetricId.from_key(name, strict=False)
    except ValueError:
        return None


def _read_runs(runs_root: Path) -> tuple[list[RunRecord], list[str]]:
    """The readable records under ``runs_root`` in run order, and a warning line per unreadable one."""
    records, warnings = [], []
    for run_dir in _run_dirs(runs_root):
        try:
            records.append(load_record(run_dir))
        except BenchError as exc:
            warnings.append(f"warning: skipped {run_dir.name}: {exc}")
    return records, warnings


def history(
    runs_root: Path = DEFAULT_RUNS, metric: str = "pooled_auc", method: str | None = None, preset: str | None = None
) -> pd.DataFrame:
    """One row per run x method (run order) of ``metric`` over the runs of one preset: run_id, created,
    commit, preset, config_hash, method, value, ci_lo, ci_hi, status.

    ``preset`` None takes the newest readable run's preset, :data:`ALL_PRESETS` keeps every run.
    Failed methods appear with NaN values; runs whose record is unreadable are skipped and listed
    as ``warning:`` lines in ``df.attrs["warnings"]``; ``df.attrs["n_runs"]`` counts the run folders,
    ``df.attrs["preset"]`` is the preset shown.
    """
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise BenchError(f"{runs_root}: runs folder not found")
    records, warnings = _read_runs(runs_root)
    if preset is None and records:
        preset = preset_of(records[-1]) or MISSING
    rows = []
    metric_id = _metric_id(metric)
    for rec in records:
        if metric_id is not None and (preset in (None, ALL_PRESETS) or (preset_of(rec) or MISSING) == preset):
            rows.extend(_history_rows(rec, metric_id, method))
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    frame = frame.astype({"value": float, "ci_lo": float, "ci_hi": float})
    frame.attrs["warnings"] = warnings
    frame.attrs["metric"] = metric
    frame.attrs["n_runs"] = len(records) + len(warnings)
    frame.attrs["preset"] = preset
    return frame


def format_history(df: pd.DataFrame) -> str:
    """Markdown table of :func:`history` output."""
    rows = [
        [
            r.run_id,
            r.created,
            r.commit,
            r.preset,
            r.config_hash,
            r.method,
            number(None if math.isnan(r.value) else r.value) if r.status != "failed" else "failed",
            MISSING if math.isnan(r.ci_lo) else interval(r.ci_lo, r.ci_hi),
        ]
        for r in df.itertuples(index=False)
    ]
    metric = df.attrs.get("metric", "value")
    return markdown_table(["run", "created", "commit", "preset", "config", "method", metric, "95% CI"], rows)


def plot_history(df: pd.DataFrame, out_png: str | Path) -> Path:
    """Each method's value over runs as a line with its 95% CI as a shaded band and bar (gaps where a run
    has no value); the x labels name each run's number, commit and config hash. PNG written atomically."""
    import matplotlib
    from matplotlib.figure import Figure

    if df.empty:
        raise BenchError("history: nothing to plot")
    runs = df.drop_duplicates("run_id")
    position = {run_id: i for i, run_id in enumerate(runs["run_id"])}
    fig = Figure(figsize=(max(6.0, 0.8 * len(runs) + 3), 4.8), dpi=120)
    ax = fig.add_subplot()
    groups = list(df.groupby("method", sort=False))
    palette = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for i, (method, g) in enumerate(groups):
        x = np.array([position[r] for r in g["run_id"]], dtype=float)
        value, lo, hi = (g[c].to_numpy(float) for c in ("value", "ci_lo", "ci_hi"))
        color = palette(i % palette.N)
        ax.plot(x, value, marker="o", color=color, label=method)
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        # a run without neighbours has no band to speak of: its CI also shows as a bar
        ax.vlines(x, lo, hi, color=color, alpha=0.5, linewidth=1)
    ax.set_xticks(range(len(runs)))
    labels = [f"{r.run_id.split('_')[0]}\n{r.commit}\n{r.config_hash}" for r in runs.itertuples(index=False)]
    ax.set_xticklabels(labels, fontsize=7)
    metric = df.attrs.get("metric", "value")
    presets = ", ".join(dict.fromkeys(runs["preset"]))
    ax.set(xlabel="run / commit / config hash", ylabel=metric, title=f"{metric} across {presets} runs (95% CI band)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return atomic_write_figure(fig, out_png, bbox_inches="tight")
