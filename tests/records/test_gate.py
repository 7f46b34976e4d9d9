"""Tests of the gate in force (default gate, stored and given rules) and of like with like."""

from __future__ import annotations

from typing import Any

import pytest
from record_factory import COMMIT_B, base_values, entry, make_record, noisy_shift, per_image

from bench import records as R
from bench.errors import BenchError

RUN_ID = "0002_bbbbbbb_20240102T000000Z"
HEADLINE = {
    "pooled_auc": entry(0.80),
    "mask_pooled_auc": entry(0.85),
    "accuracy_p2h": entry(0.50, group="accuracy"),
    "change_rate_tol8_p2h": entry(0.10, direction="lower", group="change_rate"),
    "dice": entry(0.40),
}


def _method(metrics: dict[str, Any], status: str = "ok") -> dict[str, Any]:
    return {"status": status, "error": None if status == "ok" else "RuntimeError: boom", "metrics": metrics}


def _run(metrics: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return make_record(RUN_ID, metrics=metrics, commit=COMMIT_B, **kw)


def _with(metrics: dict[str, Any], **changes: dict[str, Any]) -> dict[str, Any]:
    return {**metrics, **changes}


def test_default_gate_passes_an_identical_run_and_names_its_rules() -> None:
    base = make_record(metrics=HEADLINE)
    result = R.compare(_run(HEADLINE), base)
    assert not result.failed
    assert result.gate.source == "default"
    assert [r.text for r in result.rules] == [
        "pooled_auc:abs=0.01",
        "mask_pooled_auc:abs=0.01",
        "accuracy_p2h:abs=0.01",
        "change_rate_tol8_p2h:abs=0.01",
    ]
    assert result.gate.left_out == ("lm_auc", "mask_lm_auc")
    text = R.format_compare(result)
    assert "Gate: default gate, the headline metrics of the 1 method(s) in both records with tolerance abs=0.01" in text
    assert "(not in both records, not gated: lm_auc, mask_lm_auc)" in text
    assert text.splitlines()[-1].startswith("**PASSED**") and "rules: pooled_auc:abs=0.01, " in text
    by_metric = {r.metric: r for r in result.rows}
    assert by_metric["dice"].status == "not gated" and by_metric["pooled_auc"].gated


@pytest.mark.parametrize(
    "metric,worse",
    [
        ("pooled_auc", entry(0.70)),  # below the baseline's CI [0.78, 0.82]
        ("mask_pooled_auc", entry(0.80)),  # below [0.83, 0.87]
        ("change_rate_tol8_p2h", entry(0.20, direction="lower", group="change_rate")),  # above [0.08, 0.12]
    ],
)
def test_default_gate_fails_a_headline_metric_outside_the_baseline_ci(metric: str, worse: dict) -> None:
    result = R.compare(_run(_with(HEADLINE, **{metric: worse})), make_record(metrics=HEADLINE))
    assert result.failed
    assert [(r.method, r.metric) for r in result.regressions] == [("pillet", metric)]
    assert "outside baseline CI" in result.regressions[0].status and "abs 0.01" in result.regressions[0].status


def test_default_gate_leaves_other_metrics_and_small_moves_alone() -> None:
    run = _with(HEADLINE, dice=entry(0.10), pooled_auc=entry(0.795))  # dice is no headline; 0.005 < 0.01
    assert not R.compare(_run(run), make_record(metrics=HEADLINE)).failed
    inside = _with(HEADLINE, pooled_auc=entry(0.785))  # beyond tolerance, inside the baseline's CI
    result = R.compare(_run(inside), make_record(metrics=HEADLINE))
    assert not result.failed and "within noise" in next(r for r in result.rows if r.metric == "pooled_auc").status


def test_default_gate_pairs_per_image_accuracy() -> None:
    base = (base_values(centre=0.5) > 0.5).astype(float)
    run = base.copy()
    run[base == 1] = 0.0  # every translated Pneumonia image the evaluator called Healthy now is not
    result = R.compare(
        _run(_with(HEADLINE, accuracy_p2h=entry(0.0, group="accuracy"))),
        make_record(metrics=HEADLINE),
        per_image({"accuracy_p2h": run}),
        per_image({"accuracy_p2h": base}),
    )
    assert [r.metric for r in result.regressions] == ["accuracy_p2h"]
    assert "paired" in result.regressions[0].status


def test_default_gate_takes_lm_auc_only_where_both_records_hold_it() -> None:
    with_lm = _with(HEADLINE, lm_auc=entry(0.70), mask_lm_auc=entry(0.75))
    old = R.compare(_run(with_lm), make_record(metrics=HEADLINE))  # baseline from before lm_auc
    assert "lm_auc" not in {r.metric for r in old.rules} and "lm_auc" in old.gate.left_out
    assert not old.failed
    new = R.compare(_run(_with(with_lm, lm_auc=entry(0.60))), make_record(metrics=with_lm))
    assert {r.metric for r in new.rules} >= {"lm_auc", "mask_lm_auc"} and new.gate.left_out == ()
    assert [r.metric for r in new.regressions] == ["lm_auc"]


def test_default_gate_covers_the_methods_in_both_records() -> None:
    stargan = {"stargan": _method({"pooled_auc": entry(0.7)})}
    base = make_record(metrics=HEADLINE, extra_methods=stargan)
    only_pillet = R.compare(_run(HEADLINE), base)  # a run of --methods pillet
    assert not only_pillet.failed
    assert next(r for r in only_pillet.rows if r.method == "stargan").status == "missing in run (not gated)"
    failed = R.compare(_run(HEADLINE, extra_methods={"stargan": _method({}, "failed")}), base)
    assert failed.failed and failed.regressions[0].method == "stargan"
    assert "failed in run: RuntimeError: boom" in failed.regressions[0].status


def test_default_gate_fails_a_run_whose_methods_all_failed() -> None:
    run = make_record(RUN_ID, commit=COMMIT_B)
    run["methods"]["pillet"] = _method({}, "failed")
    result = R.compare(run, make_record(metrics=HEADLINE))
    assert result.failed and result.regressions[0].method == "pillet"


def test_a_gate_covering_no_metric_is_an_error() -> None:
    no_headline = {"dice": entry(0.4), "seconds": entry(3.0, direction="none")}
    with pytest.raises(BenchError, match="default gate covers no metric .* give --fail-on rules"):
        R.compare(_run(no_headline), make_record(metrics=no_headline))
    with pytest.raises(BenchError, match=r"the gate covers no metric \(rules given \(--fail-on\): seconds:abs=1\)"):
        R.compare(_run(no_headline), make_record(metrics=no_headline), fail_on=["seconds:abs=1"])
    with pytest.raises(BenchError, match=r"covers no metric \(rules stored with the baseline: nope:abs=1\)"):
        R.compare(_run(HEADLINE), make_record(metrics=HEADLINE), baseline_rules=["nope:abs=1"])


def test_given_rules_win_over_stored_rules_over_the_default() -> None:
    run, base = _run(_with(HEADLINE, dice=entry(0.10))), make_record(metrics=HEADLINE)
    stored = R.compare(run, base, baseline_rules=["dice:abs=0.05"])
    assert stored.failed and stored.gate.source == "stored"
    assert "Gate: rules stored with the baseline: dice:abs=0.05" in R.format_compare(stored)
    given = R.compare(run, base, fail_on=["pooled_auc:abs=0.01"], baseline_rules=["dice:abs=0.05"])
    assert not given.failed and given.gate.source == "given"
    assert "Gate: rules given (--fail-on): pooled_auc:abs=0.01" in R.format_compare(given)


@pytest.mark.parametrize(
    "kw,differ",
    [
        ({"preset": "quick"}, "preset differ"),
        ({"manifest": "data2"}, "data manifest differ"),
        ({"preset": "quick", "manifest": "data2"}, "preset and data manifest differ"),
    ],
)
def test_unlike_runs_are_refused_unless_allowed(kw: dict[str, str], differ: str) -> None:
    base, run = make_record(metrics=HEADLINE), _run(HEADLINE, **kw)
    with pytest.raises(BenchError) as exc:
        R.compare(run, base)
    message = str(exc.value)
    assert "\n" not in message and differ in message and "--allow-different" in message
    assert f"run {RUN_ID} (preset {kw.get('preset', 'smoke')!r}" in message
    allowed = R.compare(run, base, allow_different=True)
    assert any(w.startswith("warning: run ") and differ in w for w in allowed.warnings)


def _typed(record: dict) -> R.RunRecord:
    return R.RunRecord.from_json(record)


def test_config_differences_leave_out_the_methods_run() -> None:
    base = make_record(metrics=HEADLINE, config={"method": {"pillet": {"lambda_id": 10.0}}})
    same = _run(HEADLINE, config={"method": {"pillet": {"lambda_id": 10.0}, "stargan": {"lambda_cls": 2.0}}})
    assert R.config_differences(_typed(same), _typed(base)) == []  # stargan's settings: stargan is not in both records
    assert not any("config differs" in w for w in R.compare(same, base).warnings)
    moved = _run(HEADLINE, config={"method": {"pillet": {"lambda_id": 1.0}}, "model": {"width": 8}})
    assert R.config_differences(_typed(moved), _typed(base)) == [
        "method.pillet.lambda_id (1.0 vs 10.0)",
        "model.width (8 vs absent)",
    ]
    warning = next(w for w in R.compare(moved, base).warnings if "config differs" in w)
    assert "method.pillet.lambda_id (1.0 vs 10.0), model.width (8 vs absent)" in warning


def test_config_differences_ignore_the_data_folder_of_the_same_data() -> None:
    base = make_record(metrics=HEADLINE, config={"data": {"root": "/data/a", "size": 64}})
    moved = _run(HEADLINE, config={"data": {"root": "/mnt/b", "size": 64}})
    assert R.config_differences(_typed(moved), _typed(base)) == []
    other = _run(HEADLINE, config={"data": {"root": "/mnt/b", "size": 64}}, manifest="data2")
    assert R.config_differences(_typed(other), _typed(base)) == ['data.root ("/mnt/b" vs "/data/a")']


def test_default_tolerance_absorbs_a_small_drop() -> None:
    """A 0.5-point drop of accuracy stays within the default tolerance of 0.01 (one point)."""
    base = base_values(centre=0.5)
    result = R.compare(
        _run(_with(HEADLINE, accuracy_p2h=entry(0.495, group="accuracy"))),
        make_record(metrics=HEADLINE),
        per_image({"accuracy_p2h": noisy_shift(base, -0.005, 0.001)}),
        per_image({"accuracy_p2h": base}),
    )
    assert not result.failed
    assert next(r for r in result.rows if r.metric == "accuracy_p2h").status == "ok: within tolerance (abs 0.01)"
