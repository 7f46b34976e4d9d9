"""Location-matched AUC (SPEC 3.3) against a brute-force pair count, and its invariances."""

from __future__ import annotations

import numpy as np
import pytest

from bench.evaluate.metrics import lm_auc, localization_metrics, location_pairs, normalize_maps


def brute_force(maps: np.ndarray, masks: np.ndarray, healthy: np.ndarray | None = None) -> float:
    """Every pair (positive of image i at l, negative of another image j at l), ties one half."""
    s = normalize_maps(maps)
    h = None if healthy is None else normalize_maps(healthy)
    wins = pairs = 0.0
    n, height, width = s.shape
    for y in range(height):
        for x in range(width):
            for i in range(n):
                if not masks[i, y, x]:
                    continue
                negatives = [s[j, y, x] for j in range(n) if j != i and not masks[j, y, x]]
                if h is not None:
                    negatives += list(h[:, y, x])
                for v in negatives:
                    pairs += 1
                    wins += 1.0 if s[i, y, x] > v else 0.5 if s[i, y, x] == v else 0.0
    return wins / pairs


def random_case(seed: int, n: int = 7, size: int = 6, levels: int = 4, n_healthy: int = 3):
    rng = np.random.default_rng(seed)
    maps = rng.integers(0, levels, (n, size, size)).astype(np.float32)  # few levels: many ties
    masks = rng.random((n, size, size)) < 0.35
    healthy = rng.integers(0, levels, (n_healthy, size, size)).astype(np.float32)
    return maps, masks, healthy


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_with_ties(seed: int) -> None:
    maps, masks, healthy = random_case(seed)
    assert lm_auc(maps, masks) == pytest.approx(brute_force(maps, masks), abs=1e-12)
    assert lm_auc(maps, masks, healthy) == pytest.approx(brute_force(maps, masks, healthy), abs=1e-12)
    pairs = location_pairs(maps, masks, healthy)
    assert pairs.auc() == pytest.approx(brute_force(maps, masks), abs=1e-12)
    assert pairs.auc(healthy=True) == pytest.approx(brute_force(maps, masks, healthy), abs=1e-12)


def test_small_blocks_give_the_same_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.evaluate.metrics.location as location

    maps, masks, healthy = random_case(11, n=9, size=8)
    whole = location.location_pairs(maps, masks, healthy)
    value = location.lm_auc(maps, masks, healthy)
    monkeypatch.setattr(location, "BLOCK_CELLS", 5)
    blocked = location.location_pairs(maps, masks, healthy)
    np.testing.assert_array_equal(whole.wins2, blocked.wins2)
    np.testing.assert_array_equal(whole.pairs, blocked.pairs)
    assert location.lm_auc(maps, masks, healthy) == value


def test_any_fixed_map_scores_exactly_one_half() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((12, 16, 16)) < 0.2
    prior = masks.mean(axis=0)  # the location prior: the mean mask, the same for every image
    for fixed in (prior, np.zeros((16, 16)), rng.random((16, 16))):
        maps = np.broadcast_to(fixed, masks.shape).astype(np.float32)
        healthy = np.broadcast_to(fixed, (5, 16, 16)).astype(np.float32)
        assert lm_auc(maps, masks) == 0.5
        assert lm_auc(maps, masks, healthy) == 0.5


def test_ideal_map_scores_one_and_its_inverse_zero() -> None:
    rng = np.random.default_rng(4)
    masks = rng.random((10, 12, 12)) < 0.3
    assert lm_auc(masks.astype(np.float32), masks) == 1.0
    assert lm_auc(1.0 - masks.astype(np.float32), masks) == 0.0


def test_undefined_without_pairs() -> None:
    masks = np.zeros((4, 5, 5), bool)
    assert np.isnan(lm_auc(np.random.default_rng(0).random((4, 5, 5)), masks))


def test_resample_with_unit_counts_is_the_point_estimate() -> None:
    maps, masks, healthy = random_case(7)
    pairs = location_pairs(maps, masks, healthy)
    ones_p, ones_h = np.ones((1, len(maps)), np.int64), np.ones((1, len(healthy)), np.int64)
    assert pairs.resampled(ones_p)[0] == pytest.approx(lm_auc(maps, masks))
    assert pairs.resampled(ones_p, ones_h)[0] == pytest.approx(lm_auc(maps, masks, healthy))


def test_resample_equals_the_auc_of_the_duplicated_images() -> None:
    maps, masks, healthy = random_case(8)
    counts = np.array([[2, 0, 1, 1, 3, 0, 0]])
    take = np.repeat(np.arange(len(maps)), counts[0])
    expected = brute_force(maps[take], masks[take])
    assert location_pairs(maps, masks).resampled(counts)[0] == pytest.approx(expected, abs=1e-12)


def test_localization_metrics_report_it_with_a_ci() -> None:
    maps, masks, healthy = random_case(9, n=20, size=8, levels=50)
    out = localization_metrics(maps, masks, healthy_maps=healthy, n_resamples=200, seed=0)
    for name, healthy_too in (("lm_auc", False), ("lm_auc_all", True)):
        fig = out["summary"][name]
        assert fig["value"] == pytest.approx(lm_auc(maps, masks, healthy if healthy_too else None))
        assert fig["ci"][0] <= fig["value"] <= fig["ci"][1]
        assert out["bootstrap"][name].shape == (200,)
