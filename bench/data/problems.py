"""The data problems of a run: kept in its record and listed in its report, never hidden.

A run on data with skipped rows or missing images still reports its figures; the report says how
many images were left out and names the first of them with the reason.
"""

from __future__ import annotations

from typing import Any

LISTED = 20  # problems and missing images kept in the record
SHOWN = 10  # of those, listed in the report


def data_problems(data: Any) -> dict[str, Any]:
    """Record entries for ``data`` (PreparedData): the first skipped items with the reason, the first
    missing images by name."""
    problems = [{"file": p.path, "row": p.row, "reason": p.what} for p in data.problems[:LISTED]]
    missing = [f"{pid}.dcm" for pid in data.cache.missing[:LISTED]]
    return {"problems": problems, "missing_images": missing}


def _problem_line(p: dict[str, Any]) -> str:
    where = f"`{p['file']}`" + (f", row {p['row']}" if p.get("row") is not None else "")
    return f"- {where}: {p['reason']}"


def data_problems_section(record: dict[str, Any]) -> str:
    """The report's "Data problems" section ("" when every image was used)."""
    data = record.get("data", {})
    skipped, missing = int(data.get("skipped", 0) or 0), int(data.get("missing", 0) or 0)
    if not skipped and not missing:
        return ""
    summary = (
        f"{skipped} item(s) skipped and {missing} image(s) missing; they are left out of every split and every figure."
    )
    parts = ["## Data problems", summary]
    listed = data.get("problems", [])[:SHOWN]
    if listed:
        more = f" (first {len(listed)})" if skipped > len(listed) else ""
        parts.append(f"Skipped{more}:\n" + "\n".join(_problem_line(p) for p in listed))
    names = data.get("missing_images", [])[:SHOWN]
    if names:
        more = f" (first {len(names)})" if missing > len(names) else ""
        parts.append(f"Missing{more}: " + ", ".join(f"`{n}`" for n in names))
    return "\n\n".join(parts)
