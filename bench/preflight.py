"""Checks made before any training, so that a run never fails for a reason known at its start.

Output folders must be writable, the split must hold every domain the work needs, and the cache
must fit on its disk. Each failure is one :class:`BenchError` line (exit code 2 from the CLI).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError

DOMAIN_NAMES = {0: "Healthy", 1: "Pneumonia"}
# What each kind of work reads: split -> domains that must hold at least one image.
NEEDS_TRAINING = {"train": (0, 1)}
NEEDS_RUN = {"train": (0, 1), "tune": (0, 1), "test": (1,)}
SHOWN = 3  # dropped files named in a message


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there; one clear error otherwise."""
    path = Path(path)
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise BenchError(f"{path}: cannot use it as the {what}: {base} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{path}: cannot create the {what} ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check-")
    except OSError as exc:
        raise BenchError(f"{path}: the {what} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_disk_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when its disk has less free."""
    free = shutil.disk_usage(_existing_ancestor(Path(folder))).free
    if needed > free:
        raise BenchError(f"{folder}: the {what} needs about {_human(needed)}, only {_human(free)} free on that disk")


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def cache_bytes(n_images: int, size: int, masks: bool) -> int:
    """Bytes of a cache of ``n_images`` at ``size`` px: one uint8 image (and mask) each."""
    return n_images * size * size * (2 if masks else 1)


def _patient_of(problem: Any, ids_by_row: dict[int, str]) -> str | None:
    path = Path(problem.path)
    if path.suffix.lower() == ".dcm":
        return path.stem
    return ids_by_row.get(problem.row) if problem.row is not None else None


def dropped_in(data: Any, cfg: Any, split: str, domain: int) -> list[str]:
    """Why images of ``split``/``domain`` (``cfg``: the DataConfig) are absent: skipped files (with
    the reason) and missing files."""
    from bench.data.rsna import splits_for

    members = {p.patient_id for p in splits_for(data.labels, cfg)[split] if p.domain == domain}
    ids_by_row = {row: p.patient_id for p in data.labels.patients for row in p.rows}
    skipped = [str(p) for p in data.cache.problems if _patient_of(p, ids_by_row) in members]
    missing = [
        f"{data.labels.layout.images / pid}.dcm: image file is missing" for pid in data.cache.missing if pid in members
    ]
    return skipped + missing


def check_splits(data: Any, cfg: Any, needs: dict[str, tuple[int, ...]]) -> None:
    """Every split in ``needs`` must hold at least one image of each listed domain (``data``: PreparedData,
    ``cfg``: its DataConfig); the error names the files dropped from the empty part."""
    for split, domains in needs.items():
        ds = getattr(data, split)
        for domain in domains:
            if (ds.domains == domain).any():
                continue
            why = dropped_in(data, cfg, split, domain)
            text = f"{data.root}: the {split} split has no {DOMAIN_NAMES[domain]} images"
            if why:
                more = f" (and {len(why) - SHOWN} more)" if len(why) > SHOWN else ""
                text += f"; {len(why)} dropped: " + "; ".join(why[:SHOWN]) + more
            elif data.labels.problems:
                text += f"; {len(data.labels.problems)} CSV rows were skipped, first: {data.labels.problems[0]}"
            else:
                text += "; use more data or other data.val_fraction / data.tune_fraction"
            raise BenchError(text)
