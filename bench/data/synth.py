"""Synthetic chest radiographs with pneumonia opacities, written in the Kaggle RSNA layout.

The suite cannot download RSNA, so this module renders a stand-in data set (SPEC section 1,
"Embedded default data"). Every image is drawn from its own random stream, so an image depends on
the seed, its class and its index within the class, never on the order of generation or on the
other counts.

Rendering works in a *canonical* frame (``u``, ``v`` in [0, 1], the 1024-px RSNA frame divided by
1024) in which the anatomy is laid out; a per-image pose (scale, rotation, shift) maps it to the
pixels of the written image. The anatomy is a sum of X-ray densities: body soft tissue (elliptic
cross-section, neck and shoulders, optional arms), two lung fields (air, with radial vessel
markings and hila), heart and mediastinum, aortic knob, spine with vertebrae, trachea, clavicles,
posterior and anterior ribs, and the abdomen below the diaphragm domes. The density is mapped to
8 bits through an exposure curve with a per-image gain, offset and gamma, then blurred mildly and
given noise.

Pneumonia ('Lung Opacity') images get 1-4 boxes drawn from the real RSNA box statistics
(:mod:`bench.data.rsna_stats`: boxes per patient, side of each box, and a Gaussian over centre and
log size, jointly for opposite-side pairs). Boxes are sampled in the canonical frame, grown by
``BOX_GROWTH`` and mapped by the pose; the geometry is redrawn (the number of boxes and their sides
kept) until every box's inscribed ellipse lies at least ``MIN_LUNG_COVER`` in the lung fields of
that image. Inside each box a patchy opacity (thresholded smooth noise under a superellipse window
inscribed in the box, cut to the lung field) adds density. The lesion mask is exactly the set of
pixels where that density is positive, before the global blur and JPEG compression. The written
box is the bounding box of the box's opacity grown by a small random margin, never beyond the box
it was drawn in, as a reader would draw it; so the mask lies inside the union of the boxes. Scaled
to 1024 px, written boxes match the real quantiles of width, height and centre to within about
10 % (400 images, seed 0: median width 200 vs 217 real, height 288 vs 298), except that the
tallest boxes are shorter (95 % quantile of height 530 vs 623), since lesions stay in the lungs.

'No Lung Opacity / Not Normal' images (none by default) carry other findings without opacities:
an enlarged heart, monitoring leads and lines, small calcified nodules or a raised hemidiaphragm.
Global variation (pose, exposure, noise) is drawn the same way for every class, so the class can
only be told from the lesions.

Output (``generate``): ``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv``,
``stage_2_train_images/<patientId>.dcm`` (JPEG Baseline, 8-bit MONOCHROME2, modality CR, like
RSNA), ``synthetic_masks/<patientId>.png`` (uint8 0/255), ``synthetic_lesion_lift/<patientId>.png``
(16-bit: the grey levels the lesions add, times ``LIFT_SCALE``; the cache subtracts them from the
decoded image to get the lesion-free twin) and ``synthetic.json`` (manifest). Box
coordinates are in the pixels of the written images. The output directory appears only when
complete: files are written into a hidden sibling directory that is renamed at the end.

Anatomy is rendered at half the image size and upsampled (lesions, lung mask, blur and noise at
full size); 2,000 images of 256 px take about half a minute on one CPU core.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid
from scipy import ndimage

from bench.data import rsna_stats
from bench.data.domains import (
    CLASS_COLUMNS,
    CLASS_FILES,
    IMAGE_DIRS,
    LABEL_COLUMNS,
    LABEL_FILES,
    LUNG_OPACITY,
    MASK_DIR,
    NORMAL,
    NOT_NORMAL,
)
from bench.data.rsna import LIFT_DIR, LIFT_SCALE
from bench.errors import BenchError
from bench.progress import bar

GENERATOR_NAME = "lesionbench-synth"
GENERATOR_VERSION = 2  # 2: lesion lifts (lesion-free twins) in synthetic_lesion_lift/

# The random stream of each class (part of every image's seed). Not a domain code (those are
# bench.data.domains.HEALTHY and PNEUMONIA): only a fixed number per class, kept so that the data stay the same.
CLASS_STREAMS = {LUNG_OPACITY: 0, NORMAL: 1, NOT_NORMAL: 2}

LABELS_CSV = LABEL_FILES[0]
CLASS_CSV = CLASS_FILES[0]
IMAGE_DIR = IMAGE_DIRS[0]
MANIFEST = "synthetic.json"

MIN_LUNG_COVER = 0.45
"""Least share of a box's inscribed ellipse that must lie in the lung fields."""

RENDER_FACTOR = 2
"""Anatomy is rendered at 1/RENDER_FACTOR of the image size (from 128 px on) and upsampled;
lesions, lung mask, blur and noise are made at full size."""

BOX_GROWTH = 1.12
"""Sampled boxes are grown by this factor before a lesion is drawn in them: the written box is the
lesion's bounding box (plus a margin), smaller than the region it was drawn in."""

Box = tuple[int, int, int, int]


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


