"""The typed results that travel from evaluation to the run record and the report.

:class:`Figure` is the one form of a reported number (value, CI, images, better direction,
table group); its direction and group come from :func:`figure_kind`, the table of metric
directions, never from the code that computed it. :class:`RocCurve` and :class:`Example` are
what the report draws: built once from the evaluations, so the report recomputes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIRECTIONS = ("higher", "lower", "none")

_GROUPS = r"(p2h|h2h|all2h)"
_KINDS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), direction, group)
    for pattern, direction, group in (
        (
            r"(mask_)?(lm_auc|lm_auc_all|pooled_auc|pixel_auc|pooled_ap|ap|hit_rate|miou|dice|energy)",
            "higher",
            "localization",
        ),
        (r"(mask_)?detection_auc", "higher", "detection"),
        (r"randomization_rho", "lower", "sanity"),
        (rf"accuracy(05)?_{_GROUPS}", "higher", "accuracy"),
        (rf"change_rate(_tol\d+)?_{_GROUPS}", "lower", "change_rate"),
    )
)
"""Metric name pattern -> (better direction, report group)."""


def figure_kind(name: str) -> tuple[str, str]:
    """(direction, group) of a metric: higher for AUCs, AP, hit rate, IoU, Dice, energy and
    accuracy; lower for change rates and randomization_rho. Unknown names are an error, so a new
    metric cannot reach a record without a stated direction."""
    for pattern, direction, group in _KINDS:
        if pattern.fullmatch(name):
            return direction, group
    raise ValueError(f"no direction known for metric {name!r}; add it to bench.evaluate.figure._KINDS")


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True)
class Figure:
    """One reported figure: value, 95% bootstrap CI, images counted, better direction, table group."""

    value: float | None
    ci: tuple[float, float] | None
    n: int
    direction: str  # "higher" | "lower" | "none"
    group: str

    @classmethod
    def of(cls, name: str, value: float | None, ci: tuple[float, float] | None, n: int) -> Figure:
        """The figure of metric ``name``, direction and group from the table of metric kinds."""
        direction, group = figure_kind(name)
        clean_ci = None if ci is None else (float(ci[0]), float(ci[1]))
        return cls(_finite(value), clean_ci, int(n), direction, group)

    @classmethod
    def from_summary(cls, name: str, summary: Mapping[str, Any]) -> Figure:
        """Convert one entry of ``metrics.localization_metrics(...)["summary"]`` (value, ci, n)."""
        ci = summary.get("ci")
        return cls.of(name, summary.get("value"), None if ci is None else (ci[0], ci[1]), summary.get("n", 0))

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in run records (NaN becomes None)."""
        ci = None if self.ci is None else [_finite(self.ci[0]), _finite(self.ci[1])]
        return {"value": _finite(self.value), "ci": ci, "n": self.n, "direction": self.direction, "group": self.group}


@dataclass(frozen=True)
class RocCurve:
    """One method's pooled pixel ROC (first seed) for the ROC figure; ``auc`` is the record's value."""

    method: str
    title: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float | None
    reference: bool = False


@dataclass(frozen=True)
class Example:
    """One test image of the qualitative figure with its boxes and every method's lesion map."""

    patient_id: str
    pneumonia: bool
    image: np.ndarray  # (S, S) in [-1, 1]
    boxes: np.ndarray  # (K, 4) rows x0, y0, x1, y1 in pixels
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method name -> (S, S) map
