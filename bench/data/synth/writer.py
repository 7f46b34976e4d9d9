"""``generate``: a whole synthetic data set written into a folder that appears only when complete.

Files are written into a hidden sibling directory that is renamed at the end; an interrupted run
leaves nothing behind, and a non-empty target is replaced only when asked to.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.data.domains import LUNG_OPACITY, MASK_DIR, NORMAL, NOT_NORMAL
from bench.data.rsna import LIFT_DIR
from bench.data.synth.boxes import Box
from bench.data.synth.files import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    IMAGE_DIR,
    MANIFEST,
    write_csvs,
    write_dicom,
    write_lift,
    write_mask,
)
from bench.data.synth.render import make_case
from bench.errors import BenchError
from bench.progress import bar


class OutputExistsError(BenchError, ValueError):
    """The output directory already holds files and overwriting was not asked for."""


class SynthConfigError(BenchError, ValueError):
    """A generator setting out of range."""


@dataclass
class SynthConfig:
    """How many images of each class to render, at which size, from which seed."""

    n_pneumonia: int = 600
    n_healthy: int = 900
    n_not_normal: int = 0
    size: int = 256
    seed: int = 0
    jpeg_quality: int = 90


def _check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse to write over a non-empty directory unless asked to."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: output directory is not empty (overwrite=True replaces it)")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``tmp`` directory."""
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)


def _validate(cfg: SynthConfig) -> None:
    """Reject settings the generator cannot honour, with one line naming the setting."""
    for name in ("n_pneumonia", "n_healthy", "n_not_normal", "seed"):
        if int(getattr(cfg, name)) < 0:
            raise SynthConfigError(f"synthetic data: {name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.size < 32:
        raise SynthConfigError(f"synthetic data: size must be at least 32 pixels, got {cfg.size}")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise SynthConfigError(f"synthetic data: jpeg_quality must be in 1..100, got {cfg.jpeg_quality}")


def generate(
    out_dir: str | Path, cfg: SynthConfig | None = None, progress: bool = True, overwrite: bool = False
) -> dict:
    """Render a synthetic RSNA-layout data set into ``out_dir`` and return its manifest."""
    cfg = cfg or SynthConfig()
    _validate(cfg)
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    counts = {LUNG_OPACITY: cfg.n_pneumonia, NORMAL: cfg.n_healthy, NOT_NORMAL: cfg.n_not_normal}
    jobs = [(label, i) for label, n in counts.items() for i in range(n)]
    try:
        (tmp / IMAGE_DIR).mkdir(parents=True)
        (tmp / MASK_DIR).mkdir()
        (tmp / LIFT_DIR).mkdir()
        cases: list[tuple[str, str, list[Box]]] = []
        for label, index in bar(jobs, desc="synthetic radiographs", unit="img", enabled=progress):
            case = make_case(cfg.seed, label, index, cfg.size)
            write_dicom(tmp / IMAGE_DIR / f"{case.patient_id}.dcm", case.image, case.patient_id, cfg.jpeg_quality)
            write_mask(tmp / MASK_DIR / f"{case.patient_id}.png", case.mask)
            write_lift(tmp / LIFT_DIR / f"{case.patient_id}.png", case.lift)
            cases.append((case.patient_id, case.label, case.boxes))
        if len({c[0] for c in cases}) != len(cases):
            raise RuntimeError("synthetic patientIds collided; this should not happen")
        manifest = {
            "generator": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "seed": cfg.seed,
            "size": cfg.size,
            "counts": counts,
            "n_boxes": sum(len(c[2]) for c in cases),
            "jpeg_quality": cfg.jpeg_quality,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        write_csvs(tmp, cases)
        _check_target(out_dir, overwrite)
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
