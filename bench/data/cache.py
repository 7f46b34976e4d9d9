"""Decode-once cache: every selected DICOM as a memory-mapped uint8 array at the working size.

Decoding a JPEG DICOM costs far more than a training step on small images (SPEC 1), so images
are decoded once into ``<cache root>/<key>/images.u8``. The key hashes the label files' bytes,
each image file's name, size and modification time, and the preprocessing settings; the next
run with the same key reuses the cache, any change builds a new one. A cache is written into
a hidden build folder and renamed into place, so an interrupted build is never mistaken for one;
the next build with the same key resumes it (:mod:`bench.data.build`: chunks decoded on all
cores, the same bytes whatever their number).
On synthetic data the cache also holds ``masks.npy`` (lesion masks) and ``twins.npy`` (each image
without its lesions, see :func:`twin_and_mask`) at the working size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.dicom import read_dicom, resize_area, resize_area_float
from bench.data.rsna import LIFT_SCALE, MAX_BOXES, Labels, Layout, Patient, Problem, boxes_xyxy
from bench.domains import EXCLUDED
from bench.errors import BenchError, DataError
from bench.preflight import cache_bytes, check_disk_space, check_writable_dir

CACHE_VERSION = 3  # 3: lesion-free twins (twins.npy) and masks from the lesion lift


def lesionbench_home() -> Path:
    """Root folder for generated data and caches (``$LESIONBENCH_HOME`` or ~/.cache/lesionbench)."""
    return Path(os.environ.get("LESIONBENCH_HOME", Path.home() / ".cache" / "lesionbench"))


def cache_root() -> Path:
    """Where decoded caches live (``$LESIONBENCH_CACHE`` or <home>/cache)."""
    return Path(os.environ.get("LESIONBENCH_CACHE", lesionbench_home() / "cache"))


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def selected(labels: Labels) -> list[Patient]:
    """Patients of the benchmark's domains (excluded classes dropped), in patientId order."""
    return sorted((p for p in labels.patients if p.domain != EXCLUDED), key=lambda p: p.patient_id)


def cache_key(labels: Labels, size: int) -> str:
    """Hash of sources and settings that determines the cache contents."""
    lay = labels.layout
    files = {p.patient_id: _stat(lay.images / f"{p.patient_id}.dcm") for p in selected(labels)}
    masks = None
    if lay.masks is not None:
        masks = {pid: _stat(lay.masks / f"{pid}.png") for pid in files}
    lifts = None
    if lay.lifts is not None:
        lifts = {pid: _stat(lay.lifts / f"{pid}.png") for pid in files}
    material = {
        "version": CACHE_VERSION,
        "size": size,
        "labels": _file_sha(lay.labels),
        "classes": _file_sha(lay.classes),
        "domains": {p.patient_id: p.domain for p in selected(labels)},
        "images": files,
        "masks": masks,
        "lifts": lifts,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Cache:
    """A built cache: arrays (memory-mapped) and per-image metadata."""

    path: Path
    key: str
    size: int
    patient_ids: list[str]
    classes: list[str]
    domains: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, MAX_BOXES, 4) float32, x0 y0 x1 y1 at working size
    n_boxes: np.ndarray  # (N,) int64
    images: np.ndarray  # (N, S, S) uint8 memmap
    masks: np.ndarray | None  # (N, S, S) uint8 {0, 1} memmap, synthetic data only
    missing: list[str]
    problems: list[Problem]
    content_hash: str = ""  # hash of what the cache holds: ids, domains, boxes, pixels, masks, twins
    reused: bool = False
    resumed: int = 0  # images an interrupted build had decoded, taken over by this one
    twins: np.ndarray | None = None  # (N, S, S) uint8 lesion-free twins of images, synthetic data only


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


def _open(dest: Path, reused: bool) -> Cache:
    index = json.loads((dest / "index.json").read_text())
    n = index["n"]
    images = np.load(dest / "images.npy", mmap_mode="r")[:n]
    masks = np.load(dest / "masks.npy", mmap_mode="r")[:n] if index["has_masks"] else None
    twins = np.load(dest / "twins.npy", mmap_mode="r")[:n] if index.get("has_twins") else None
    boxes = np.asarray(index["boxes"], dtype=np.float32).reshape(n, MAX_BOXES, 4)
    return Cache(
        path=dest,
        key=index["key"],
        size=index["size"],
        patient_ids=index["patient_ids"],
        classes=index["classes"],
        domains=np.asarray(index["domains"], dtype=np.int64),
        boxes=boxes,
        n_boxes=np.asarray(index["n_boxes"], dtype=np.int64),
        images=images,
        masks=masks,
        missing=index["missing"],
        problems=[Problem(p, w, r) for p, w, r in index["problems"]],
        content_hash=index["content_hash"],
        reused=reused,
        twins=twins,
    )


def prepare_cache(
    labels: Labels,
    size: int,
    strict: bool = False,
    progress: bool = True,
    root: Path | None = None,
    workers: int | None = None,
    chunk: int | None = None,
) -> Cache:
    """Open the cache for these labels and size, building it first if it does not exist (with
    ``workers`` decoding processes, default one per core; ``chunk`` images per unit of work)."""
    from bench.data import build

    if workers is not None and workers < 1:
        raise BenchError(f"--workers {workers}: the number of decoding processes must be at least 1")
    key = cache_key(labels, size)
    dest = (root or cache_root()) / f"{key}-{size}px"
    if (dest / "index.json").is_file():
        cache = _open(dest, reused=True)
        if strict and (cache.problems or cache.missing):
            first = (
                cache.problems[0]
                if cache.problems
                else Problem(str(labels.layout.images), f"{len(cache.missing)} image files are missing")
            )
            raise DataError(first.path, first.what, first.row)
        return cache
    check_writable_dir(dest.parent, "cache folder")
    check_disk_space(dest.parent, cache_bytes(len(selected(labels)), size, labels.layout.masks is not None), "cache")
    resumed = build.build(
        labels, size, key, dest, strict, progress, workers or build.default_workers(), chunk or build.CHUNK
    )
    cache = _open(dest, reused=resumed < 0)
    cache.resumed = max(resumed, 0)
    return cache
