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

from bench.evaluate.metrics._common import CHUNK_PIXELS, CI_BITS, POINT_BITS, normalize_maps
from bench.evaluate.metrics.bootstrap import (
    Cells,
    _resample_counts,
    bootstrap_ci,
    bootstrap_ci_detection,
    bootstrap_ci_pooled,
    bootstrap_ci_pooled_ap,
    bootstrap_stats,
    bootstrap_stats_detection,
    bootstrap_stats_pooled,
    bootstrap_stats_pooled_ap,
    paired_bootstrap_diff_ci,
    pairwise_auc_counts,
    seed_mean_ci,
)
from bench.evaluate.metrics.localization import localization_metrics
from bench.evaluate.metrics.location import LocationPairs, lm_auc, location_pairs
from bench.evaluate.metrics.pixels import (
    accuracy_healthy,
    pixel_change_rate,
    rasterize_boxes,
    to_uint8,
    youden_threshold,
)
from bench.evaluate.metrics.ranking import (
    PooledROC,
    detection_auc,
    energy_in_boxes,
    float32_keys,
    hit,
    map_max,
    otsu_iou_dice,
    per_image_ap,
    per_image_auc,
    pooled_ap,
    pooled_auc,
    pooled_roc,
    spearman_per_image,
)

__all__ = [
    "CHUNK_PIXELS",
    "CI_BITS",
    "Cells",
    "POINT_BITS",
    "PooledROC",
    "_resample_counts",
    "accuracy_healthy",
    "bootstrap_ci",
    "bootstrap_ci_detection",
    "bootstrap_ci_pooled",
    "bootstrap_ci_pooled_ap",
    "bootstrap_stats",
    "bootstrap_stats_detection",
    "bootstrap_stats_pooled",
    "bootstrap_stats_pooled_ap",
    "detection_auc",
    "energy_in_boxes",
    "float32_keys",
    "hit",
    "localization_metrics",
    "lm_auc",
    "location_pairs",
    "LocationPairs",
    "map_max",
    "normalize_maps",
    "otsu_iou_dice",
    "paired_bootstrap_diff_ci",
    "pairwise_auc_counts",
    "per_image_ap",
    "per_image_auc",
    "pixel_change_rate",
    "pooled_ap",
    "pooled_auc",
    "pooled_roc",
    "rasterize_boxes",
    "seed_mean_ci",
    "spearman_per_image",
    "to_uint8",
    "youden_threshold",
]
