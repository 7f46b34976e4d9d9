"""Run-vs-baseline comparison: ``--fail-on`` tolerance rules, the regression gate, the diff table.

The gate in force is, in this order: the rules given (``--fail-on``), the rules stored with the
baseline (``baseline set --fail-on``), or the default gate: every headline metric
(:data:`HEADLINE_METRICS`) that both records hold, with tolerance :data:`DEFAULT_TOLERANCE`, for the
methods present in both records. A gate that covers no metric is an error, never a pass.

Like with like: a run of another preset or data manifest than its baseline is refused unless
``allow_different``; a resolved config that differs in anything but the methods run is a warning
naming the differing settings.

Regression rule: a metric covered by a rule regresses when it moved in its bad
direction by more than the rule's tolerance AND the move is beyond noise:

* with per-image values on both sides (paired by method, metric, domain, patientId and seed,
  patients present in both; values averaged over seeds per image), the 95% paired bootstrap CI of
  the mean per-image difference (run - baseline) lies entirely on the bad side of 0;
* for figures without per-image values (pooled AUC, detection AUC) or with fewer than
  ``MIN_PAIRS`` pairs, the run's value lies outside the baseline's CI on the bad side;
* when neither is available (no per-image values and no baseline CI), the tolerance alone decides.

Per-image rows are found under the metric's own name (the record schema guarantees per-image
names equal record names). Metrics with direction ``"none"`` and metrics no rule covers are shown
but never fail. A method present in the baseline but missing or failed in the run fails when any
rule covers one of its baseline metrics. A metric with a baseline value but no value in the run
fails when a rule covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.evaluate.figure import Figure, MetricId
from bench.records.gate import Gate, Rule, gate_in_force
from bench.records.likeness import check_like, config_warnings
from bench.records.provenance import short_commit
from bench.records.record import MethodResult, RunRecord
from bench.report.markdown import MISSING, interval, markdown_table, number, signed

MIN_PAIRS = 5
"""Fewest paired images for the paired bootstrap; below it the baseline-CI test is used."""

_PAIR_KEY = ["domain", "patientId", "seed"]
_EPS = 1e-9


# Comparison
# --------------------------------------------------------------------------------------------


@dataclass
class CompareRow:
    """One line of the comparison table; ``gated``: a rule judged it (it could have failed)."""

    method: str
    metric: str  # the metric's key ("*": the whole method)
    baseline: Figure | None
    run: Figure | None
    delta: float | None
    change: str
    status: str
    regressed: bool = False
    rule: Rule | None = None
    gated: bool = False


@dataclass
class CompareResult:
    """Outcome of :func:`compare`: table rows, warnings, the gate in force, and whether anything regressed."""

    run_id: str
    baseline_id: str
    rows: list[CompareRow]
    warnings: list[str] = field(default_factory=list)
    gate: Gate = field(default_factory=lambda: Gate(()))

    @property
    def rules(self) -> list[Rule]:
        """The rules in force."""
        return list(self.gate.rules)

    @property
    def regressions(self) -> list[CompareRow]:
        """Rows that regressed beyond tolerance and noise."""
        return [r for r in self.rows if r.regressed]

    @property
    def failed(self) -> bool:
        """True when at least one metric regressed (the CLI then exits 1)."""
        return bool(self.regressions)


class _PerImage:
    """Per-image values of one side, grouped by (method, per-image metric) for quick lookup."""

    def __init__(self, frame: pd.DataFrame | None) -> None:
        self.groups: dict[tuple[str, str], pd.DataFrame] = {}
        if frame is not None and len(frame):
            clean = frame.dropna(subset=["value"])
            self.groups = {key: g for key, g in clean.groupby(["method", "metric"], sort=False)}

    def get(self, method: str, metric: str) -> pd.DataFrame | None:
        """Rows of ``method``'s per-image ``metric``, or None."""
        return self.groups.get((method, metric))


def _paired(base: _PerImage, run: _PerImage, method: str, metric: str) -> pd.DataFrame | None:
    """Per-image (baseline, run) values paired by domain+patientId+seed, averaged over seeds."""
    b, r = base.get(method, metric), run.get(method, metric)
    if b is None or r is None:
        return None
    b = b.drop_duplicates(_PAIR_KEY, keep="last")
    r = r.drop_duplicates(_PAIR_KEY, keep="last")
    both = b.merge(r, on=_PAIR_KEY, suffixes=("_base", "_run"))
    return both.groupby(["domain", "patientId"])[["value_base", "value_run"]].mean()


