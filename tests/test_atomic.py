"""Tests of bench.atomic: files appear whole or not at all, with plain-open permissions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.atomic import (
    atomic_write_bytes,
    atomic_write_figure,
    atomic_write_json,
    atomic_write_text,
)


def test_writes_create_folders_and_leave_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"k": [1, 2]})
    assert json.loads(target.read_text()) == {"k": [1, 2]}
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["x.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.txt"
    atomic_write_bytes(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.txt"]  # temporary file removed


def test_figure_is_written_as_png(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    out = atomic_write_figure(fig, tmp_path / "f.png", dpi=20)
    assert out == tmp_path / "f.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
