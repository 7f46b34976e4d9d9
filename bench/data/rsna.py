"""Reading the RSNA Pneumonia Detection Challenge label files (Kaggle layout, SPEC 1).

The two CSVs are joined per patient, validated row by row, mapped to the benchmark's two
domains (Pneumonia = 'Lung Opacity', Healthy = 'Normal'; 'No Lung Opacity / Not Normal' is
excluded unless asked for) and split 9:1 train/validation, stratified by domain, with a split
that depends only on the patientId and the seed (not on file order or on which images exist).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.data.domains import (
    CLASS_COLUMNS,
    CLASS_FILES,
    CLASSES,
    EXCLUDED,
    HEALTHY,
    IMAGE_DIRS,
    LABEL_COLUMNS,
    LABEL_FILES,
    LUNG_OPACITY,
    MASK_DIR,
    NORMAL,
    NOT_NORMAL,
    PNEUMONIA,
)
from bench.errors import DataError

if TYPE_CHECKING:
    from bench.config import DataConfig

LIFT_DIR = "synthetic_lesion_lift"  # 16-bit PNGs: grey levels each lesion adds, times LIFT_SCALE
LIFT_SCALE = 256
MAX_BOXES = 8
_PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Problem:
    """One data problem: the file, the CSV line (if any) and what is wrong."""

    path: str
    what: str
    row: int | None = None

    def __str__(self) -> str:
        return str(DataError(self.path, self.what, self.row))


@dataclass
class Patient:
    """One labelled patient: class, domain, and boxes in the original image's pixels."""

    patient_id: str
    cls: str
    domain: int  # HEALTHY, PNEUMONIA or EXCLUDED (bench.data.domains)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h
    rows: list[int] = field(default_factory=list)  # CSV line numbers of the boxes


@dataclass
class Layout:
    """Where the files of one RSNA folder are."""

    root: Path
    labels: Path
    classes: Path
    images: Path
    masks: Path | None
    lifts: Path | None = None  # synthetic data only: what the lesions add (lesion-free twins)


@dataclass
class Labels:
    """The parsed label files: patients in CSV order plus the problems met."""

    layout: Layout
    patients: list[Patient]
    problems: list[Problem]

    def by_class(self) -> dict[str, int]:
        """Patients per class name."""
        counts = {c: 0 for c in CLASSES}
        for p in self.patients:
            counts[p.cls] += 1
        return counts

    def n_boxes(self) -> int:
        """Total number of boxes over all patients."""
        return sum(len(p.boxes) for p in self.patients)


def find_layout(root: str | Path) -> Layout:
    """Locate the label CSVs and image folder of an RSNA download (stage 2 or stage 1 names)."""
    root = Path(root)
    if root.is_file():
        raise DataError(root, "is a file, not a data folder (give the folder that holds the RSNA CSVs)")
    if not root.is_dir():
        raise DataError(root, "data folder does not exist")

    def first(names: tuple[str, ...], what: str, is_dir: bool = False) -> Path:
        for name in names:
            cand = root / name
            if cand.is_dir() if is_dir else cand.is_file():
                return cand
        if is_dir:
            return root / names[0]
        raise DataError(root, f"no {what} found (expected {' or '.join(names)})")

    labels = first(LABEL_FILES, "label CSV")
    classes = first(CLASS_FILES, "class-info CSV")
    images = first(IMAGE_DIRS, "image folder", is_dir=True)
    masks, lifts = root / MASK_DIR, root / LIFT_DIR
    return Layout(
        root,
        labels,
        classes,
        images,
        masks if masks.is_dir() else None,
        lifts if masks.is_dir() and lifts.is_dir() else None,
    )


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={"patientId": str, "class": str}, keep_default_na=True)
    except Exception as exc:  # pandas raises several parser errors
        raise DataError(path, f"not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")
    if df.empty:
        raise DataError(path, "holds only its header line: no patients")
    return df


