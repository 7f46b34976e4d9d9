"""Known-answer tests of bench.evaluate.metrics (SPEC section 3)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.evaluate import metrics as M


def _box_case() -> tuple[np.ndarray, np.ndarray]:
    """Three 8x8 images, each with one rectangular lesion box; box 0 covers pixel (0, 0)."""
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[0, 0:3, 0:4] = True
    masks[1, 2:6, 3:7] = True
    masks[2, 5:8, 1:3] = True
    return masks.astype(np.float32), masks


def _scores(n: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 scores and labels: heavy tails, big tie groups, or [0, 1] with 0s and 1s."""
    y = rng.random(n) < 0.3
    if kind == "exponential":
        s = rng.exponential(1.0, n) * (1 + y)
    elif kind == "lognormal3":
        s = (rng.lognormal(0.0, 1.0, n) + 0.5 * y) ** 3
    elif kind == "ties":
        s = rng.integers(0, 50, n) / 49 + 0.1 * y * rng.integers(0, 3, n)
    else:
        s = (rng.lognormal(0.0, 1.0, n) + y) ** 3
        s /= s.max()
        s[rng.random(n) < 0.2] = 0.0
        s[rng.random(n) < 0.2] = 1.0
    return s.astype(np.float32), y


# ------------------------------------------------------------------------------ 3.1


def test_to_uint8_known_values() -> None:
    v = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 7.0])
    np.testing.assert_array_equal(M.to_uint8(v), [0, 0, 64, 128, 191, 255, 255])
    assert M.to_uint8(v).dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_uint8_round_trips_8bit_images(dtype: type) -> None:
    u = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(M.to_uint8((u / 127.5 - 1).astype(dtype)), u)


def test_pixel_change_rate_known_change() -> None:
    rng = np.random.default_rng(0)
    u = rng.integers(0, 250, size=(1, 10, 10))
    changed = u.copy()
    changed.reshape(-1)[rng.choice(100, size=7, replace=False)] += 3
    x, y = u / 127.5 - 1, changed / 127.5 - 1
    np.testing.assert_allclose(M.pixel_change_rate(x, y), [0.07])
    np.testing.assert_allclose(M.pixel_change_rate(x, y, tol=2), [0.07])
    np.testing.assert_allclose(M.pixel_change_rate(x, y, tol=3), [0.0])
    np.testing.assert_allclose(M.pixel_change_rate(x, y, tol=8), [0.0])
    np.testing.assert_allclose(M.pixel_change_rate(x[:, None], x[:, None]), [0.0])


def test_pixel_change_rate_per_image() -> None:
    x = -np.ones((2, 4, 5), dtype=np.float32)
    y = x.copy()
    y[1, 0, :] = 1.0
    np.testing.assert_allclose(M.pixel_change_rate(x, y), [0.0, 0.25])


# ------------------------------------------------------------------------------ 3.2


def test_youden_threshold_separable() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.4, 0.6, 0.7, 0.9])
    t = M.youden_threshold(y, p)
    assert t == pytest.approx(0.6)
    np.testing.assert_array_equal(M.accuracy_healthy(p, t), [1, 1, 1, 0, 0, 0])


def test_youden_threshold_never_infinite() -> None:
    assert np.isfinite(M.youden_threshold([0, 1], [0.9, 0.1]))


def test_accuracy_healthy_is_strict() -> None:
    np.testing.assert_array_equal(M.accuracy_healthy([0.49, 0.5, 0.51], 0.5), [1.0, 0.0, 0.0])


# ------------------------------------------------------------------------------ ground truth


def test_normalize_maps() -> None:
    ramp = np.arange(6, dtype=np.float32).reshape(2, 3)
    maps = np.stack([ramp, np.full((2, 3), 4.0, np.float32)])
    out = M.normalize_maps(maps)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0].ravel(), np.arange(6) / 5, rtol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(M.normalize_maps(out), out)


