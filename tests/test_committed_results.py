"""The committed results (results/<preset>/, results/baselines/) belong to today's presets and say what
the README says of them: a preset changed without regenerating its results fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config import config_hash, to_dict
from bench.registry import get_method_class, list_methods
from bench.settings import load_config

ROOT = Path(__file__).resolve().parents[1]
CURVE_KEYS = {"iteration", "seconds", "pooled_auc", "accuracy_p2h", "change_rate_tol8_p2h"}


def _record(preset: str) -> dict:
    return json.loads((ROOT / "results" / preset / "record.json").read_text())


@pytest.mark.parametrize("preset", ["quick", "standard"])
def test_committed_record_is_the_preset_of_today(preset: str) -> None:
    record = _record(preset)
    assert record["config"] == to_dict(load_config(preset))
    assert record["config_hash"] == config_hash(load_config(preset))
    assert record["dirty"] is False  # trained from committed code
    baseline = ROOT / "results" / "baselines" / f"{preset}.json"
    assert baseline.read_bytes() == (ROOT / "results" / preset / "record.json").read_bytes()  # one run, two copies
    assert record["run_id"] in (ROOT / "results" / preset / "report.md").read_text()
    for figure in ("roc.png", "qualitative.png", "learning_curves.png"):
        assert (ROOT / "results" / preset / figure).stat().st_size > 0


@pytest.mark.parametrize("preset", ["quick", "standard"])
def test_every_gan_has_its_learning_curve(preset: str) -> None:
    record = _record(preset)
    iterations = record["config"]["train"]["iterations"]
    translating = [n for n in list_methods() if get_method_class(n).translates]
    assert translating
    for name in translating:
        curve = record["methods"][name]["curves"]
        assert all(CURVE_KEYS <= set(point) for point in curve)
        assert curve[0]["iteration"] == 0 and curve[-1]["iteration"] == iterations
        assert [p["seconds"] for p in curve] == sorted(p["seconds"] for p in curve)


def test_standard_fits_its_budget_and_its_gans_translate() -> None:
    record = _record("standard")
    assert sum(record["times"].values()) <= 90 * 60
    untranslated = record["evaluator"]["untranslated"]["accuracy_p2h"]["ci"][1]
    for name in ("stargan", "fixedpoint", "vagan"):
        assert record["methods"][name]["metrics"]["accuracy_p2h"]["ci"][0] > untranslated, name


def test_smoke_baseline_is_the_preset_of_today_on_one_thread() -> None:
    """`.ci/gate` runs smoke with --threads 1 against this baseline; other settings would fail it."""
    record = json.loads((ROOT / "results" / "baselines" / "smoke.json").read_text())
    assert record["config"] == to_dict(load_config("smoke"))
    assert record["dirty"] is False
    assert record["layout"]["threads"] == 1 and record["layout"]["eval_threads"] == 1
    assert (ROOT / "results" / "baselines" / "smoke.per_image.csv.gz").stat().st_size > 0
    assert set(record["methods"]) == set(list_methods())
    assert all(m["status"] == "ok" for m in record["methods"].values())


def test_standard_references_bracket_the_headline() -> None:
    """Issue 18's contract on the committed standard record: lm_auc with CIs for every row, the prior
    exactly 0.5, chance about 0.5, the oracle near 1 against the masks, the supervised ceiling present."""
    metrics = {name: entry["metrics"] for name, entry in _record("standard")["methods"].items()}
    for name, values in metrics.items():
        for key in ("lm_auc", "mask_lm_auc"):
            low, high = values[key]["ci"]
            assert low <= values[key]["value"] <= high, (name, key)
    assert metrics["ref_prior"]["lm_auc"]["value"] == 0.5 and metrics["ref_prior"]["mask_lm_auc"]["value"] == 0.5
    assert metrics["ref_random"]["lm_auc"]["ci"][0] < 0.5 < metrics["ref_random"]["lm_auc"]["ci"][1]
    assert metrics["ref_oracle"]["mask_lm_auc"]["value"] >= 0.95
    assert "ref_supervised" in metrics


def test_standard_classifier_works_at_its_own_size() -> None:
    """Issue 19, item 1: the classifier at 128 px or more, and CAM's maximum in a box more often than not
    and more often than the edge map's."""
    record = _record("standard")
    assert record["evaluator"]["input_size"] >= 128 and record["evaluator"]["feature_map"] >= 4
    hit = {name: record["methods"][name]["metrics"]["hit_rate"]["value"] for name in ("chexnet_cam", "ref_edge")}
    assert hit["chexnet_cam"] > 0.5 and hit["chexnet_cam"] > hit["ref_edge"]
