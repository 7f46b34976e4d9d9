"""Markdown tables and the number formats of every table the suite prints (reports, compare, history)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.evaluate.figure import Figure

MISSING = "—"
"""What a table shows for a missing or undefined number."""


def cell(text: Any) -> str:
    """Escape a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def number(v: float | None) -> str:
    """A figure for compare and history tables: 4 decimals (1 for large values), '—' when missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.4f}"


def signed(v: float) -> str:
    """A difference with its sign, in the precision of :func:`number`."""
    return f"{v:+.1f}" if abs(v) >= 100 else f"{v:+.4f}"


def interval(lo: float | None, hi: float | None) -> str:
    """``[lo, hi]`` in the precision of :func:`number`."""
    return f"[{number(lo)}, {number(hi)}]"


def fmt(fig: Figure | None, scale: float = 1.0, digits: int = 3) -> str:
    """'value [lo, hi]' (± seed spread when several seeds) of a report figure, or '—' when absent."""
    if fig is None or fig.value is None:
        return MISSING
    text = f"{fig.value * scale:.{digits}f}"
    if fig.seeds is not None and fig.seeds.std is not None:
        text += f" ± {fig.seeds.std * scale:.{digits}f}"
    ci = fig.ci
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"
    return text
