"""Tests of bench.report.markdown: table layout, escaping and the number formats."""

from __future__ import annotations

import math

from bench.evaluate.figure import Figure, SeedSpread
from bench.report.markdown import fmt, interval, markdown_table, number, signed


def test_markdown_table_layout_and_escaping() -> None:
    table = markdown_table(["a", "b"], [["x|y", "line\nbreak"], [1, 2.5]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | line break |", "| 1 | 2.5 |"]


def test_number_formats() -> None:
    assert number(0.123456) == "0.1235"
    assert number(1234.56) == "1234.6"
    assert number(None) == number(math.nan) == number(math.inf) == "—"
    assert signed(-0.2) == "-0.2000" and signed(150.0) == "+150.0"
    assert interval(0.7, None) == "[0.7000, —]"


def test_fmt_of_a_report_figure() -> None:
    assert fmt(None) == fmt(Figure(None, None, 0, "higher", "")) == "—"
    assert fmt(Figure(0.5, (0.4, 0.6), 3, "higher", "")) == "0.500 [0.400, 0.600]"
    spread = Figure(0.5, (0.4, None), 3, "higher", "", SeedSpread(0.5, 0.01))
    assert fmt(spread, scale=100, digits=1) == "50.0 ± 1.0"
