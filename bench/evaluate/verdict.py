"""The verdict of a run: which methods learned, which localize beyond the prior, and in what order.

The leaderboard ranks methods by the location-matched AUC (``lm_auc``, SPEC 3.3), which any map
that ignores the image scores at exactly 0.5. Every difference is a paired bootstrap: the same
resamples of test images for every method (and, with several seeds, the seed mean of each
resample), so a CI of a difference that holds 0 means the two cannot be told apart. A method that
did not learn its task (a translation not judged Healthy more often than the untranslated images)
or does not localize beyond the prior (lm_auc CI not above 0.5) is set apart as not trained far
enough, never ranked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bench.evaluate.figure import Figure, MetricId
from bench.evaluate.standing import HEADLINE, Difference, Leaderboard, Standing

if TYPE_CHECKING:
    from bench.records.record import Evaluator, MethodResult, RunRecord

PRESET_ORDER = ("smoke", "quick", "standard", "paper")
EVALUATOR_MIN_AUC = 0.7
"""A classifier-based map counts as trained when its classifier's test AUC reaches this (the
report's threshold below which Table 1 says little)."""


def _seed_stats(run: Any, metric: MetricId) -> np.ndarray | None:
    """``(seeds, resamples)`` bootstrap statistics of a metric, None when a seed lacks them."""
    stats = [ev.resamples.get(metric) for ev in run.evals]
    if not stats or any(s is None for s in stats):
        return None
    return np.stack([np.asarray(s, dtype=np.float64) for s in stats])


def paired_difference(a: np.ndarray, b: np.ndarray, other: str, value: float) -> Difference:
    """The difference a - b of two rows from their per-seed resample statistics (same image draws)."""
    from bench.evaluate.metrics.bootstrap import _percentile_ci  # the metrics stack only where it computes

    diff = a.mean(axis=0) - b.mean(axis=0)
    lo, hi = _percentile_ci(diff, 0.05)
    share = None
    if a.shape[0] > 1:
        keep = np.sign(value) * (a - b)
        finite = np.isfinite(keep)
        share = float((keep[finite] > 0).mean()) if finite.any() else None
    return Difference(other, float(value), (lo, hi), bool(lo <= 0.0 <= hi), share)


P2H_ACCURACY = MetricId("accuracy", group="p2h")


def _learned(entry: MethodResult, evaluator: Evaluator) -> tuple[bool | None, str]:
    """Whether a method learned its task, with the evidence as a phrase."""
    acc, base = entry.metrics.get(P2H_ACCURACY), evaluator.untranslated.get(P2H_ACCURACY)
    if acc and acc.ci and base and base.ci:
        ok = acc.ci[0] > base.ci[1]
        relation = "above" if ok else "not above"
        return ok, (f"P→H judged Healthy {_pct(acc)}, CI {relation} the untranslated images' {_pct(base)}")
    if entry.uses_classifier and evaluator.test_auc is not None:
        auc = evaluator.test_auc
        ok = auc >= EVALUATOR_MIN_AUC
        return ok, f"its classifier's test AUC {auc:.3f} {'reaches' if ok else 'is below'} {EVALUATOR_MIN_AUC}"
    return None, "no task beyond the map to check"


def _pct(fig: Figure) -> str:
    """``value% [lo, hi]`` of a share."""
    return f"{100 * fig.value:.1f}% [{100 * fig.ci[0]:.1f}, {100 * fig.ci[1]:.1f}]"


def next_preset(preset: str) -> str | None:
    """The next longer preset, the one to try when a method was not trained far enough."""
    if preset in PRESET_ORDER[:-1]:
        return PRESET_ORDER[PRESET_ORDER.index(preset) + 1]
    return None


def leaderboard(runs: list[Any], record: RunRecord, target: str = "boxes") -> Leaderboard | None:
    """The leaderboard of the headline against one truth, from the runs' resamples and the record."""
    metric = MetricId(HEADLINE, target=target)
    entries = record.methods
    stats = {r.name: _seed_stats(r, metric) for r in runs if r.error is None and r.evals}
    stats = {n: s for n, s in stats.items() if s is not None and entries[n].metrics.get(metric)}
    refs = [n for n in stats if entries[n].reference and not entries[n].ceiling]
    methods = [n for n in stats if not entries[n].reference]
    if not methods:
        return None
    value = {n: entries[n].metrics[metric].value for n in stats}
    best_ref = max((n for n in refs if value[n] is not None), key=lambda n: value[n], default=None)
    board = Leaderboard(target, metric, best_ref)
    following = next_preset(record.config["preset"])
    for name in sorted(methods, key=lambda n: -(value[n] if value[n] is not None else -np.inf)):
        fig = entries[name].metrics[metric]
        ci = tuple(fig.ci) if fig.ci else None
        learned, evidence = _learned(entries[name], record.evaluator)
        beyond = ci is not None and ci[0] > 0.5
        standing = Standing(name, value[name], ci, learned, evidence, beyond)
        if best_ref is not None and value[name] is not None:
            standing.to_reference = paired_difference(
                stats[name], stats[best_ref], best_ref, value[name] - value[best_ref]
            )
        if learned is False or not beyond:
            standing.trained_far_enough, standing.next_preset = False, following
            board.set_apart.append(standing)
        else:
            board.ranked.append(standing)
    for k, standing in enumerate(board.ranked):
        standing.rank = k + 1
        if k + 1 < len(board.ranked):
            nxt = board.ranked[k + 1].method
            standing.to_next = paired_difference(
                stats[standing.method], stats[nxt], nxt, value[standing.method] - value[nxt]
            )
    return board


def rank_agreement(
    methods: dict[str, MethodResult], other: RunRecord, metric: MetricId | None = None
) -> dict[str, Any] | None:
    """Kendall's tau between the order of ``methods`` and ``other`` record's on their common methods on
    ``metric`` (the headline against the boxes by default); None under 3 common methods."""
    from scipy.stats import kendalltau

    metric = metric or MetricId(HEADLINE, target="boxes")

    def values(entries: dict[str, MethodResult]) -> dict[str, float]:
        return {
            n: fig.value
            for n, m in entries.items()
            if m.ok and not m.reference and (fig := m.metrics.get(metric)) is not None and fig.value is not None
        }

    a, b = values(methods), values(other.methods)
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    tau = kendalltau([a[n] for n in common], [b[n] for n in common]).statistic
    return {
        "metric": metric.key,
        "other_run": other.run_id,
        "other_preset": other.preset,
        "methods": common,
        "kendall_tau": None if not np.isfinite(tau) else float(tau),
    }
