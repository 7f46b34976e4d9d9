"""Training the CheXNet classifier: balanced sampling, augmentation, early stopping on tune.

- **Training.** AdamW (``lr``, ``weight_decay``) at a constant learning rate on the real
  training images of both domains. Class balance: every sample of a batch picks its domain with
  probability 1/2, then an image of that domain uniformly (balanced sampling, not loss weights).
  Augmentation: horizontal flip with probability 1/2 and a small random affine (rotation
  +-5 degrees, scale +-5 %, shift +-4 % of the side, border padding). Every random draw comes from
  one ``torch.Generator`` seeded by ``cfg.train.seed`` whose state is checkpointed, so training
  is deterministic per seed and an interrupted run resumes to the same result.
- **Early stopping.** The tune-split AUC is computed every ``eval_every`` steps (and at the
  end); the best weights are kept and training stops after ``patience`` evaluations without
  improvement. The returned classifier is the best one. When the tune split lacks one of
  the two domains the AUC is undefined; then early stopping is off and the last weights are kept.
- **Checkpoints.** Written atomically at each evaluation (model, optimizer, generator, best
  weights, history) and loaded with ``weights_only=True``. A checkpoint carries the key of the
  settings and data it was trained for; resuming from one with another key is an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.classifier.model import (
    ARCH,
    DenseNetClassifier,
    auc_or_nan,
    autocast,
    build_classifier,
    dataset_logits,
    to_model_input,
)
from bench.classifier.weights import export_weights
from bench.config import Config, to_dict
from bench.data.dataset import RSNADataset
from bench.data.domains import DOMAIN_CODES, PNEUMONIA
from bench.errors import BenchError
from bench.identity import artifact_identity
from bench.progress import bar as progress_bar
from bench.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_KIND = "lesionbench.classifier.train"
MAX_ROTATE_DEG = 5.0
MAX_SCALE = 0.05
MAX_SHIFT = 0.04  # fraction of the image side


def classifier_key(cfg: Config, manifest_hash: str) -> str:
    """Identity of a trained classifier: its settings (with seed and precision), data settings and
    manifest; network sizes and the GAN schedule do not enter (:func:`bench.identity.artifact_identity`)."""
    return artifact_identity(
        "classifier", cfg, manifest_hash, {"arch": ARCH}, classifier=True, model=False, schedule=False
    )


def balanced_indices(domains: np.ndarray, batch_size: int, gen: torch.Generator) -> np.ndarray:
    """Batch positions: each sample picks a domain with probability 1/2, then an image of it."""
    groups = [np.flatnonzero(domains == d) for d in DOMAIN_CODES]
    groups = [g for g in groups if len(g)] or [np.arange(len(domains))]
    choice = torch.randint(len(groups), (batch_size,), generator=gen).numpy()
    pick = torch.rand(batch_size, generator=gen, dtype=torch.float64).numpy()
    return np.array([groups[c][int(p * len(groups[c]))] for c, p in zip(choice, pick)], dtype=np.int64)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and small affine transform of a batch (B, 1, H, W)."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(MAX_ROTATE_DEG)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * MAX_SCALE
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * MAX_SHIFT)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    sign = torch.where(flip, -1.0, 1.0)
    theta = torch.stack(
        [
            torch.stack([cos * sign, -sin, shift[:, 0]], dim=1),
            torch.stack([sin * sign, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class TrainState:
    """Everything a resumed run needs besides model and optimizer."""

    step: int = 0
    best_auc: float = float("nan")
    best_step: int = -1
    bad_evals: int = 0
    done: bool = False
    history: list[list[float]] = field(default_factory=list)  # [step, tune_auc, mean train loss]


@dataclass
class TrainOutcome:
    """A trained classifier (best weights, eval mode) and how training went."""

    model: DenseNetClassifier
    val_auc: float
    state: TrainState
    seconds: float
    resumed_from: int = 0


class ClassifierTrainer:
    """One training run: model, optimizer, generator and the early-stopping state."""

    def __init__(self, cfg: Config, train: RSNADataset, val: RSNADataset, key: str, device: torch.device) -> None:
        self.cfg, self.c = cfg, cfg.classifier
        self.train_data, self.val_data, self.key, self.device = train, val, key, device
        self.model = build_classifier(cfg.train.seed, device, self.c.channels_last, size=self.c.size)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.c.lr, weight_decay=self.c.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.train.seed)
        self.state = TrainState()
        self.best: dict[str, torch.Tensor] = export_weights(self.model)
        self.losses: list[float] = []

    def checkpoint(self) -> dict[str, Any]:
        """The resumable state as a ``weights_only``-loadable dict."""
        s = self.state
        return {
            "kind": CHECKPOINT_KIND,
            "key": self.key,
            "step": s.step,
            "best_auc": s.best_auc,
            "best_step": s.best_step,
            "bad_evals": s.bad_evals,
            "done": s.done,
            "history": s.history,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "best_model": self.best,
            "config": to_dict(self.cfg),
        }

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` for the same key."""
        if ckpt.get("kind") != CHECKPOINT_KIND:
            raise BenchError(f"{path}: not a classifier training checkpoint")
        if ckpt.get("key") != self.key:
            raise BenchError(
                f"{path}: checkpoint was written for other classifier settings or data "
                f"(key {ckpt.get('key')} != {self.key}); delete it or run without resume"
            )
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(ckpt["generator"].cpu())
        self.best = ckpt["best_model"]
        self.state = TrainState(
            ckpt["step"],
            ckpt["best_auc"],
            ckpt["best_step"],
            ckpt["bad_evals"],
            ckpt["done"],
            [list(h) for h in ckpt["history"]],
        )

    def step(self) -> float:
        """One optimisation step on a balanced, augmented batch; returns the loss."""
        idx = balanced_indices(self.train_data.domains, self.c.batch_size, self.gen)
        batch = self.train_data.batch(idx)
        x = batch["image"]
        if self.c.augment:
            x = augment(x, self.gen)
        x = to_model_input(x, self.device, self.c.channels_last)
        y = (batch["domain"] == PNEUMONIA).float().to(self.device)
        self.model.train()
        with autocast(self.device, self.cfg.train.bf16):
            logits = self.model(x).float()[:, 0]
        loss = F.binary_cross_entropy_with_logits(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.state.step += 1
        return float(loss.detach())

    def evaluate(self) -> float:
        """Tune-split AUC; updates best weights and the patience counter."""
        logits = dataset_logits(
            self.model, self.val_data, self.cfg.eval.batch_size, self.cfg.train.bf16, self.c.channels_last
        )
        auc = auc_or_nan(self.val_data.domains, logits)
        s = self.state
        loss = float(np.mean(self.losses)) if self.losses else float("nan")
        s.history.append([s.step, auc, loss])
        self.losses = []
        if not math.isfinite(auc) or s.best_step < 0 or auc > s.best_auc:
            s.best_auc, s.best_step, s.bad_evals = auc, s.step, 0
            self.best = export_weights(self.model)
        else:
            s.bad_evals += 1
        if s.step >= self.c.iterations or (math.isfinite(auc) and s.bad_evals >= self.c.patience):
            s.done = True
        return auc

    def finish(self) -> DenseNetClassifier:
        """The best weights in eval mode."""
        self.model.net.load_state_dict(self.best)
        return self.model.eval()


def train_classifier(
    cfg: Config,
    train: RSNADataset,
    val: RSNADataset,
    checkpoint: str | Path,
    resume: bool = False,
    progress: bool = True,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> TrainOutcome:
    """Train the classifier with early stopping on ``val`` (the tune split) AUC, checkpointing at
    each evaluation. ``on_step(step, loss)`` is called after every optimisation step (logging, tests).
    """
    device = torch.device(device)
    checkpoint = Path(checkpoint)
    key = classifier_key(cfg, train.cache.content_hash)
    trainer = ClassifierTrainer(cfg, train, val, key, device)
    if resume and checkpoint.is_file():
        trainer.restore(load_checkpoint(checkpoint, map_location=device), checkpoint)
    start, t0 = trainer.state.step, time.perf_counter()
    total = cfg.classifier.iterations
    with progress_bar(total=total, initial=start, desc="classifier", unit="it", enabled=progress) as bar:
        while not trainer.state.done:
            loss = trainer.step()
            trainer.losses.append(loss)
            bar.update(1)
            if on_step is not None:
                on_step(trainer.state.step, loss)
            if trainer.state.step % max(cfg.classifier.eval_every, 1) == 0 or trainer.state.step >= total:
                auc = trainer.evaluate()
                bar.set_postfix(loss=f"{loss:.3f}", tune_auc=f"{auc:.3f}", best=f"{trainer.state.best_auc:.3f}")
                save_checkpoint(checkpoint, trainer.checkpoint())
    return TrainOutcome(
        trainer.finish(), trainer.state.best_auc, trainer.state, time.perf_counter() - t0, resumed_from=start
    )
