"""The typed results that travel from evaluation to the run record and the report.

A metric's identity is data: :class:`MetricId` (metric, ground-truth target, domain group,
change tolerance). Its better direction and report group come from its metric's
:class:`MetricKind` in :data:`KINDS`, never from the code that computed it. The flat names of
``record.json`` (``mask_pooled_auc``, ``change_rate_tol8_p2h``) are the JSON spelling of a
MetricId: :attr:`MetricId.key` writes it and :meth:`MetricId.from_key` reads it, here and nowhere
else. :class:`Figure` is the one form of a reported number; :class:`RocCurve` and
:class:`Example` are what the report draws, built once from the evaluations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIRECTIONS = ("higher", "lower", "none")
GROUPS = {"p2h": "P→H", "h2h": "H→H", "all2h": "P+H→H"}
"""Domain groups of the translation metrics (source domains translated to Healthy) and their labels."""
TARGETS = {"boxes": "", "masks": "mask_"}
"""Ground truths of the localization metrics and the prefix that spells each in a metric key."""


@dataclass(frozen=True)
class MetricKind:
    """What a metric is: its better direction, its report group, and what else identifies a figure
    of it (``axis``: "target" for localization, "group" per domain group, "tolerance" per group and
    change tolerance, "" nothing)."""

    direction: str
    group: str
    axis: str


_LOCALIZATION = ("lm_auc", "lm_auc_all", "pooled_auc", "pixel_auc", "pooled_ap", "ap", "hit_rate", "miou", "dice")
KINDS: dict[str, MetricKind] = {
    **{m: MetricKind("higher", "localization", "target") for m in (*_LOCALIZATION, "energy")},
    "detection_auc": MetricKind("higher", "detection", "target"),
    "randomization_rho": MetricKind("lower", "sanity", ""),
    "accuracy": MetricKind("higher", "accuracy", "group"),
    "accuracy05": MetricKind("higher", "accuracy", "group"),
    "change_rate": MetricKind("lower", "change_rate", "tolerance"),
}
"""Every metric the suite measures: accuracy after translation at the evaluator's threshold and at
0.5, pixel change rate (tolerance 0: any change), the localization figures and the randomization check."""


@dataclass(frozen=True)
class MetricId:
    """Which figure: ``metric`` (a key of :data:`KINDS`), ``target`` ("boxes"/"masks") for localization,
    ``group`` (p2h/h2h/all2h) and ``tolerance`` (grey levels, 0 for any change) for translation metrics.

    A record may hold a metric this version does not know (an older or hand-made record), or a
    per-group metric under its bare name (``change_rate``): its MetricId is that name alone, and its
    stored direction stands."""

    metric: str
    target: str | None = None
    group: str | None = None
    tolerance: int | None = None

    def __post_init__(self) -> None:
        kind = KINDS.get(self.metric)
        axis = kind.axis if kind else ""
        bare = self.group is None and self.tolerance is None and axis in ("group", "tolerance")
        ok = (self.target in TARGETS) == (axis == "target") and (
            bare
            or (
                (self.group in GROUPS) == (axis in ("group", "tolerance"))
                and (self.tolerance is not None) == (axis == "tolerance")
                and (self.tolerance is None or self.tolerance >= 0)
            )
        )
        if kind is None and _parse(self.metric) is not None:
            ok = False  # an unknown name that spells a known figure would have two MetricIds
        if not ok:
            raise ValueError(f"not a metric identity: {self!r}")

    @property
    def kind(self) -> MetricKind | None:
        """The metric's kind; None for a metric this version does not know."""
        return KINDS.get(self.metric)

    @property
    def direction(self) -> str:
        """Better direction of the metric ("none" for an unknown one)."""
        return self.kind.direction if self.kind else "none"

    @property
    def report_group(self) -> str:
        """The report group of the metric ("" for an unknown one)."""
        return self.kind.group if self.kind else ""

    @property
    def key(self) -> str:
        """The JSON spelling: ``[mask_]metric``, ``metric_group`` or ``change_rate[_tolT]_group``."""
        if self.target is not None:
            return TARGETS[self.target] + self.metric
        if self.tolerance:
            return f"{self.metric}_tol{self.tolerance}_{self.group}"
        return f"{self.metric}_{self.group}" if self.group else self.metric

    @classmethod
    def from_key(cls, key: str, strict: bool = True) -> MetricId:
        """The MetricId spelled ``key`` (the inverse of :attr:`key`). An unknown name is a ValueError,
        or with ``strict`` false the MetricId of a metric this version does not know."""
        found = _parse(key)
        if found is not None:
            return found
        if strict:
            raise ValueError(f"no direction known for metric {key!r}; add it to bench.evaluate.figure.KINDS")
        return cls(key)

    def __str__(self) -> str:
        return self.key


