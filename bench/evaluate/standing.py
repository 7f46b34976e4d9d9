"""What a verdict holds: the standings of methods on one ground truth and their paired differences.

Plain data, kept apart from the code that computes it (``verdict.py``) so that the run record
(``bench/records/record.py``) can hold a leaderboard without importing the computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.evaluate.figure import MetricId

HEADLINE = "lm_auc"


@dataclass
class Difference:
    """A paired bootstrap difference ``value`` [CI] of the headline against another row."""

    other: str
    value: float
    ci: tuple[float, float]
    tied: bool  # the CI holds 0
    order_share: float | None = None  # with several seeds: share of seed x resample draws keeping the order


@dataclass
class Standing:
    """One method on the leaderboard of one ground truth, or set apart with the reason."""

    method: str
    value: float | None
    ci: tuple[float, float] | None
    learned: bool | None  # None: the method has no task to check (neither translates nor classifies)
    learned_evidence: str
    beyond_prior: bool
    rank: int | None = None
    to_next: Difference | None = None
    to_reference: Difference | None = None
    trained_far_enough: bool = True
    next_preset: str | None = None


@dataclass
class Leaderboard:
    """The ranked standings against one truth (``target`` "boxes" or "masks") on ``metric``."""

    target: str
    metric: MetricId
    best_reference: str | None
    ranked: list[Standing] = field(default_factory=list)
    set_apart: list[Standing] = field(default_factory=list)
