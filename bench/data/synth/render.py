"""One synthetic radiograph from its own random stream: image, lesion mask, boxes and lesion lift.

Every image is drawn from its own random stream (:func:`case_rng`), so an image depends on the
seed, its class and its index within the class, never on the order of generation or on the other
counts. Anatomy is rendered at 1/``RENDER_FACTOR`` of the image size and upsampled (lesions, lung
mask, blur and noise at full size). The density is mapped to 8 bits through an exposure curve with
a per-image gain, offset and gamma, then blurred mildly and given noise; the same draws without
the lesions give the lesion-free twin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from bench.data.domains import LUNG_OPACITY, NORMAL, NOT_NORMAL
from bench.data.synth.anatomy import add_findings, render_anatomy
from bench.data.synth.boxes import Box, place_boxes
from bench.data.synth.draws import Exposure, Pose, not_normal_anatomy, sample_anatomy, sample_exposure, sample_pose
from bench.data.synth.fields import upsample
from bench.data.synth.lesions import lesion_density, reader_box

# The random stream of each class (part of every image's seed). Not a domain code (those are
# bench.data.domains.HEALTHY and PNEUMONIA): only a fixed number per class, kept so that the data stay the same.
CLASS_STREAMS = {LUNG_OPACITY: 0, NORMAL: 1, NOT_NORMAL: 2}

RENDER_FACTOR = 2
"""Anatomy is rendered at 1/RENDER_FACTOR of the image size (from 128 px on) and upsampled;
lesions, lung mask, blur and noise are made at full size."""


@dataclass
class Case:
    """One rendered radiograph: 8-bit image, pixel-exact lesion mask and boxes (x, y, w, h)."""

    patient_id: str
    label: str
    image: np.ndarray
    mask: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    lift: np.ndarray | None = None  # float32 grey levels the lesions add (see render_case_and_lift)


def _grid(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Canonical coordinates (u, v) of every pixel centre of a size x size image."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(t, t)
    u, v = pose.to_canonical(x, y)
    return u.astype(np.float32), v.astype(np.float32)


def _exposed(density: np.ndarray, ex: Exposure) -> np.ndarray:
    """Exposure curve, heel effect and blur: density -> noise-free signal (1 = white)."""
    size = density.shape[0]
    y = ((np.arange(size, dtype=np.float32) + 0.5) / size)[:, None]
    signal = 1.0 - np.exp(-ex.attenuation * np.clip(density, 0.0, None))
    signal = signal / (1.0 - np.exp(-ex.attenuation * 1.35))
    signal = np.clip((signal - ex.low) / (ex.high - ex.low), 0.0, 1.0) ** ex.gamma
    signal *= 1.0 + ex.heel * (y - 0.5)
    return ndimage.gaussian_filter(signal, ex.blur, mode="nearest")


def _grey(signal: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Signal plus noise as unrounded grey levels in [0, 255]."""
    return np.clip((signal + noise) * 255.0, 0.0, 255.0)


def render_case_and_lift(
    rng: np.random.Generator, size: int, label: str = LUNG_OPACITY
) -> tuple[np.ndarray, np.ndarray, list[Box], np.ndarray]:
    """Render one radiograph of class ``label``: uint8 image, bool lesion mask, boxes (x, y, w, h), and
    the lesions' *lift*, the float32 grey levels they add to each pixel.

    The lift is the exact difference between the unrounded grey levels of the image and of its
    lesion-free twin (same anatomy, pose, exposure and noise draw; only the opacity density
    differs): what exposure, blur and clipping make of the lesions, zero where they change
    nothing and on images without lesions.
    """
    grey, twin, mask, boxes = render_pair(rng, size, label)
    # exposure, blur and clipping are monotone: the lift is >= 0 up to float rounding
    lift = np.clip(grey - twin, 0.0, None).astype(np.float32)
    return np.round(grey).astype(np.uint8), mask, boxes, lift


def render_pair(
    rng: np.random.Generator, size: int, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Box]]:
    """Unrounded grey levels of the image and of its lesion-free twin (same random draws, opacities
    left out), lesion mask and boxes."""
    if label not in CLASS_STREAMS:
        raise ValueError(f"unknown class {label!r}; expected one of {sorted(CLASS_STREAMS)}")
    pose = sample_pose(rng)
    anatomy = sample_anatomy(rng)
    exposure = sample_exposure(rng, size)
    if label == NOT_NORMAL:
        anatomy = not_normal_anatomy(rng, anatomy)
    work = size // RENDER_FACTOR if size >= 128 else size
    u, v = _grid(work, pose)
    px = 1.0 / (work * 0.5 * (pose.scale_x + pose.scale_y))
    density, margin = render_anatomy(rng, u, v, anatomy, px)
    if label == NOT_NORMAL:
        density += add_findings(rng, u, v, anatomy, margin > 0, px)
    density, margin = upsample(density, size), upsample(margin, size)
    healthy = density.copy()
    lung_mask = margin > 0
    mask = np.zeros((size, size), dtype=bool)
    boxes: list[Box] = []
    if label == LUNG_OPACITY:
        for limit in place_boxes(rng, pose, lung_mask):
            sl, lesion = lesion_density(rng, limit, lung_mask, size)
            density[sl] += lesion
            mask[sl] |= lesion > 0
            boxes.append(reader_box(lesion > 0, sl, limit, rng))
    signal = _exposed(density, exposure)
    noise = exposure.noise * rng.standard_normal(signal.shape, dtype=np.float32)
    grey = _grey(signal, noise)
    twin = _grey(_exposed(healthy, exposure), noise) if boxes else grey
    return grey, twin, mask, boxes


def case_rng(seed: int, label: str, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of class ``label`` (independent of all others)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(CLASS_STREAMS[label], index)))


def make_case(seed: int, label: str, index: int, size: int) -> Case:
    """Render image ``index`` of class ``label`` with its patientId (a version-4 UUID string)."""
    rng = case_rng(seed, label, index)
    patient_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    image, mask, boxes, lift = render_case_and_lift(rng, size, label)
    return Case(patient_id, label, image, mask, boxes, lift)