@dataclass
class Case:
    """One rendered radiograph: 8-bit image, pixel-exact lesion mask and boxes (x, y, w, h)."""

    patient_id: str
    label: str
    image: np.ndarray
    mask: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    lift: np.ndarray | None = None  # float32 grey levels the lesions add (see render_case_and_lift)


@dataclass(frozen=True)
class Pose:
    """Maps canonical coordinates to normalized image coordinates (both in [0, 1])."""

    scale_x: float
    scale_y: float
    angle: float
    shift_x: float
    shift_y: float

    def to_canonical(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical (u, v) of normalized image points (x, y)."""
        a = (x - 0.5 - self.shift_x) / self.scale_x
        b = (y - 0.5 - self.shift_y) / self.scale_y
        c, s = float(np.cos(self.angle)), float(np.sin(self.angle))
        return 0.5 + c * a + s * b, 0.5 - s * a + c * b

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized image (x, y) of canonical points (u, v)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        a, b = u - 0.5, v - 0.5
        return (
            0.5 + self.shift_x + self.scale_x * (c * a - s * b),
            0.5 + self.shift_y + self.scale_y * (s * a + c * b),
        )


@dataclass(frozen=True)
class Anatomy:
    """Shape parameters of one chest in the canonical frame (distances in units of the width)."""

    mid: float
    apex: tuple[float, float]
    base: tuple[float, float]
    dome: tuple[float, float]
    lateral: tuple[float, float]
    medial: float
    heart: tuple[float, float, float, float]
    body_half_width: float
    shoulder: float
    neck_half_width: float
    clavicle: float
    rib_top: float
    rib_spacing: float
    rib_density: float
    arms: bool
    breast: float
    gastric_bubble: bool


@dataclass(frozen=True)
class Exposure:
    """Display curve and image degradations of one acquisition."""

    attenuation: float
    low: float
    high: float
    gamma: float
    heel: float
    blur: float
    noise: float


def _normal(rng: np.random.Generator, mean: float, std: float) -> float:
    """One normal draw as a Python float (keeps float32 arithmetic in float32)."""
    return float(rng.normal(mean, std))


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One uniform draw as a Python float."""
    return float(rng.uniform(low, high))


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draw a patient position: size, aspect, small rotation and shift."""
    scale = _uniform(rng, 0.9, 1.08)
    return Pose(
        scale_x=scale * _uniform(rng, 0.95, 1.05),
        scale_y=scale * _uniform(rng, 0.95, 1.05),
        angle=float(np.deg2rad(np.clip(_normal(rng, 0.0, 2.0), -5.0, 5.0))),
        shift_x=float(np.clip(_normal(rng, 0.0, 0.02), -0.05, 0.05)),
        shift_y=float(np.clip(_normal(rng, 0.0, 0.025), -0.06, 0.06)),
    )


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw the shape of one chest in the canonical frame."""
    apex = _normal(rng, 0.17, 0.015)
    base = _normal(rng, 0.80, 0.03)
    lateral = _normal(rng, 0.355, 0.015)
    mid = 0.5 + _normal(rng, 0.0, 0.008)
    return Anatomy(
        mid=mid,
        apex=(apex + _normal(rng, 0.0, 0.008), apex + _normal(rng, 0.0, 0.008)),
        base=(base + _normal(rng, -0.01, 0.01), base + _normal(rng, 0.01, 0.01)),
        dome=(_uniform(rng, 0.1, 0.18), _uniform(rng, 0.08, 0.15)),
        lateral=(lateral + _normal(rng, 0.0, 0.008), lateral + _normal(rng, 0.0, 0.008)),
        medial=_normal(rng, 0.06, 0.006),
        heart=(_normal(rng, 0.4, 0.015), _normal(rng, 0.69, 0.02), _normal(rng, 0.095, 0.01), _normal(rng, 0.2, 0.015)),
        body_half_width=_uniform(rng, 0.43, 0.5),
        shoulder=_normal(rng, 0.12, 0.02),
        neck_half_width=_uniform(rng, 0.085, 0.115),
        clavicle=_normal(rng, 0.17, 0.015),
        rib_top=_normal(rng, 0.115, 0.01),
        rib_spacing=_normal(rng, 0.066, 0.004),
        rib_density=_uniform(rng, 0.09, 0.16),
        arms=bool(rng.random() < 0.4),
        breast=_uniform(rng, 0.0, 0.15) if rng.random() < 0.4 else 0.0,
        gastric_bubble=bool(rng.random() < 0.5),
    )


def sample_exposure(rng: np.random.Generator, size: int) -> Exposure:
    """Draw the exposure curve, blur (pixels at ``size``) and noise level of one image."""
    return Exposure(
        attenuation=_uniform(rng, 1.7, 2.3),
        low=_uniform(rng, 0.2, 0.36),
        high=_uniform(rng, 0.95, 1.05),
        gamma=_uniform(rng, 0.8, 1.25),
        heel=_normal(rng, 0.0, 0.04),
        blur=_uniform(rng, 0.35, 0.9) * max(1.0, size / 256) ** 0.5,
        noise=_uniform(rng, 0.008, 0.025),
    )


def _truncated_normal(
    rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """One draw of a multivariate normal, redrawn (then clipped) to lie within [low, high]."""
    for _ in range(20):
        x = rng.multivariate_normal(mean, cov, method="cholesky")
        if np.all(x >= low) and np.all(x <= high):
            return x
    return np.clip(x, low, high)


def _side_bounds(side: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of (cx, cy, log w, log h) on one side of the image."""
    clip = rsna_stats.SIDE_CLIP[side]
    low = np.array([clip["cx"][0], clip["cy"][0], np.log(clip["w"][0]), np.log(clip["h"][0])])
    high = np.array([clip["cx"][1], clip["cy"][1], np.log(clip["w"][1]), np.log(clip["h"][1])])
    return low, high


def _features_to_box(f: np.ndarray) -> np.ndarray:
    """(cx, cy, log w, log h) in 1024-px units -> (x, y, w, h)."""
    w, h = np.exp(f[2]), np.exp(f[3])
    return np.array([f[0] - w / 2, f[1] - h / 2, w, h])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def sample_box_layout(rng: np.random.Generator) -> tuple[int, int]:
    """Draw (number of boxes, number of them on the image-left side) as in real RSNA patients."""
    keys = list(rsna_stats.SIDE_SPLIT)
    counts = np.array(list(rsna_stats.SIDE_SPLIT.values()), dtype=float)
    return keys[rng.choice(len(keys), p=counts / counts.sum())]


def sample_boxes(rng: np.random.Generator, layout: tuple[int, int] | None = None) -> np.ndarray:
    """Draw the boxes of one pneumonia patient from the real RSNA statistics.

    ``layout`` is (number of boxes, number on the image-left side), drawn when not given.
    Returns an (n, 4) array of (x, y, w, h) in pixels of the 1024 x 1024 RSNA frame.
    """
    n, n_left = layout if layout is not None else sample_box_layout(rng)
    sides = ["left"] * n_left + ["right"] * (n - n_left)
    boxes: list[np.ndarray] = []
    if n == 1:
        mean, cov = rsna_stats.SINGLE_BOX_GAUSSIAN[sides[0]]
        boxes.append(_features_to_box(_truncated_normal(rng, np.array(mean), np.array(cov), *_side_bounds(sides[0]))))
        return np.array(boxes)
    if n_left >= 1 and n - n_left >= 1:
        mean, cov = rsna_stats.OPPOSITE_PAIR_GAUSSIAN
        low_l, high_l = _side_bounds("left")
        low_r, high_r = _side_bounds("right")
        pair = _truncated_normal(
            rng, np.array(mean), np.array(cov), np.concatenate([low_l, low_r]), np.concatenate([high_l, high_r])
        )
        boxes += [_features_to_box(pair[:4]), _features_to_box(pair[4:])]
        sides = sides[1:n_left] + sides[n_left + 1 :]
    for side in sides:
        mean, cov = rsna_stats.ANY_BOX_GAUSSIAN[side]
        for _ in range(30):
            box = _features_to_box(_truncated_normal(rng, np.array(mean), np.array(cov), *_side_bounds(side)))
            if all(_iou(box, b) <= 0.05 for b in boxes):
                break
        boxes.append(box)
    return np.array(boxes)


def _grid(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Canonical coordinates (u, v) of every pixel centre of a size x size image."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(t, t)
    u, v = pose.to_canonical(x, y)
    return u.astype(np.float32), v.astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field of ``shape`` with about ``cells`` blobs per axis, zero mean, unit std.

    White noise on a coarse grid is interpolated with Gaussian weights, one small matrix product
    per axis.
    """
    coarse = rng.standard_normal((cells[0] + 2, cells[1] + 2)).astype(np.float32)
    field = _gauss_interp(shape[0], cells[0]) @ coarse @ _gauss_interp(shape[1], cells[1]).T
    return (field - field.mean()) / (field.std() + 1e-6)


@functools.lru_cache(maxsize=1024)
def _gauss_interp(n: int, cells: int) -> np.ndarray:
    """(n, cells + 2) weights spreading coarse nodes over n pixels, unit norm per pixel."""
    pos = (np.arange(n) + 0.5) / n * cells + 0.5
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(cells + 2)[None, :]) / 0.7) ** 2)
    return (w / np.sqrt((w * w).sum(axis=1, keepdims=True))).astype(np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Cubic ramp from 0 (x <= 0) to 1 (x >= 1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _apex_round(q: np.ndarray, reach: float) -> np.ndarray:
    """Quarter-circle profile: 0 at q = 0, 1 from q = reach on."""
    t = np.clip(q / reach, 0.0, 1.0)
    return np.sqrt(1.0 - (1.0 - t) ** 2)


def _heart_reach(v: np.ndarray, an: Anatomy, sign: float) -> np.ndarray:
    """Distance from the midline of the heart border at height v, on the image side ``sign``.

    The border bulges convexly (a parabola) from the top of the heart to its widest point (the
    apex on the image-right side, the right atrium on the image-left side) and keeps that width
    down to the diaphragm on which the heart rests.
    """
    top, bottom, reach_left, reach_right = an.heart
    start = top if sign > 0 else top + 0.08
    reach = reach_right if sign > 0 else reach_left
    t = np.clip((v - start) / (bottom - start), 0.0, 1.0)
    return reach * (1.0 - (1.0 - t) ** 2)


def lung_margin(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Approximate signed distance to the lung fields (canonical units, positive inside)."""
    margins = []
    for side, sign in ((0, -1.0), (1, 1.0)):
        d = sign * (u - an.mid)
        apex, base = an.apex[side], an.base[side]
        q = (v - apex) / (base - apex)
        d_apex = 0.17
        d_lat = d_apex + (an.lateral[side] - d_apex) * _apex_round(q, 0.5) + 0.015 * q
        d_med = d_apex - (d_apex - an.medial) * _apex_round(q, 0.3)
        d_med = np.maximum(d_med, _heart_reach(v, an, sign))
        if sign > 0:
            d_med = d_med + 0.02 * np.exp(-(((v - an.heart[0] + 0.06) / 0.035) ** 2))
        centre = 0.5 * (an.medial + an.lateral[side]) - 0.01
        half = 0.62 * (an.lateral[side] - an.medial)
        bump = np.clip(1.0 - ((d - centre) / half) ** 2, 0.0, 1.0)
        floor = base - an.dome[side] * (base - apex) * bump
        m = np.minimum(np.minimum(d_lat - d, d - d_med), np.minimum(floor - v, v - apex))
        margins.append(m)
    return np.maximum(margins[0], margins[1])


def _body_density(u: np.ndarray, v: np.ndarray, an: Anatomy, px: float) -> np.ndarray:
    """Soft tissue density: elliptic cross-section of the trunk, neck, shoulders and arms."""
    shoulder = np.sqrt(_smoothstep((v - an.shoulder + 0.09) / 0.2))
    half = an.neck_half_width + (an.body_half_width - an.neck_half_width) * shoulder
    half = half * (1.0 - 0.04 * np.clip(v - 0.6, 0.0, None))
    r = np.abs(u - an.mid) / half
    body = np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)) ** 0.6
    body *= np.clip((1.0 - r) * half / px + 0.5, 0.0, 1.0)
    if an.arms:
        dr = np.abs(u - an.mid) - an.body_half_width - 0.065
        arm = np.sqrt(np.clip(1.0 - (dr / 0.055) ** 2, 0.0, 1.0)) * _smoothstep((v - an.shoulder) / 0.08)
        body = np.maximum(body, 0.6 * arm)
    return body


def _shoulder_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Humeral heads at the upper corners of the chest and the lateral edges of the scapulae."""
    d = np.abs(u - an.mid)
    r = np.sqrt(((d - an.body_half_width + 0.01) / 0.065) ** 2 + ((v - an.shoulder - 0.05) / 0.07) ** 2)
    heads = _smoothstep((1.0 - r) / 0.15) * (0.7 + 0.3 * np.clip(r, 0.0, 1.0) ** 2)
    edge = an.body_half_width - 0.07 - 0.35 * (v - an.shoulder - 0.08)
    scapula = _smoothstep((d - edge) / 0.01) * _smoothstep((an.shoulder + 0.38 - v) / 0.1)
    scapula *= (v > an.shoulder + 0.05) * _smoothstep((an.body_half_width - d) / 0.03)
    return 0.3 * heads + 0.05 * scapula


def _rib_density(u: np.ndarray, v: np.ndarray, an: Anatomy, lung: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Posterior ribs (arcs falling laterally) and fainter anterior ribs, with bright cortices."""
    d = np.abs(u - an.mid)
    bend = 1.0 + 1.2 * np.clip(v - an.rib_top, 0.0, None)
    w_post = v - 0.9 * bend * ((d - 0.08) ** 2 - 0.0064)
    phase = (w_post - an.rib_top) / an.rib_spacing
    index = np.clip(np.floor(phase).astype(np.int32), 0, 11)
    width = rng.uniform(0.16, 0.22, 12).astype(np.float32)[index]
    offset = rng.normal(0.0, 0.04, 12).astype(np.float32)[index]
    band = np.abs(phase - np.floor(phase) - 0.5 - offset) / width
    cortex = np.exp(-(band**10)) * (0.6 + 0.4 * np.clip(band, 0.0, 1.0) ** 2)
    reach = an.body_half_width - 0.02
    valid = (phase > 0.0) & (phase < 9.6) & (d < reach)
    posterior = cortex * valid * _smoothstep((d - 0.03) / 0.03) * _smoothstep((reach - d) / 0.05)
    w_ant = v + 0.42 * (d - 0.42)
    phase_a = (w_ant - an.rib_top - 0.06) / (an.rib_spacing * 1.05)
    band_a = np.abs(phase_a - np.floor(phase_a) - 0.5) / 0.16
    anterior = np.exp(-(band_a**6)) * (phase_a > 0.5) * (phase_a < 6.0)
    anterior *= _smoothstep((d - 0.12) / 0.12) * (d < reach)
    return an.rib_density * (posterior * (0.45 + 0.55 * lung) + 0.4 * anterior * lung)


def _clavicle_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Two clavicles running from the manubrium up and out to the shoulders."""
    d = np.abs(u - an.mid)
    t = (d - 0.035) / 0.29
    centre = an.clavicle + 0.035 - 0.1 * t + 0.025 * np.sin(np.pi * t)
    thick = 0.017 + 0.006 * np.clip(1.0 - t, 0.0, 1.0)
    band = np.abs(v - centre) / thick
    ends = _smoothstep(t / 0.08) * _smoothstep((1.0 - t) / 0.06)
    return 0.3 * np.exp(-(band**6)) * (0.75 + 0.25 * np.clip(band, 0.0, 1.0) ** 2) * ends


def _spine_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Vertebral column with brighter end plates and dark disc spaces; trachea as negative density."""
    du = np.abs(u - an.mid)
    column = np.exp(-((du / 0.04) ** 6))
    level = (v - 0.05) / 0.048
    frac = level - np.floor(level)
    plates = 0.8 + 0.2 * np.cos(2.0 * np.pi * frac) - 0.25 * np.exp(-(((frac - 0.5) / 0.06) ** 2))
    pedicles = 0.25 * np.exp(-(((du - 0.028) / 0.008) ** 2)) * np.exp(-(((frac - 0.3) / 0.15) ** 2))
    trachea = np.exp(-((du / 0.016) ** 4)) * _smoothstep((0.37 - v) / 0.05)
    return 0.22 * column * plates + 0.15 * pedicles - 0.16 * trachea


def _vessel_density(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Hilar shadows and lung markings streaking radially out from the hila."""
    out = np.zeros_like(u)
    for sign in (-1.0, 1.0):
        hu = an.mid + sign * 0.1
        hv = 0.46
        du, dv = (u - hu) * sign, v - hv
        r = np.sqrt(du * du + dv * dv)
        theta = np.arctan2(dv, du)
        table = rng.random((56, 10)).astype(np.float32)
        table = ndimage.gaussian_filter(table, (0.6, 1.2), mode="wrap")
        angle = (theta + np.pi) * (56 / (2 * np.pi)) + 3.0 * np.sin(r / 0.05)
        streak = np.clip((_polar_lookup(table, angle, r / 0.04) - 0.45) * 4.0, 0.0, 1.0)
        out += 0.12 * streak * np.exp(-r / 0.16) + 0.2 * np.exp(-((r / 0.045) ** 2))
    return out


def _polar_lookup(table: np.ndarray, angle: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Bilinear lookup in ``table`` (angle rows, periodic; radius columns, clamped)."""
    n_angle, n_radius = table.shape
    a0 = np.floor(angle)
    fa = angle - a0
    i0 = a0.astype(np.int32) % n_angle
    i1 = (i0 + 1) % n_angle
    radius = np.clip(radius, 0.0, n_radius - 1.001)
    j0 = radius.astype(np.int32)
    fr = radius - j0
    flat = table.ravel()
    k0, k1 = i0 * n_radius + j0, i1 * n_radius + j0
    top = np.take(flat, k0) * (1 - fr) + np.take(flat, k0 + 1) * fr
    bottom = np.take(flat, k1) * (1 - fr) + np.take(flat, k1 + 1) * fr
    return top * (1 - fa) + bottom * fa


def render_anatomy(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy, px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Density of a healthy chest and the signed distance to its lungs at canonical coordinates.

    ``px`` is the width of one pixel in canonical units.
    """
    margin = lung_margin(u, v, an)
    depth = np.clip(margin / px + 0.5, 0.0, 1.0) * (0.45 + 0.55 * np.clip(margin / 0.07, 0.0, 1.0) ** 0.6)
    body = _body_density(u, v, an, px)
    du = u - an.mid
    heart = _smoothstep((np.where(du > 0, _heart_reach(v, an, 1.0), _heart_reach(v, an, -1.0)) - np.abs(du)) / 0.04)
    density = 0.95 * body + 0.06 * heart
    density -= 0.66 * depth * body
    density += _vessel_density(rng, u, v, an) * depth
    size = u.shape[0]
    density += 0.035 * smooth_noise(rng, u.shape, (6, 6)) * body
    density += 0.025 * smooth_noise(rng, u.shape, (size // 6, size // 6)) * depth
    density += _rib_density(u, v, an, depth, rng) * body
    density += _clavicle_density(u, v, an) + _spine_density(u, v, an) * body
    density += _shoulder_density(u, v, an) * body
    if an.breast > 0:
        for sign in (-1.0, 1.0):
            r = ((u - an.mid - sign * 0.25) / 0.2) ** 2 + ((v - 0.78) / 0.14) ** 2
            density += an.breast * _smoothstep((1.0 - r) / 0.3) * body
    if an.gastric_bubble:
        r = ((u - an.mid - 0.2) / 0.05) ** 2 + ((v - an.base[1] - 0.02) / 0.03) ** 2
        density -= 0.18 * _smoothstep((1.0 - r) / 0.5) * (margin < 0)
    return density.astype(np.float32), margin.astype(np.float32)


def _box_to_pixels(box: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    """Map a canonical 1024-px (x, y, w, h) box to pixels (x0, y0, x1, y1), grown by BOX_GROWTH.

    The centre follows the pose; the size follows its scale (its small rotation is ignored). A box
    is at least 2 pixels wide and high and is moved, not cut, to fit in the image.
    """
    x, y, w, h = box / rsna_stats.ORIGINAL_SIZE
    cx, cy = pose.to_image(x + w / 2, y + h / 2)
    half_w = max(0.5 * w * pose.scale_x * BOX_GROWTH * size, 1.0)
    half_h = max(0.5 * h * pose.scale_y * BOX_GROWTH * size, 1.0)
    cx = float(np.clip(cx * size, half_w, size - half_w))
    cy = float(np.clip(cy * size, half_h, size - half_h))
    return np.clip(np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h]), 0.0, size)


def _ellipse_window(box: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixel slices of a box (x0, y0, x1, y1) and a window, positive inside its inscribed superellipse."""
    x0, y0, x1, y1 = box
    sl = (slice(int(np.floor(y0)), int(np.ceil(y1))), slice(int(np.floor(x0)), int(np.ceil(x1))))
    ys = np.arange(sl[0].start, sl[0].stop, dtype=np.float32) + 0.5
    xs = np.arange(sl[1].start, sl[1].stop, dtype=np.float32) + 0.5
    ex = np.abs(xs - 0.5 * (x0 + x1)) / max(0.5 * (x1 - x0), 1e-3)
    ey = np.abs(ys - 0.5 * (y0 + y1)) / max(0.5 * (y1 - y0), 1e-3)
    window = 1.0 - ey[:, None] ** 2.5 - ex[None, :] ** 2.5
    return sl, np.clip(window, 0.0, 1.0)


def _lung_cover(box: np.ndarray, lung_mask: np.ndarray) -> float:
    """Share of the box's inscribed ellipse that lies in the lung fields."""
    sl, window = _ellipse_window(box)
    inside = window > 0
    if not inside.any():
        return 0.0
    return float(lung_mask[sl][inside].mean())


def place_boxes(rng: np.random.Generator, pose: Pose, lung_mask: np.ndarray) -> list[np.ndarray]:
    """Draw RSNA-like boxes (pixels, x0 y0 x1 y1) that overlap this image's lung fields."""
    size = lung_mask.shape[0]
    layout = sample_box_layout(rng)
    best: tuple[float, list[np.ndarray]] = (-1.0, [])
    for _ in range(40):
        boxes = [_box_to_pixels(b, pose, size) for b in sample_boxes(rng, layout)]
        covers = [_lung_cover(b, lung_mask) for b in boxes]
        if min(covers) >= MIN_LUNG_COVER:
            return boxes
        if min(covers) > best[0]:
            best = (min(covers), boxes)
    return [b if _lung_cover(b, lung_mask) > 0 else _recentre_on_lung(b, lung_mask) for b in best[1]]


def _recentre_on_lung(box: np.ndarray, lung_mask: np.ndarray) -> np.ndarray:
    """Move a box (x0, y0, x1, y1) onto the centroid of the lung field on its side of the image."""
    size = lung_mask.shape[0]
    cx = 0.5 * (box[0] + box[2])
    side = lung_mask.copy()
    side[:, : size // 2] &= cx < size / 2
    side[:, size // 2 :] &= cx >= size / 2
    ys, xs = np.nonzero(side if side.any() else lung_mask)
    dx, dy = xs.mean() + 0.5 - cx, ys.mean() + 0.5 - 0.5 * (box[1] + box[3])
    return np.clip(box + np.array([dx, dy, dx, dy]), 0.0, size)


def _lesion(
    rng: np.random.Generator, box: np.ndarray, lung_mask: np.ndarray, size: int
) -> tuple[tuple[slice, slice], np.ndarray]:
    """Patchy opacity density inside one box, zero outside the lung and the box's ellipse."""
    sl, window = _ellipse_window(box)
    shape = window.shape
    cells = (max(2, round(shape[0] / (0.14 * size) + 1)), max(2, round(shape[1] / (0.14 * size) + 1)))
    coarse = smooth_noise(rng, shape, cells)
    fine = smooth_noise(rng, shape, (cells[0] * 3, cells[1] * 3))
    field_ = 0.5 * np.sqrt(window) + 0.2 * coarse + 0.08 * fine
    allowed = (window > 0) & lung_mask[sl]
    if not allowed.any():
        allowed = window > 0
    level = _uniform(rng, 0.22, 0.34)
    while not np.any((field_ > level) & allowed) and level > -2.0:
        level -= 0.1
    raw = np.clip(field_ - level, 0.0, None) * allowed
    mottle = 0.8 + 0.2 * np.clip(smooth_noise(rng, shape, (cells[0] * 4, cells[1] * 4)), -1.0, 1.0)
    strength = _uniform(rng, 0.18, 0.42)
    return sl, (strength * np.clip(raw / 0.22, 0.0, 1.0) ** 0.8 * mottle).astype(np.float32)


def _reader_box(mask: np.ndarray, sl: tuple[slice, slice], limit: np.ndarray, rng: np.random.Generator) -> Box:
    """Integer (x, y, w, h) around a lesion mask (the image part ``sl``) with a small margin.

    The box stays inside ``limit`` (x0, y0, x1, y1), the box the lesion was drawn in.
    """
    rows = np.flatnonzero(mask.any(axis=1)) + sl[0].start
    cols = np.flatnonzero(mask.any(axis=0)) + sl[1].start
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    my = _uniform(rng, 0.02, 0.1) * (y1 - y0)
    mx = _uniform(rng, 0.02, 0.1) * (x1 - x0)
    bx0 = max(int(np.floor(limit[0])), int(round(x0 - mx)))
    by0 = max(int(np.floor(limit[1])), int(round(y0 - my)))
    bx1 = min(int(np.ceil(limit[2])), int(round(x1 + mx)))
    by1 = min(int(np.ceil(limit[3])), int(round(y1 + my)))
    return bx0, by0, bx1 - bx0, by1 - by0


def _add_findings(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy, lung_mask: np.ndarray, px: float
) -> np.ndarray:
    """Extra density of non-pneumonia findings: leads and lines, calcified nodules."""
    out = np.zeros_like(u)
    if rng.random() < 0.6:
        for _ in range(rng.integers(2, 5)):
            cu, cv = _uniform(rng, 0.15, 0.85), _uniform(rng, 0.15, 0.6)
            r = np.sqrt((u - cu) ** 2 + (v - cv) ** 2)
            out += 0.5 * np.exp(-(((r - 0.018) / max(0.004, px)) ** 2))
        a, b, c = _uniform(rng, -1.5, 1.5), _uniform(rng, 0.1, 0.9), _uniform(rng, 0.02, 0.3)
        curve = b + c * (v - 0.1) + 0.1 * a * (v - 0.4) ** 2
        out += 0.35 * np.exp(-(((u - curve) / max(0.003, px)) ** 2)) * (v < _uniform(rng, 0.4, 0.9))
    if rng.random() < 0.5:
        ys, xs = np.nonzero(lung_mask)
        for i in rng.choice(len(ys), size=int(rng.integers(1, 4)), replace=False):
            r = np.sqrt((u - u[ys[i], xs[i]]) ** 2 + (v - v[ys[i], xs[i]]) ** 2)
            out += 0.45 * _smoothstep((_uniform(rng, 0.006, 0.014) - r) / (2 * px))
    return out


def _not_normal_anatomy(rng: np.random.Generator, an: Anatomy) -> Anatomy:
    """Variant anatomy for the 'Not Normal' class: enlarged heart or raised hemidiaphragm."""
    choice = rng.random()
    if choice < 0.4:
        top, bottom, reach_left, reach_right = an.heart
        k = _uniform(rng, 1.15, 1.3)
        return _replace(an, heart=(top - 0.02, bottom, reach_left * k, reach_right * k))
    if choice < 0.6:
        side = int(rng.integers(0, 2))
        base = list(an.base)
        base[side] -= _uniform(rng, 0.06, 0.12)
        return _replace(an, base=(base[0], base[1]))
    return an


def _replace(an: Anatomy, **changes: object) -> Anatomy:
    """Copy of ``an`` with some fields changed."""
    values = asdict(an)
    values.update(changes)
    return Anatomy(**values)


def _upsample(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square array to size x size, pixel areas aligned, edges clamped."""
    if a.shape[0] == size:
        return a
    if 2 * a.shape[0] != size:
        return ndimage.zoom(a, size / a.shape[0], order=1, mode="nearest", grid_mode=True)
    return np.ascontiguousarray(_double(_double(a, 0), 1))


def _double(a: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear doubling along one axis: output pixel centres at input positions k -/+ 1/4."""
    a = np.moveaxis(a, axis, 0)
    prev = np.concatenate([a[:1], a[:-1]])
    nxt = np.concatenate([a[1:], a[-1:]])
    out = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
    out[0::2] = 0.75 * a + 0.25 * prev
    out[1::2] = 0.75 * a + 0.25 * nxt
    return np.moveaxis(out, 0, axis)


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


def render_case(
    rng: np.random.Generator, size: int, label: str = LUNG_OPACITY, with_lesions: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """Render one radiograph of class ``label``: (uint8 image, bool lesion mask, boxes x y w h).

    ``with_lesions=False`` renders the same pneumonia case with the opacities left out (same
    random draws), which shows exactly what the lesions add.
    """
    grey, twin, mask, boxes = _render(rng, size, label)
    return np.round(grey if with_lesions else twin).astype(np.uint8), mask, boxes


def render_case_and_lift(
    rng: np.random.Generator, size: int, label: str = LUNG_OPACITY
) -> tuple[np.ndarray, np.ndarray, list[Box], np.ndarray]:
    """Like :func:`render_case`, plus the lesions' *lift*: float32 grey levels they add to each pixel.

    The lift is the exact difference between the unrounded grey levels of the image and of its
    lesion-free twin (same anatomy, pose, exposure and noise draw; only the opacity density
    differs): what exposure, blur and clipping make of the lesions, zero where they change
    nothing and on images without lesions.
    """
    grey, twin, mask, boxes = _render(rng, size, label)
    # exposure, blur and clipping are monotone: the lift is >= 0 up to float rounding
    lift = np.clip(grey - twin, 0.0, None).astype(np.float32)
    return np.round(grey).astype(np.uint8), mask, boxes, lift


def _render(rng: np.random.Generator, size: int, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Box]]:
    """Unrounded grey levels of the image and of its lesion-free twin, lesion mask and boxes."""
    if label not in CLASS_STREAMS:
        raise ValueError(f"unknown class {label!r}; expected one of {sorted(CLASS_STREAMS)}")
    pose = sample_pose(rng)
    anatomy = sample_anatomy(rng)
    exposure = sample_exposure(rng, size)
    if label == NOT_NORMAL:
        anatomy = _not_normal_anatomy(rng, anatomy)
    work = size // RENDER_FACTOR if size >= 128 else size
    u, v = _grid(work, pose)
    px = 1.0 / (work * 0.5 * (pose.scale_x + pose.scale_y))
    density, margin = render_anatomy(rng, u, v, anatomy, px)
    if label == NOT_NORMAL:
        density += _add_findings(rng, u, v, anatomy, margin > 0, px)
    density, margin = _upsample(density, size), _upsample(margin, size)
    healthy = density.copy()
    lung_mask = margin > 0
    mask = np.zeros((size, size), dtype=bool)
    boxes: list[Box] = []
    if label == LUNG_OPACITY:
        for limit in place_boxes(rng, pose, lung_mask):
            sl, lesion = _lesion(rng, limit, lung_mask, size)
            density[sl] += lesion
            mask[sl] |= lesion > 0
            boxes.append(_reader_box(lesion > 0, sl, limit, rng))
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


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG encoding of an 8-bit grey image."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_dicom(path: Path, image: np.ndarray, patient_id: str, quality: int) -> None:
    """Write ``image`` as an RSNA-like DICOM: JPEG Baseline, 8-bit MONOCHROME2, modality CR."""
    sop_uid = generate_uid(prefix=None, entropy_srcs=[patient_id, "sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = f"synthetic ({GENERATOR_NAME} v{GENERATOR_VERSION})"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = generate_uid(prefix=None, entropy_srcs=[patient_id, "study"])
    ds.SeriesInstanceUID = generate_uid(prefix=None, entropy_srcs=[patient_id, "series"])
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.PixelSpacing = [f"{0.139 * 1024 / image.shape[0]:.4f}"] * 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([_jpeg_bytes(image, quality)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a lesion mask as an 8-bit PNG with values 0 and 255."""
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG", compress_level=1)


def _write_lift(path: Path, lift: np.ndarray) -> None:
    """Write a lesion lift (grey levels) as a 16-bit PNG of ``round(lift * LIFT_SCALE)``."""
    scaled = np.clip(np.round(lift.astype(np.float64) * LIFT_SCALE), 0, 65535).astype(np.uint16)
    Image.fromarray(scaled).save(path, format="PNG", compress_level=1)


def _fmt(value: int) -> str:
    """A box coordinate written like the real CSV (``264.0``)."""
    return f"{float(value):.1f}"


def _write_csvs(root: Path, cases: list[tuple[str, str, list[Box]]]) -> None:
    """Write the labels and class CSVs, rows ordered by patientId, one row per box."""
    with open(root / LABELS_CSV, "w", newline="") as fl, open(root / CLASS_CSV, "w", newline="") as fc:
        labels, classes = csv.writer(fl, lineterminator="\n"), csv.writer(fc, lineterminator="\n")
        labels.writerow(LABEL_COLUMNS)
        classes.writerow(CLASS_COLUMNS)
        for patient_id, label, boxes in sorted(cases):
            for x, y, w, h in boxes:
                labels.writerow([patient_id, _fmt(x), _fmt(y), _fmt(w), _fmt(h), 1])
                classes.writerow([patient_id, label])
            if not boxes:
                labels.writerow([patient_id, "", "", "", "", 0])
                classes.writerow([patient_id, label])


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
            _write_mask(tmp / MASK_DIR / f"{case.patient_id}.png", case.mask)
            _write_lift(tmp / LIFT_DIR / f"{case.patient_id}.png", case.lift)
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
        _write_csvs(tmp, cases)
        _check_target(out_dir, overwrite)
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
