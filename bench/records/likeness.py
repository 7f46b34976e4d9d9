"""Like with like: whether a run may be compared with a baseline at all, and which settings differ.

A run is comparable with its baseline when both used the same preset and the same data (manifest
hash). Within that, the resolved configs may still differ; :func:`config_differences` names the
settings that do, leaving out what may differ between like runs: which methods ran (a record's
config holds no method list; the hyper-parameters of a method that only one record ran do not
touch the figures compared) and the data folder when the data manifests are equal.
"""

from __future__ import annotations

import json
from typing import Any

from bench.errors import BenchError
from bench.records.record import RunRecord

MAX_LISTED = 5
"""Differing settings named in a warning before 'and N more'."""

_ABSENT = object()


def _config(rec: RunRecord) -> dict[str, Any]:
    """A record's resolved config, or an empty dict when it holds none."""
    return rec.config if isinstance(rec.config, dict) else {}


def preset_of(rec: RunRecord) -> str | None:
    """The preset a record's run used, or None when its config does not say."""
    return rec.preset


def manifest_of(rec: RunRecord) -> str | None:
    """The data manifest hash of a record."""
    return rec.data.get("manifest_hash")


def unlike(run: RunRecord, base: RunRecord) -> list[str]:
    """What makes ``run`` not like ``base``: 'preset' and/or 'data manifest'; empty when alike."""
    out = []
    if preset_of(run) != preset_of(base):
        out.append("preset")
    if manifest_of(run) != manifest_of(base):
        out.append("data manifest")
    return out


def _identity(rec: RunRecord) -> str:
    """``ID (preset P, data manifest M)`` of a record."""
    return f"{rec.run_id} (preset {preset_of(rec)!r}, data manifest {manifest_of(rec)})"


def check_like(run: RunRecord, base: RunRecord, allow_different: bool) -> list[str]:
    """Refuse (BenchError, one line) a run of another preset or data than its baseline unless
    ``allow_different``, which turns the refusal into a warning; returns the warning lines."""
    diffs = unlike(run, base)
    if not diffs:
        return []
    what = f"run {_identity(run)} vs baseline {_identity(base)}: {' and '.join(diffs)} differ"
    if not allow_different:
        raise BenchError(
            f"{what}, not like with like; compare against a baseline of the same preset and data, "
            "or pass --allow-different"
        )
    return [f"warning: {what}; compared anyway (--allow-different)"]


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of a nested dict (a non-empty dict is a branch, anything else a leaf)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.removesuffix("."): obj}


def comparable_config(rec: RunRecord, shared_methods: set[str], same_data: bool) -> dict[str, Any]:
    """The flattened settings of a record that like runs must share: the config without its preset
    (checked on its own), without the hyper-parameters of methods outside ``shared_methods``, and
    without ``data.root`` when ``same_data``."""
    cfg = dict(_config(rec))
    cfg.pop("preset", None)
    params = cfg.pop("method", None)
    flat = _flat(cfg) if cfg else {}
    if isinstance(params, dict):
        for name in sorted(shared_methods & set(params)):
            flat.update(_flat(params[name], f"method.{name}."))
    if same_data:
        flat.pop("data.root", None)
    return flat


def _show(value: Any) -> str:
    """A setting's value as short text ('absent' when the record lacks it)."""
    return "absent" if value is _ABSENT else json.dumps(value)


def config_differences(run: RunRecord, base: RunRecord) -> list[str]:
    """``key (run value vs baseline value)`` for every setting of :func:`comparable_config` that differs."""
    shared = set(run.methods) & set(base.methods)
    same_data = manifest_of(run) == manifest_of(base)
    a, b = comparable_config(run, shared, same_data), comparable_config(base, shared, same_data)
    keys = sorted(a.keys() | b.keys())
    return [
        f"{k} ({_show(a.get(k, _ABSENT))} vs {_show(b.get(k, _ABSENT))})"
        for k in keys
        if a.get(k, _ABSENT) != b.get(k, _ABSENT)
    ]


def config_warnings(run: RunRecord, base: RunRecord) -> list[str]:
    """One warning line naming the settings that differ (beyond the methods run), or none."""
    diffs = config_differences(run, base)
    if not diffs:
        return []
    listed = ", ".join(diffs[:MAX_LISTED]) + (f" and {len(diffs) - MAX_LISTED} more" if len(diffs) > MAX_LISTED else "")
    return [
        f"warning: config differs from the baseline's in {listed} (run vs baseline; config hash "
        f"{run.config_hash} vs {base.config_hash}); figures may not be comparable"
    ]
