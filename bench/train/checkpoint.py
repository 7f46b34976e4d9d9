"""Atomic checkpoint saving; checkpoints load with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from bench.atomic import temp_beside
from bench.errors import BenchError, first_line


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict (tensors, numbers, strings, containers) atomically."""
    fd, tmp = temp_beside(Path(path))
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file gives one clear error."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise BenchError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
        raise BenchError(
            f"{path}: holds pickled Python objects that are not plain tensors; refused for safety "
            "(loaded with weights_only=True)"
        ) from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise BenchError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
