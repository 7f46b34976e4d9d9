"""Known-answer tests of the hit rate with ties, AUPRC, Spearman and the seed-aware bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from bench.evaluate import metrics as M


def _box_masks() -> np.ndarray:
    """Three 8x8 masks with boxes of 12, 16 and 6 pixels."""
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[0, 0:3, 0:4] = True
    masks[1, 2:6, 3:7] = True
    masks[2, 5:8, 1:3] = True
    return masks


def _lesion_maps(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-noise maps, brighter inside a random box per image."""
    masks = np.zeros((n, size, size), dtype=bool)
    for mask in masks:
        y, x = rng.integers(0, size // 2, 2)
        h, w = rng.integers(2, size // 2, 2)
        mask[y : y + h, x : x + w] = True
    maps = rng.gamma(2.0, 1.0, masks.shape) + masks * rng.random(masks.shape)
    return maps.astype(np.float32), masks


# ------------------------------------------------------------------------------ hit rate


def test_hit_constant_map_scores_box_area_fraction() -> None:
    masks = _box_masks()
    maps = np.full(masks.shape, 3.0, dtype=np.float32)
    np.testing.assert_array_equal(M.hit(maps, masks), [12 / 64, 16 / 64, 6 / 64])


def test_hit_two_tied_maxima_one_inside() -> None:
    masks = _box_masks()[:1]
    maps = np.zeros(masks.shape, dtype=np.float32)
    maps[0, 0, 0] = 5.0  # inside the box
    maps[0, 7, 7] = 5.0  # outside
    np.testing.assert_array_equal(M.hit(maps, masks), [0.5])


def test_hit_unique_maximum() -> None:
    masks = _box_masks()[:2]
    rng = np.random.default_rng(0)
    maps = rng.random(masks.shape).astype(np.float32)
    maps[0, 1, 1] = 2.0  # inside image 0's box
    maps[1, 0, 0] = 2.0  # outside image 1's box
    np.testing.assert_array_equal(M.hit(maps, masks), [1.0, 0.0])


def test_hit_ties_counted_on_the_normalized_map() -> None:
    masks = _box_masks()[1:2]
    maps = np.zeros(masks.shape)
    maps[0, 3, 3:7] = 1.0  # four tied maxima inside the box
    maps[0, 0, 0:4] = 1.0  # four outside
    maps[0, 0, 5] = 1.0  # a ninth, outside
    np.testing.assert_allclose(M.hit(10 * maps - 4, masks), [4 / 9])


# ------------------------------------------------------------------------------ average precision


def test_ap_hand_computed_case() -> None:
    # Scores 1.0 (pos), 0.5 (pos and neg, tied), 0.25 (neg), 0 (neg, neg):
    # thresholds 1.0 -> P 1, R 1/2; 0.5 -> P 2/3, R 1: AP = 1/2 + 1/2 * 2/3 = 5/6.
    maps = np.array([[[0.0, 0.5, 0.25], [1.0, 0.0, 0.5]]], dtype=np.float32)
    masks = np.array([[[0, 1, 0], [1, 0, 0]]], dtype=bool)
    assert M.pooled_ap(maps, masks) == pytest.approx(5 / 6, abs=1e-15)
    np.testing.assert_allclose(M.per_image_ap(maps, masks), [5 / 6], atol=1e-15)
    assert average_precision_score(masks.ravel(), maps.ravel()) == pytest.approx(5 / 6)


def test_ap_perfect_and_constant_maps() -> None:
    masks = _box_masks()
    assert M.pooled_ap(masks.astype(np.float32), masks) == 1.0
    np.testing.assert_array_equal(M.per_image_ap(masks.astype(np.float32), masks), 1.0)
    constant = np.ones(masks.shape, dtype=np.float32)
    assert M.pooled_ap(constant, masks) == pytest.approx(masks.mean(), abs=1e-15)
    np.testing.assert_allclose(M.per_image_ap(constant, masks), masks.mean(axis=(1, 2)), atol=1e-15)


@pytest.mark.parametrize("levels", [3, 17, 256])
def test_pooled_ap_matches_sklearn_on_quantized_maps(levels: int) -> None:
    rng = np.random.default_rng(levels)
    maps, masks = _lesion_maps(30, 24, rng)
    quantized = np.round(M.normalize_maps(maps) * (levels - 1)) / (levels - 1)
    roc = M.pooled_roc(quantized, masks)
    scores = M.normalize_maps(quantized).ravel()
    assert roc.ap() == pytest.approx(average_precision_score(masks.ravel(), scores), abs=1e-12)
    assert M.pooled_ap(quantized, masks) == roc.ap()


def test_pooled_ap_exact_when_bins_hold_single_values() -> None:
    rng = np.random.default_rng(11)
    grid = np.concatenate([[0.0, 1.0], np.exp(np.linspace(-20, 0, 3000))]).astype(np.float32)
    assert np.unique(M.float32_keys(grid, M.POINT_BITS)).size == np.unique(grid).size
    s = grid[rng.integers(0, grid.size, 20_000)]
    y = rng.random(s.size) < np.clip(s, 0.05, 0.95)
    roc = M.PooledROC()
    roc.update(s, y)
    assert roc.ap() == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_pooled_ap_continuous_maps_close_to_sklearn() -> None:
    # Distinct values sharing a 20-bit bin count as tied, which lowers AP slightly: a few 1e-6
    # on maps like these (docs/decisions.md); AUC from the same histograms stays within 1e-6.
    maps, masks = _lesion_maps(200, 32, np.random.default_rng(3))
    roc = M.pooled_roc(maps, masks)
    scores = M.normalize_maps(maps).ravel()
    assert roc.ap() == pytest.approx(average_precision_score(masks.ravel(), scores), abs=1e-5)


def test_pooled_ap_chunking_and_empty_class(monkeypatch: pytest.MonkeyPatch) -> None:
    maps, masks = _lesion_maps(9, 12, np.random.default_rng(4))
    whole = M.pooled_ap(maps, masks)
    monkeypatch.setattr(M, "CHUNK_PIXELS", 100)
    assert M.pooled_ap(maps, masks) == whole
    assert np.isnan(M.pooled_ap(maps, np.zeros_like(masks)))
    assert M.pooled_ap(maps, np.ones_like(masks)) == 1.0


def test_per_image_ap_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    maps, masks = _lesion_maps(8, 16, rng)
    maps[:4] = np.round(maps[:4] * 2)  # many tied values
    maps[4, :8] = maps[4, 8:]
    expected = [average_precision_score(k.ravel(), m.ravel()) for k, m in zip(masks, M.normalize_maps(maps))]
    np.testing.assert_allclose(M.per_image_ap(maps, masks), expected, atol=1e-12)


def test_per_image_ap_nan_for_degenerate_masks() -> None:
    maps = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    masks = np.stack([np.zeros((4, 4), bool), np.ones((4, 4), bool), np.eye(4, dtype=bool)])
    out = M.per_image_ap(maps, masks)
    assert np.isnan(out[:2]).all() and np.isfinite(out[2])


# ------------------------------------------------------------------------------ Spearman


def test_spearman_per_image_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(6)
    a = rng.random((5, 10, 10))
    b = a + rng.normal(0, 0.3, a.shape)
    a[1] = np.round(a[1] * 3)  # ties in a
    b[2] = np.round(b[2] * 2)  # ties in b
    b[3] = -a[3]
    expected = [spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    out = M.spearman_per_image(a, b[:, None])
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out[3] == pytest.approx(-1.0)


def test_spearman_nan_for_constant_maps_and_shape_check() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random((3, 6, 6)), rng.random((3, 6, 6))
    a[0] = 2.0
    b[1] = 0.0
    out = M.spearman_per_image(a, b)
    assert np.isnan(out[:2]).all() and np.isfinite(out[2])
    with pytest.raises(ValueError, match="differ in shape"):
        M.spearman_per_image(a, b[:2])


# ------------------------------------------------------------------------------ bootstrap


def test_bootstrap_stats_equal_nanmean_of_drawn_indices() -> None:
    rng = np.random.default_rng(8)
    v = rng.random(40)
    v[rng.random(40) < 0.3] = np.nan
    idx = np.random.default_rng(5).integers(0, v.size, size=(300, v.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of only NaNs gives NaN
        expected = np.nanmean(v[idx], axis=1)
    np.testing.assert_allclose(M.bootstrap_stats(v, n_resamples=300, seed=5), expected, rtol=1e-12)


def test_bootstrap_stats_use_the_shared_multiplicities() -> None:
    counts = M._resample_counts(7, 50, 3)
    v = np.arange(7, dtype=np.float64)
    np.testing.assert_allclose(M.bootstrap_stats(v, 50, 3), counts @ v / counts.sum(axis=1))


def test_bootstrap_ci_is_single_seed_mean_ci() -> None:
    v = np.random.default_rng(9).normal(size=120)
    v[::7] = np.nan
    assert M.seed_mean_ci([M.bootstrap_stats(v, 500, 2)], alpha=0.1) == M.bootstrap_ci(v, 500, 2, alpha=0.1)


def test_seed_mean_ci_identical_seeds() -> None:
    v = np.random.default_rng(10).random(80)
    stats = M.bootstrap_stats(v, 400, 1)
    assert M.seed_mean_ci([stats, stats.copy()]) == M.seed_mean_ci([stats]) == M.bootstrap_ci(v, 400, 1)


def test_seed_mean_ci_shift_by_half_the_constant() -> None:
    v = np.random.default_rng(11).random(80)
    c = 0.3
    single = M.bootstrap_ci(v, 400, 1)
    both = M.seed_mean_ci([M.bootstrap_stats(v, 400, 1), M.bootstrap_stats(v + c, 400, 1)])
    np.testing.assert_allclose(both, np.array(single) + c / 2, atol=1e-12)


def test_seed_mean_ci_cancels_anticorrelated_seeds() -> None:
    # Seed B scores every image 1 - (seed A's score): the seed mean is 0.5 on every image, so
    # its CI has no width, while averaging the seeds' own bounds would give a wide interval.
    v = np.random.default_rng(12).random(60)
    a, b = M.bootstrap_stats(v, 500, 4), M.bootstrap_stats(1 - v, 500, 4)
    low, high = M.seed_mean_ci([a, b])
    assert low == pytest.approx(0.5, abs=1e-12) and high == pytest.approx(0.5, abs=1e-12)
    old_low = (M.bootstrap_ci(v, 500, 4)[0] + M.bootstrap_ci(1 - v, 500, 4)[0]) / 2
    old_high = (M.bootstrap_ci(v, 500, 4)[1] + M.bootstrap_ci(1 - v, 500, 4)[1]) / 2
    assert old_high - old_low > 0.05


def test_seed_mean_ci_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        M.seed_mean_ci([])
    with pytest.raises(ValueError, match="numbers of bootstrap resamples"):
        M.seed_mean_ci([np.zeros(10), np.zeros(11)])


def test_pooled_stats_are_exact_per_resample() -> None:
    rng = np.random.default_rng(13)
    maps, masks = _lesion_maps(6, 10, rng)
    counts = M._resample_counts(6, 5, 21)
    aucs = M.bootstrap_stats_pooled(maps, masks, n_resamples=5, seed=21)
    aps = M.bootstrap_stats_pooled_ap(maps, masks, n_resamples=5, seed=21)
    for r, w in enumerate(counts):
        picked = np.repeat(np.arange(6), w)
        roc = M.pooled_roc(maps[picked], masks[picked], bits=M.CI_BITS)
        assert aucs[r] == pytest.approx(roc.auc(), abs=1e-12)
        assert aps[r] == pytest.approx(roc.ap(), abs=1e-12)


def test_pooled_ap_stats_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    maps, masks = _lesion_maps(12, 16, np.random.default_rng(14))
    whole = M.bootstrap_stats_pooled_ap(maps, masks, n_resamples=40, seed=0)
    monkeypatch.setattr(M, "CHUNK_PIXELS", 500)
    np.testing.assert_allclose(M.bootstrap_stats_pooled_ap(maps, masks, n_resamples=40, seed=0), whole, rtol=1e-12)


def test_bootstrap_ci_pooled_ap_contains_estimate_and_shrinks() -> None:
    maps, masks = _lesion_maps(60, 16, np.random.default_rng(15))
    lo, hi = M.bootstrap_ci_pooled_ap(maps, masks, n_resamples=300)
    assert lo < M.pooled_ap(maps, masks) < hi
    lo2, hi2 = M.bootstrap_ci_pooled_ap(maps[:10], masks[:10], n_resamples=300)
    assert hi2 - lo2 > hi - lo


def test_ci_wrappers_are_percentiles_of_stats() -> None:
    maps, masks = _lesion_maps(10, 8, np.random.default_rng(16))
    stats = M.bootstrap_stats_pooled(maps, masks, n_resamples=100, seed=3)
    assert M.bootstrap_ci_pooled(maps, masks, n_resamples=100, seed=3) == M.seed_mean_ci([stats])
    p, h = np.arange(5.0), np.arange(4.0) + 0.5
    stats = M.bootstrap_stats_detection(p, h, n_resamples=100, seed=3)
    assert M.bootstrap_ci_detection(p, h, n_resamples=100, seed=3) == M.seed_mean_ci([stats])


# ------------------------------------------------------------------------------ convenience


def test_localization_metrics_reports_ap_and_bootstrap_stats() -> None:
    masks = _box_masks()
    maps = masks.astype(np.float32)
    out = M.localization_metrics(maps, masks, healthy_maps=np.zeros_like(maps), n_resamples=50)
    for name in ["pooled_ap", "ap"]:
        assert out["summary"][name]["value"] == 1.0, name
        assert out["summary"][name]["ci"] == (1.0, 1.0), name
    np.testing.assert_array_equal(out["per_image"]["ap"], 1.0)
    assert set(out["bootstrap"]) == set(out["summary"])
    assert all(s.shape == (50,) for s in out["bootstrap"].values())


def test_localization_metrics_ci_from_its_bootstrap_stats() -> None:
    maps, masks = _lesion_maps(30, 12, np.random.default_rng(17))
    out = M.localization_metrics(maps, masks, healthy_maps=maps[:10] * 0.5, n_resamples=200, seed=4)
    for name, stats in out["bootstrap"].items():
        assert out["summary"][name]["ci"] == M.seed_mean_ci([stats]), name
    assert out["summary"]["pooled_ap"]["value"] == M.pooled_ap(maps, masks)
    assert out["summary"]["pooled_ap"]["ci"] == M.bootstrap_ci_pooled_ap(maps, masks, n_resamples=200, seed=4)
    assert out["summary"]["ap"]["ci"] == M.bootstrap_ci(M.per_image_ap(maps, masks), n_resamples=200, seed=4)
