"""``score --json``: the headline keys of external maps' figures."""

from __future__ import annotations

from bench.evaluate.figure import Figure, MetricId
from bench.evaluate.score import summary_json


def test_summary_json_headline_keys() -> None:
    figures = {
        MetricId.from_key(name): Figure.of(MetricId.from_key(name), value, (value - 0.1, value + 0.1), 7)
        for name, value in [
            ("pooled_auc", 0.8),
            ("pooled_ap", 0.4),
            ("pixel_auc", 0.7),
            ("ap", 0.35),
            ("hit_rate", 0.5),
            ("mask_pooled_ap", 0.6),
        ]
    }
    scored = {"figures": figures, "n_images": 7, "missing": 1, "ignored": ["x"]}
    out = summary_json("ext", scored)
    assert out["pooled_ap"] == 0.4 and out["pooled_auc"] == 0.8
    assert out["per_image_auc"] == 0.7 and out["per_image_ap"] == 0.35 and out["hit_rate"] == 0.5
    assert "pixel_auc" not in out and "ap" not in out and "detection_auc" not in out  # absent figures stay absent
    assert out["figures"]["mask_pooled_ap"]["direction"] == "higher"
    assert (out["n_images"], out["missing"], out["ignored"]) == (7, 1, 1)


def test_a_fixed_map_for_every_image_scores_one_half(smoke_cfg, smoke_data) -> None:
    import numpy as np

    from bench.evaluate.score import score_maps

    fixed = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    ids = list(smoke_data.cache.patient_ids)
    scored = score_maps({pid: fixed for pid in ids}, smoke_data, smoke_cfg, split="all")
    out = summary_json("fixed", scored)
    assert out["lm_auc"] == 0.5 and out["lm_auc_all"] == 0.5
