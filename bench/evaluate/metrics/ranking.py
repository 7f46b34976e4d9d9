"""Ranking figures of SPEC 3.3: pooled and per-image AUC and AP, detection, hit rate, Otsu IoU, energy, Spearman."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from skimage.filters import threshold_otsu
from sklearn.metrics import roc_auc_score

from bench.evaluate.metrics._common import CHUNK_PIXELS, POINT_BITS, _image_chunks, _images, _normalized_chunks

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
    otherwise differs by at most ``sum_b pos_b * neg_b / (2 * P * N)`` (each positive-negative pair
    in one bin counts as a tie, 1/2, while its exact share lies in [0, 1]; loose when bins hold
    exact ties, which are counted correctly). In practice the difference is ~1e-7 for
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