def test_rasterize_boxes_hand_case() -> None:
    boxes = np.array(
        [
            [[0.5, 0.5, 2.5, 1.5], [2.2, 2.2, 2.4, 2.4], [9.0, 9.0, 9.0, 9.0]],
            [[-3.0, 3.0, 1.0, 10.0], [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    masks = M.rasterize_boxes(boxes, n_boxes=[3, 1], size=(5, 4))
    expected = np.zeros((2, 5, 4), dtype=bool)
    expected[0, 0, 0:2] = True
    expected[0, 2, 2] = True
    expected[1, 3:5, 0] = True
    np.testing.assert_array_equal(masks, expected)


def test_rasterize_boxes_scale_and_whole_image() -> None:
    boxes = np.array([[[0.0, 0.0, 8.0, 4.0]]])
    masks = M.rasterize_boxes(boxes, [1], size=4, scale=0.5)
    expected = np.zeros((1, 4, 4), dtype=bool)
    expected[0, 0:2, 0:4] = True
    np.testing.assert_array_equal(masks, expected)


# ------------------------------------------------------------------------------ known answers


def test_perfect_map_scores_one() -> None:
    maps, masks = _box_case()
    assert M.pooled_auc(maps, masks) == 1.0
    np.testing.assert_array_equal(M.per_image_auc(maps, masks), 1.0)
    np.testing.assert_array_equal(M.hit(maps, masks), 1.0)
    iou, dice = M.otsu_iou_dice(maps, masks)
    np.testing.assert_array_equal(iou, 1.0)
    np.testing.assert_array_equal(dice, 1.0)
    np.testing.assert_array_equal(M.energy_in_boxes(maps, masks), 1.0)


def test_constant_map_is_chance() -> None:
    _, masks = _box_case()
    maps = np.full(masks.shape, 3.0, dtype=np.float32)
    assert M.pooled_auc(maps, masks) == 0.5
    np.testing.assert_array_equal(M.per_image_auc(maps, masks), 0.5)
    np.testing.assert_array_equal(M.hit(maps, masks), [12 / 64, 16 / 64, 6 / 64])
    iou, dice = M.otsu_iou_dice(maps, masks)
    np.testing.assert_array_equal(iou, 0.0)
    np.testing.assert_array_equal(dice, 0.0)
    np.testing.assert_array_equal(M.energy_in_boxes(maps, masks), 0.0)


def test_inverted_map_scores_zero() -> None:
    maps, masks = _box_case()
    assert M.pooled_auc(1 - maps, masks) == 0.0
    np.testing.assert_array_equal(M.per_image_auc(1 - maps, masks), 0.0)
    np.testing.assert_array_equal(M.hit(1 - maps, masks), 0.0)
    np.testing.assert_array_equal(M.energy_in_boxes(1 - maps, masks), 0.0)


def test_tiny_hand_computed_case() -> None:
    # Positives 1.0 and 0.5; negatives 0, 0.25, 0, 0.5 (one tie with a positive):
    # AUC = (4 + 3.5) / 8. Mass 2.25, inside 1.5. Otsu's between-class variance is largest for
    # {0, 0, 0.25} | {0.5, 0.5, 1} (0.0851 vs 0.0703 and 0.0781): IoU 2/3, Dice 4/5.
    maps = np.array([[[0.0, 0.5, 0.25], [1.0, 0.0, 0.5]]], dtype=np.float32)
    masks = np.array([[[0, 1, 0], [1, 0, 0]]], dtype=bool)
    assert M.pooled_auc(maps, masks) == 0.9375
    np.testing.assert_array_equal(M.per_image_auc(maps, masks), [0.9375])
    np.testing.assert_array_equal(M.hit(maps, masks), [1.0])
    np.testing.assert_allclose(M.energy_in_boxes(maps, masks), [1.5 / 2.25])
    iou, dice = M.otsu_iou_dice(maps, masks)
    np.testing.assert_allclose(iou, [2 / 3])
    np.testing.assert_allclose(dice, [4 / 5])


def test_channel_axis_is_accepted() -> None:
    maps, masks = _box_case()
    assert M.pooled_auc(maps[:, None], masks[:, None]) == 1.0
    np.testing.assert_array_equal(M.hit(maps[:, None], masks), 1.0)


def test_per_image_auc_nan_for_degenerate_masks() -> None:
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    masks = np.stack([np.zeros((4, 4), bool), np.ones((4, 4), bool)])
    assert np.isnan(M.per_image_auc(maps, masks)).all()
    iou, dice = M.otsu_iou_dice(np.zeros_like(maps), masks)
    assert np.isnan(iou[0]) and np.isnan(dice[0])


def test_per_image_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    shape = (5, 16, 16)
    maps = rng.integers(0, 6, shape) + (rng.random(shape) < 0.3) * rng.random(shape)
    masks = rng.random((5, 16, 16)) < 0.25
    expected = [roc_auc_score(k.ravel(), m.ravel()) for k, m in zip(masks, M.normalize_maps(maps))]
    np.testing.assert_allclose(M.per_image_auc(maps, masks), expected, atol=1e-12)


def test_detection_auc_uses_raw_max() -> None:
    pneumonia = np.zeros((3, 4, 4))
    healthy = np.zeros((2, 4, 4))
    pneumonia[:, 0, 0] = [5.0, 3.0, 1.0]
    healthy[:, 1, 1] = [2.0, 3.0]
    np.testing.assert_array_equal(M.map_max(pneumonia), [5.0, 3.0, 1.0])
    p, h = M.map_max(pneumonia), M.map_max(healthy)
    assert M.detection_auc(p, h) == pytest.approx((2 + 1.5 + 0) / 6)
    low, high = M.bootstrap_ci_detection(p, h, n_resamples=200)
    assert 0.0 <= low <= high <= 1.0


# ------------------------------------------------------------------------------ pooled ROC


def test_float32_keys_preserve_order() -> None:
    v = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-45, 1e-30, 0.5, 1.0, 3e38, np.inf], dtype=np.float32)
    keys = M.float32_keys(v)
    assert np.all(np.diff(keys.astype(np.int64)) >= 0)
    assert keys[3] == keys[4]
    assert np.count_nonzero(np.diff(keys.astype(np.int64))) == v.size - 2
    with pytest.raises(ValueError):
        M.float32_keys(np.array([np.nan]))


@pytest.mark.parametrize("kind", ["exponential", "lognormal3", "ties", "unit_zeros_ones"])
def test_pooled_auc_matches_sklearn(kind: str) -> None:
    s, y = _scores(200_000, kind, np.random.default_rng(7))
    roc = M.PooledROC()
    roc.update(s, y)
    assert roc.auc() == pytest.approx(roc_auc_score(y, s), abs=1e-6)


def test_pooled_auc_exact_when_bins_hold_single_values() -> None:
    rng = np.random.default_rng(11)
    grid = np.concatenate([[0.0, 1.0], np.exp(np.linspace(-20, 10, 2000))]).astype(np.float32)
    assert np.unique(M.float32_keys(grid, M.POINT_BITS)).size == grid.size
    s = grid[rng.integers(0, grid.size, 5000)]
    y = rng.random(s.size) < np.clip(np.log1p(s), 0.05, 0.95)
    roc = M.PooledROC()
    roc.update(s, y)
    assert roc.auc() == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def _tie_bound(scores: np.ndarray, labels: np.ndarray, bits: int = M.POINT_BITS) -> float:
    """Upper bound on ``|PooledROC.auc() - exact AUC|``: ``sum_b pos_b * neg_b / (2 * P * N)``.

    Each positive-negative pair sharing a bin of :func:`float32_keys` counts as a tie (1/2) in the
    pooled AUC, while its exact share lies in [0, 1]."""
    keys = M.float32_keys(np.asarray(scores).reshape(-1), bits)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    pos = np.bincount(keys[labels], minlength=1 << bits).astype(np.float64)
    neg = np.bincount(keys[~labels], minlength=1 << bits).astype(np.float64)
    return float(np.dot(pos, neg) / (2 * pos.sum() * neg.sum()))


def test_pooled_auc_within_stated_bound_on_small_data() -> None:
    rng = np.random.default_rng(5)
    for n in (50, 500, 5000):
        s, y = _scores(n, "exponential", rng)
        s[rng.random(n) < 0.3] = 1.0
        roc = M.PooledROC()
        roc.update(s, y)
        assert abs(roc.auc() - roc_auc_score(y, s)) <= _tie_bound(s, y) + 1e-12


def test_pooled_roc_handles_negative_scores() -> None:
    rng = np.random.default_rng(2)
    y = rng.random(50_000) < 0.4
    s = (rng.standard_t(2, y.size) + y).astype(np.float32)
    s[:1000] = -0.0
    s[1000:2000] = 0.0
    roc = M.PooledROC()
    roc.update(s, y)
    assert roc.auc() == pytest.approx(roc_auc_score(y, s), abs=1e-6)


def test_pooled_roc_chunked_equals_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    s, y = _scores(30_000, "unit_zeros_ones", np.random.default_rng(1))
    one = M.PooledROC()
    one.update(s, y)
    parts = M.PooledROC()
    for chunk in np.array_split(np.arange(s.size), [5, 1000, 1001, 17_000]):
        parts.update(s[chunk], y[chunk])
    monkeypatch.setattr(M, "CHUNK_PIXELS", 777)
    small = M.PooledROC()
    small.update(s.reshape(100, 300), y.reshape(100, 300))
    assert one.auc() == parts.auc() == small.auc()
    assert (one.n_pos, one.n_neg) == (parts.n_pos, parts.n_neg) == (small.n_pos, small.n_neg)


def test_pooled_auc_over_images_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    masks = rng.random((9, 12, 12)) < 0.2
    maps = rng.gamma(2.0, 1.0, masks.shape) + 2 * masks
    roc = M.pooled_roc(maps, masks)
    monkeypatch.setattr(M, "CHUNK_PIXELS", 300)
    assert M.pooled_auc(maps, masks) == roc.auc()
    flat = M.normalize_maps(maps).astype(np.float32).ravel()
    assert abs(roc.auc() - roc_auc_score(masks.ravel(), flat)) <= _tie_bound(flat, masks)


def test_roc_curve_ends_and_area() -> None:
    s, y = _scores(20_000, "ties", np.random.default_rng(9))
    roc = M.PooledROC()
    roc.update(s, y)
    fpr, tpr = roc.roc_curve(n_points=100_000)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc.auc(), abs=1e-12)
    fpr_small, tpr_small = roc.roc_curve(n_points=10)
    assert fpr_small.size <= 12 and (fpr_small[-1], tpr_small[-1]) == (1.0, 1.0)


# ------------------------------------------------------------------------------ bootstrap


def test_bootstrap_ci_contains_estimate_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 50), rng.normal(1.0, 1.0, 5000)
    lo_s, hi_s = M.bootstrap_ci(small)
    lo_l, hi_l = M.bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5


