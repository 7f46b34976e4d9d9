"""``python -m bench data prior``: the labels-only location prior of any RSNA-layout folder.

The prior is the mean box mask of the training split's Pneumonia patients; it is scored on the
test split's Pneumonia patients with the suite's own split (:func:`bench.data.rsna.splits_for`)
and rasterization (:func:`bench.evaluate.metrics.rasterize_boxes`). Only the two CSVs are read, so it runs
on a folder without images, in seconds: what a map that never looks at an image scores on this
data, the level below which a pooled figure says nothing about lesions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.config import DataConfig, EvalConfig
from bench.data.domains import PNEUMONIA
from bench.data.rsna import Patient, boxes_xyxy, read_labels, splits_for
from bench.errors import BenchError
from bench.evaluate import metrics
from bench.evaluate.figure import Figure, MetricId

RSNA_IMAGE_SIZE = 1024
"""Rows and columns of every RSNA Pneumonia Detection Challenge DICOM: the boxes' pixel frame."""


def source_size(root: Path) -> int:
    """The pixel frame of the CSV boxes: the synthetic manifest's size, else RSNA's 1024."""
    manifest = root / "synthetic.json"
    if manifest.is_file():
        return int(json.loads(manifest.read_text()).get("size", RSNA_IMAGE_SIZE))
    return RSNA_IMAGE_SIZE


def box_masks(patients: list[Patient], image_size: int, size: int) -> np.ndarray:
    """The patients' box masks at ``size`` px, boxes scaled from ``image_size`` px, ``(N, size, size)``."""
    boxes = np.stack([boxes_xyxy(p.boxes, image_size, image_size, size) for p in patients])
    n_boxes = np.array([len(p.boxes) for p in patients])
    return metrics.rasterize_boxes(boxes, n_boxes, size)


def labels_prior(
    root: Path, cfg: DataConfig, ev: EvalConfig, image_size: int | None = None
) -> tuple[dict[str, Figure], dict[str, int]]:
    """Fit the prior on the train split, score it on the test split: figures and patient counts."""
    labels = read_labels(root, include_not_normal=cfg.include_not_normal, strict=cfg.strict)
    parts = splits_for(labels, cfg)
    train = [p for p in parts["train"] if p.domain == PNEUMONIA and p.boxes]
    test = [p for p in parts["test"] if p.domain == PNEUMONIA and p.boxes]
    if not train or not test:
        raise BenchError(
            f"{root}: the train and test splits need Pneumonia patients with boxes (have {len(train)} / {len(test)})"
        )
    frame = image_size or source_size(root)
    prior = box_masks(train, frame, cfg.size).mean(axis=0, dtype=np.float64).astype(np.float32)
    truth = box_masks(test, frame, cfg.size)
    maps = np.broadcast_to(prior, truth.shape)
    figures = prior_figures(maps, truth, ev)
    return figures, {"train": len(train), "test": len(test), "size": cfg.size, "image_size": frame}


def prior_figures(maps: np.ndarray, truth: np.ndarray, ev: EvalConfig) -> dict[str, Figure]:
    """Pooled AUC and AP, per-image AUC and hit rate with their bootstrap CIs, and lm_auc (0.5 by
    construction for a map the same for every image: computed, as the check it is)."""
    n = len(maps)
    r, seed = ev.n_bootstrap, ev.bootstrap_seed
    roc = metrics.pooled_roc(maps, truth)
    figures = {
        "pooled_auc": Figure.of(_box("pooled_auc"), roc.auc(), metrics.bootstrap_ci_pooled(maps, truth, r, seed), n),
        "pooled_ap": Figure.of(_box("pooled_ap"), roc.ap(), metrics.bootstrap_ci_pooled_ap(maps, truth, r, seed), n),
    }
    for name, values in (("pixel_auc", metrics.per_image_auc(maps, truth)), ("hit_rate", metrics.hit(maps, truth))):
        finite = values[np.isfinite(values)]
        ci = metrics.bootstrap_ci(values, n_resamples=r, seed=seed)
        figures[name] = Figure.of(_box(name), float(finite.mean()) if finite.size else None, ci, int(finite.size))
    figures["lm_auc"] = Figure.of(_box("lm_auc"), metrics.lm_auc(maps, truth), None, n)
    return figures


def _box(name: str) -> MetricId:
    """The MetricId of localization figure ``name`` against the boxes."""
    return MetricId(name, target="boxes")


def format_prior(root: Path, figures: dict[str, Figure], counts: dict[str, int]) -> str:
    """The human-readable summary of :func:`labels_prior`."""
    labels = {
        "pooled_auc": "pooled AUC",
        "pooled_ap": "pooled AP",
        "pixel_auc": "per-image AUC",
        "hit_rate": "hit rate",
    }
    lines = [
        f"location prior of {root}: mean box mask of {counts['train']:,} train Pneumonia patients, scored on "
        f"{counts['test']:,} test Pneumonia patients at {counts['size']} px (boxes in {counts['image_size']} px frames)"
    ]
    for key, label in labels.items():
        f = figures[key]
        ci = f" [{f.ci[0]:.3f}, {f.ci[1]:.3f}]" if f.ci else ""
        lines.append(f"  {label:<14} {f.value:.3f}{ci}")
    lm = figures["lm_auc"].value
    check = "ok" if lm == 0.5 else "FAILED"
    lines.append(f"  {'lm_auc':<14} {lm:.3f} (0.5 by construction for an image-blind map: check {check})")
    lines.append("A method's pooled figure means something about lesions only above these; lm_auc discounts the prior.")
    return "\n".join(lines)


def prior_json(figures: dict[str, Figure], counts: dict[str, int]) -> dict[str, object]:
    """One JSON object: the record's metric entries (value, ci, n, direction, group) plus the counts."""
    return {**{k: f.as_dict() for k, f in figures.items()}, "counts": counts}
