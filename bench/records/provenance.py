"""Where a run came from: git commit and dirty flag, package versions, compute device."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

VERSION_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "captum",
    "pydicom",
    "numpy",
    "scikit-learn",
    "pandas",
    "lesionbench",
)


def _git(repo: Path, *args: str) -> str | None:
    """Stdout of ``git -C repo ARGS``, or None when git is absent or the command fails."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(repo: Path) -> tuple[str | None, bool]:
    """Full commit hash of ``repo``'s HEAD (None outside git or without git) and its dirty flag.

    Dirty means tracked files differ from HEAD (untracked files do not count, as ``git describe
    --dirty``); when ``git status`` itself fails the tree is reported dirty.
    """
    head = _git(Path(repo), "rev-parse", "--verify", "HEAD")
    if head is None or not head.strip():
        return None, False
    status = _git(Path(repo), "status", "--porcelain", "--untracked-files=no")
    return head.strip(), status is None or bool(status.strip())


def versions() -> dict[str, str]:
    """Python and package versions that matter for results; missing packages read "absent"."""
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def device_description(device: Any = None) -> str:
    """Human description of the compute device, e.g. ``cpu (2 threads)`` or ``cuda: NVIDIA H100 x 1``.

    ``device`` (a torch.device or string) names the device actually used; by default CUDA when
    available, else CPU.
    """
    try:
        import torch
    except ImportError:
        return f"cpu ({os.cpu_count()} cores, torch absent)"
    kind = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda") and torch.cuda.is_available():
        names = Counter(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return "cuda: " + ", ".join(f"{name} x {count}" for name, count in names.items())
    if kind.startswith("cpu"):
        return f"cpu ({torch.get_num_threads()} threads)"
    return kind


def short_commit(commit: str | None, dirty: bool = False) -> str:
    """Seven-character commit with a -dirty suffix, or 'nogit'."""
    return (commit[:7] if commit else "nogit") + ("-dirty" if dirty else "")