def test_bootstrap_ci_ignores_nan_and_is_deterministic() -> None:
    # NaN images are resampled too (so every figure shares the image draws) but never counted.
    v = np.array([1.0, np.nan, 2.0, 3.0, np.nan, 4.0])
    filled = np.where(np.isnan(v), 1e6, v)
    counts = M._resample_counts(v.size, 1000, 3)
    valid = counts[:, ~np.isnan(v)]
    means = valid @ v[~np.isnan(v)] / valid.sum(axis=1)
    assert M.bootstrap_ci(v, seed=3) == pytest.approx(np.nanpercentile(means, [2.5, 97.5]), abs=1e-12)
    assert M.bootstrap_ci(v, seed=3) != M.bootstrap_ci(filled, seed=3)
    assert M.bootstrap_ci(v, seed=3) == M.bootstrap_ci(v, seed=3)
    assert 1.0 <= M.bootstrap_ci(v, seed=3)[0] <= M.bootstrap_ci(v, seed=3)[1] <= 4.0
    assert all(np.isnan(M.bootstrap_ci(np.array([np.nan]))))


def test_paired_diff_ci() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(300)
    lo, hi = M.paired_bootstrap_diff_ci(a, a + 0.05 + 0.01 * rng.standard_normal(300))
    assert lo > 0
    lo, hi = M.paired_bootstrap_diff_ci(a, a)
    assert lo <= 0 <= hi


