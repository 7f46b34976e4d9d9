"""Tests of bench.records.store: run folder numbering, run ids, loading by id, named baselines."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from record_factory import COMMIT_A, base_values, make_record, per_image

from bench import records as R
from bench.errors import BenchError


def test_next_run_dir_numbering(tmp_path: Path) -> None:
    now = datetime(2024, 5, 1, 12, 30, 5, tzinfo=timezone.utc)
    first = R.next_run_dir(tmp_path / "runs", COMMIT_A, False, now)
    assert first.name == "0001_aaaaaaa_20240501T123005Z"
    first.mkdir(parents=True)
    (tmp_path / "runs" / "0007_bbbbbbb_20240101T000000Z").mkdir()
    (tmp_path / "runs" / ".0009_tmp").mkdir()  # hidden temporary folders do not count
    second = R.next_run_dir(tmp_path / "runs", None, True, datetime(2024, 5, 1, 14, 30, 5))
    assert second.name == "0008_nogit-dirty_20240501T143005Z"


def test_load_record_by_folder_file_number_and_name(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "0001_aaaaaaa_20240101T000000Z"
    path = R.write_record(run_dir, make_record())
    back = R.load_record(run_dir)
    assert R.load_record(path) == back
    assert R.load_record("0001", runs_root=tmp_path / "runs") == back
    assert R.load_record("1", runs_root=tmp_path / "runs") == back
    assert R.load_record("latest", runs_root=tmp_path / "runs") == back
    assert R.load_record(run_dir.name, runs_root=tmp_path / "runs") == back
    frame = per_image({"per_image_auc": base_values()})
    R.write_per_image(run_dir, frame)
    pd.testing.assert_frame_equal(R.load_per_image("0001", runs_root=tmp_path / "runs"), frame)


def test_load_record_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="nope"):
        R.load_record(tmp_path / "nope")
    run_dir = tmp_path / "0001_x"
    run_dir.mkdir()
    with pytest.raises(BenchError, match="record.json: run record not found"):
        R.load_record(run_dir)
    with pytest.raises(BenchError, match="per_image.csv: per-image values not found"):
        R.load_per_image(run_dir)
    assert R.load_per_image(run_dir, missing_ok=True) is None


def test_set_baseline_writes_both_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "0001_aaaaaaa_20240101T000000Z"
    R.write_record(run_dir, make_record())
    R.write_per_image(run_dir, per_image({"per_image_auc": base_values()}))
    dest = R.set_baseline(run_dir, "quick", tmp_path / "baselines")
    assert dest == tmp_path / "baselines" / "quick.json"
    assert R.load_record(dest) == R.load_record(run_dir)
    gz = tmp_path / "baselines" / "quick.per_image.csv.gz"
    assert gzip.decompress(gz.read_bytes()) == (run_dir / "per_image.csv").read_bytes()
    pd.testing.assert_frame_equal(R.load_per_image(dest), R.load_per_image(run_dir))
    with pytest.raises(BenchError, match="baseline name"):
        R.set_baseline(run_dir, "bad name!", tmp_path / "baselines")
    with pytest.raises(BenchError, match="baseline name ''"):
        R.set_baseline(run_dir, "", tmp_path / "baselines")


def test_resolve_baseline_by_name_path_or_run(tmp_path: Path) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    run_dir = runs / "0001_aaaaaaa_20240101T000000Z"
    R.write_record(run_dir, make_record())
    named = R.set_baseline(run_dir, "nightly", baselines, runs)
    assert R.resolve_baseline("nightly", baselines, runs) == named
    assert R.resolve_baseline(named, baselines, runs) == named
    assert R.resolve_baseline("0001", baselines, runs) == run_dir / "record.json"
    with pytest.raises(BenchError, match="no baseline 'weekly'"):
        R.resolve_baseline("weekly", baselines, runs)
