"""Bootstrap CIs over images: per-resample statistics (shared draws across seeds) and percentile intervals."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from bench.evaluate.metrics._common import CHUNK_PIXELS, CI_BITS, _images, _normalized_chunks
from bench.evaluate.metrics.ranking import _hist_ap, float32_keys

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


def bootstrap_stats(per_image_values: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
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


def _dense_block(image: np.ndarray, col: np.ndarray, count: np.ndarray, n: int, c0: int, c1: int) -> np.ndarray:
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
