"""The leaderboard: paired differences, ties, methods set apart, agreement between records."""

from __future__ import annotations

import numpy as np
import pytest

from bench.evaluate.figure import Figure, MetricId
from bench.evaluate.protocol import MethodEval
from bench.evaluate.verdict import leaderboard, next_preset, paired_difference, rank_agreement
from bench.records.build import MethodRun
from bench.records.record import Evaluator, MethodResult, RunRecord

R = 400
LM_AUC = MetricId("lm_auc", target="boxes")


def _fig(value: float, ci: tuple[float, float]) -> dict:
    return {"value": value, "ci": list(ci), "n": 30, "direction": "higher", "group": "localization"}


def _run(name: str, stats: list[np.ndarray], reference: bool = False) -> MethodRun:
    evals = [MethodEval(resamples={LM_AUC: s}) for s in stats]
    return MethodRun(name, evals=evals, reference=reference)


def _record(entries: dict[str, dict], preset: str = "quick") -> RunRecord:
    untranslated = {MetricId("accuracy", group="p2h"): Figure.from_dict(_fig(0.10, (0.05, 0.15)))}
    return RunRecord(
        run_id="0001_test",
        created="2024-01-01T00:00:00+00:00",
        commit=None,
        dirty=False,
        config={"preset": preset},
        config_hash="abc",
        seeds=[0],
        versions={},
        device="cpu",
        data={"synthetic": True, "manifest_hash": "m"},
        times={},
        evaluator=Evaluator({"test_auc": 0.9}, untranslated),
        methods={name: MethodResult.from_json(entry) for name, entry in entries.items()},
    )


def _entry(stats: np.ndarray, p2h: tuple[float, float, float] | None = None, **flags: bool) -> dict:
    lo, hi = np.percentile(stats, [2.5, 97.5])
    metrics = {"lm_auc": _fig(float(stats.mean()), (float(lo), float(hi)))}
    if p2h is not None:
        metrics["accuracy_p2h"] = _fig(p2h[0], (p2h[1], p2h[2]))
    return {"status": "ok", "metrics": metrics, **flags}


def test_paired_difference_sees_what_overlapping_cis_hide() -> None:
    rng = np.random.default_rng(0)
    shared = 0.6 + 0.05 * rng.standard_normal(R)  # wide CIs that overlap
    a, b = shared + 0.01, shared
    d = paired_difference(a[None], b[None], "b", 0.01)
    assert d.ci == pytest.approx((0.01, 0.01)) and not d.tied
    tied = paired_difference(a[None], (shared + 0.01 * rng.standard_normal(R))[None], "c", 0.0)
    assert tied.tied


def test_leaderboard_orders_ties_and_sets_apart() -> None:
    rng = np.random.default_rng(1)
    base = 0.05 * rng.standard_normal(R)
    stats = {
        "good": 0.70 + base,
        "close": 0.69 + base + 0.02 * rng.standard_normal(R),  # tied with good
        "fair": 0.60 + base,
        "blind": 0.50 + 0.001 * rng.standard_normal(R),  # CI holds 0.5
        "untrained": 0.65 + base,  # localizes, but its translation is not judged Healthy
        "ref_image": 0.55 + base,
    }
    entries = {
        "good": _entry(stats["good"], (0.8, 0.7, 0.9)),
        "close": _entry(stats["close"], (0.8, 0.7, 0.9)),
        "fair": _entry(stats["fair"]),
        "blind": _entry(stats["blind"]),
        "untrained": _entry(stats["untrained"], (0.12, 0.06, 0.18)),
        "ref_image": _entry(stats["ref_image"], reference=True),
    }
    runs = [_run(n, [s], reference=n.startswith("ref_")) for n, s in stats.items()]
    board = leaderboard(runs, _record(entries))
    assert [s.method for s in board.ranked] == ["good", "close", "fair"]
    assert [s.rank for s in board.ranked] == [1, 2, 3]
    assert board.ranked[0].to_next.tied and not board.ranked[1].to_next.tied
    assert board.ranked[-1].to_next is None
    assert board.best_reference == "ref_image"
    assert board.ranked[0].to_reference.value == pytest.approx(0.15) and not board.ranked[0].to_reference.tied
    apart = {s.method: s for s in board.set_apart}
    assert set(apart) == {"blind", "untrained"}
    assert apart["untrained"].learned is False and apart["untrained"].beyond_prior
    assert not apart["blind"].beyond_prior and apart["blind"].learned is None
    assert all(s.next_preset == "standard" for s in board.set_apart)


