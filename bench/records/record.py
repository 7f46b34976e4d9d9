"""The run record as typed data: :class:`RunRecord` and its parts, and their JSON form (``record.json``).

Evaluation makes :class:`~bench.evaluate.figure.Figure` objects keyed by
:class:`~bench.evaluate.figure.MetricId`; :mod:`bench.records.build` assembles them, with the
verdict and the agreement, into a RunRecord; the report, ``compare`` and ``history`` read
RunRecords. JSON exists only at the file boundary: :meth:`RunRecord.to_json` writes the format of
:mod:`bench.records.schema` (flat metric keys such as ``mask_pooled_auc``, spelled by
:attr:`MetricId.key`) and :meth:`RunRecord.from_json` reads it back, unchanged by the round trip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.evaluate.figure import TARGETS, Figure, MetricId
from bench.evaluate.standing import HEADLINE, Difference, Leaderboard, Standing
from bench.records.schema import SCHEMA, _clean, read_record, record_problem

_FLAGS = ("reference", "ceiling", "uses_classifier")
_CURVE_KEYS = ("curves", "curve_eval_seconds", "curve_train_seconds", "curves_by_seed")
_TOP_KEYS = (
    "schema",
    "run_id",
    "created",
    "commit",
    "dirty",
    "config",
    "config_hash",
    "seeds",
    "versions",
    "device",
    "data",
    "times",
    "evaluator",
    "methods",
    "layout",
    "references_left_out",
    "verdict",
    "agreement",
    "launch",
)
_BOARD_KEYS = {"": "boxes", TARGETS["masks"]: TARGETS["masks"]}
"""The record's key of a leaderboard by its target's prefix (``verdict.boxes``, ``verdict.mask_``)."""


def metrics_to_json(figures: dict[MetricId, Figure]) -> dict[str, dict[str, Any]]:
    """Metric entries keyed by their JSON spelling."""
    return {metric.key: fig.as_dict() for metric, fig in figures.items()}


def metrics_from_json(entries: dict[str, Any]) -> dict[MetricId, Figure]:
    """Read metric entries; a name this version does not know keeps its stored direction."""
    return {MetricId.from_key(key, strict=False): Figure.from_dict(entry) for key, entry in entries.items()}


@dataclass
class MethodResult:
    """One method's entry: status, error, its figures (seed means with their spread), what kind of
    row it is (reference map, ceiling, classifier-based) and its learning curves (first seed's points,
    every seed's with several, and their costs)."""

    status: str
    error: str | None = None
    metrics: dict[MetricId, Figure] = field(default_factory=dict)
    reference: bool = False
    ceiling: bool = False
    uses_classifier: bool = False
    curves: list[dict[str, float]] | None = None
    curve_eval_seconds: float | None = None
    curve_train_seconds: float | None = None
    curves_by_seed: list[list[dict[str, float]]] | None = None

    @property
    def ok(self) -> bool:
        """Whether the method was evaluated."""
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The JSON entry of the method."""
        out: dict[str, Any] = {"status": self.status, "error": self.error, "metrics": metrics_to_json(self.metrics)}
        out.update({k: True for k in _FLAGS if getattr(self, k)})
        out.update({k: getattr(self, k) for k in _CURVE_KEYS if getattr(self, k) is not None})
        return out

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> MethodResult:
        """Read a checked JSON entry."""
        return cls(
            entry["status"],
            entry.get("error"),
            metrics_from_json(entry["metrics"]),
            **{k: bool(entry.get(k, False)) for k in _FLAGS},
            **{k: entry.get(k) for k in _CURVE_KEYS},
        )


@dataclass
class Evaluator:
    """The judge of Table 1 as described by it (threshold, AUCs, source, input size...) and Table 1's
    reference column: the untranslated images' accuracy figures."""

    settings: dict[str, Any] = field(default_factory=dict)
    untranslated: dict[MetricId, Figure] = field(default_factory=dict)

    @property
    def test_auc(self) -> float | None:
        """The classifier's AUC on real test images, when known."""
        auc = self.settings.get("test_auc")
        return None if auc is None else float(auc)

    def to_json(self) -> dict[str, Any]:
        """The record's ``evaluator`` object."""
        return {**self.settings, "untranslated": metrics_to_json(self.untranslated)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Evaluator:
        """Read the record's ``evaluator`` object."""
        settings = {k: v for k, v in obj.items() if k != "untranslated"}
        return cls(settings, metrics_from_json(obj.get("untranslated") or {}))


@dataclass
class Agreement:
    """Kendall's tau between this run's order of methods on ``metric`` and another record's."""

    metric: str
    other_run: str | None
    other_preset: str | None
    methods: list[str]
    kendall_tau: float | None
    other_path: str | None = None
    ranked_methods: list[str] | None = None  # the methods this run ranks (and the other holds), when 3 or more
    ranked_tau: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record's ``agreement`` object (optional fields only when set, so older records round-trip)."""
        out = asdict(self)
        for key in ("other_path", "ranked_methods", "ranked_tau"):
            if out[key] is None:
                del out[key]
        return out


def board_to_json(board: Leaderboard) -> dict[str, Any]:
    """The JSON form of a leaderboard (its target spelled as a metric-key prefix)."""
    return {
        "prefix": TARGETS[board.target],
        "metric": board.metric.key,
        "best_reference": board.best_reference,
        "ranked": [asdict(s) for s in board.ranked],
        "set_apart": [asdict(s) for s in board.set_apart],
    }


def _difference(d: dict[str, Any] | None) -> Difference | None:
    if d is None:
        return None
    return Difference(d["other"], d["value"], tuple(d["ci"]), d["tied"], d.get("order_share"))


def _standing(s: dict[str, Any]) -> Standing:
    ci = s.get("ci")
    diffs = {k: _difference(s.get(k)) for k in ("to_next", "to_reference")}
    return Standing(**{**s, "ci": None if ci is None else tuple(ci), **diffs})


def board_from_json(obj: dict[str, Any]) -> Leaderboard:
    """Read one leaderboard of the record's ``verdict``."""
    target = next(t for t, prefix in TARGETS.items() if prefix == obj["prefix"])
    board = Leaderboard(target, MetricId.from_key(obj["metric"]), obj.get("best_reference"))
    board.ranked = [_standing(s) for s in obj.get("ranked", [])]
    board.set_apart = [_standing(s) for s in obj.get("set_apart", [])]
    return board


@dataclass
class RunRecord:
    """A run's one stored result: provenance (run id, time, commit, config, seeds, versions, device,
    data, stage times, how the machine was used or the jobs launched), the evaluator, one
    :class:`MethodResult` per method (references included), and the verdict and agreement."""

    run_id: str
    created: str
    commit: str | None
    dirty: bool
    config: dict[str, Any]
    config_hash: str
    seeds: list[int]
    versions: dict[str, str]
    device: str
    data: dict[str, Any]
    times: dict[str, float]
    evaluator: Evaluator
    methods: dict[str, MethodResult]
    layout: dict[str, int] | None = None
    references_left_out: dict[str, str] | None = None
    verdict: dict[str, Leaderboard] | None = None  # by target: "boxes", "masks"
    agreement: Agreement | None = None
    launch: dict[str, Any] | None = None
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer writer, kept as they were

    @property
    def preset(self) -> str | None:
        """The preset the run used, or None when its config does not say."""
        preset = self.config.get("preset") if isinstance(self.config, dict) else None
        return None if preset is None else str(preset)

    @property
    def synthetic(self) -> bool:
        """Whether the run used the built-in synthetic data."""
        return bool(self.data.get("synthetic"))

    def ok_methods(self, references: bool = False) -> dict[str, MethodResult]:
        """The methods that succeeded: the methods, or with ``references`` the reference maps."""
        return {n: m for n, m in self.methods.items() if m.ok and m.reference == references}

    def to_json(self) -> dict[str, Any]:
        """The ``record.json`` object (plain JSON: NaN as null)."""
        out: dict[str, Any] = {
            "schema": self.schema,
            **{k: getattr(self, k) for k in _TOP_KEYS[1:12]},
            "evaluator": self.evaluator.to_json(),
            "methods": {n: m.to_json() for n, m in self.methods.items()},
        }
        optional = {
            "layout": self.layout,
            "references_left_out": self.references_left_out,
            "verdict": None if self.verdict is None else verdict_to_json(self.verdict),
            "agreement": None if self.agreement is None else self.agreement.to_json(),
            "launch": self.launch,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out.update(self.extra)
        return _clean(out)

    @classmethod
    def from_json(cls, obj: Any, where: str = "record") -> RunRecord:
        """Read a ``record.json`` object; an invalid one is a BenchError naming ``where``."""
        problem = record_problem(obj)
        if problem:
            raise BenchError(f"{where}: not a valid run record ({problem})")
        obj = migrate(obj)
        try:
            return cls._read(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"{where}: not a valid run record ({exc})") from None

    @classmethod
    def _read(cls, obj: dict[str, Any]) -> RunRecord:
        verdict = obj.get("verdict")
        return cls(
            **{k: obj[k] for k in _TOP_KEYS[1:12]},
            evaluator=Evaluator.from_json(obj["evaluator"]),
            methods={n: MethodResult.from_json(m) for n, m in obj["methods"].items()},
            layout=obj.get("layout"),
            references_left_out=obj.get("references_left_out"),
            verdict=None if verdict is None else {b.target: b for b in map(board_from_json, verdict.values())},
            agreement=None if obj.get("agreement") is None else Agreement(**obj["agreement"]),
            launch=obj.get("launch"),
            schema=obj.get("schema", SCHEMA),
            extra={k: v for k, v in obj.items() if k not in _TOP_KEYS},
        )


def verdict_to_json(boards: dict[str, Leaderboard]) -> dict[str, Any]:
    """The record's ``verdict``: each leaderboard under its key ("boxes", "mask_")."""
    return {_BOARD_KEYS[TARGETS[b.target]]: board_to_json(b) for b in boards.values()}


def migrate(obj: dict[str, Any]) -> dict[str, Any]:
    """A readable record object in the form :meth:`RunRecord.from_json` reads. Schema 1 differs from
    schema 2 only in its per-image names (renamed when the per-image file is read, see
    :func:`bench.records.schema.read_per_image`), and older records simply lack what they did not
    measure (lm_auc, verdict, layout), so no record needs rewriting yet; a later schema adds its
    conversion here."""
    return obj


def headline(target: str = "boxes") -> MetricId:
    """The headline metric against ``target``: the location-matched AUC."""
    return MetricId(HEADLINE, target=target)


def load_run_record(path: Path) -> RunRecord:
    """Read and check the record file ``path`` as a RunRecord (BenchError naming it when bad)."""
    return RunRecord.from_json(read_record(path), str(path))
