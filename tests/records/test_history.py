"""Tests of bench.records.history: a metric over runs, its table and plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_factory import write_runs

from bench import records as R
from bench.errors import BenchError


def test_history_three_runs_and_plot(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_runs(runs, [0.70, 0.75, 0.80])
    broken = runs / "0004_ccccccc_20240105T000000Z"
    broken.mkdir()
    (broken / "record.json").write_text("[")
    df = R.history(runs, "pooled_auc", "pillet")
    assert list(df["value"]) == pytest.approx([0.70, 0.75, 0.80])
    assert list(df["run_id"].str[:4]) == ["0001", "0002", "0003"]
    assert list(df["commit"]) == ["aaaaaaa", "aaaaaaa-dirty", "aaaaaaa"]
    assert list(df["preset"]) == ["smoke"] * 3 and list(df["config_hash"]) == ["cfg-smoke"] * 3
    assert df.attrs["preset"] == "smoke"  # the newest readable run's
    assert list(df["ci_lo"]) == pytest.approx([0.68, 0.73, 0.78])
    assert len(df.attrs["warnings"]) == 1 and df.attrs["warnings"][0].startswith("warning: skipped 0004")
    assert df.attrs["n_runs"] == 4
    table = R.format_history(df)
    assert table.count("\n") == 4 and "| smoke | cfg-smoke | pillet | 0.7500 | [0.7300, 0.7700] |" in table
    png = R.plot_history(df, tmp_path / "hist.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_of_missing_folder_and_empty_plot(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="runs folder not found"):
        R.history(tmp_path / "nope")
    (tmp_path / "runs").mkdir()
    df = R.history(tmp_path / "runs")
    assert df.empty and df.attrs["n_runs"] == 0
    with pytest.raises(BenchError, match="nothing to plot"):
        R.plot_history(df, tmp_path / "h.png")


def test_history_keeps_one_preset(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_runs(runs, [0.70, 0.75, 0.80], presets=["standard", "quick", "standard"])
    assert list(R.history(runs)["value"]) == pytest.approx([0.70, 0.80])  # the newest run is standard
    quick = R.history(runs, preset="quick")
    assert list(quick["value"]) == pytest.approx([0.75]) and quick.attrs["preset"] == "quick"
    every = R.history(runs, preset=R.ALL_PRESETS)
    assert list(every["preset"]) == ["standard", "quick", "standard"]
    assert R.history(runs, preset="paper").empty
