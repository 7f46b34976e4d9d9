"""What the cache holds: which patients, one image decoded to the working size (with its boxes, and on
synthetic data its lesion mask and lesion-free twin), the format version and the content hash.

Shared by :mod:`bench.data.cache` (keys, opening) and :mod:`bench.data.build` (the decoding workers,
which must not import torch).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.dicom import read_dicom, resize_area, resize_area_float
from bench.data.domains import EXCLUDED
from bench.data.rsna import LIFT_SCALE, Labels, Layout, Patient, Problem, boxes_xyxy
from bench.errors import DataError

CACHE_VERSION = 3  # 3: lesion-free twins (twins.npy) and masks from the lesion lift


def selected(labels: Labels) -> list[Patient]:
    """Patients of the benchmark's domains (excluded classes dropped), in patientId order."""
    return sorted((p for p in labels.patients if p.domain != EXCLUDED), key=lambda p: p.patient_id)


def _load_mask(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L"), dtype=np.uint8)
    except Exception as exc:
        raise DataError(path, f"lesion mask cannot be read ({exc})") from None
    return (resize_area((mask > 127).astype(np.uint8) * 255, size) >= 128).astype(np.uint8)


def _load_lift(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The grey levels the lesions add to a synthetic image (float32, at the generated size)."""
    try:
        with Image.open(path) as im:
            lift = np.asarray(im, dtype=np.float32) / LIFT_SCALE
    except Exception as exc:
        raise DataError(path, f"lesion lift cannot be read ({exc})") from None
    if lift.shape != shape:
        raise DataError(path, f"lesion lift is {lift.shape[1]}x{lift.shape[0]}, its image {shape[1]}x{shape[0]}")
    return lift


def twin_and_mask(image: np.ndarray, lift: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lesion-free twin and lesion mask at the working size, from the working-size image and the lift.

    The lift is area-resized like the image and rounded to grey levels: twin = image - lift. The
    mask is where the twin differs from the image, i.e. where the lesions change the 8-bit working
    image, so |image - twin| is positive exactly on the mask (the oracle's pixel AUC is 1).
    """
    step = np.rint(resize_area_float(lift, size))
    twin = np.clip(image.astype(np.float32) - step, 0, 255).astype(np.uint8)
    return twin, (twin != image).astype(np.uint8)


def _box_rows_problem(layout: Layout, pat: Patient, rows: int, cols: int) -> Problem | None:
    for (x, y, w, h), line in zip(pat.boxes, pat.rows):
        if x + w > cols or y + h > rows:
            return Problem(
                str(layout.labels),
                f"box ({x:g}, {y:g}, {w:g}, {h:g}) extends outside the {cols}x{rows} image of {pat.patient_id}",
                line,
            )
    return None


def decode_one(
    lay: Layout, pat: Patient, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Working-size image, boxes, lesion mask and lesion-free twin (the last two on synthetic data)."""
    dec = read_dicom(lay.images / f"{pat.patient_id}.dcm")
    bad = _box_rows_problem(lay, pat, dec.rows, dec.cols)
    if bad is not None:
        raise DataError(bad.path, bad.what, bad.row)
    image = resize_area(dec.image, size)
    boxes = boxes_xyxy(pat.boxes, dec.rows, dec.cols, size)
    if lay.lifts is not None:
        twin, mask = twin_and_mask(image, _load_lift(lay.lifts / f"{pat.patient_id}.png", dec.image.shape), size)
        return image, boxes, mask, twin
    mask = None
    if lay.masks is not None:
        mask = _load_mask(lay.masks / f"{pat.patient_id}.png", size)
    return image, boxes, mask, None


def content_hash(
    patients: list[Patient],
    boxes: np.ndarray,
    images: np.ndarray,
    masks: np.ndarray | None,
    twins: np.ndarray | None = None,
) -> str:
    """Hash of the data a run sees (decoded pixels included), independent of file times and places,
    so the same data gives the same hash on every machine."""
    h = hashlib.sha256()
    h.update(json.dumps([[p.patient_id, p.cls, p.domain] for p in patients]).encode())
    h.update(np.ascontiguousarray(boxes, dtype=np.float32).tobytes())
    for block in range(0, len(images), 256):
        h.update(np.ascontiguousarray(images[block : block + 256]).tobytes())
        if masks is not None:
            h.update(np.ascontiguousarray(masks[block : block + 256]).tobytes())
        if twins is not None:
            h.update(np.ascontiguousarray(twins[block : block + 256]).tobytes())
    return h.hexdigest()[:16]
