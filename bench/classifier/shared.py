"""One trained classifier per data and settings, shared by the methods that use it
(``Method.uses_classifier``) and the evaluator.

A finished classifier is published as ``<store>/<key>/classifier.pt`` where the key is the
classifier's identity: ``cfg.classifier``, ``cfg.data``, the seed, the precision and the data
manifest hash (:func:`bench.classifier.train.classifier_key`); the input size ``cfg.classifier.size``
is one of the settings, so another size trains another classifier. Whoever needs the classifier
next (another method, the evaluator of another method's run) finds it there instead of training it
again. The store defaults to ``<LESIONBENCH_HOME>/classifiers``. User-supplied weights
(``cfg.classifier.weights``) bypass training and the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.classifier.model import DenseNetClassifier
from bench.classifier.train import classifier_key, train_classifier
from bench.classifier.weights import (
    WEIGHTS_KIND,
    export_weights,
    load_classifier,
    load_user_classifier,
)
from bench.config import Config, to_dict
from bench.data.cache import lesionbench_home
from bench.data.dataset import RSNADataset
from bench.errors import BenchError
from bench.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "classifier_checkpoint.pt"
WEIGHTS_NAME = "classifier.pt"


@dataclass
class ClassifierBundle:
    """A ready classifier (eval mode) and where it came from."""

    model: DenseNetClassifier
    source: str  # "trained" | "reused" | "user weights"
    key: str | None
    path: Path | None  # the weights file it was loaded from or published to
    train_tune_auc: float = float("nan")  # best tune-split AUC of its training (NaN for user weights)

    def info(self) -> dict[str, Any]:
        """Plain JSON-safe description for logs and run records (NaN written as None)."""
        auc = self.train_tune_auc if math.isfinite(self.train_tune_auc) else None
        return {
            "source": self.source,
            "key": self.key,
            "path": None if self.path is None else str(self.path),
            "train_tune_auc": auc,
        }


def classifier_store(cache_dir: str | Path | None = None) -> Path:
    """The folder of trained classifiers (``cache_dir`` or ``<LESIONBENCH_HOME>/classifiers``)."""
    return Path(cache_dir) if cache_dir is not None else lesionbench_home() / "classifiers"


def load_published(
    path: Path, key: str, device: torch.device, channels_last: bool, size: int
) -> tuple[DenseNetClassifier, float]:
    """Load a classifier published by :func:`obtain_classifier` (checking its key) at input ``size``
    px, and its tune-split AUC from training."""
    state = load_checkpoint(path)
    if state.get("kind") != WEIGHTS_KIND or state.get("key") != key:
        raise BenchError(f"{path}: not the trained classifier for key {key}; delete it to retrain")
    model = load_classifier(state["model"], str(path), device, channels_last, size=size)
    return model, float(state.get("val_auc", float("nan")))


def obtain_classifier(
    cfg: Config,
    train: RSNADataset,
    val: RSNADataset,
    device: torch.device,
    store_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> ClassifierBundle:
    """User weights, else the published classifier for this key, else train (checkpoints in
    ``work_dir``, default the store entry) and publish it."""
    c = cfg.classifier
    if c.weights:
        return ClassifierBundle(
            load_user_classifier(c.weights, device, c.channels_last, size=c.size), "user weights", None, Path(c.weights)
        )
    key = classifier_key(cfg, train.cache.content_hash)
    entry = classifier_store(store_dir) / key
    published = entry / WEIGHTS_NAME
    if published.is_file():
        model, val_auc = load_published(published, key, device, c.channels_last, c.size)
        return ClassifierBundle(model, "reused", key, published, val_auc)
    ckpt = Path(work_dir or entry) / CHECKPOINT_NAME
    outcome = train_classifier(cfg, train, val, ckpt, resume=resume, progress=progress, device=device)
    save_checkpoint(
        published,
        {
            "kind": WEIGHTS_KIND,
            "key": key,
            "model": export_weights(outcome.model),
            "val_auc": outcome.val_auc,
            "best_step": outcome.state.best_step,
            "steps": outcome.state.step,
            "history": outcome.state.history,
            "config": to_dict(cfg),
        },
    )
    return ClassifierBundle(outcome.model, "trained", key, published, outcome.val_auc)