def _parse(key: str) -> MetricId | None:
    """The known MetricId spelled ``key``, or None."""
    mask = TARGETS["masks"]
    name = key.removeprefix(mask)
    kind = KINDS.get(name)
    if kind is not None and kind.axis == "target":
        return MetricId(name, target="masks" if name != key else "boxes")
    if name != key:
        return None
    if kind is not None:
        return MetricId(key) if kind.axis == "" else None
    metric, _, group = key.rpartition("_")
    if group not in GROUPS:
        return None
    head, _, tol = metric.rpartition("_tol")
    if head in KINDS and KINDS[head].axis == "tolerance" and tol.isdigit() and tol == str(int(tol)) and int(tol) > 0:
        return MetricId(head, group=group, tolerance=int(tol))
    kind = KINDS.get(metric)
    if kind is not None and kind.axis in ("group", "tolerance"):
        return MetricId(metric, group=group, tolerance=0 if kind.axis == "tolerance" else None)
    return None


def localization_id(name: str, target: str) -> MetricId:
    """The MetricId of localization figure ``name`` against ``target`` (target-free ones, such as the
    randomization check, have none)."""
    return MetricId(name, target=target) if KINDS[name].axis == "target" else MetricId(name)


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True)
class SeedSpread:
    """A figure's spread over seeds: the seed mean and the seeds' standard deviation (None for one seed)."""

    mean: float | None
    std: float | None


@dataclass(frozen=True)
class Figure:
    """One reported figure: value, 95% bootstrap CI, images counted, better direction, table group,
    and in a run record its spread over seeds."""

    value: float | None
    ci: tuple[float | None, float | None] | None
    n: int
    direction: str  # "higher" | "lower" | "none"
    group: str
    seeds: SeedSpread | None = None

    @classmethod
    def of(cls, metric: MetricId, value: float | None, ci: tuple[float, float] | None, n: int) -> Figure:
        """The figure of ``metric``: direction and group from its metric kind."""
        if metric.kind is None:
            raise ValueError(f"no direction known for metric {metric.key!r}; add it to bench.evaluate.figure.KINDS")
        clean_ci = None if ci is None else (float(ci[0]), float(ci[1]))
        return cls(_finite(value), clean_ci, int(n), metric.direction, metric.report_group)

    @classmethod
    def from_summary(cls, metric: MetricId, summary: Mapping[str, Any]) -> Figure:
        """Convert one entry of ``metrics.localization_metrics(...)["summary"]`` (value, ci, n)."""
        ci = summary.get("ci")
        return cls.of(metric, summary.get("value"), None if ci is None else (ci[0], ci[1]), summary.get("n", 0))

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The CI as two finite floats, or None when absent or undefined."""
        if self.ci is None or any(v is None or not np.isfinite(v) for v in self.ci):
            return None
        return float(self.ci[0]), float(self.ci[1])

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in run records (NaN becomes None; the seed spread when there is one)."""
        ci = None if self.ci is None else [_finite(self.ci[0]), _finite(self.ci[1])]
        out = {"value": _finite(self.value), "ci": ci, "n": self.n, "direction": self.direction, "group": self.group}
        if self.seeds is not None:
            out.update(seed_mean=_finite(self.seeds.mean), seed_std=_finite(self.seeds.std))
        return out

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> Figure:
        """Read the JSON form of :meth:`as_dict` (a checked record entry)."""
        ci = entry.get("ci")
        has_seeds = "seed_mean" in entry or "seed_std" in entry
        seeds = SeedSpread(entry.get("seed_mean"), entry.get("seed_std")) if has_seeds else None
        value = entry.get("value")
        return cls(
            None if value is None else float(value),
            None if ci is None else (ci[0], ci[1]),
            int(entry.get("n", 0)),
            str(entry.get("direction", "none")),
            str(entry.get("group", "")),
            seeds,
        )


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
