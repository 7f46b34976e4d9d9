"""Evaluation metrics of SPEC section 3: pure numpy, no torch.

Conventions shared by every function here:

* Images are arrays ``(N, H, W)`` or ``(N, 1, H, W)``; a singleton channel axis is dropped.
* Lesion maps: higher means "more lesion". Every localization figure of SPEC 3.3 is computed on
  the map normalized per image to [0, 1] by :func:`normalize_maps` (the functions below apply it
  themselves; it is idempotent on maps that already span exactly [0, 1]). Only the detection
  score uses the raw map (see :func:`map_max`).
* Masks: boolean (or 0/1) arrays with the shape of the maps; ``True`` marks lesion pixels.
* Per-image values are float64 arrays of length N; NaN marks an image where the figure is
  undefined, and summaries ignore NaNs.
* Pooled pixel AUC and AUPRC (average precision) are computed by a streaming histogram
  (:class:`PooledROC`) over the float32 bit patterns of the scores, never by sorting all pixels
  in memory.
* Bootstrap CIs resample images with replacement as multiplicities ``_resample_counts(n, R,
  seed)``; every figure of one image set uses the same draws, so the ``bootstrap_stats*``
  functions' per-resample statistics of several seeds can be averaged resample by resample
  (:func:`seed_mean_ci`).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse
from scipy.stats import rankdata
from skimage.filters import threshold_otsu
from sklearn.metrics import roc_auc_score, roc_curve

POINT_BITS = 20
"""Histogram resolution (top bits of the float32 key) of the pooled AUC point estimate."""

CI_BITS = 16
"""Histogram resolution of the per-image histograms behind the pooled-AUC bootstrap CI."""

CHUNK_PIXELS = 1 << 22
"""Pixels processed at once by the streaming functions (bounds their temporary memory)."""


def _images(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as ``(N, H, W)``, dropping a singleton channel axis of ``(N, 1, H, W)``."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {x.shape}")
    return x


def _maps_and_masks(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of map and mask stacks and return them as ``(N, H, W)``; masks as bool."""
    maps, masks = _images(maps), _images(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in shape")
    return maps, masks.astype(bool, copy=False)


def _image_chunks(n_images: int, pixels_per_image: int) -> Iterator[slice]:
    """Slices over images holding about :data:`CHUNK_PIXELS` pixels each (at least one image)."""
    step = max(1, CHUNK_PIXELS // max(1, pixels_per_image))
    for start in range(0, n_images, step):
        yield slice(start, min(n_images, start + step))


def _normalized_chunks(
    maps: np.ndarray, masks: np.ndarray
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(image slice, normalized maps, bool masks)`` chunk by chunk, in image order."""
    maps, masks = _maps_and_masks(maps, masks)
    for sl in _image_chunks(maps.shape[0], maps.shape[1] * maps.shape[2]):
        yield sl, normalize_maps(maps[sl]), masks[sl]


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
    fpr, tpr, thresholds = roc_curve(
        np.asarray(y_true), np.asarray(scores), drop_intermediate=False
    )
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


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalize every map to [0, 1]: ``(m - min(m)) / (max(m) - min(m))``.

    Works on ``(N, ...)`` stacks, image by image. A constant map (max == min) becomes all zeros.
    The result is float32 for float32 (or narrower) input and float64 otherwise. NaN is not
    allowed.
    """
    maps = np.asarray(maps)
    m = maps.astype(np.result_type(maps.dtype, np.float32), copy=False)
    axes = tuple(range(1, m.ndim))
    lo = m.min(axis=axes, keepdims=True)
    span = m.max(axis=axes, keepdims=True) - lo
    return (m - lo) / np.where(span > 0, span, 1)


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


# --------------------------------------------------------------------------------------------
# 3.3 Pooled pixel ROC by streaming histogram
# --------------------------------------------------------------------------------------------


def float32_keys(scores: np.ndarray, bits: int = 32) -> np.ndarray:
    """Order-preserving uint32 keys of float32 scores, truncated to their top ``bits`` bits.

    The scores are cast to float32 and ``-0.0`` is folded onto ``+0.0``. Non-negative floats get
    their sign bit set, negative floats have all bits flipped, so that unsigned key order equals
    float order (-inf < ... < -0 = +0 < ... < +inf); then the key is shifted right by
    ``32 - bits``. Equal floats share a key; distinct floats share a truncated key only when
    they agree in sign, exponent and the top ``bits - 9`` mantissa bits. NaN raises ValueError.
    """
    s = np.asarray(scores, dtype=np.float32) + np.float32(0.0)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    u = s.view(np.uint32)
    flip = (s.view(np.int32) >> 31).view(np.uint32) | np.uint32(0x80000000)
    return (u ^ flip) >> np.uint32(32 - bits)


def _hist_auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Mann-Whitney AUC from per-bin counts ordered by increasing score; ties count one half.

    ``AUC = sum_b neg_b * (pos_above_b + pos_b / 2) / (P * N)``, which equals the trapezoidal
    area under the ROC traced from the highest bin to the lowest, and sklearn's tie handling.
    NaN when P or N is zero.
    """
    neg, pos = neg.astype(np.float64), pos.astype(np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pos_above = n_pos - np.cumsum(pos)
    return float(np.dot(neg, pos_above + 0.5 * pos) / (n_pos * n_neg))


def _hist_ap(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Average precision from per-bin counts ordered by increasing score, one row per histogram.

    ``neg`` and ``pos`` are ``(..., n_bins)``; every bin is one threshold. With cumulative counts
    from the highest bin down, ``AP = sum_b pos_b / P * TP_b / (TP_b + FP_b)``, which is
    sklearn's ``average_precision_score`` (``sum_n (R_n - R_{n-1}) P_n`` over distinct
    thresholds, tied scores forming one threshold). Returns ``(...)`` float64; NaN where P is 0.
    """
    neg, pos = np.asarray(neg, dtype=np.float64), np.asarray(pos, dtype=np.float64)
    tps = np.cumsum(pos[..., ::-1], axis=-1)
    seen = tps + np.cumsum(neg[..., ::-1], axis=-1)
    precision = np.divide(tps, seen, out=np.zeros_like(tps), where=seen > 0)
    n_pos = tps[..., -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, np.sum(pos[..., ::-1] * precision, axis=-1) / n_pos, np.nan)


class PooledROC:
    """Streaming pixel ROC over any number of (score, label) pairs in constant memory.

    Each score is binned by :func:`float32_keys` with ``bits`` bits (default 20: 2^20 bins,
    sign + exponent + 11 mantissa bits, a relative bin width of at most 2^-11); positives and
    negatives are counted in one int64 histogram per class (16 MiB in all). :meth:`auc` treats
    two scores in the same bin as tied, so it equals ``sklearn.metrics.roc_auc_score`` on the
    float32 scores exactly when no bin holds a positive and a negative of distinct values, and
    otherwise differs by at most :meth:`max_error`. In practice the difference is ~1e-7 for
    continuous, heavy-tailed or tied scores (exact 0 and 1 of normalized maps sit alone in their
    bins); the worst case is a large mass of exactly tied scores with continuous scores within a
    relative 2^-11 of it, where a systematic error of a few 1e-6 was measured. :meth:`ap` gives
    the average precision from the same histograms, likewise exact when no bin merges distinct
    values.
    """

    def __init__(self, bits: int = POINT_BITS) -> None:
        if not 1 <= bits <= 24:
            raise ValueError(f"bits must be in [1, 24], got {bits}")
        self.bits = bits
        self._hist = np.zeros((1 << bits, 2), dtype=np.int64)

    @property
    def n_pos(self) -> int:
        """Number of positive samples seen so far."""
        return int(self._hist[:, 1].sum())

    @property
    def n_neg(self) -> int:
        """Number of negative samples seen so far."""
        return int(self._hist[:, 0].sum())

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Add samples: ``scores`` (any shape, cast to float32) and boolean ``labels`` alike.

        Processed in chunks of :data:`CHUNK_PIXELS`, so temporary memory stays bounded.
        """
        scores, labels = np.asarray(scores).reshape(-1), np.asarray(labels).reshape(-1)
        if scores.shape != labels.shape:
            raise ValueError(f"{scores.size} scores but {labels.size} labels")
        n_bins = 2 << self.bits
        for start in range(0, scores.size, CHUNK_PIXELS):
            chunk = slice(start, start + CHUNK_PIXELS)
            code = float32_keys(scores[chunk], self.bits) << np.uint32(1)
            code |= labels[chunk].astype(bool).view(np.uint8)
            self._hist += np.bincount(code, minlength=n_bins).reshape(-1, 2)

    def auc(self) -> float:
        """Area under the pooled ROC (ties within a bin count one half); NaN if a class is empty."""
        return _hist_auc(self._hist[:, 0], self._hist[:, 1])

    def ap(self) -> float:
        """Average precision (area under the pooled PR curve, sklearn's step-wise definition).

        Every bin is one threshold (scores within a bin count as tied); NaN if no sample is
        positive. See :func:`_hist_ap`.
        """
        return float(_hist_ap(self._hist[:, 0], self._hist[:, 1]))

    def max_error(self) -> float:
        """Upper bound on ``|auc() - exact AUC|`` from pairs that share a bin.

        ``sum_b pos_b * neg_b / (2 * P * N)``: each positive-negative pair in one bin is counted
        as a tie (1/2) while its exact contribution lies in [0, 1]. Loose when bins hold exact
        ties (which :meth:`auc` counts correctly); NaN if a class is empty.
        """
        neg, pos = self._hist[:, 0].astype(np.float64), self._hist[:, 1].astype(np.float64)
        pairs = pos.sum() * neg.sum()
        return float(np.dot(pos, neg) / (2 * pairs)) if pairs > 0 else float("nan")

    def roc_curve(self, n_points: int = 1001) -> tuple[np.ndarray, np.ndarray]:
        """ROC points ``(fpr, tpr)`` from (0, 0) to (1, 1), for plotting.

        One point per non-empty bin, from the highest score down; when there are more than
        ``n_points``, about ``n_points`` of them are kept, evenly spaced in the share of samples
        above the threshold (both end points always kept).
        """
        n_pos, n_neg = self.n_pos, self.n_neg
        if n_pos == 0 or n_neg == 0:
            raise ValueError("the ROC needs both positive and negative samples")
        used = self._hist[self._hist.sum(axis=1) > 0][::-1]
        fps = np.concatenate([[0], np.cumsum(used[:, 0])])
        tps = np.concatenate([[0], np.cumsum(used[:, 1])])
        if fps.size > n_points:
            seen = fps + tps
            keep = np.searchsorted(seen, np.linspace(0, seen[-1], n_points))
            keep = np.unique(np.concatenate([[0], keep, [seen.size - 1]]))
            fps, tps = fps[keep], tps[keep]
        return fps / n_neg, tps / n_pos


def pooled_roc(maps: np.ndarray, masks: np.ndarray, bits: int = POINT_BITS) -> PooledROC:
    """:class:`PooledROC` over all pixels of all images: scores are the normalized maps."""
    roc = PooledROC(bits)
    for _, m, k in _normalized_chunks(maps, masks):
        roc.update(m, k)
    return roc


def pooled_auc(maps: np.ndarray, masks: np.ndarray, bits: int = POINT_BITS) -> float:
    """Pooled pixel AUC (SPEC 3.3 headline): every pixel of every image is one sample.

    Scores are the per-image normalized maps (:func:`normalize_maps`), positives the mask pixels;
    computed by :class:`PooledROC` at ``bits`` bits. NaN if no pixel (or every pixel) is positive.
    """
    return pooled_roc(maps, masks, bits).auc()


def pooled_ap(maps: np.ndarray, masks: np.ndarray, bits: int = POINT_BITS) -> float:
    """Pooled pixel AUPRC: average precision over every pixel of every image (SPEC 3.3).

    Same samples and resolution as :func:`pooled_auc` (normalized maps, ``bits``-bit bins), AP as
    ``sklearn.metrics.average_precision_score``. NaN if no pixel is positive.
    """
    return pooled_roc(maps, masks, bits).ap()


# --------------------------------------------------------------------------------------------
# 3.3 Per-image localization figures
# --------------------------------------------------------------------------------------------


def per_image_auc(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Pixel AUC of every image separately, shape ``(N,)``.

    Exact Mann-Whitney statistic on the normalized map's float32 values, ties counting one half
    (equal to ``sklearn.metrics.roc_auc_score`` per image), from average ranks:
    ``(sum of positive ranks - P (P + 1) / 2) / (P * N)``. NaN where the mask is all False or
    all True (the AUC is undefined there).
    """
    out = np.full(_images(maps).shape[0], np.nan)
    for sl, m, k in _normalized_chunks(maps, masks):
        m, k = m.reshape(m.shape[0], -1), k.reshape(k.shape[0], -1)
        ranks = rankdata(m.astype(np.float32), axis=1)
        n_pos = k.sum(axis=1).astype(np.float64)
        n_neg = k.shape[1] - n_pos
        rank_sum = np.where(k, ranks, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        out[sl] = np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
    return out


def per_image_ap(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Average precision of every image separately, shape ``(N,)``.

    Exact on the normalized map's float32 values, as ``sklearn.metrics.average_precision_score``
    per image: the mean over positive pixels of the precision at that pixel's score, where
    ``precision(s) = #positives >= s / #pixels >= s`` (ties form one threshold). NaN where the
    mask is all False or all True.
    """
    out = np.full(_images(maps).shape[0], np.nan)
    for sl, m, k in _normalized_chunks(maps, masks):
        m, k = m.reshape(m.shape[0], -1).astype(np.float32), k.reshape(k.shape[0], -1)
        at_or_above = rankdata(-m, method="max", axis=1)
        pos_at_or_above = rankdata(np.where(k, -m, np.inf), method="max", axis=1)
        n_pos = k.sum(axis=1)
        precision_sum = np.where(k, pos_at_or_above / at_or_above, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = precision_sum / n_pos
        out[sl] = np.where((n_pos > 0) & (n_pos < k.shape[1]), ap, np.nan)
    return out


def map_max(maps: np.ndarray) -> np.ndarray:
    """Raw (un-normalized) maximum of every map, shape ``(N,)``: the detection score.

    Detection uses the raw map because after per-image normalization every map's maximum is 1
    (or 0 for a constant map), which would carry no information about the image.
    """
    m = _images(maps)
    return m.reshape(m.shape[0], -1).max(axis=1).astype(np.float64)


def detection_auc(max_scores_pneumonia: np.ndarray, max_scores_healthy: np.ndarray) -> float:
    """AUC of the raw map maximum (:func:`map_max`) for Pneumonia (positive) vs Healthy images.

    ``sklearn.metrics.roc_auc_score``, ties counting one half; NaN if either group is empty.
    """
    p = np.asarray(max_scores_pneumonia, dtype=np.float64).reshape(-1)
    h = np.asarray(max_scores_healthy, dtype=np.float64).reshape(-1)
    if p.size == 0 or h.size == 0:
        return float("nan")
    labels = np.concatenate([np.ones(p.size), np.zeros(h.size)])
    return float(roc_auc_score(labels, np.concatenate([p, h])))


def hit(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Pointing game: the expected hit of the normalized map's argmax under uniform tie-breaking.

    The share of the pixels equal to the normalized map's maximum that lie inside the mask: 1.0
    or 0.0 for a unique maximum, and for a constant map the mask's area fraction, so ties carry
    no artefact of pixel order.
    """
    out = np.empty(_images(maps).shape[0], dtype=np.float64)
    for sl, m, k in _normalized_chunks(maps, masks):
        m, k = m.reshape(m.shape[0], -1), k.reshape(k.shape[0], -1)
        top = m == m.max(axis=1, keepdims=True)
        out[sl] = (top & k).sum(axis=1) / top.sum(axis=1)
    return out


def spearman_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation between maps ``a[i]`` and ``b[i]`` of two stacks, shape ``(N,)``.

    For the model-randomization sanity check (SPEC 3.3): Pearson correlation of the average
    ranks (``scipy.stats.rankdata``) of each image's pixels, as ``scipy.stats.spearmanr`` with
    ties. NaN where either map is constant.
    """
    a, b = _images(a), _images(b)
    if a.shape != b.shape:
        raise ValueError(f"map stacks {a.shape} and {b.shape} differ in shape")
    out = np.empty(a.shape[0], dtype=np.float64)
    for sl in _image_chunks(a.shape[0], a.shape[1] * a.shape[2]):
        ra = rankdata(a[sl].reshape(-1, a.shape[1] * a.shape[2]), axis=1)
        rb = rankdata(b[sl].reshape(-1, b.shape[1] * b.shape[2]), axis=1)
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        constant = (ra == 0).all(axis=1) | (rb == 0).all(axis=1)
        denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sl] = np.where(constant, np.nan, (ra * rb).sum(axis=1) / denom)
    return out


def _otsu_mask(m: np.ndarray) -> np.ndarray:
    """Pixels of one normalized map above its Otsu threshold; empty for a constant map."""
    if m.min() == m.max():
        return np.zeros(m.shape, dtype=bool)
    return m > threshold_otsu(m)


def otsu_iou_dice(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image IoU and Dice of the Otsu-binarized normalized map against the mask.

    The prediction is ``map > skimage.filters.threshold_otsu(map)`` (256 histogram bins,
    skimage's convention that foreground lies strictly above the threshold); a constant map
    predicts nothing. ``IoU = |A & B| / |A | B|`` and ``Dice = 2 |A & B| / (|A| + |B|)``; both are
    NaN when prediction and mask are both empty (undefined, not counted as agreement).
    """
    n = _images(maps).shape[0]
    inter, union, total = np.zeros(n), np.zeros(n), np.zeros(n)
    for sl, m, k in _normalized_chunks(maps, masks):
        pred = np.stack([_otsu_mask(img) for img in m])
        inter[sl] = (pred & k).sum(axis=(1, 2))
        union[sl] = (pred | k).sum(axis=(1, 2))
        total[sl] = pred.sum(axis=(1, 2)) + k.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union, 2 * inter / total


def energy_in_boxes(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of the normalized map's mass inside the mask: ``sum(map * mask) / sum(map)``.

    0.0 where the normalized map sums to 0 (a constant map), since it puts no mass anywhere.
    """
    out = np.empty(_images(maps).shape[0], dtype=np.float64)
    for sl, m, k in _normalized_chunks(maps, masks):
        total = m.sum(axis=(1, 2), dtype=np.float64)
        inside = np.where(k, m, 0).sum(axis=(1, 2), dtype=np.float64)
        out[sl] = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    return out


# --------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------


def _resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_resamples`` bootstrap resamples.

    Shape ``(n_resamples, n)``, from ``np.random.default_rng(seed).integers(0, n, (R, n))``.
    """
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    flat = idx + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(flat.reshape(-1), minlength=n_resamples * n).reshape(n_resamples, n)


def _percentile_ci(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval ``(alpha/2, 1 - alpha/2)`` of the bootstrap statistics, NaNs ignored."""
    if np.all(np.isnan(stats)):
        return float("nan"), float("nan")
    low, high = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_stats(
    per_image_values: np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """Per-resample bootstrap means of per-image values, shape ``(n_resamples,)``.

    Resamples all ``n`` images (NaN ones included) with the multiplicities ``w`` of
    :func:`_resample_counts` ``(n, n_resamples, seed)``, the draws every figure of the same image
    set uses, and takes the weighted NaN-ignoring mean ``sum(w * v) / sum(w)`` over non-NaN
    values (equal to ``np.nanmean`` of the explicitly resampled values). NaN for a resample
    that drew no non-NaN value. Feed these to :func:`seed_mean_ci` to combine seeds.
    """
    v = np.asarray(per_image_values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.full(n_resamples, np.nan)
    valid = ~np.isnan(v)
    w = _resample_counts(v.size, n_resamples, seed).astype(np.float64)
    total, count = w @ np.where(valid, v, 0.0), w @ valid.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def bootstrap_ci(
    per_image_values: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI ``(low, high)`` of the NaN-ignoring mean over images.

    The ``alpha/2`` and ``1 - alpha/2`` percentiles of :func:`bootstrap_stats` (all images are
    resampled, NaNs ignored within each resample); ``(nan, nan)`` when no value is finite.
    Equals ``seed_mean_ci([bootstrap_stats(values, n_resamples, seed)], alpha)``.
    """
    return _percentile_ci(bootstrap_stats(per_image_values, n_resamples, seed), alpha)


def seed_mean_ci(stats_per_seed: list[np.ndarray], alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI of a figure's mean over seeds from each seed's per-resample statistics.

    ``stats_per_seed[s]`` is the ``bootstrap_stats*`` output of seed ``s``, computed on the same
    images in the same order with the same bootstrap seed, so resample ``r`` draws the same images
    for every seed. The statistic of resample ``r`` is the mean over seeds of their resample-``r``
    values (NaN if any seed's is NaN, then ignored), and the interval is its ``alpha/2`` and
    ``1 - alpha/2`` percentiles. With one seed this is that seed's own CI.
    """
    if len(stats_per_seed) == 0:
        raise ValueError("seed_mean_ci needs the bootstrap statistics of at least one seed")
    lengths = {np.asarray(s).size for s in stats_per_seed}
    if len(lengths) != 1:
        raise ValueError(f"seeds have different numbers of bootstrap resamples: {sorted(lengths)}")
    stacked = np.stack([np.asarray(s, dtype=np.float64).reshape(-1) for s in stats_per_seed])
    return _percentile_ci(stacked.mean(axis=0), alpha)


def paired_bootstrap_diff_ci(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Bootstrap CI of the mean of ``b - a`` over images paired by index.

    Pairs where either value is NaN are ignored, resampled as in :func:`bootstrap_ci`. A change
    between two runs is significant when the interval excludes 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} vs {b.size}")
    return bootstrap_ci(b - a, n_resamples=n_resamples, seed=seed, alpha=alpha)


Cells = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Sparse per-image histogram rows ``(image, bin, label, count)`` of :func:`_image_histograms`."""


def _image_histograms(maps: np.ndarray, masks: np.ndarray, bits: int) -> Cells:
    """Sparse per-image histograms of the normalized maps at ``bits`` bits.

    Returns ``(image, bin, label, count)`` rows for every non-empty (image, bin, label) cell,
    with ``bin`` the float32 key truncated to ``bits`` bits.
    """
    parts = []
    n_codes = np.int64(2 << bits)
    for sl, m, k in _normalized_chunks(maps, masks):
        code = float32_keys(m, bits).astype(np.int64) << 1 | k.view(np.uint8)
        code += (np.arange(sl.start, sl.stop, dtype=np.int64) * n_codes)[:, None, None]
        cells, counts = np.unique(code, return_counts=True)
        parts.append((cells, counts))
    cells, count = (np.concatenate(p) for p in zip(*parts))
    image, code = np.divmod(cells, n_codes)
    return image, code >> 1, code & 1, count


def _dense_block(
    image: np.ndarray, col: np.ndarray, count: np.ndarray, n: int, c0: int, c1: int
) -> np.ndarray:
    """Dense ``(n, c1 - c0)`` histogram block of the sparse cells with ``c0 <= col < c1``."""
    sel = (col >= c0) & (col < c1)
    block = np.zeros((n, c1 - c0))
    block[image[sel], col[sel] - c0] = count[sel]
    return block


def _pairwise_from_cells(cells: Cells, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pairwise_auc_counts` from per-image histogram cells of ``n`` images."""
    image, bins, label, count = cells
    used, col = np.unique(bins, return_inverse=True)
    is_pos = label == 1
    pos_cells = image[is_pos], col[is_pos], count[is_pos]
    neg_cells = image[~is_pos], col[~is_pos], count[~is_pos]
    c = np.zeros((n, n))
    neg_below = np.zeros(n)
    width = max(1, CHUNK_PIXELS // max(1, n))
    for c0 in range(0, used.size, width):
        c1 = min(used.size, c0 + width)
        pos, neg = _dense_block(*pos_cells, n, c0, c1), _dense_block(*neg_cells, n, c0, c1)
        below_or_tied = neg_below[:, None] + np.cumsum(neg, axis=1) - 0.5 * neg
        c += pos @ below_or_tied.T
        neg_below += neg.sum(axis=1)
    n_pos = np.bincount(image, weights=count * label, minlength=n)
    n_neg = np.bincount(image, weights=count * (1 - label), minlength=n)
    return c, n_pos, n_neg


def pairwise_auc_counts(
    maps: np.ndarray, masks: np.ndarray, bits: int = CI_BITS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mann-Whitney counts between images: ``C[i, j]``, positives ``P[i]``, negatives ``N[j]``.

    ``C[i, j]`` counts the pairs (positive pixel of image i, negative pixel of image j) where
    the positive scores higher, ties (same ``bits``-bit bin) counting one half. For image
    multiplicities ``w`` the pooled AUC of the weighted image set is
    ``w @ C @ w / ((w @ P) * (w @ N))``; with ``w = 1`` it is :func:`pooled_auc` at ``bits`` bits.
    Memory: ``N^2`` floats for C plus dense ``(n_images, chunk)`` blocks over the used bins.
    """
    return _pairwise_from_cells(_image_histograms(maps, masks, bits), _images(maps).shape[0])


def _pooled_auc_stats(cells: Cells, n: int, counts: np.ndarray) -> np.ndarray:
    """Pooled AUC of every resample (rows of image multiplicities ``counts``), NaN if undefined."""
    c, n_pos, n_neg = _pairwise_from_cells(cells, n)
    w = counts.astype(np.float64)
    denom = (w @ n_pos) * (w @ n_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = np.einsum("ri,ri->r", w @ c, w) / denom
    return np.where(denom > 0, aucs, np.nan)


def _pooled_ap_stats(cells: Cells, n: int, counts: np.ndarray) -> np.ndarray:
    """Pooled AP of every resample (rows of image multiplicities ``counts``), NaN if undefined.

    Resample ``r``'s pooled histograms are ``w_r @ H_pos`` and ``w_r @ H_neg`` with the sparse
    ``(n_images, n_bins)`` per-image histograms; resamples are processed in chunks so that the
    dense ``(chunk, n_bins)`` products stay within about :data:`CHUNK_PIXELS` floats.
    """
    image, bins, label, count = cells
    used, col = np.unique(bins, return_inverse=True)
    is_pos = label == 1

    def by_bin(sel: np.ndarray) -> sparse.csr_matrix:
        values = count[sel].astype(np.float64)
        return sparse.csr_matrix((values, (col[sel], image[sel])), shape=(used.size, n))

    pos_t, neg_t = by_bin(is_pos), by_bin(~is_pos)
    out = np.empty(counts.shape[0])
    rows = max(1, CHUNK_PIXELS // (2 * max(1, used.size)))
    for r0 in range(0, counts.shape[0], rows):
        w_t = np.ascontiguousarray(counts[r0 : r0 + rows].T, dtype=np.float64)
        out[r0 : r0 + rows] = _hist_ap((neg_t @ w_t).T, (pos_t @ w_t).T)
    return out


def bootstrap_stats_pooled(
    maps: np.ndarray,
    masks: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    bits: int = CI_BITS,
) -> np.ndarray:
    """Pooled pixel AUC of every bootstrap resample of the images, shape ``(n_resamples,)``.

    Images are resampled with the multiplicities of :func:`_resample_counts`; each resample's
    pooled AUC is computed exactly (at ``bits``-bit score resolution, default 16: sign +
    exponent + 7 mantissa bits, relative bin width 2^-7) from the pairwise image counts of
    :func:`pairwise_auc_counts` as a quadratic form in the multiplicities; no pixel is revisited
    per resample. NaN for a resample without positive or negative pixels.
    """
    n = _images(maps).shape[0]
    counts = _resample_counts(n, n_resamples, seed)
    return _pooled_auc_stats(_image_histograms(maps, masks, bits), n, counts)


def bootstrap_ci_pooled(
    maps: np.ndarray,
    masks: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    bits: int = CI_BITS,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the pooled pixel AUC from :func:`bootstrap_stats_pooled`.

    The point estimate (:func:`pooled_auc`) uses 20 bits; the coarser CI resolution shifts the
    AUC only by pairs sharing a bin (typically < 1e-3 absolute), negligible against the CI's
    width.
    """
    return _percentile_ci(bootstrap_stats_pooled(maps, masks, n_resamples, seed, bits), alpha)


def bootstrap_stats_pooled_ap(
    maps: np.ndarray,
    masks: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    bits: int = CI_BITS,
) -> np.ndarray:
    """Pooled pixel AP of every bootstrap resample of the images, shape ``(n_resamples,)``.

    Same resamples as :func:`bootstrap_stats_pooled`; each resample's pooled histograms are the
    multiplicity-weighted sums of sparse per-image histograms at ``bits`` bits (default 16), and
    its AP is computed from them as in :meth:`PooledROC.ap`. NaN for a resample without
    positive pixels.
    """
    n = _images(maps).shape[0]
    counts = _resample_counts(n, n_resamples, seed)
    return _pooled_ap_stats(_image_histograms(maps, masks, bits), n, counts)


def bootstrap_ci_pooled_ap(
    maps: np.ndarray,
    masks: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    bits: int = CI_BITS,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the pooled pixel AP from :func:`bootstrap_stats_pooled_ap`."""
    return _percentile_ci(bootstrap_stats_pooled_ap(maps, masks, n_resamples, seed, bits), alpha)


def bootstrap_stats_detection(
    max_scores_pneumonia: np.ndarray,
    max_scores_healthy: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Detection AUC of every bootstrap resample, shape ``(n_resamples,)``, NaN if a group is empty.

    Pneumonia and Healthy images are resampled independently (stratified, so both classes stay
    present; multiplicities from seeds ``seed`` and ``seed + 1``); each resample's AUC is the
    quadratic form ``w_p @ A @ w_h / (P * N)`` with ``A[i, j] = [p_i > h_j] + [p_i == h_j] / 2``,
    which needs ``P * N`` float32 of memory.
    """
    p = np.asarray(max_scores_pneumonia, dtype=np.float64).reshape(-1)
    h = np.asarray(max_scores_healthy, dtype=np.float64).reshape(-1)
    if p.size == 0 or h.size == 0:
        return np.full(n_resamples, np.nan)
    a = (p[:, None] > h[None, :]).astype(np.float32) + 0.5 * (p[:, None] == h[None, :])
    wp = _resample_counts(p.size, n_resamples, seed).astype(np.float32)
    wh = _resample_counts(h.size, n_resamples, seed + 1).astype(np.float32)
    return np.einsum("rj,rj->r", wp @ a, wh, dtype=np.float64) / (p.size * h.size)


def bootstrap_ci_detection(
    max_scores_pneumonia: np.ndarray,
    max_scores_healthy: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`detection_auc` from :func:`bootstrap_stats_detection`."""
    stats = bootstrap_stats_detection(max_scores_pneumonia, max_scores_healthy, n_resamples, seed)
    return _percentile_ci(stats, alpha)

# --------------------------------------------------------------------------------------------
# Everything of SPEC 3.3 at once
# --------------------------------------------------------------------------------------------


_MEAN_FIGURES = {
    "pixel_auc": "pixel_auc",
    "ap": "ap",
    "hit_rate": "hit_rate",
    "miou": "miou",
    "dice": "dice",
    "energy": "energy",
}
"""Summary name -> per-image array whose NaN-ignoring mean it reports."""


def _summary(value: float, ci: tuple[float, float], n: int) -> dict[str, object]:
    """One figure as stored in a run record: value, CI, number of images, direction."""
    return {
        "value": float(value),
        "ci": (float(ci[0]), float(ci[1])),
        "n": int(n),
        "higher_is_better": True,
    }


def localization_metrics(
    maps: np.ndarray,
    masks: np.ndarray,
    healthy_maps: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    roc_points: int = 1001,
) -> dict[str, dict]:
    """All SPEC 3.3 figures for Pneumonia ``maps`` (raw lesion maps) and their lesion ``masks``.

    Returns ``{"per_image": {...}, "summary": {...}, "roc": {"fpr", "tpr"}, "bootstrap": {...}}``:

    * ``per_image``: arrays ``(N,)`` ``pixel_auc`` and ``ap`` (NaN where the mask is all 0 or
      all 1), ``hit_rate``, ``miou``, ``dice`` (NaN where prediction and mask are both empty),
      ``energy``; plus ``max`` (raw map maximum) and, with ``healthy_maps``, ``healthy_max``.
    * ``summary``: ``pooled_auc``, ``pooled_ap``, ``pixel_auc`` (mean), ``ap`` (mean),
      ``hit_rate``, ``miou``, ``dice``, ``energy`` and, with ``healthy_maps``,
      ``detection_auc``; each a dict with ``value``, 95% (``1 - alpha``) bootstrap ``ci`` over
      images, ``n`` (images that count) and ``higher_is_better``. Means ignore NaNs.
    * ``roc``: the pooled ROC curve for plotting (:meth:`PooledROC.roc_curve`).
    * ``bootstrap``: for every summary figure, its per-resample statistics ``(n_resamples,)``
      (all figures share the image draws), to combine seeds with :func:`seed_mean_ci`.
    """
    maps, masks = _maps_and_masks(maps, masks)
    iou, dice = otsu_iou_dice(maps, masks)
    per_image = {
        "pixel_auc": per_image_auc(maps, masks),
        "ap": per_image_ap(maps, masks),
        "hit_rate": hit(maps, masks),
        "miou": iou,
        "dice": dice,
        "energy": energy_in_boxes(maps, masks),
        "max": map_max(maps),
    }
    roc = pooled_roc(maps, masks)
    n = maps.shape[0]
    counts = _resample_counts(n, n_resamples, seed)
    cells = _image_histograms(maps, masks, CI_BITS)
    stats = {"pooled_auc": _pooled_auc_stats(cells, n, counts), "pooled_ap": _pooled_ap_stats(cells, n, counts)}
    summary = {
        "pooled_auc": _summary(roc.auc(), _percentile_ci(stats["pooled_auc"], alpha), n),
        "pooled_ap": _summary(roc.ap(), _percentile_ci(stats["pooled_ap"], alpha), n),
    }
    for name, key in _MEAN_FIGURES.items():
        values = per_image[key]
        stats[name] = bootstrap_stats(values, n_resamples=n_resamples, seed=seed)
        valid = values[~np.isnan(values)]
        summary[name] = _summary(valid.mean() if valid.size else np.nan, _percentile_ci(stats[name], alpha), valid.size)
    if healthy_maps is not None:
        per_image["healthy_max"] = map_max(healthy_maps)
        p, h = per_image["max"], per_image["healthy_max"]
        stats["detection_auc"] = bootstrap_stats_detection(p, h, n_resamples=n_resamples, seed=seed)
        ci = _percentile_ci(stats["detection_auc"], alpha)
        summary["detection_auc"] = _summary(detection_auc(p, h), ci, p.size + h.size)
    fpr, tpr = roc.roc_curve(roc_points)
    return {"per_image": per_image, "summary": summary, "roc": {"fpr": fpr, "tpr": tpr}, "bootstrap": stats}