def _noise_test(
    direction: str,
    run_value: float,
    base_entry: Figure,
    pairs: pd.DataFrame | None,
    n_resamples: int,
    seed: int,
) -> tuple[bool | None, str]:
    """Whether a bad move is beyond noise (None: no test possible) and a short explanation."""
    if pairs is not None and len(pairs) >= MIN_PAIRS:
        from bench.evaluate.metrics import paired_bootstrap_diff_ci

        lo, hi = paired_bootstrap_diff_ci(
            pairs["value_base"].to_numpy(), pairs["value_run"].to_numpy(), n_resamples=n_resamples, seed=seed
        )
        significant = hi < 0 if direction == "higher" else lo > 0
        return significant, f"paired Δ CI {interval(lo, hi)}, n={len(pairs)}"
    ci = base_entry.bounds
    if ci is not None:
        outside = run_value < ci[0] if direction == "higher" else run_value > ci[1]
        return outside, ("outside" if outside else "inside") + " baseline CI"
    return None, "no per-image values or baseline CI"


def _change(direction: str, delta: float | None, base: float) -> str:
    """Arrow of the table: judged by direction, plain up/down for direction 'none'."""
    if delta is None:
        return ""
    if abs(delta) <= _EPS * max(1.0, abs(base)):
        return "= same"
    if direction == "none":
        return "↑" if delta > 0 else "↓"
    better = delta > 0 if direction == "higher" else delta < 0
    return "▲ better" if better else "▼ worse"


def _compare_metric(
    method: str,
    metric: str,
    base: Figure | None,
    run: Figure | None,
    rule: Rule | None,
    pairs_of: Any,
    n_resamples: int,
    seed: int,
) -> CompareRow:
    """Compare one metric of one method; ``pairs_of()`` gives its paired per-image values."""
    row = CompareRow(method, metric, base, run, None, "", "", rule=rule)
    gate = f" ({rule.describe()})" if rule else ""
    if base is None:
        row.status = "new"
        return row
    if run is None or (run.value is None and base.value is not None):
        row.gated = row.regressed = rule is not None and base.direction != "none"
        row.status = "**REGRESSION**: no value in run" if row.regressed else "no value in run"
        return row
    if base.value is None:
        row.status = "new value" if run.value is not None else "no value"
        return row
    direction = base.direction
    row.delta = run.value - base.value
    row.change = _change(direction, row.delta, base.value)
    if direction == "none":
        row.status = "not judged"
        return row
    bad_move = -row.delta if direction == "higher" else row.delta
    row.gated = rule is not None
    if rule is None:
        row.status = "not gated"
    elif bad_move <= rule.tolerance(base.value) + _EPS * max(1.0, abs(base.value)):
        row.status = "ok" if bad_move <= 0 else f"ok: within tolerance{gate}"
    else:
        significant, why = _noise_test(direction, run.value, base, pairs_of(), n_resamples, seed)
        row.regressed = significant is not False
        row.status = f"**REGRESSION**{gate}; {why}" if row.regressed else f"ok: within noise{gate}; {why}"
    return row


def _method_rows(
    method: str,
    base_m: MethodResult | None,
    run_m: MethodResult | None,
    gate: Gate,
    base_pi: _PerImage,
    run_pi: _PerImage,
    n_resamples: int,
    seed: int,
) -> list[CompareRow]:
    """Comparison rows of one method (one summary row when it is missing or failed in the run)."""
    base_ok = base_m is not None and base_m.ok
    run_ok = run_m is not None and run_m.ok
    if not run_ok:
        what = "missing in run" if run_m is None else f"failed in run: {run_m.error or 'no error text'}"
        if not base_ok:
            was = "new method" if base_m is None else "failed in baseline"
            return [CompareRow(method, "*", None, None, None, "", f"{was}, {what}")]
        rule = next((r for r in (gate.rule_for(method, m.key) for m in base_m.metrics) if r is not None), None)
        covered = rule is not None
        status = f"**REGRESSION**: {what}" if covered else f"{what} (not gated)"
        return [CompareRow(method, "*", None, None, None, "", status, covered, rule, covered)]
    base_metrics: dict[MetricId, Figure] = base_m.metrics if base_m is not None and base_ok else {}
    run_metrics = run_m.metrics
    rows = []
    for metric in list(base_metrics) + [m for m in run_metrics if m not in base_metrics]:
        base, run = base_metrics.get(metric), run_metrics.get(metric)
        key = metric.key

        def pairs_of(key: str = key) -> pd.DataFrame | None:
            return _paired(base_pi, run_pi, method, key)

        rows.append(_compare_metric(method, key, base, run, gate.rule_for(method, key), pairs_of, n_resamples, seed))
    return rows


def _record_warnings(run: RunRecord, base: RunRecord) -> list[str]:
    """Warnings about run and baseline that may make figures differ beyond the code: settings, commit, seeds."""
    out = config_warnings(run, base)
    if run.commit and run.commit == base.commit:
        out.append(
            f"warning: run and baseline come from the same commit {short_commit(run.commit)} "
            f"(run dirty: {run.dirty}, baseline dirty: {base.dirty})"
        )
    if list(run.seeds) != list(base.seeds):
        out.append(f"warning: seeds differ (run {run.seeds}, baseline {base.seeds})")
    return out