def test_pairwise_counts_give_pooled_auc_of_resampled_images() -> None:
    rng = np.random.default_rng(6)
    maps = rng.exponential(1.0, (6, 10, 10))
    masks = rng.random((6, 10, 10)) < 0.3
    maps += masks * rng.random((6, 10, 10))
    c, n_pos, n_neg = M.pairwise_auc_counts(maps, masks, bits=M.CI_BITS)
    w = np.array([2, 0, 1, 0, 3, 1])
    picked = np.repeat(np.arange(6), w)
    expected = M.pooled_auc(maps[picked], masks[picked], bits=M.CI_BITS)
    assert w @ c @ w / ((w @ n_pos) * (w @ n_neg)) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_ci_pooled_contains_estimate() -> None:
    rng = np.random.default_rng(8)
    maps = rng.gamma(2.0, 1.0, (40, 16, 16))
    masks = np.zeros(maps.shape, dtype=bool)
    masks[:, 4:10, 5:12] = True
    maps += masks * rng.random(maps.shape) * 2
    lo, hi = M.bootstrap_ci_pooled(maps, masks, n_resamples=300)
    assert lo < M.pooled_auc(maps, masks) < hi
    lo2, hi2 = M.bootstrap_ci_pooled(maps[:10], masks[:10], n_resamples=300)
    assert hi2 - lo2 > hi - lo


# ------------------------------------------------------------------------------ convenience


def test_localization_metrics_perfect_maps() -> None:
    maps, masks = _box_case()
    out = M.localization_metrics(maps, masks, healthy_maps=np.zeros_like(maps), n_resamples=50)
    for name in ["pooled_auc", "pixel_auc", "hit_rate", "miou", "dice", "energy", "detection_auc"]:
        assert out["summary"][name]["value"] == 1.0, name
        assert out["summary"][name]["ci"] == (1.0, 1.0), name
    assert out["summary"]["pooled_auc"]["n"] == 3
    assert set(out["per_image"]) >= {"pixel_auc", "hit_rate", "miou", "dice", "energy"}
    assert out["roc"]["fpr"][0] == 0.0 and out["roc"]["tpr"][-1] == 1.0
