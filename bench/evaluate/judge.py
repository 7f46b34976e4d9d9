"""The Table 1 evaluator (SPEC 3.2): the CheXNet classifier judging whether an image looks healthy.

``get_evaluator`` returns the classifier trained for these data and settings, loading it from
the shared store when a method using the classifier or an earlier evaluation already trained it
(:mod:`bench.classifier.shared`), loading user weights when ``cfg.classifier.weights`` is set,
and training it otherwise (early stopping on the tune split). Its decision threshold is fixed once on
the real tune images (never on the test images it judges) by
Youden's J (maximum of tpr - fpr over sklearn's ``roc_curve``, :mod:`bench.evaluate.metrics`); an image
is classified Healthy when P(pneumonia) < threshold. The classifier's own AUC on the real test images is
reported beside it, since an evaluator that cannot tell real Pneumonia from Healthy makes the
table meaningless. Trained evaluators are also kept in memory for the process, keyed by settings,
data, store folder and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.classifier.model import (
    DenseNetClassifier,
    auc_or_nan,
    dataset_logits,
    predict_logits,
)
from bench.classifier.shared import obtain_classifier
from bench.classifier.train import classifier_key
from bench.config import Config
from bench.data import PreparedData
from bench.data.domains import PNEUMONIA
from bench.evaluate.metrics import youden_threshold
from bench.train.device import resolve_device

_MEMO: dict[tuple[Any, ...], Evaluator] = {}


def fixed_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """Youden threshold of P(pneumonia) on real images (:func:`bench.evaluate.metrics.youden_threshold`);
    0.5 when one of the two domains is absent."""
    labels = np.asarray(labels) == PNEUMONIA
    if labels.all() or not labels.any():
        return 0.5
    return youden_threshold(labels.astype(np.int64), probs)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


@dataclass
class Evaluator:
    """The trained classifier with its Youden threshold (from tune) and its AUC on real test images."""

    model: DenseNetClassifier
    threshold: float
    test_auc: float
    tune_auc: float = float("nan")
    batch_size: int = 32
    bf16: bool = False
    channels_last: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def probs(self, images: torch.Tensor) -> np.ndarray:
        """P(pneumonia) (B,) float64 for images (B, 1, H, W) in [-1, 1]."""
        logits = predict_logits(self.model, images, self.batch_size, self.bf16, self.channels_last)
        return _sigmoid(logits.numpy())

    def describe(self) -> dict[str, Any]:
        """Threshold and where it was fixed, AUCs (None if undefined), the classifier's input size and
        final feature-map side (px), and its origin."""

        def finite(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "threshold": self.threshold,
            "threshold_source": "tune",
            "test_auc": finite(self.test_auc),
            "tune_auc": finite(self.tune_auc),
            "input_size": self.model.size,
            "feature_map": self.model.feature_side,
            **self.info,
        }


def build_evaluator(
    model: DenseNetClassifier, data: PreparedData, cfg: Config, info: dict[str, Any] | None = None
) -> Evaluator:
    """Wrap a classifier: fix the Youden threshold on ``data.tune``, measure its AUC on ``data.test``."""
    bf16, cl = cfg.train.bf16, cfg.classifier.channels_last
    tune_probs = _sigmoid(dataset_logits(model, data.tune, cfg.eval.batch_size, bf16, cl))
    test_probs = _sigmoid(dataset_logits(model, data.test, cfg.eval.batch_size, bf16, cl))
    return Evaluator(
        model.eval(),
        fixed_threshold(data.tune.domains, tune_probs),
        auc_or_nan(data.test.domains, test_probs),
        auc_or_nan(data.tune.domains, tune_probs),
        cfg.eval.batch_size,
        bf16,
        cl,
        dict(info or {}),
    )


def _memo_key(cfg: Config, data: PreparedData, cache_dir: str | Path | None, device: torch.device) -> tuple[Any, ...]:
    """The classifier's identity plus what else shapes an evaluator: the user weights file's
    modification time, the inference batch size, the store folder and the device."""
    weights = cfg.classifier.weights
    stamp = Path(weights).stat().st_mtime_ns if weights and Path(weights).is_file() else None
    return (classifier_key(cfg, data.manifest_hash), stamp, cfg.eval.batch_size, str(cache_dir), str(device))


def get_evaluator(
    cfg: Config,
    data: PreparedData,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Evaluator:
    """The evaluator for these data and settings: user weights, the already trained classifier
    (in ``cache_dir``, default ``<LESIONBENCH_HOME>/classifiers``), or a newly trained one."""
    dev = resolve_device(cfg.train.device if device is None else device)
    key = _memo_key(cfg, data, cache_dir, dev)
    if key not in _MEMO:
        bundle = obtain_classifier(cfg, data.train, data.tune, dev, store_dir=cache_dir, progress=progress)
        _MEMO[key] = build_evaluator(bundle.model, data, cfg, bundle.info())
    return _MEMO[key]
