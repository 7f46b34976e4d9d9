"""Tests of bench.records.compare: tolerance rules, the noise tests, the regression gate and its table."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from record_factory import (
    COMMIT_B,
    N_PATIENTS,
    base_values,
    entry,
    make_record,
    noisy_shift,
    per_image,
    schema1_copy_of_baseline,
)

from bench import records as R
from bench.errors import BenchError
from bench.evaluate.figure import MetricId


def _compare(
    base_metrics: dict,
    run_metrics: dict,
    base_pi: dict | None,
    run_pi: dict | None,
    rules: list[str],
    allow_different: bool = False,
    **kw: Any,
) -> R.CompareResult:
    base = make_record(metrics=base_metrics)
    run = make_record("0002_bbbbbbb_20240102T000000Z", metrics=run_metrics, commit=COMMIT_B, **kw)
    pis = (per_image(run_pi) if run_pi else None, per_image(base_pi) if base_pi else None)
    return R.compare(run, base, *pis, rules, allow_different=allow_different)


RULES = ["pooled_auc:abs=0.02", "per_image_auc:abs=0.02"]


def test_identical_record_passes() -> None:
    rec = make_record()
    pi = per_image({"per_image_auc": base_values()})
    result = R.compare(rec, rec, pi, pi, RULES)
    assert not result.failed and result.regressions == []
    assert any("same commit" in w for w in result.warnings)
    text = R.format_compare(result)
    assert "| method | metric | baseline | run | delta | change | status |" in text
    assert "= same" in text and "**PASSED**" in text


def test_worse_record_fails() -> None:
    base = base_values()
    result = _compare(
        {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
        {"pooled_auc": entry(0.60), "per_image_auc": entry(0.60)},
        {"per_image_auc": base},
        {"per_image_auc": noisy_shift(base, -0.2, 0.02)},
        RULES,
    )
    assert result.failed
    assert {(r.method, r.metric) for r in result.regressions} == {("pillet", "pooled_auc"), ("pillet", "per_image_auc")}
    by_metric = {r.metric: r for r in result.rows}
    assert "paired" in by_metric["per_image_auc"].status
    assert "outside baseline CI" in by_metric["pooled_auc"].status
    assert by_metric["pooled_auc"].change == "▼ worse"
    text = R.format_compare(result)
    assert "**FAILED**" in text and "-0.2000 (-25.0%)" in text


def test_worsening_within_tolerance_passes() -> None:
    base = base_values()
    result = _compare(
        {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
        {"pooled_auc": entry(0.79), "per_image_auc": entry(0.78)},
        {"per_image_auc": base},
        {"per_image_auc": noisy_shift(base, -0.02, 0.001)},
        RULES,
    )
    assert not result.failed
    assert all("within tolerance" in r.status for r in result.rows)


def test_worsening_within_noise_passes() -> None:
    base = base_values()
    result = _compare(
        {"pooled_auc": entry(0.80, (0.70, 0.90)), "per_image_auc": entry(0.80)},
        {"pooled_auc": entry(0.75), "per_image_auc": entry(0.77)},
        {"per_image_auc": base},
        {"per_image_auc": noisy_shift(base, -0.03, 0.3)},
        RULES,
    )
    assert not result.failed
    by_metric = {r.metric: r for r in result.rows}
    assert "within noise" in by_metric["per_image_auc"].status and "paired" in by_metric["per_image_auc"].status
    assert "inside baseline CI" in by_metric["pooled_auc"].status


def test_improvement_passes() -> None:
    base = base_values()
    result = _compare(
        {"pooled_auc": entry(0.60), "per_image_auc": entry(0.60)},
        {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
        {"per_image_auc": base},
        {"per_image_auc": noisy_shift(base, 0.2, 0.02)},
        RULES,
    )
    assert not result.failed
    assert all(r.change == "▲ better" and r.status == "ok" for r in result.rows)


def test_lower_is_better_metric_fails_when_it_rises() -> None:
    base = base_values(centre=0.2)
    worse = _compare(
        {"change_rate": entry(0.20, direction="lower")},
        {"change_rate": entry(0.30, direction="lower")},
        {"change_rate": base},
        {"change_rate": noisy_shift(base, 0.1, 0.02)},
        ["change_rate:abs=0.01"],
    )
    assert worse.failed and worse.rows[0].change == "▼ worse"
    better = _compare(
        {"change_rate": entry(0.30, direction="lower")},
        {"change_rate": entry(0.20, direction="lower")},
        {"change_rate": base},
        {"change_rate": noisy_shift(base, -0.1, 0.02)},
        ["change_rate:abs=0.01"],
    )
    assert not better.failed and better.rows[0].change == "▲ better"


def test_direction_none_and_ungated_metrics_never_fail() -> None:
    result = _compare(
        {"seconds": entry(10.0, direction="none"), "dice": entry(0.5), "pooled_auc": entry(0.8)},
        {"seconds": entry(50.0, direction="none"), "dice": entry(0.1), "pooled_auc": entry(0.8)},
        None,
        None,
        ["seconds:abs=1", "pooled_auc:abs=0.01"],
    )
    assert not result.failed
    by_metric = {r.metric: r for r in result.rows}
    assert by_metric["seconds"].status == "not judged" and by_metric["seconds"].change == "↑"
    assert by_metric["dice"].status == "not gated" and by_metric["dice"].change == "▼ worse"


def test_relative_wildcard_rule() -> None:
    small = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.78)}, None, None, ["*:rel=5%"])
    assert not small.failed  # 2.5% worse
    large = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.70)}, None, None, ["*:rel=5%"])
    assert large.failed and "rel 5%" in large.rows[0].status  # 12.5% worse, outside the CI
    with pytest.raises(BenchError, match="the gate covers no metric"):  # the rule names another method
        _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.70)}, None, None, ["stargan/pooled_auc:abs=0"])
    other = _compare(
        {"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.80)}, None, None, ["stargan/pooled_auc:abs=0", "*:abs=0"]
    )
    assert not other.failed and any("'stargan/pooled_auc:abs=0' matches no metric" in w for w in other.warnings)
    mine = _compare(
        {"pooled_auc": entry(0.80)},
        {"pooled_auc": entry(0.70)},
        None,
        None,
        ["*:abs=0.5", "pillet/pooled_auc:abs=0.01"],
    )
    assert mine.failed  # the method-specific rule wins over the wildcard


def test_missing_or_failed_method_fails() -> None:
    stargan = {"stargan": {"status": "ok", "error": None, "metrics": {"pooled_auc": entry(0.7)}}}
    base = make_record(extra_methods=stargan)
    missing = make_record("0002_bbbbbbb_20240102T000000Z", commit=COMMIT_B)
    result = R.compare(missing, base, None, None, ["*:abs=0.02"])
    assert result.failed and result.regressions[0].method == "stargan"
    assert "missing in run" in result.regressions[0].status
    assert not R.compare(missing, base, None, None, ["pillet/*:abs=0.02"]).failed  # no rule covers stargan
    failed = make_record(
        "0002_bbbbbbb_20240102T000000Z",
        commit=COMMIT_B,
        extra_methods={"stargan": {"status": "failed", "error": "RuntimeError: boom", "metrics": {}}},
    )
    result = R.compare(failed, base, None, None, ["pooled_auc:abs=0.02"])
    assert result.failed and "RuntimeError: boom" in result.regressions[0].status


def test_warnings_on_different_config_and_data() -> None:
    result = _compare(
        {"pooled_auc": entry(0.8)},
        {"pooled_auc": entry(0.8)},
        None,
        None,
        [],
        config_hash="cfg2",
        manifest="data2",
        config={"train": {"iterations": 20}},
        allow_different=True,
    )
    assert not result.failed
    assert any(w.startswith("warning: config differs") and "train.iterations (20 vs 10)" in w for w in result.warnings)
    assert any(w.startswith("warning: run ") and "data manifest differ" in w for w in result.warnings)
    assert not any("same commit" in w for w in result.warnings)
    assert all(w.startswith("warning:") for w in result.warnings)


@pytest.mark.parametrize(
    "text",
    [
        "pooled_auc",
        "pooled_auc:abs=x",
        "pooled_auc:rel=5",
        "pooled_auc:abs=2%",
        ":abs=1",
        "a/b/c:abs=1",
        "pooled_auc:abs=-1",
        "pooled_auc:max=1",
    ],
)
def test_bad_rule_text(text: str) -> None:
    with pytest.raises(BenchError, match="--fail-on"):
        R.parse_rule(text)
    with pytest.raises(BenchError, match=re.escape(text)):
        R.compare(make_record(), make_record(), None, None, [text])


def test_rule_parsing() -> None:
    rules = R.parse_rules(["pooled_auc:abs=0.02,*:rel=5%", "pillet/dice:abs=1e-3"])
    assert [(r.method, r.metric, r.kind, r.amount) for r in rules] == [
        (None, "pooled_auc", "abs", 0.02),
        (None, "*", "rel", 0.05),
        ("pillet", "dice", "abs", 0.001),
    ]


def test_per_image_rows_pair_under_the_metric_name() -> None:
    base = (np.arange(N_PATIENTS) % 2).astype(float)
    run = np.zeros(N_PATIENTS)
    result = _compare(
        {"hit_rate": entry(0.5)}, {"hit_rate": entry(0.0)}, {"hit_rate": base}, {"hit_rate": run}, ["hit_rate:abs=0.1"]
    )
    assert result.failed and "paired" in result.rows[0].status
    # the schema-1 alias hit_rate -> hit is gone: rows named 'hit' no longer pair with hit_rate
    aliased = _compare(
        {"hit_rate": entry(0.5)}, {"hit_rate": entry(0.0)}, {"hit": base}, {"hit": run}, ["hit_rate:abs=0.1"]
    )
    assert "paired" not in aliased.rows[0].status and "baseline CI" in aliased.rows[0].status


def test_run_against_committed_schema1_baseline_pairs_renamed_rows(tmp_path: Path) -> None:
    baseline = schema1_copy_of_baseline(tmp_path / "old")
    base_rec, base_pi = R.load_record(baseline), R.load_per_image(baseline)
    run_pi = base_pi.copy()
    run_pi.loc[run_pi["metric"] == "hit_rate", "value"] = 0.0
    hit_rate = MetricId("hit_rate", target="boxes")
    methods = {
        name: replace(m, metrics={k: replace(f, value=0.0) if k == hit_rate else f for k, f in m.metrics.items()})
        for name, m in base_rec.methods.items()
    }
    run_rec = replace(base_rec, schema=R.SCHEMA, run_id="0002_bbbbbbb_20240102T000000Z", methods=methods)
    result = R.compare(run_rec, base_rec, run_pi, base_pi, ["hit_rate:abs=0.01"], n_resamples=200)
    # rows whose drop to 0 exceeds the tolerance (0.01) reach the noise test, which pairs the renamed rows
    hit_rows = [r for r in result.rows if r.metric == "hit_rate" and r.baseline and r.baseline.value > 0.01]
    assert hit_rows and all("paired" in r.status for r in hit_rows)  # the renamed rows are found and paired
    big = [r for r in hit_rows if r.baseline.value > 0.2]
    assert big and all(r.regressed for r in big)


@pytest.mark.parametrize("ci", [["low", 0.9], [0.7, [0.8]]])
def test_compare_refuses_a_record_with_a_non_number_ci(ci: list) -> None:
    bad = make_record("0002_bbbbbbb_20240102T000000Z", commit=COMMIT_B)
    bad["methods"]["pillet"]["metrics"]["pooled_auc"]["ci"] = ci
    with pytest.raises(BenchError, match=r"run 0002_bbbbbbb_20240102T000000Z: .*'pooled_auc': ci .* non-number"):
        R.compare(bad, make_record(), None, None, ["pooled_auc:abs=0.01"])
    with pytest.raises(BenchError, match=r"baseline 0002_bbbbbbb_20240102T000000Z: .*'pooled_auc'"):
        R.compare(make_record(), bad, None, None, ["pooled_auc:abs=0.01"])
