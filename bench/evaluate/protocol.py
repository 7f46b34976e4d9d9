"""Evaluating one trained method on the test split (SPEC 3).

For every test image the method's lesion map is computed; translation methods also translate
the image to Healthy, which gives the pixel change rate (3.1) and, judged by the evaluator, the
accuracy after translation (3.2). Localization (3.3) is scored on the Pneumonia images against
the rasterized boxes and, on synthetic data, against the pixel-exact masks; a method that learns
gets the model-randomization check. Every figure comes with its per-image values so runs can be
compared image by image. Metrics' summaries become :class:`bench.evaluate.figure.Figure` here and only here,
keyed by their :class:`bench.evaluate.figure.MetricId`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch

from bench.config import EvalConfig
from bench.data.dataset import RSNADataset
from bench.data.domains import HEALTHY, PNEUMONIA
from bench.evaluate import metrics
from bench.evaluate.figure import Figure, MetricId, localization_id
from bench.method import Method
from bench.progress import bar


class Judge(Protocol):
    """What evaluation needs of the classifier: P(pneumonia) and its fixed threshold."""

    threshold: float

    def probs(self, images: torch.Tensor) -> np.ndarray: ...


@dataclass
class MethodEval:
    """Everything measured for one method on one seed."""

    figures: dict[MetricId, Figure] = field(default_factory=dict)
    per_image: dict[MetricId, dict[str, float]] = field(default_factory=dict)  # metric -> patientId -> value
    roc: dict[str, np.ndarray] | None = None
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # patientId -> lesion map
    # metric -> bootstrap statistic per resample; resample r draws the same images for every seed,
    # so several seeds' CI is taken over the seed-mean of each resample (metrics.seed_mean_ci)
    resamples: dict[MetricId, np.ndarray] = field(default_factory=dict)


@dataclass
class Outputs:
    """Raw method outputs over the validation split."""

    patient_ids: list[str]
    domains: np.ndarray
    maps: np.ndarray  # (N, S, S) float32
    box_masks: np.ndarray  # (N, S, S) bool
    lesion_masks: np.ndarray | None
    change: dict[int, np.ndarray] = field(default_factory=dict)  # tolerance -> per-image rate
    p_translated: np.ndarray | None = None  # evaluator's P(pneumonia) of G(x, healthy)


@torch.no_grad()
def collect_outputs(
    method: Method, ds: RSNADataset, judge: Judge | None, cfg: EvalConfig, progress: bool = True
) -> Outputs:
    """Run the method over a split in batches: maps, and for translators change rates and judge scores."""
    n, size = len(ds), ds.size
    maps = np.zeros((n, size, size), np.float32)
    boxes = np.zeros((n, size, size), bool)
    lesions = np.zeros((n, size, size), bool) if ds.has_lesion_masks else None
    tolerances = (0, *cfg.tolerances)
    change = {t: np.zeros(n) for t in tolerances} if method.translates else {}
    p_trans = np.zeros(n) if method.translates and judge is not None else None
    for start in bar(range(0, n, cfg.batch_size), desc=f"evaluating {method.name}", unit="batch", enabled=progress):
        idx = np.arange(start, min(n, start + cfg.batch_size))
        batch = ds.batch(idx)
        x = batch["image"].to(method.device)
        maps[idx] = resize_maps(method.lesion_map(batch), size)
        boxes[idx] = batch["box_mask"][:, 0].numpy() > 0.5
        if lesions is not None:
            lesions[idx] = batch["lesion_mask"][:, 0].numpy() > 0.5
        if method.translates:
            y = method.translate(x, HEALTHY).float()
            x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
            for t in tolerances:
                change[t][idx] = metrics.pixel_change_rate(x_np, y_np, tol=t)
            if p_trans is not None:
                p_trans[idx] = judge.probs(y)
    return Outputs(list(ds.patient_ids), np.asarray(ds.domains), maps, boxes, lesions, change, p_trans)


def resize_maps(m: torch.Tensor, size: int) -> np.ndarray:
    """A (B, h, w) map as float32 numpy at (B, size, size), resized bilinearly when needed."""
    m = m.detach().float()
    if m.shape[-2:] != (size, size):
        m = torch.nn.functional.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return m.cpu().numpy().astype(np.float32)


def _mean_figure(name: MetricId, values: np.ndarray, cfg: EvalConfig) -> tuple[Figure, np.ndarray | None]:
    """Mean over the finite values with its bootstrap CI, and the per-resample statistics behind it
    (resampling every image of the group, NaN ones included, so the draws match across seeds)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Figure.of(name, None, None, 0), None
    stats = metrics.bootstrap_stats(
        np.where(np.isfinite(values), values, np.nan), n_resamples=cfg.n_bootstrap, seed=cfg.bootstrap_seed
    )
    return Figure.of(name, float(finite.mean()), metrics.seed_mean_ci([stats]), int(finite.size)), stats


def _group_masks(domains: np.ndarray) -> dict[str, np.ndarray]:
    return {"p2h": domains == PNEUMONIA, "h2h": domains == HEALTHY, "all2h": np.ones(len(domains), bool)}


def translation_figures(out: Outputs, judge: Judge | None, cfg: EvalConfig, result: MethodEval) -> None:
    """Pixel change rates (SPEC 3.1) and accuracy after translation (3.2) per group."""
    if not out.change:
        return
    for key, sel in _group_masks(out.domains).items():
        for t, rates in out.change.items():
            _add(result, MetricId("change_rate", group=key, tolerance=t), rates, sel, out, cfg)
        if out.p_translated is not None and judge is not None:
            healthy = metrics.accuracy_healthy(out.p_translated, judge.threshold).astype(float)
            _add(result, MetricId("accuracy", group=key), healthy, sel, out, cfg)
            at_half = metrics.accuracy_healthy(out.p_translated, 0.5).astype(float)
            _add(result, MetricId("accuracy05", group=key), at_half, sel, out, cfg)