def check_patient_id(pid: object) -> str | None:
    """Why a patientId is unusable as a file name (None if it is a plain id)."""
    if not isinstance(pid, str) or not pid:
        return "empty patientId"
    if "/" in pid or "\\" in pid or ".." in pid:
        return f"patientId {pid!r} contains a path separator or '..'"
    if not _PATIENT_ID.match(pid):
        return f"patientId {pid!r} is not a plain id (letters, digits, '.', '_', '-')"
    return None


def _box_problem(x: float, y: float, w: float, h: float) -> str | None:
    if any(math.isnan(v) for v in (x, y, w, h)):
        return "Target is 1 but the box has an empty or NaN value"
    if w <= 0 or h <= 0:
        return f"box has non-positive size (width {w:g}, height {h:g})"
    if x < 0 or y < 0:
        return f"box starts outside the image (x {x:g}, y {y:g})"
    return None


def _domain(cls: str, include_not_normal: bool) -> int:
    if cls == LUNG_OPACITY:
        return PNEUMONIA
    if cls == NORMAL or (cls == NOT_NORMAL and include_not_normal):
        return HEALTHY
    return EXCLUDED


def _parse_classes(path: Path, problems: list[Problem]) -> dict[str, tuple[str, int]]:
    df = _read_csv(path, CLASS_COLUMNS)
    classes: dict[str, tuple[str, int]] = {}
    for line, (pid, cls) in enumerate(zip(df["patientId"], df["class"]), start=2):
        why = check_patient_id(pid)
        if why is None and cls not in CLASSES:
            why = f"unknown class {cls!r} (expected one of {', '.join(CLASSES)})"
        if why is None and pid in classes and classes[pid][0] != cls:
            why = f"patient {pid} has two different classes ({classes[pid][0]!r}, {cls!r})"
        if why is not None:
            problems.append(Problem(str(path), why, line))
            continue
        classes.setdefault(pid, (cls, line))
    return classes


def read_labels(root: str | Path, include_not_normal: bool = False, strict: bool = False) -> Labels:
    """Parse and validate both CSVs; bad rows raise (strict) or are counted as problems."""
    layout = find_layout(root)
    problems: list[Problem] = []
    classes = _parse_classes(layout.classes, problems)
    df = _read_csv(layout.labels, LABEL_COLUMNS)
    patients: dict[str, Patient] = {}
    bad: set[str] = set()
    seen: dict[tuple[object, ...], int] = {}
    cols = [df[c].to_numpy() for c in LABEL_COLUMNS]
    for line, (pid, x, y, w, h, target) in enumerate(zip(*cols), start=2):
        why = check_patient_id(pid)
        if why is None:
            why = _label_row_problem(pid, x, y, w, h, target, classes)
        if why is None:
            why = _duplicate_row(seen, line, pid, x, y, w, h, target)
            if why is not None:  # the first of identical rows is kept; only the copy is dropped
                problems.append(Problem(str(layout.labels), why, line))
                continue
        if why is not None:
            problems.append(Problem(str(layout.labels), why, line))
            if isinstance(pid, str):
                bad.add(pid)
            continue
        cls = classes[pid][0]
        pat = patients.setdefault(pid, Patient(pid, cls, _domain(cls, include_not_normal)))
        if int(target) == 1:
            pat.boxes.append((float(x), float(y), float(w), float(h)))
            pat.rows.append(line)
    for pid, (_, line) in classes.items():
        if pid not in patients and pid not in bad:
            problems.append(Problem(str(layout.classes), f"patient {pid} has no row in {layout.labels.name}", line))
    for pat in patients.values():
        if len(pat.boxes) > MAX_BOXES:
            problems.append(
                Problem(
                    str(layout.labels),
                    f"patient {pat.patient_id} has {len(pat.boxes)} boxes (at most {MAX_BOXES})",
                    pat.rows[-1],
                )
            )
            bad.add(pat.patient_id)
    if strict and problems:
        raise DataError(problems[0].path, problems[0].what, problems[0].row)
    kept = [p for pid, p in patients.items() if pid not in bad]
    return Labels(layout, kept, problems)


