"""The gate of ``compare``: ``--fail-on`` rules, the rules stored with a baseline, and the default gate
of headline metrics; which rule judges which method's metric."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.errors import BenchError
from bench.evaluate.figure import MetricId
from bench.records.record import RunRecord

HEADLINE_METRICS = (
    MetricId("lm_auc", target="boxes"),
    MetricId("pooled_auc", target="boxes"),
    MetricId("lm_auc", target="masks"),
    MetricId("pooled_auc", target="masks"),
    MetricId("accuracy", group="p2h"),
    MetricId("change_rate", group="p2h", tolerance=8),
)
"""The default gate's metrics: location-matched and pooled AUC against the boxes (and the exact masks
on synthetic data), P→H accuracy and the tolerance-8 change rate of translating methods."""
DEFAULT_TOLERANCE = "abs=0.01"
"""Tolerance of every default-gate rule (a fraction: 0.01 AUC, one point of accuracy or change rate)."""

_RULE_RE = re.compile(r"^(?P<target>[^:\s]+):(?P<kind>abs|rel)=(?P<num>[0-9.eE+-]+)(?P<pct>%?)$")


@dataclass(frozen=True)
class Rule:
    """One ``--fail-on`` tolerance: ``[method/]metric:abs=X`` or ``[method/]metric:rel=Y%``."""

    text: str
    method: str | None  # None: every method
    metric: str  # "*": every metric
    kind: str  # "abs" | "rel"
    amount: float  # absolute units, or a fraction of the baseline value for "rel"

    def covers(self, method: str, metric: str) -> bool:
        """Whether this rule applies to ``method``'s ``metric``."""
        return self.method in (None, method) and self.metric in ("*", metric)

    @property
    def specificity(self) -> int:
        """Rank among rules covering the same metric: method/metric > metric > method/* > *."""
        return 2 * (self.metric != "*") + (self.method is not None)

    def tolerance(self, base: float) -> float:
        """Largest allowed move in the bad direction from the baseline value ``base``."""
        return self.amount if self.kind == "abs" else self.amount * abs(base)

    def describe(self) -> str:
        """Short form for tables, e.g. ``abs 0.02`` or ``rel 5%``."""
        return f"abs {self.amount:g}" if self.kind == "abs" else f"rel {100 * self.amount:g}%"


def parse_rule(text: str) -> Rule:
    """Parse ``METRIC:abs=X`` / ``METRIC:rel=Y%`` (METRIC: ``*``, ``name`` or ``method/name``)."""
    bad = (
        f"--fail-on {text!r}: expected METRIC:abs=X or METRIC:rel=Y% (METRIC is a metric name, '*', or 'method/metric')"
    )
    m = _RULE_RE.match(text.replace(" ", ""))
    if not m or (m["kind"] == "rel") != (m["pct"] == "%"):
        raise BenchError(bad)
    try:
        amount = float(m["num"])
    except ValueError:
        raise BenchError(bad) from None
    if not math.isfinite(amount) or amount < 0:
        raise BenchError(f"--fail-on {text!r}: the tolerance must be a non-negative number")
    method, _, metric = m["target"].rpartition("/")
    if not metric or (m["target"].count("/") and not method) or m["target"].count("/") > 1:
        raise BenchError(bad)
    return Rule(
        text, None if method in ("", "*") else method, metric, m["kind"], amount / 100 if m["kind"] == "rel" else amount
    )


def parse_rules(texts: Sequence[str | Rule] | None) -> list[Rule]:
    """Parse several rules; each text may hold several comma-separated rules."""
    rules: list[Rule] = []
    for item in texts or []:
        if isinstance(item, Rule):
            rules.append(item)
            continue
        rules.extend(parse_rule(part.strip()) for part in item.split(",") if part.strip())
    return rules


def _rule_for(rules: Sequence[Rule], method: str, metric: str) -> Rule | None:
    """The most specific rule covering ``method``'s ``metric`` (the later one on ties)."""
    covering = [r for r in rules if r.covers(method, metric)]
    return max(reversed(covering), key=lambda r: r.specificity) if covering else None


# The gate in force
# --------------------------------------------------------------------------------------------

GIVEN, STORED, DEFAULT = "given", "stored", "default"
"""Where a gate's rules come from: ``--fail-on``, the baseline's stored rules, the default gate."""


@dataclass(frozen=True)
class Gate:
    """The rules in force, where they come from, and the methods they may cover (None: every method)."""

    rules: tuple[Rule, ...]
    source: str = GIVEN
    methods: frozenset[str] | None = None
    left_out: tuple[str, ...] = ()  # default gate: headline metrics not in both records

    def rule_for(self, method: str, metric: str) -> Rule | None:
        """The rule that gates ``method``'s ``metric``, or None."""
        if self.methods is not None and method not in self.methods:
            return None
        return _rule_for(self.rules, method, metric)

    @property
    def texts(self) -> str:
        """The rules as given, comma-separated."""
        return ", ".join(r.text for r in self.rules)

    def describe(self) -> str:
        """One line naming the rules in force and where they come from."""
        if self.source == DEFAULT:
            n = len(self.methods or ())
            line = (
                f"default gate, the headline metrics of the {n} method(s) in both records with tolerance "
                f"{DEFAULT_TOLERANCE} beyond noise: {self.texts}"
            )
            return line + (f" (not in both records, not gated: {', '.join(self.left_out)})" if self.left_out else "")
        where = "stored with the baseline" if self.source == STORED else "given (--fail-on)"
        return f"rules {where}: {self.texts}"


def default_gate(run: RunRecord, base: RunRecord) -> Gate:
    """The gate used when no rules are given or stored: every headline metric both records hold,
    with :data:`DEFAULT_TOLERANCE`, for the methods present in both records.

    A metric counts as held by the run when one of those methods has it, or when none of them
    succeeded (a failed method holds no metrics and must still fail the gate). BenchError when no
    headline metric is in both records.
    """
    both = [m for m in base.methods if m in run.methods]

    def holds(rec: RunRecord, metric: MetricId) -> bool:
        return any(metric in rec.methods[m].metrics for m in both)

    run_ok = any(run.methods[m].ok for m in both)
    gated = [m for m in HEADLINE_METRICS if holds(base, m) and (holds(run, m) or not run_ok)]
    if not gated:
        names = ", ".join(m.key for m in HEADLINE_METRICS)
        raise BenchError(
            f"run {run.run_id} vs baseline {base.run_id}: the default gate covers no metric (no headline "
            f"metric of {names} is in both records for a method in both); give --fail-on rules"
        )
    rules = tuple(parse_rule(f"{metric.key}:{DEFAULT_TOLERANCE}") for metric in gated)
    left_out = tuple(m.key for m in HEADLINE_METRICS if m not in gated)
    return Gate(rules, DEFAULT, frozenset(both), left_out)


def gate_in_force(
    run: RunRecord,
    base: RunRecord,
    fail_on: Sequence[str | Rule] | None,
    baseline_rules: Sequence[str | Rule] | None = None,
) -> Gate:
    """The rules given, else the rules stored with the baseline, else :func:`default_gate`."""
    if fail_on:
        return Gate(tuple(parse_rules(fail_on)), GIVEN)
    if baseline_rules:
        return Gate(tuple(parse_rules(baseline_rules)), STORED)
    return default_gate(run, base)