def _add(
    result: MethodEval, name: MetricId, values: np.ndarray, sel: np.ndarray, out: Outputs, cfg: EvalConfig
) -> None:
    result.figures[name], stats = _mean_figure(name, values[sel], cfg)
    if stats is not None:
        result.resamples[name] = stats
    ids = [pid for pid, s in zip(out.patient_ids, sel) if s]
    result.per_image[name] = dict(zip(ids, values[sel].tolist()))


def localization_figures(out: Outputs, cfg: EvalConfig, result: MethodEval) -> None:
    """SPEC 3.3 against boxes (and exact masks on synthetic data), Pneumonia validation images."""
    pneu, healthy = out.domains == PNEUMONIA, out.domains == HEALTHY
    if not pneu.any():
        return
    truths = {"boxes": out.box_masks}
    if out.lesion_masks is not None:
        truths["masks"] = out.lesion_masks
    ids = [pid for pid, s in zip(out.patient_ids, pneu) if s]
    for target, truth in truths.items():
        loc = metrics.localization_metrics(
            out.maps[pneu],
            truth[pneu],
            healthy_maps=out.maps[healthy] if healthy.any() else None,
            n_resamples=cfg.n_bootstrap,
            seed=cfg.bootstrap_seed,
        )
        for name, s in loc["summary"].items():
            metric = localization_id(name, target)
            result.figures[metric] = Figure.from_summary(metric, s)
            if name in loc["bootstrap"]:
                result.resamples[metric] = loc["bootstrap"][name]
        for name, values in loc["per_image"].items():
            if name in ("max", "healthy_max"):
                continue
            result.per_image[localization_id(name, target)] = dict(zip(ids, np.asarray(values, dtype=float).tolist()))
        if target == "boxes":
            result.roc = loc["roc"]


def randomization_seed(cfg: EvalConfig) -> int:
    """Seed of the freshly initialized weights of the model-randomization check (fixed per config)."""
    return cfg.bootstrap_seed + 1


@torch.no_grad()
def randomization_figure(method: Method, ds: RSNADataset, out: Outputs, cfg: EvalConfig, result: MethodEval) -> None:
    """Model-randomization sanity (SPEC 3.3, Adebayo et al. 2018): per Pneumonia image, the Spearman
    correlation between the trained method's map and the map of the same method with fresh random
    weights; ``randomization_rho`` is their mean (lower is better). Methods that learn nothing
    (references) return no randomized copy and get no figure."""
    random = None if method.reference else method.randomized(randomization_seed(cfg))
    if random is None:
        return
    pneu = out.domains == PNEUMONIA
    rho = np.full(len(out.domains), np.nan)
    rows = np.flatnonzero(pneu)
    for start in range(0, rows.size, cfg.batch_size):
        idx = rows[start : start + cfg.batch_size]
        random_maps = resize_maps(random.lesion_map(ds.batch(idx)), ds.size)
        rho[idx] = metrics.spearman_per_image(out.maps[idx], random_maps)
    _add(result, MetricId("randomization_rho"), rho, pneu, out, cfg)


def evaluate(
    method: Method,
    ds: RSNADataset,
    judge: Judge | None,
    cfg: EvalConfig,
    example_ids: list[str] | None = None,
    progress: bool = True,
) -> MethodEval:
    """All SPEC 3 figures of one method on one split, with per-image values."""
    out = collect_outputs(method, ds, judge, cfg, progress)
    result = MethodEval()
    translation_figures(out, judge, cfg, result)
    localization_figures(out, cfg, result)
    if out.domains.size and (out.domains == PNEUMONIA).any():
        randomization_figure(method, ds, out, cfg, result)
    position = {pid: i for i, pid in enumerate(out.patient_ids)}
    for pid in example_ids or []:
        if pid in position:
            result.examples[pid] = out.maps[position[pid]]
    return result


@torch.no_grad()
def untranslated_accuracy(ds: RSNADataset, judge: Judge, cfg: EvalConfig) -> dict[MetricId, Figure]:
    """Table 1's reference column: the share of real, untranslated images judged Healthy."""
    n = len(ds)
    probs = np.zeros(n)
    for start in range(0, n, cfg.batch_size):
        idx = np.arange(start, min(n, start + cfg.batch_size))
        probs[idx] = judge.probs(ds.batch(idx)["image"])
    out: dict[MetricId, Figure] = {}
    for key, sel in _group_masks(np.asarray(ds.domains)).items():
        for metric, threshold in (("accuracy", judge.threshold), ("accuracy05", 0.5)):
            healthy = metrics.accuracy_healthy(probs[sel], threshold).astype(float)
            name = MetricId(metric, group=key)
            out[name] = replace(_mean_figure(name, healthy, cfg)[0], direction="none")
    return out


def pick_examples(ds: RSNADataset, n: int) -> list[str]:
    """The first ``n`` Pneumonia and ``n`` Healthy validation patientIds (for the qualitative figure)."""
    pneu = [ds.patient_ids[i] for i in np.flatnonzero(ds.domains == PNEUMONIA)[:n]]
    healthy = [ds.patient_ids[i] for i in np.flatnonzero(ds.domains == HEALTHY)[:n]]
    return pneu + healthy
