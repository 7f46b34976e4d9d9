"""Everything of SPEC 3.3 at once, as one summary per figure with its per-image values and resamples."""

from __future__ import annotations

import numpy as np

from bench.evaluate.metrics._common import CI_BITS, _maps_and_masks
from bench.evaluate.metrics.bootstrap import (
    _image_histograms,
    _percentile_ci,
    _pooled_ap_stats,
    _pooled_auc_stats,
    _resample_counts,
    bootstrap_stats,
    bootstrap_stats_detection,
)
from bench.evaluate.metrics.location import location_pairs
from bench.evaluate.metrics.ranking import (
    detection_auc,
    energy_in_boxes,
    hit,
    map_max,
    otsu_iou_dice,
    per_image_ap,
    per_image_auc,
    pooled_roc,
)

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
    """One figure: value, CI and number of images; the summary's name is a metric of
    :data:`bench.evaluate.figure.KINDS`, whose kind gives its direction."""
    return {"value": float(value), "ci": (float(ci[0]), float(ci[1])), "n": int(n)}


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
    * ``summary``: ``lm_auc`` (location-matched AUC, :mod:`bench.evaluate.metrics.location`) and, with
      ``healthy_maps``, ``lm_auc_all``; ``pooled_auc``, ``pooled_ap``, ``pixel_auc`` (mean), ``ap`` (mean),
      ``hit_rate``, ``miou``, ``dice``, ``energy`` and, with ``healthy_maps``,
      ``detection_auc``; each a dict with ``value``, 95% (``1 - alpha``) bootstrap ``ci`` over
      images and ``n`` (images that count). Means ignore NaNs.
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
    pairs = location_pairs(maps, masks, healthy_maps)
    stats["lm_auc"] = pairs.resampled(counts)
    summary["lm_auc"] = _summary(pairs.auc(), _percentile_ci(stats["lm_auc"], alpha), n)
    if healthy_maps is not None and len(healthy_maps):
        counts_h = _resample_counts(len(healthy_maps), n_resamples, seed + 1)
        stats["lm_auc_all"] = pairs.resampled(counts, counts_h)
        ci = _percentile_ci(stats["lm_auc_all"], alpha)
        summary["lm_auc_all"] = _summary(pairs.auc(healthy=True), ci, n + len(healthy_maps))
    if healthy_maps is not None:
        per_image["healthy_max"] = map_max(healthy_maps)
        p, h = per_image["max"], per_image["healthy_max"]
        stats["detection_auc"] = bootstrap_stats_detection(p, h, n_resamples=n_resamples, seed=seed)
        ci = _percentile_ci(stats["detection_auc"], alpha)
        summary["detection_auc"] = _summary(detection_auc(p, h), ci, p.size + h.size)
    fpr, tpr = roc.roc_curve(roc_points)
    return {"per_image": per_image, "summary": summary, "roc": {"fpr": fpr, "tpr": tpr}, "bootstrap": stats}
