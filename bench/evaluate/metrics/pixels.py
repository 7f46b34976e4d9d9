"""Pixel-level figures of SPEC 3.1-3.2 and box rasterizing: change rate, Youden threshold, accuracy."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from bench.evaluate.metrics._common import _image_chunks, _images

# --------------------------------------------------------------------------------------------
# 3.1 Pixel change rate
# --------------------------------------------------------------------------------------------


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] to 8-bit: ``round((clamp(v, -1, 1) + 1) / 2 * 255)`` as uint8.

    Computed in float64; ``round`` is numpy's round-half-to-even (as Python's and torch's
    ``round``), so 127.5 becomes 128 and 0.5 becomes 0. An image stored as ``u / 127.5 - 1``
    for 8-bit ``u`` maps back to exactly ``u``. NaN is not allowed.
    """
    v = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    return np.rint((v + 1.0) / 2.0 * 255.0).astype(np.uint8)


def pixel_change_rate(x: np.ndarray, y: np.ndarray, tol: int = 0) -> np.ndarray:
    """Per-image fraction of pixels whose 8-bit values differ by more than ``tol`` grey levels.

    ``x`` and ``y`` are image stacks ``(N, H, W)`` or ``(N, 1, H, W)`` in [-1, 1] (e.g. an input
    and its translation); both are mapped with :func:`to_uint8` and a pixel counts as changed when
    ``|to_uint8(x) - to_uint8(y)| > tol`` (``tol=0``: any difference, SPEC Eq. 13). Returns the
    count divided by ``H * W`` for every image, shape ``(N,)``.
    """
    x, y = _images(x), _images(y)
    if x.shape != y.shape:
        raise ValueError(f"images {x.shape} and {y.shape} differ in shape")
    rates = np.empty(x.shape[0], dtype=np.float64)
    for sl in _image_chunks(x.shape[0], x.shape[1] * x.shape[2]):
        diff = np.abs(to_uint8(x[sl]).astype(np.int16) - to_uint8(y[sl]).astype(np.int16))
        rates[sl] = (diff > tol).mean(axis=(1, 2))
    return rates


# --------------------------------------------------------------------------------------------
# 3.2 Accuracy after translation
# --------------------------------------------------------------------------------------------


def youden_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Decision threshold maximizing Youden's J = TPR - FPR on the ROC of ``scores``.

    ``y_true`` is 1 for Pneumonia (the positive class) and 0 for Healthy; ``scores`` are the
    evaluator's Pneumonia probabilities. Uses ``sklearn.metrics.roc_curve`` with all points
    kept; an image is called Pneumonia when ``score >= threshold``. Ties in J go to the first
    maximum in roc_curve's order, i.e. the highest such threshold. sklearn's leading ``inf``
    threshold (nothing called Pneumonia, J = 0) is never returned: if no finite threshold has
    J > 0 the highest score is returned.
    """
    fpr, tpr, thresholds = roc_curve(np.asarray(y_true), np.asarray(scores), drop_intermediate=False)
    j = np.where(np.isfinite(thresholds), tpr - fpr, -np.inf)
    return float(thresholds[int(np.argmax(j))])


def accuracy_healthy(probs_pneumonia: np.ndarray, threshold: float) -> np.ndarray:
    """Per-image 1.0 where the evaluator calls the image Healthy, else 0.0.

    An image is classified Healthy when ``p < threshold`` (strictly), the complement of the
    Pneumonia rule ``p >= threshold`` of :func:`youden_threshold`. The mean over the translated
    images is the accuracy of SPEC 3.2.
    """
    return (np.asarray(probs_pneumonia, dtype=np.float64) < threshold).astype(np.float64)


# --------------------------------------------------------------------------------------------
# 3.3 Localization: ground truth and normalization
# --------------------------------------------------------------------------------------------


def _axis_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Pixel index range ``[start, stop)`` whose centres ``k + 0.5`` lie in ``[lo, hi)``.

    When the interval has positive length inside ``[0, n]`` but contains no centre, the single
    pixel holding the interval's midpoint is returned instead.
    """
    lo, hi = max(lo, 0.0), min(hi, float(n))
    if hi <= lo:
        return 0, 0
    start, stop = int(np.ceil(lo - 0.5)), int(np.ceil(hi - 0.5))
    if stop <= start:
        start = min(int(np.floor((lo + hi) / 2)), n - 1)
        stop = start + 1
    return start, stop


def rasterize_boxes(
    boxes: np.ndarray,
    n_boxes: np.ndarray,
    size: int | tuple[int, int],
    scale: float | tuple[float, float] = 1.0,
) -> np.ndarray:
    """Union mask of each image's boxes at map resolution, shape ``(N, H, W)``, bool.

    ``boxes`` is ``(N, K, 4)`` with rows ``[x0, y0, x1, y1]`` (x = column, y = row, in pixel
    units, corners at pixel edges so ``[0, 0, W, H]`` is the whole image); only the first
    ``n_boxes[i]`` rows of image ``i`` are used. Coordinates are multiplied by ``scale``
    (a number, or ``(sx, sy)``) first, e.g. ``map_size / image_size``. ``size`` is ``H`` (square)
    or ``(H, W)``.

    Rule: pixel ``(i, j)`` is inside a box when its centre ``(j + 0.5, i + 0.5)`` satisfies
    ``x0 <= j + 0.5 < x1`` and ``y0 <= i + 0.5 < y1``. Parts outside the image are clipped. A box
    with positive width and height inside the image always covers at least one pixel: along an
    axis where it contains no pixel centre, the pixel holding its midpoint is used. Boxes of zero
    or negative size (or entirely outside) cover nothing.
    """
    h, w = (size, size) if np.isscalar(size) else size
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    boxes = np.asarray(boxes, dtype=np.float64)
    masks = np.zeros((boxes.shape[0], int(h), int(w)), dtype=bool)
    for img, (img_boxes, n) in enumerate(zip(boxes, np.asarray(n_boxes))):
        for x0, y0, x1, y1 in img_boxes[: int(n)]:
            c0, c1 = _axis_range(x0 * sx, x1 * sx, int(w))
            r0, r1 = _axis_range(y0 * sy, y1 * sy, int(h))
            masks[img, r0:r1, c0:c1] = True
    return masks