def _rule_warnings(rules: Sequence[Rule], run: RunRecord, base: RunRecord) -> list[str]:
    """Warnings for rules that match no metric of either record (typos)."""
    pairs = {(name, metric.key) for rec in (run, base) for name, m in rec.methods.items() for metric in m.metrics}
    return [
        f"warning: --fail-on rule {r.text!r} matches no metric"
        for r in rules
        if not any(r.covers(method, metric) for method, metric in pairs)
    ]


def _run_id(record: Any) -> str:
    """The run id of a record for error messages, '?' when it has none."""
    return str(record.get("run_id", "?")) if isinstance(record, dict) else "?"


def as_run_record(record: RunRecord | dict[str, Any], what: str) -> RunRecord:
    """``record`` as a RunRecord: itself, or read from its JSON form (BenchError naming ``what`` and
    the run when invalid)."""
    if isinstance(record, RunRecord):
        return record
    return RunRecord.from_json(record, f"{what} {_run_id(record)}")


def compare(
    run_record: RunRecord | dict[str, Any],
    baseline_record: RunRecord | dict[str, Any],
    run_per_image: pd.DataFrame | None = None,
    base_per_image: pd.DataFrame | None = None,
    fail_on: Sequence[str | Rule] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    baseline_rules: Sequence[str | Rule] | None = None,
    allow_different: bool = False,
) -> CompareResult:
    """Compare a run record against a baseline record under the gate of :func:`gate_in_force`.

    See the module docstring for the gate, like with like, and the regression rule with its noise
    tests. Rule texts that do not parse, a run of another preset or data than the baseline (unless
    ``allow_different``) and a gate that covers no metric raise BenchError.
    """
    run_record = as_run_record(run_record, "run")
    baseline_record = as_run_record(baseline_record, "baseline")
    warnings = check_like(run_record, baseline_record, allow_different)
    gate = gate_in_force(run_record, baseline_record, fail_on, baseline_rules)
    base_pi, run_pi = _PerImage(base_per_image), _PerImage(run_per_image)
    warnings += _record_warnings(run_record, baseline_record) + _rule_warnings(gate.rules, run_record, baseline_record)
    if run_per_image is None or base_per_image is None:
        side = "run" if run_per_image is None else "baseline"
        warnings.append(f"warning: no per-image values for the {side}; noise tests use the baseline's CI")
    base_methods, run_methods = baseline_record.methods, run_record.methods
    rows: list[CompareRow] = []
    for method in list(base_methods) + [m for m in run_methods if m not in base_methods]:
        rows.extend(
            _method_rows(
                method, base_methods.get(method), run_methods.get(method), gate, base_pi, run_pi, n_resamples, seed
            )
        )
    if not any(r.gated for r in rows):
        raise BenchError(
            f"run {run_record.run_id} vs baseline {baseline_record.run_id}: the gate covers no metric "
            f"({gate.describe()}); name metrics with a direction that both records hold"
        )
    return CompareResult(run_record.run_id, baseline_record.run_id, rows, warnings, gate)


def _value_ci(entry: Figure | None) -> str:
    """``value [lo, hi]`` of a metric entry."""
    if entry is None:
        return MISSING
    ci = entry.bounds
    return number(entry.value) + (" " + interval(*ci) if ci else "")


def _delta(row: CompareRow) -> str:
    """Signed difference, with the relative change when the baseline is non-zero."""
    if row.delta is None:
        return MISSING
    text = signed(row.delta)
    base = row.baseline.value if row.baseline else None
    return text + (f" ({100 * row.delta / abs(base):+.1f}%)" if base else "")


def format_compare(result: CompareResult) -> str:
    """Markdown report: title, warning lines, the diff table, and a PASSED/FAILED verdict."""
    parts = [f"### Run `{result.run_id}` vs baseline `{result.baseline_id}`", "", f"Gate: {result.gate.describe()}", ""]
    if result.warnings:
        parts += result.warnings + [""]
    header = ["method", "metric", "baseline", "run", "delta", "change", "status"]
    parts.append(
        markdown_table(
            header,
            [
                [r.method, r.metric, _value_ci(r.baseline), _value_ci(r.run), _delta(r), r.change, r.status]
                for r in result.rows
            ],
        )
    )
    parts.append("")
    rules = result.gate.texts
    if result.failed:
        names = ", ".join(f"{r.method}/{r.metric}" for r in result.regressions)
        parts.append(f"**FAILED**: {len(result.regressions)} regression(s): {names} (rules: {rules})")
    else:
        parts.append(f"**PASSED**: no regression beyond tolerance and noise (rules: {rules})")
    return "\n".join(parts)
