"""Tests of bench.records.schema: the record format, its checks, and the schema-1 per-image names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from record_factory import base_values, entry, make_record, per_image, schema1_copy_of_baseline

from bench import records as R
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]


def test_write_load_round_trip(tmp_path: Path) -> None:
    rec = make_record()
    rec["methods"]["pillet"]["metrics"]["dice"] = {**entry(0.5), "value": np.float32(np.nan), "n": np.int64(3)}
    run_dir = tmp_path / "runs" / "0001_aaaaaaa_20240101T000000Z"
    path = R.write_record(run_dir, rec)
    assert path == run_dir / "record.json"
    back = R.read_record(path)
    assert back["methods"]["pillet"]["metrics"]["dice"]["value"] is None  # NaN stored as null
    assert back["methods"]["pillet"]["metrics"]["dice"]["n"] == 3
    assert back["methods"]["pillet"]["metrics"]["pooled_auc"] == rec["methods"]["pillet"]["metrics"]["pooled_auc"]
    frame = per_image({"per_image_auc": base_values()})
    R.write_per_image(run_dir, frame)
    pd.testing.assert_frame_equal(R.read_per_image(run_dir / "per_image.csv"), frame)


def test_write_record_stamps_the_current_schema(tmp_path: Path) -> None:
    path = R.write_record(tmp_path, make_record(schema=1))
    assert json.loads(path.read_text())["schema"] == R.SCHEMA == 2


def test_bad_records_are_refused_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text("{not json")
    with pytest.raises(BenchError, match=r"record.json: not a valid run record \(bad JSON"):
        R.read_record(path)
    rec = make_record()
    del rec["config_hash"]
    path.write_text(json.dumps(rec))
    with pytest.raises(BenchError, match="missing key.*config_hash"):
        R.read_record(path)
    path.write_text(json.dumps(make_record(schema=3)))
    with pytest.raises(BenchError, match="schema 3; this version reads schema 1, 2"):
        R.read_record(path)
    with pytest.raises(BenchError, match="refusing"):
        R.write_record(tmp_path, {"schema": 2})


@pytest.mark.parametrize("ci", [["0.7", 0.9], [0.7, {}], [True, 0.9]])
def test_non_number_ci_is_a_clear_error(tmp_path: Path, ci: list) -> None:
    rec = make_record()
    rec["methods"]["pillet"]["metrics"]["pooled_auc"]["ci"] = ci
    path = tmp_path / "record.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(BenchError, match=r"record.json: .*metric 'pooled_auc': ci .* holds a non-number"):
        R.read_record(path)


def test_legacy_metric_names() -> None:
    assert R.LEGACY_PER_IMAGE_NAMES == {"hit": "hit_rate", "iou": "miou"}
    from bench.records.schema import legacy_metric_name

    renamed = {
        n: legacy_metric_name(n)
        for n in (
            "hit",
            "iou",
            "mask_hit",
            "mask_iou",
            "dice",
            "hit_rate",
            "miou",
            "change_rate_all2h",
            "mask_pixel_auc",
        )
    }
    assert renamed == {
        "hit": "hit_rate",
        "iou": "miou",
        "mask_hit": "mask_hit_rate",
        "mask_iou": "mask_miou",
        "dice": "dice",
        "hit_rate": "hit_rate",
        "miou": "miou",
        "change_rate_all2h": "change_rate_all2h",
        "mask_pixel_auc": "mask_pixel_auc",
    }


def test_schema1_per_image_names_are_renamed_on_load(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    values = {"hit": np.ones(3), "mask_iou": np.full(3, 0.5), "dice": np.zeros(3)}
    for run_dir, schema in ((old, 1), (new, 2)):
        run_dir.mkdir()
        (run_dir / "record.json").write_text(json.dumps(make_record(schema=schema)))
        R.write_per_image(run_dir, per_image(values))
    assert list(dict.fromkeys(R.load_per_image(old)["metric"])) == ["hit_rate", "mask_miou", "dice"]
    assert list(dict.fromkeys(R.load_per_image(new)["metric"])) == ["hit", "mask_iou", "dice"]  # only schema 1
    assert list(dict.fromkeys(R.load_per_image(old / "per_image.csv")["metric"])) == ["hit_rate", "mask_miou", "dice"]
    baseline = R.set_baseline(old, "legacy", tmp_path / "baselines")  # a schema-1 copy stays schema 1
    assert json.loads(baseline.read_text())["schema"] == 1
    assert list(dict.fromkeys(R.load_per_image(baseline)["metric"])) == ["hit_rate", "mask_miou", "dice"]


def test_committed_schema1_baseline_reads_with_current_names(tmp_path: Path) -> None:
    record = schema1_copy_of_baseline(tmp_path / "old")
    assert R.read_record(record)["schema"] == 1
    raw = pd.read_csv(tmp_path / "old" / "quick.per_image.csv.gz")
    frame = R.load_per_image(record)
    names = set(frame["metric"])
    assert {"hit_rate", "miou", "mask_hit_rate", "mask_miou"} <= names
    assert not names & {"hit", "iou", "mask_hit", "mask_iou"}
    assert (frame["metric"] == "hit_rate").sum() == (raw["metric"] == "hit").sum() > 0
    pd.testing.assert_series_equal(frame["value"], raw["value"].astype(float))
    metrics = {m for entry in R.read_record(record)["methods"].values() for m in entry["metrics"]}
    localization = {n for n in names if not n.startswith(("change_rate", "accuracy"))}
    assert localization <= metrics  # every per-image name is a record name now