def _label_row_problem(
    pid: str, x: float, y: float, w: float, h: float, target: object, classes: dict[str, tuple[str, int]]
) -> str | None:
    try:
        t = float(target)
    except (TypeError, ValueError):
        t = float("nan")
    if t not in (0.0, 1.0):
        return f"Target must be 0 or 1, got {target!r}"
    if pid not in classes:
        return f"patient {pid} is not in the class-info CSV"
    cls = classes[pid][0]
    if (cls == LUNG_OPACITY) != (t == 1.0):
        return f"class {cls!r} contradicts Target {int(t)}"
    if t == 1.0:
        return _box_problem(float(x), float(y), float(w), float(h))
    if not all(isinstance(v, float) and math.isnan(v) for v in (x, y, w, h)):
        return "Target is 0 but the row has a box"
    return None


def _duplicate_row(seen: dict[tuple[object, ...], int], line: int, pid: str, *values: object) -> str | None:
    """Why a label row repeats an earlier one exactly (None for its first occurrence)."""
    key = (pid, *(("nan" if isinstance(v, float) and math.isnan(v) else float(v)) for v in values))
    if key in seen:
        return f"repeats row {seen[key]} exactly (patient {pid}); counted once"
    seen[key] = line
    return None


def unlabelled_images(layout: Layout) -> list[str]:
    """Names of the DICOMs in the image folder that have no row in the label CSV, sorted."""
    if not layout.images.is_dir():
        return []
    ids = set(pd.read_csv(layout.labels, usecols=["patientId"], dtype={"patientId": str})["patientId"])
    return sorted(p.name for p in layout.images.iterdir() if p.suffix == ".dcm" and p.stem not in ids)


def split_of(patient_id: str, seed: int) -> float:
    """A uniform number in [0, 1) from the patientId and seed, independent of file order."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_patients(
    patients: list[Patient], val_fraction: float = 0.1, seed: int = 0, tune_fraction: float = 0.1
) -> dict[str, list[Patient]]:
    """Deterministic stratified train/tune/test split from the patientId hashes, per domain.

    The lowest ``val_fraction`` of hashes form the test split (the paper's validation split, on which
    every figure is reported); the next ``tune_fraction`` of the remaining patients form the tune split
    (the only place a run may choose anything); the rest train. The test split does not depend on
    ``tune_fraction``.
    """
    out: dict[str, list[Patient]] = {"train": [], "tune": [], "test": []}
    for domain in sorted({p.domain for p in patients if p.domain != EXCLUDED}):
        members = sorted(
            (p for p in patients if p.domain == domain), key=lambda p: (split_of(p.patient_id, seed), p.patient_id)
        )
        n_test = int(round(len(members) * val_fraction))
        n_tune = int(round((len(members) - n_test) * tune_fraction))
        out["test"].extend(members[:n_test])
        out["tune"].extend(members[n_test : n_test + n_tune])
        out["train"].extend(members[n_test + n_tune :])
    for part in out.values():
        part.sort(key=lambda p: p.patient_id)
    return out


def splits_for(labels: Labels, cfg: DataConfig) -> dict[str, list[Patient]]:
    """The train/tune/test patients of ``labels`` under ``cfg``'s split settings: the one place every
    stage takes split membership from (:func:`split_patients` with ``val_fraction`` as the test share)."""
    return split_patients(labels.patients, cfg.val_fraction, cfg.split_seed, cfg.tune_fraction)


def boxes_xyxy(boxes: list[tuple[float, float, float, float]], rows: int, cols: int, size: int) -> np.ndarray:
    """Boxes (x, y, w, h) of a rows x cols image as (x0, y0, x1, y1) at ``size`` px, padded to MAX_BOXES."""
    out = np.zeros((MAX_BOXES, 4), dtype=np.float32)
    sx, sy = size / cols, size / rows
    for i, (x, y, w, h) in enumerate(boxes):
        out[i] = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
    return out
