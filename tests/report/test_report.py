"""The report rendered from constructed records: reference block, beats-sentence, oracle ceiling, notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.evaluate.figure import Example, Figure, MetricId, RocCurve
from bench.records.record import RunRecord
from bench.report.document import (
    ARUN_AUPRC,
    HIT_RATE_NOTE,
    ORACLE,
    RANDOMIZATION_NOTE,
    beats_references,
    render,
    title,
    write_report,
)


def _fig(name: str, value: float, lo: float, hi: float) -> dict:
    return {**Figure.of(MetricId.from_key(name), value, (lo, hi), 20).as_dict(), "seed_mean": value, "seed_std": None}


def _entry(
    pooled: tuple[float, float, float],
    mask: tuple[float, float, float] | None = None,
    reference: bool = False,
    translates: bool = False,
) -> dict:
    metrics = {
        "lm_auc": _fig("lm_auc", *pooled),  # the headline, here with the same numbers as pooled AUC
        "pooled_auc": _fig("pooled_auc", *pooled),
        "pooled_ap": _fig("pooled_ap", 0.3, 0.2, 0.4),
        "hit_rate": _fig("hit_rate", 0.5, 0.4, 0.6),
    }
    if mask is not None:
        metrics["mask_pooled_auc"] = _fig("mask_pooled_auc", *mask)
        metrics["mask_lm_auc"] = _fig("mask_lm_auc", *mask)
    if translates:
        metrics["change_rate_p2h"] = _fig("change_rate_p2h", 0.2, 0.1, 0.3)
        metrics["randomization_rho"] = _fig("randomization_rho", 0.25, 0.2, 0.3)
    entry = {"status": "ok", "error": None, "metrics": metrics}
    return {**entry, "reference": True} if reference else entry


def make_record(methods: dict[str, dict], synthetic: bool = True) -> RunRecord:
    return RunRecord.from_json(_record_json(methods, synthetic))


def _record_json(methods: dict[str, dict], synthetic: bool) -> dict:
    return {
        "schema": 2,
        "run_id": "0001_test",
        "created": "2024-01-01T00:00:00+00:00",
        "commit": None,
        "dirty": False,
        "config": {"preset": "smoke", "eval": {"tolerances": [2], "n_bootstrap": 50}, "data": {"size": 32}},
        "config_hash": "abc",
        "seeds": [0],
        "versions": {"python": "3"},
        "device": "cpu",
        "times": {"data": 1.0},
        "data": {
            "root": "/data",
            "synthetic": synthetic,
            "manifest_hash": "m",
            "n_train": 10,
            "n_tune": 2,
            "n_test": {"pneumonia": 5, "healthy": 5},
        },
        "evaluator": {"threshold": 0.5, "test_auc": 0.9, "untranslated": {}},
        "methods": methods,
    }


METHODS = {
    # lower bound 0.80 above every non-oracle reference's upper bound (0.70): beats them
    "good_gan": _entry((0.85, 0.80, 0.90), (0.90, 0.86, 0.94), translates=True),
    # lower bound 0.66 inside the edge reference's CI [0.60, 0.70]: does not
    "overlap_gan": _entry((0.72, 0.66, 0.78), (0.75, 0.71, 0.79), translates=True),
    "t_ref_random": _entry((0.50, 0.49, 0.51), (0.50, 0.49, 0.51), reference=True),
    "t_ref_edge": _entry((0.64, 0.60, 0.70), (0.67, 0.63, 0.72), reference=True),
    # the oracle's upper bound 0.97 is above good_gan's lower bound; it is the ceiling, not a bar to clear
    ORACLE: _entry((0.95, 0.93, 0.97), (1.0, 1.0, 1.0), reference=True),
}


def test_reference_block_and_beats_sentence() -> None:
    text = render(make_record(METHODS))
    table3 = text.split("## Table 3")[1].split("## ROC")[0]
    boxes, masks = table3.split("Against the pixel-exact lesion masks")
    main_table, ref_block = boxes.split("Reference maps, computed like any method")
    assert "good_gan" in main_table and "t_ref_edge" not in main_table
    assert all(f"| {title(n)} |" in ref_block for n in ("t_ref_random", "t_ref_edge", ORACLE))
    assert "| good_gan |" not in ref_block
    sentence = next(line for line in ref_block.splitlines() if line.startswith("Methods that beat"))
    assert "good_gan" in sentence and "overlap_gan" not in sentence
    assert "best such reference is t_ref_edge, lm_auc 0.640 [0.600, 0.700]" in sentence
    assert "The oracle reference, which sees" in ref_block
    assert "pooled AUC of 0.950 [0.930, 0.970]: what a perfect lesion map scores against the boxes" in ref_block
    # against the exact masks: edge upper bound 0.72; good_gan (0.86) beats it, overlap_gan (0.71) does not
    mask_sentence = next(line for line in masks.splitlines() if line.startswith("Methods that beat"))
    assert "good_gan" in mask_sentence and "overlap_gan" not in mask_sentence
    assert "what a perfect lesion map scores against the exact masks" in masks
    for note in (HIT_RATE_NOTE, RANDOMIZATION_NOTE):
        assert note in table3
    assert "| pooled AP |" in main_table
    assert "0.250 [0.200, 0.300]" in main_table  # randomization_rho of the GANs
    assert "randomization ρ" not in masks  # shown once, not against each ground truth
    # references do not translate: no column in Table 1 or the change-rate tables
    table12 = text.split("## Table 3")[0]
    assert all(title(n) not in table12 for n in ("t_ref_random", "t_ref_edge", ORACLE))


def test_no_method_beats_and_no_oracle() -> None:
    methods = {k: v for k, v in METHODS.items() if k not in ("good_gan", ORACLE)}
    text = render(make_record(methods))
    assert "No method beats every reference" in text
    assert "best such reference is t_ref_edge" in text
    assert "the ceiling" not in text


def test_no_references_no_block() -> None:
    methods = {k: v for k, v in METHODS.items() if not v.get("reference")}
    text = render(make_record(methods))
    assert "Reference maps" not in text and "best such reference" not in text
    assert beats_references(make_record(methods).methods) is None


def test_oracle_is_not_the_bar() -> None:
    only_oracle = {"good_gan": METHODS["good_gan"], ORACLE: METHODS[ORACLE]}
    assert beats_references(make_record(only_oracle).methods) is None  # nothing but the ceiling to compare with


def test_failed_reference_is_listed_under_failures() -> None:
    methods = {
        **METHODS,
        "t_ref_edge": {"status": "failed", "error": "RuntimeError: x", "metrics": {}, "reference": True},
    }
    text = render(make_record(methods))
    assert "best such reference is t_ref_random" in text and "t_ref_edge: RuntimeError: x" in text


def test_published_auprc_anchor_only_on_real_data() -> None:
    assert ARUN_AUPRC not in render(make_record(METHODS))
    real = render(make_record(METHODS, synthetic=False))
    assert ARUN_AUPRC in real and "not ours" in ARUN_AUPRC and "0.16-0.52" in ARUN_AUPRC


def test_write_report_from_typed_curves_and_examples(tmp_path: Path) -> None:
    fpr = np.linspace(0, 1, 11)
    curves = [
        RocCurve("good_gan", "Good GAN", fpr, np.sqrt(fpr), 0.85),
        RocCurve("t_ref_edge", "Edges", fpr, fpr, 0.64, reference=True),
    ]
    examples = [
        Example(
            "p1",
            True,
            np.zeros((8, 8)),
            np.array([[1.0, 1.0, 4.0, 5.0]]),
            {"good_gan": np.eye(8), "t_ref_edge": np.ones((8, 8))},
        ),
        Example("h1", False, np.zeros((8, 8)), np.zeros((0, 4)), {"good_gan": np.eye(8)}),
    ]
    write_report(tmp_path, make_record(METHODS), curves, examples)
    for name in ("report.md", "roc.png", "qualitative.png"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("pooled_auc", "higher"),
        ("mask_pooled_ap", "higher"),
        ("ap", "higher"),
        ("mask_miou", "higher"),
        ("detection_auc", "higher"),
        ("accuracy05_h2h", "higher"),
        ("change_rate_all2h", "lower"),
        ("change_rate_tol8_p2h", "lower"),
        ("randomization_rho", "lower"),
    ],
)
def test_metric_directions(name: str, direction: str) -> None:
    metric = MetricId.from_key(name)
    assert metric.direction == direction and metric.key == name
    assert Figure.of(metric, 0.5, (0.4, 0.6), 3).direction == direction


def test_unknown_metric_has_no_direction() -> None:
    with pytest.raises(ValueError, match="no direction known for metric 'mystery'"):
        MetricId.from_key("mystery")
    with pytest.raises(ValueError, match="no direction known for metric 'mystery'"):
        Figure.of(MetricId.from_key("mystery", strict=False), 0.5, None, 1)
    assert Figure.of(MetricId("energy", target="boxes"), float("nan"), None, 0).as_dict()["value"] is None


def test_oracle_sentence_warns_when_a_prior_beats_it() -> None:
    from bench.report.document import oracle_sentence

    methods = dict(METHODS)
    methods["t_ref_prior"] = _entry((0.97, 0.96, 0.98), (0.80, 0.78, 0.82), reference=True)
    record = make_record(methods).methods
    boxes = oracle_sentence(record)
    assert "what a perfect lesion map scores against the boxes" in boxes
    assert f"{title('t_ref_prior')} scores above it" in boxes and "exact masks below are the sharper test" in boxes
    assert "scores above it" not in oracle_sentence(record, "masks")  # 0.80 < the oracle's 1.0 on masks
    assert "scores above it" not in oracle_sentence(make_record(METHODS).methods)


def test_evaluator_line_states_the_classifier_size() -> None:
    record = make_record(METHODS)
    record.evaluator.settings.update(input_size=128, feature_map=4)
    text = render(record)
    assert "Evaluator: DenseNet-121 (trained by the suite) at 128 px (4x4 final feature map), AUC 0.900" in text
    del record.evaluator.settings["input_size"]  # a record written before the classifier had its own size
    assert "Evaluator: DenseNet-121 (trained by the suite), AUC 0.900" in render(record)
