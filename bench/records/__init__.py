"""Run records, named baselines, run-vs-baseline comparison and history (SPEC section 4).

One module per job: :mod:`~bench.records.record` (the typed run record, :class:`RunRecord`, and
its JSON form), :mod:`~bench.records.schema` (the record format, its checks, reading and
writing), :mod:`~bench.records.store` (run folders and baselines), :mod:`~bench.records.provenance`
(git state, versions, device), :mod:`~bench.records.likeness` (whether a run is like its baseline),
:mod:`~bench.records.compare` (the regression gate) and
:mod:`~bench.records.history` (a metric across runs). The command-line side lives in :mod:`bench.cli.main`.
"""

from __future__ import annotations

from bench.records.compare import (
    MIN_PAIRS,
    CompareResult,
    CompareRow,
    compare,
    format_compare,
)
from bench.records.gate import (
    DEFAULT_TOLERANCE,
    HEADLINE_METRICS,
    Gate,
    Rule,
    default_gate,
    gate_in_force,
    parse_rule,
    parse_rules,
)
from bench.records.history import ALL_PRESETS, HISTORY_COLUMNS, format_history, history, plot_history
from bench.records.likeness import check_like, config_differences
from bench.records.provenance import (
    VERSION_PACKAGES,
    device_description,
    git_state,
    short_commit,
    versions,
)
from bench.records.record import Agreement, Evaluator, MethodResult, RunRecord, load_run_record, migrate
from bench.records.schema import (
    DIRECTIONS,
    LEGACY_PER_IMAGE_NAMES,
    METRIC_KEYS,
    PER_IMAGE_COLUMNS,
    PER_IMAGE_FILE,
    READABLE_SCHEMAS,
    RECORD_FILE,
    REQUIRED_KEYS,
    SCHEMA,
    check_record,
    metric_entry,
    per_image_path,
    read_per_image,
    read_record,
    write_per_image,
    write_record,
)
from bench.records.store import (
    DEFAULT_BASELINES,
    DEFAULT_RUNS,
    load_per_image,
    load_record,
    next_run_dir,
    resolve_baseline,
    resolve_run,
    rules_path,
    set_baseline,
    stored_rules,
)

__all__ = [
    "ALL_PRESETS",
    "DEFAULT_BASELINES",
    "DEFAULT_TOLERANCE",
    "HEADLINE_METRICS",
    "DEFAULT_RUNS",
    "DIRECTIONS",
    "HISTORY_COLUMNS",
    "LEGACY_PER_IMAGE_NAMES",
    "METRIC_KEYS",
    "MIN_PAIRS",
    "PER_IMAGE_COLUMNS",
    "PER_IMAGE_FILE",
    "READABLE_SCHEMAS",
    "RECORD_FILE",
    "REQUIRED_KEYS",
    "SCHEMA",
    "VERSION_PACKAGES",
    "CompareResult",
    "Agreement",
    "CompareRow",
    "Evaluator",
    "MethodResult",
    "RunRecord",
    "Gate",
    "Rule",
    "check_like",
    "check_record",
    "compare",
    "config_differences",
    "default_gate",
    "device_description",
    "format_compare",
    "format_history",
    "gate_in_force",
    "git_state",
    "history",
    "load_per_image",
    "load_record",
    "load_run_record",
    "metric_entry",
    "migrate",
    "next_run_dir",
    "parse_rule",
    "parse_rules",
    "per_image_path",
    "plot_history",
    "read_per_image",
    "read_record",
    "resolve_baseline",
    "resolve_run",
    "rules_path",
    "set_baseline",
    "short_commit",
    "stored_rules",
    "versions",
    "write_per_image",
    "write_record",
]