def test_ceilings_are_not_the_reference_to_beat() -> None:
    stats = {"m": np.full(R, 0.7), "ref_oracle": np.full(R, 0.95), "ref_prior": np.full(R, 0.5)}
    entries = {
        "m": _entry(stats["m"]),
        "ref_oracle": _entry(stats["ref_oracle"], reference=True, ceiling=True),
        "ref_prior": _entry(stats["ref_prior"], reference=True),
    }
    runs = [_run(n, [s], reference=n.startswith("ref_")) for n, s in stats.items()]
    assert leaderboard(runs, _record(entries)).best_reference == "ref_prior"


def test_order_share_over_seeds() -> None:
    a = np.stack([np.full(R, 0.7), np.full(R, 0.6)])
    b = np.stack([np.full(R, 0.65), np.full(R, 0.65)])  # a wins with seed 0, loses with seed 1
    d = paired_difference(a, b, "b", 0.0 + 1e-9)
    assert d.order_share == pytest.approx(0.5)


def test_next_preset() -> None:
    assert [next_preset(p) for p in ("smoke", "quick", "standard", "paper")] == ["quick", "standard", "paper", None]


def test_rank_agreement() -> None:
    def rec(values: dict[str, float]) -> RunRecord:
        return _record({n: {"status": "ok", "metrics": {"lm_auc": _fig(v, (v, v))}} for n, v in values.items()})

    a = rec({"x": 0.7, "y": 0.6, "z": 0.5, "w": 0.4}).methods
    assert rank_agreement(a, rec({"x": 0.9, "y": 0.8, "z": 0.7, "w": 0.1}))["kendall_tau"] == pytest.approx(1.0)
    assert rank_agreement(a, rec({"x": 0.1, "y": 0.2, "z": 0.3, "w": 0.4}))["kendall_tau"] == pytest.approx(-1.0)
    assert rank_agreement(a, rec({"x": 0.1, "y": 0.2})) is None


def test_agreement_over_the_ranked_methods(tmp_path) -> None:
    """Over every method the untrained ones' places count; over the ranked ones they do not."""
    from bench.evaluate.standing import Leaderboard, Standing
    from bench.records.build import agreement
    from bench.report.verdict import agreement_line

    def rec(values: dict[str, float], preset: str) -> RunRecord:
        return _record({n: {"status": "ok", "metrics": {"lm_auc": _fig(v, (v, v))}} for n, v in values.items()}, preset)

    standard = rec({"a": 0.8, "b": 0.7, "c": 0.6, "d": 0.55, "e": 0.52}, "standard")
    quick = rec({"a": 0.7, "b": 0.65, "c": 0.6, "d": 0.3, "e": 0.4}, "quick")  # d and e untrained, e above d
    ranked = [Standing(n, quick.methods[n].metrics[LM_AUC].value, None, True, "", True) for n in "abc"]
    quick.verdict = {"boxes": Leaderboard("boxes", LM_AUC, None, ranked=ranked)}
    found = agreement(quick, standard, "results/standard/record.json")
    assert found.kendall_tau == pytest.approx(0.8)  # one discordant pair of ten
    assert found.ranked_methods == ["a", "b", "c"] and found.ranked_tau == pytest.approx(1.0)
    quick.agreement = found
    assert "tau 0.80 between the two orders of the 5 methods" in agreement_line(quick)
    assert agreement_line(quick).endswith("over the 3 methods this run ranks, 1.00.")
    assert RunRecord.from_json(quick.to_json()).agreement == found
    assert agreement(standard, standard, None) is None  # standard is not compared with itself


def test_report_renders_the_verdict(tmp_path) -> None:
    from bench.report.verdict import verdict_section

    rng = np.random.default_rng(2)
    stats = {"good": 0.7 + 0.02 * rng.standard_normal(R), "blind": 0.5 + 0.001 * rng.standard_normal(R)}
    entries = {"good": _entry(stats["good"], (0.8, 0.7, 0.9)), "blind": _entry(stats["blind"], (0.8, 0.7, 0.9))}
    record = _record(entries)
    record.verdict = {"boxes": leaderboard([_run(n, [s]) for n, s in stats.items()], record)}
    stored = record.to_json()
    record = RunRecord.from_json(stored)  # the verdict as the report reads it back from record.json
    assert record.to_json() == stored and stored["verdict"]["boxes"]["metric"] == "lm_auc"

    text = "\n\n".join(verdict_section(record))
    assert "| 1 | good |" in text
    assert "**not trained far enough** at preset `quick`; try `--preset standard`" in text
    assert "Not trained far enough, left out of the ranking: blind." in text
