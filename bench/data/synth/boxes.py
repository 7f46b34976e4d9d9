"""Where lesions go: RSNA-like boxes drawn from the real box statistics and placed on the lungs.

Pneumonia ('Lung Opacity') images get 1-4 boxes drawn from the real RSNA box statistics
(:mod:`bench.data.rsna_stats`: boxes per patient, side of each box, and a Gaussian over centre and
log size, jointly for opposite-side pairs). Boxes are sampled in the canonical frame, grown by
``BOX_GROWTH`` and mapped by the pose; the geometry is redrawn (the number of boxes and their sides
kept) until every box's inscribed ellipse lies at least ``MIN_LUNG_COVER`` in the lung fields of
that image.
"""

from __future__ import annotations

import numpy as np

from bench.data import rsna_stats
from bench.data.synth.draws import Pose

MIN_LUNG_COVER = 0.45
"""Least share of a box's inscribed ellipse that must lie in the lung fields."""

BOX_GROWTH = 1.12
"""Sampled boxes are grown by this factor before a lesion is drawn in them: the written box is the
lesion's bounding box (plus a margin), smaller than the region it was drawn in."""

Box = tuple[int, int, int, int]


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


def ellipse_window(box: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
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
    sl, window = ellipse_window(box)
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
