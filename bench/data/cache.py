"""Decode-once cache: every selected DICOM as a memory-mapped uint8 array at the working size.

Decoding a JPEG DICOM costs far more than a training step on small images (SPEC 1), so images
are decoded once into ``<cache root>/<key>/images.u8``. The key hashes the label files' bytes,
each image file's name, size and modification time, and the preprocessing settings; the next
run with the same key reuses the cache, any change builds a new one. A cache is written into
a hidden build folder and renamed into place, so an interrupted build is never mistaken for one;
the next build with the same key resumes it (:mod:`bench.data.build`: chunks decoded on all
cores, the same bytes whatever their number).
On synthetic data the cache also holds ``masks.npy`` (lesion masks) and ``twins.npy`` (each image
without its lesions, see :func:`bench.data.contents.twin_and_mask`) at the working size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.contents import CACHE_VERSION, selected
from bench.data.rsna import MAX_BOXES, Labels, Problem
from bench.errors import BenchError, DataError
from bench.preflight import cache_bytes, check_disk_space, check_writable_dir


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
