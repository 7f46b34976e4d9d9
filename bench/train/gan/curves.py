"""Learning curves: the generator measured on a fixed subset of the tune split during training.

Every ``train.eval_every`` iterations (and at iteration 0 and the last iteration) the shared trainer
takes a *point*: location-matched and pooled AUC of the lesion map against the boxes (``lm_auc``,
``pooled_auc``) and, on data with exact lesion masks, against them (``mask_lm_auc``,
``mask_pooled_auc``), on the subset's Pneumonia images; the
share of translated Pneumonia images the evaluator calls Healthy (``accuracy_p2h``, only with a
judge); and the share of pixels changed by more than :data:`CHANGE_TOLERANCE` grey levels on
Pneumonia and on Healthy images (``change_rate_tol8_p2h``, ``change_rate_tol8_h2h``). A point also
holds ``iteration``, ``seconds`` (training wall-clock so far, evaluations excluded) and
``eval_seconds`` (what this point cost). The names match the run record's metrics.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

from bench.data.dataset import RSNADataset
from bench.data.domains import HEALTHY, PNEUMONIA
from bench.evaluate import metrics
from bench.evaluate.protocol import resize_maps

CHANGE_TOLERANCE = 8
CURVE_METRICS = (
    "lm_auc",
    "mask_lm_auc",
    "pooled_auc",
    "mask_pooled_auc",
    "accuracy_p2h",
    "change_rate_tol8_p2h",
    "change_rate_tol8_h2h",
)
CHUNK = 32  # images per forward pass


class Translator(Protocol):
    """What a curve point measures: a method's translation and lesion map (a GAN method)."""

    @property
    def map_is_change(self) -> bool:
        """Whether the lesion map is |translate(x, healthy) - x| (then the point reuses the translation)."""
        ...

    def translate(self, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor: ...

    def lesion_map(self, batch: dict[str, Any]) -> torch.Tensor: ...


def curve_subset(domains: np.ndarray, n: int) -> np.ndarray:
    """Positions of the curve images: the first ``ceil(n/2)`` Pneumonia and first ``floor(n/2)`` Healthy
    images in split order, the other domain filling in where one runs short; sorted."""
    domains = np.asarray(domains)
    pneu, healthy = np.flatnonzero(domains == PNEUMONIA), np.flatnonzero(domains == HEALTHY)
    n = min(n, len(pneu) + len(healthy))
    n_pneu = min(len(pneu), max(n - len(healthy), math.ceil(n / 2)))
    return np.sort(np.concatenate([pneu[:n_pneu], healthy[: n - n_pneu]]))


def is_due(iteration: int, every: int, last: int) -> bool:
    """Whether a point is taken at ``iteration``: 0, multiples of ``every`` and the run's ``last``."""
    return every > 0 and (iteration % every == 0 or iteration == last)


def kept_on_resume(points: list[dict[str, float]], every: int, iteration: int) -> list[dict[str, float]]:
    """Points of a checkpoint a resumed run keeps: those on its schedule (0 and multiples of ``every``)
    up to ``iteration``; an earlier run's last point off that schedule is dropped (and retaken if due)."""
    return [p for p in points if p["iteration"] <= iteration and every > 0 and p["iteration"] % every == 0]


class CurveProbe:
    """The fixed tune images of the learning curve and the measurement of one point."""

    def __init__(self, tune: RSNADataset, n_images: int, judge: Any | None = None) -> None:
        idx = curve_subset(tune.domains, n_images)
        batch = tune.batch(idx) if len(idx) else {}
        self.batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        self.domains = np.asarray(tune.domains)[idx]
        self.judge = judge
        self.size = tune.size

    def __len__(self) -> int:
        return len(self.domains)

    @torch.no_grad()
    def measure(self, method: Translator) -> dict[str, float]:
        """The curve metrics of ``method`` now (NaN ones left out)."""
        maps, translated = [], []
        for start in range(0, len(self), CHUNK):
            part = {k: v[start : start + CHUNK] for k, v in self.batch.items()}
            y = method.translate(part["image"], HEALTHY).float()
            # the default GAN map is |G(x, healthy) - x|: reuse the translation instead of running G twice
            change = (y - part["image"].float()).abs().mean(1) if method.map_is_change else None
            maps.append(resize_maps(method.lesion_map(part) if change is None else change, self.size))
            translated.append(y.cpu())
        maps_np = np.concatenate(maps)
        y = torch.cat(translated)
        x = self.batch["image"].float()
        pneu, healthy = self.domains == PNEUMONIA, self.domains == HEALTHY
        out: dict[str, float] = {}
        if pneu.any():
            for prefix, key in (("", "box_mask"), ("mask_", "lesion_mask")):
                if key in self.batch:
                    truth = self._truth(key)[pneu]
                    out[prefix + "lm_auc"] = metrics.lm_auc(maps_np[pneu], truth)
                    out[prefix + "pooled_auc"] = metrics.pooled_auc(maps_np[pneu], truth)
            if self.judge is not None:
                probs = self.judge.probs(y[torch.from_numpy(pneu)])
                out["accuracy_p2h"] = float(metrics.accuracy_healthy(probs, self.judge.threshold).mean())
        change = metrics.pixel_change_rate(x.numpy(), y.numpy(), tol=CHANGE_TOLERANCE)
        for key, sel in (("p2h", pneu), ("h2h", healthy)):
            if sel.any():
                out[f"change_rate_tol{CHANGE_TOLERANCE}_{key}"] = float(change[sel].mean())
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}

    def _truth(self, key: str) -> np.ndarray:
        return self.batch[key][:, 0].numpy() > 0.5
