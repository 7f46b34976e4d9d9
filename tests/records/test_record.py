"""The typed record: every committed record survives RunRecord.from_json -> to_json unchanged, and every
metric name in them is the JSON spelling of exactly one MetricId."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.evaluate.figure import KINDS, Figure, MetricId
from bench.records import RunRecord, load_record, migrate, write_record

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(
    [p for p in (ROOT / "results" / "baselines").glob("*.json") if not p.name.endswith(".rules.json")]
    + [ROOT / "results" / "quick" / "record.json", ROOT / "results" / "standard" / "record.json"]
)


def _names(record: dict) -> set[str]:
    names = {k for m in record["methods"].values() for k in m["metrics"]}
    return names | set(record["evaluator"].get("untranslated", {}))


def test_the_committed_records_are_all_there() -> None:
    assert len(COMMITTED) >= 5 and all(p.is_file() for p in COMMITTED)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_record_round_trips(path: Path, tmp_path: Path) -> None:
    stored = json.loads(path.read_text(encoding="utf-8"))
    record = RunRecord.from_json(stored)
    assert record.to_json() == stored
    assert list(record.to_json()) == list(stored)  # the keys in the order written
    written = write_record(tmp_path, record)
    assert json.loads(written.read_text()) == stored
    assert load_record(written) == record


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_metric_name_is_one_metric_id(path: Path) -> None:
    for name in _names(json.loads(path.read_text(encoding="utf-8"))):
        metric = MetricId.from_key(name)  # strict: every name is a known metric
        assert metric.key == name and str(metric) == name
        assert metric.kind is not None and metric.direction in ("higher", "lower")


def test_an_older_record_reads_without_what_it_did_not_measure(tmp_path: Path) -> None:
    """A record written before the location-matched AUC and the verdict (the standard record of commit
    4e4a5c0 was one): the same file without them still loads, and needs no migration."""
    stored = json.loads((ROOT / "results" / "standard" / "record.json").read_text())
    for key in ("verdict", "agreement"):
        stored.pop(key, None)
    for entry in stored["methods"].values():
        entry["metrics"] = {k: v for k, v in entry["metrics"].items() if "lm_auc" not in k}
    (tmp_path / "record.json").write_text(json.dumps(stored))
    record = load_record(tmp_path / "record.json")
    assert record.verdict is None and record.agreement is None
    assert all(MetricId("lm_auc", target="boxes") not in m.metrics for m in record.methods.values())
    assert migrate(stored) == stored  # schema 2 needs no conversion


@pytest.mark.parametrize(
    ("key", "metric"),
    [
        ("pooled_auc", MetricId("pooled_auc", target="boxes")),
        ("mask_pooled_auc", MetricId("pooled_auc", target="masks")),
        ("mask_lm_auc_all", MetricId("lm_auc_all", target="masks")),
        ("accuracy_p2h", MetricId("accuracy", group="p2h")),
        ("accuracy05_all2h", MetricId("accuracy05", group="all2h")),
        ("change_rate_h2h", MetricId("change_rate", group="h2h", tolerance=0)),
        ("change_rate_tol8_p2h", MetricId("change_rate", group="p2h", tolerance=8)),
        ("randomization_rho", MetricId("randomization_rho")),
    ],
)
def test_metric_key_conversion(key: str, metric: MetricId) -> None:
    assert MetricId.from_key(key) == metric and metric.key == key


def test_direction_and_group_come_from_the_metric_kind() -> None:
    change = MetricId("change_rate", group="p2h", tolerance=2)
    assert (change.direction, change.report_group) == ("lower", "change_rate")
    assert Figure.of(change, 0.1, (0.0, 0.2), 5).as_dict()["group"] == "change_rate"
    assert MetricId("detection_auc", target="masks").report_group == "detection"
    assert set(KINDS) >= {"lm_auc", "accuracy", "change_rate", "randomization_rho"}


@pytest.mark.parametrize(
    "fields",
    [
        {"metric": "pooled_auc"},  # a localization figure needs its ground truth
        {"metric": "accuracy", "group": "x2y"},
        {"metric": "change_rate", "group": "p2h"},  # a change rate needs its tolerance
        {"metric": "randomization_rho", "target": "boxes"},
        {"metric": "mask_dice"},  # an unknown name may not spell a known figure
    ],
)
def test_impossible_metric_ids_are_refused(fields: dict) -> None:
    with pytest.raises(ValueError, match="not a metric identity"):
        MetricId(**fields)


def test_unknown_names_read_leniently_keep_their_stored_direction() -> None:
    assert MetricId.from_key("per_image_auc", strict=False).kind is None
    assert MetricId.from_key("change_rate_tol0_p2h", strict=False).key == "change_rate_tol0_p2h"
    with pytest.raises(ValueError, match="no direction known"):
        MetricId.from_key("per_image_auc")
    entry = {"value": 3.0, "ci": None, "n": 1, "direction": "none", "group": ""}
    assert Figure.from_dict(entry).direction == "none" and Figure.from_dict(entry).as_dict() == entry


def test_an_invalid_record_is_a_clear_error() -> None:
    stored = json.loads(COMMITTED[0].read_text(encoding="utf-8"))
    del stored["methods"]
    with pytest.raises(BenchError, match="somewhere: not a valid run record"):
        RunRecord.from_json(stored, "somewhere")
