"""Tests of bench.records.provenance: git state, package versions, device description."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import records as R


def test_git_state_outside_and_inside_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert R.git_state(tmp_path) == (None, False)
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    commit, dirty = R.git_state(tmp_path)
    assert commit is not None and len(commit) == 40 and not dirty
    (tmp_path / "f.txt").write_text("2")
    assert R.git_state(tmp_path) == (commit, True)


def test_versions_and_device() -> None:
    v = R.versions()
    assert set(v) == {"python", *R.VERSION_PACKAGES}
    assert v["numpy"] == np.__version__
    assert R.device_description("cpu").startswith("cpu (")


def test_short_commit() -> None:
    assert R.short_commit("0123456789abcdef") == "0123456"
    assert R.short_commit("0123456789abcdef", dirty=True) == "0123456-dirty"
    assert R.short_commit(None) == "nogit"
