"""Pooled pixel AUC and AP: streaming histogram (bench.evaluate.metrics) vs sklearn on the same pixels.

Run with ``python -m pytest benchmarks/bench_metrics.py``. Both paths score the same 200 maps of
256x256 (13.1M pixels, normalized per image): AUC against ``sklearn.metrics.roc_auc_score``, AP
against ``average_precision_score``. The sklearn timing and the speed ratio are stored in the
histogram benchmark's ``extra_info`` and printed (``-s`` shows them). No timing is asserted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.evaluate import metrics as M

N_IMAGES, SIZE = 200, 256


@pytest.fixture(scope="module")
def maps_and_masks() -> tuple[np.ndarray, np.ndarray]:
    """Gamma-noise maps with a brighter, textured rectangle inside each image's lesion box."""
    rng = np.random.default_rng(0)
    masks = np.zeros((N_IMAGES, SIZE, SIZE), dtype=bool)
    for mask in masks:
        x0, y0 = rng.integers(0, SIZE // 2, 2)
        w, h = rng.integers(SIZE // 8, SIZE // 2, 2)
        mask[y0 : y0 + h, x0 : x0 + w] = True
    maps = rng.gamma(2.0, 1.0, masks.shape).astype(np.float32)
    maps += 2 * masks * rng.random(masks.shape, dtype=np.float32)
    return maps, masks


def _sklearn_pooled_auc(maps: np.ndarray, masks: np.ndarray) -> float:
    """The reference: sort every pixel of the normalized maps in memory."""
    return float(roc_auc_score(masks.reshape(-1), M.normalize_maps(maps).reshape(-1)))


def _sklearn_pooled_ap(maps: np.ndarray, masks: np.ndarray) -> float:
    """The reference AP: sort every pixel of the normalized maps in memory."""
    return float(average_precision_score(masks.reshape(-1), M.normalize_maps(maps).reshape(-1)))


def _histogram_vs_sklearn(benchmark, maps: np.ndarray, masks: np.ndarray, fast_fn, sklearn_fn, label: str) -> float:
    """Time the histogram path (median of 5) against one sklearn call in the same run; the |difference|."""
    fast = benchmark.pedantic(fast_fn, args=(maps, masks), rounds=5, iterations=1)
    start = time.perf_counter()
    reference = sklearn_fn(maps, masks)
    sklearn_s = time.perf_counter() - start
    histogram_s = benchmark.stats.stats.median
    diff = abs(fast - reference)
    benchmark.extra_info.update(
        pixels=int(masks.size),
        sklearn_s=sklearn_s,
        histogram_median_s=histogram_s,
        speed_ratio=sklearn_s / histogram_s,
        abs_diff=diff,
    )
    print(
        f"\n{label} over {masks.size:,} px: histogram {histogram_s:.3f} s (median of 5), "
        f"sklearn {sklearn_s:.3f} s, ratio {sklearn_s / histogram_s:.1f}x, |diff| {diff:.1e}"
    )
    return diff


def test_pooled_auc_histogram_vs_sklearn(benchmark, maps_and_masks) -> None:
    maps, masks = maps_and_masks
    assert _histogram_vs_sklearn(benchmark, maps, masks, M.pooled_auc, _sklearn_pooled_auc, "pooled AUC") < 1e-6


def test_pooled_auc_sklearn(benchmark, maps_and_masks) -> None:
    maps, masks = maps_and_masks
    benchmark.pedantic(_sklearn_pooled_auc, args=(maps, masks), rounds=1, iterations=1)


def test_pooled_ap_histogram_vs_sklearn(benchmark, maps_and_masks) -> None:
    maps, masks = maps_and_masks
    # Distinct scores sharing a 20-bit bin count as tied (docs/decisions.md): close, not exact.
    assert _histogram_vs_sklearn(benchmark, maps, masks, M.pooled_ap, _sklearn_pooled_ap, "pooled AP") < 1e-4
