"""The CheXNet classifier: DenseNet-121 (timm) with a single Pneumonia logit, and its training.

One network serves two roles (SPEC 2 and 3.2): the CheXNet-CAM baseline and the evaluator of
Table 1. Design decisions:

- **Input.** Images (B, 1, H, W) in [-1, 1] are mapped to [0, 1], replicated to 3 channels and
  normalized with the mean/std of timm's ``pretrained_cfg`` for ``densenet121`` (ImageNet), so a
  user-supplied ImageNet- or CheXNet-style checkpoint sees what it was trained on.
- **Head.** A single logit, P(pneumonia) = sigmoid(logit). The CAM of the Pneumonia class is
  then exactly sum_k w_k f_k with ``w = classifier.weight[0]``. A user checkpoint with a 2-class
  softmax head (Healthy, Pneumonia) is converted on load: logit = z_1 - z_0, which gives the same
  P(pneumonia) and CAM.
- **Training.** AdamW (``lr``, ``weight_decay``) at a constant learning rate on the real
  training images of both domains. Class balance: every sample of a batch picks its domain with
  probability 1/2, then an image of that domain uniformly (balanced sampling, not loss weights).
  Augmentation: horizontal flip with probability 1/2 and a small random affine (rotation
  +-5 degrees, scale +-5 %, shift +-4 % of the side, border padding). Every random draw comes from
  one ``torch.Generator`` seeded by ``cfg.train.seed`` whose state is checkpointed, so training
  is deterministic per seed and an interrupted run resumes to the same result.
- **Early stopping.** The validation AUC is computed every ``eval_every`` steps (and at the
  end); the best weights are kept and training stops after ``patience`` evaluations without
  improvement. The returned classifier is the best one. When the validation split lacks one of
  the two domains the AUC is undefined; then early stopping is off and the last weights are kept.
- **Checkpoints.** Written atomically at each evaluation (model, optimizer, generator, best
  weights, history) and loaded with ``weights_only=True``. A checkpoint carries the key of the
  settings and data it was trained for; resuming from one with another key is an error.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import timm
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from bench.checkpoint import load_checkpoint, save_checkpoint
from bench.config import Config, config_hash, to_dict
from bench.data.dataset import RSNADataset
from bench.errors import BenchError
from bench.method import PNEUMONIA

ARCH = "densenet121"
CHECKPOINT_KIND = "lesionbench.classifier.train"
WEIGHTS_KIND = "lesionbench.classifier"
MAX_ROTATE_DEG = 5.0
MAX_SCALE = 0.05
MAX_SHIFT = 0.04  # fraction of the image side


class DenseNetClassifier(nn.Module):
    """DenseNet-121 on 1-channel images in [-1, 1] with one Pneumonia logit, output (B, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = timm.create_model(ARCH, pretrained=False, num_classes=1, in_chans=3)
        cfg = self.net.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)

    @property
    def cam_layer(self) -> nn.Module:
        """The last feature block: ``features.norm5`` (BatchNorm + ReLU), output f_k >= 0."""
        return self.net.features.norm5

    @property
    def head_weight(self) -> torch.Tensor:
        """w (num_features,): weights of the Pneumonia logit on the pooled features."""
        return self.net.classifier.weight[0]

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] 1-channel images -> 3-channel ImageNet-normalized backbone input."""
        x = (x + 1.0) * 0.5
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pneumonia logits (B, 1) of images (B, 1, H, W) in [-1, 1]."""
        return self.net(self.backbone_input(x))


def build_classifier(seed: int, device: torch.device | str = "cpu", channels_last: bool = False) -> DenseNetClassifier:
    """A freshly initialised classifier; the initialisation depends only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DenseNetClassifier()
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def export_weights(model: DenseNetClassifier) -> dict[str, torch.Tensor]:
    """The network's weights with timm ``densenet121`` key names, on CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}


# ----------------------------------------------------------------------------- user weights


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop wrapper prefixes ('module.', 'net.') that DataParallel or our own wrapper add."""
    out = dict(state)
    for prefix in ("module.", "net."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def _two_class_to_logit(state: dict[str, Any]) -> dict[str, Any]:
    """Convert a (Healthy, Pneumonia) softmax head to the single logit z_1 - z_0."""
    w = state.get("classifier.weight")
    if isinstance(w, torch.Tensor) and w.ndim == 2 and w.shape[0] == 2:
        state = dict(state)
        state["classifier.weight"] = (w[PNEUMONIA] - w[1 - PNEUMONIA]).unsqueeze(0)
        b = state.get("classifier.bias")
        if isinstance(b, torch.Tensor) and b.shape == (2,):
            state["classifier.bias"] = (b[PNEUMONIA] - b[1 - PNEUMONIA]).unsqueeze(0)
    return state


def _names(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (", ..." if len(keys) > limit else "")


def weights_mismatch(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str | None:
    """A one-line description of missing/unexpected keys and shape mismatches, or None."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(given)
        if not isinstance(given[k], torch.Tensor) or given[k].shape != expected[k].shape
    )
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_names(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches ({_names(shapes, 2)})")
    return "; ".join(parts) or None


def load_weights(model: DenseNetClassifier, state: dict[str, Any], source: str) -> None:
    """Load timm-named weights (or our own weights file) strictly; a mismatch is a BenchError."""
    if state.get("kind") == WEIGHTS_KIND and isinstance(state.get("model"), dict):
        state = state["model"]
    state = _two_class_to_logit(_strip_prefixes(state))
    expected = model.net.state_dict()
    problem = weights_mismatch(expected, state)
    if problem is not None:
        raise BenchError(f"{source}: weights do not fit {ARCH} with a 1-logit (or 2-class) head: {problem}")
    model.net.load_state_dict(state, strict=True)


def read_weights_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.safetensors`` file or a torch state dict (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: classifier weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise BenchError(f"{path}: not a readable .safetensors file ({exc})") from None
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise BenchError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def load_user_classifier(path: str | Path, device: torch.device, channels_last: bool = False) -> DenseNetClassifier:
    """A classifier with user-supplied weights (``cfg.classifier.weights``), in eval mode."""
    model = build_classifier(0, "cpu")
    load_weights(model, read_weights_file(path), str(path))
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


# ----------------------------------------------------------------------------- sampling, augmentation


def balanced_indices(domains: np.ndarray, batch_size: int, gen: torch.Generator) -> np.ndarray:
    """Batch positions: each sample picks a domain with probability 1/2, then an image of it."""
    groups = [np.flatnonzero(domains == d) for d in (0, 1)]
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
    theta = torch.stack([
        torch.stack([cos * sign, -sin, shift[:, 0]], dim=1),
        torch.stack([sin * sign, cos, shift[:, 1]], dim=1),
    ], dim=1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ----------------------------------------------------------------------------- inference


def _autocast(device: torch.device, bf16: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _to_model(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, torch.float32, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 32, bf16: bool = False,
                   channels_last: bool = False) -> torch.Tensor:
    """Pneumonia logits (B,) on CPU for images (B, 1, H, W) in [-1, 1], model in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = _to_model(images[start:start + batch_size], device, channels_last)
        with _autocast(device, bf16):
            out.append(model(x).float()[:, 0].cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def dataset_logits(model: nn.Module, data: RSNADataset, batch_size: int = 32, bf16: bool = False,
                   channels_last: bool = False) -> np.ndarray:
    """Pneumonia logits of every image of a split, in split order."""
    out = []
    for start in range(0, len(data), batch_size):
        images = data.batch(np.arange(start, min(start + batch_size, len(data))))["image"]
        out.append(predict_logits(model, images, batch_size, bf16, channels_last).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def auc_or_nan(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of scores for labels (1 = Pneumonia); NaN when a class is absent."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels == PNEUMONIA, scores))


# ----------------------------------------------------------------------------- training


def classifier_key(cfg: Config, manifest_hash: str) -> str:
    """Key of a trained classifier: classifier and data settings, seed, precision, data manifest."""
    material = {
        "arch": ARCH,
        "classifier": to_dict(cfg.classifier),
        "data": to_dict(cfg.data),
        "seed": cfg.train.seed,
        "bf16": cfg.train.bf16,
        "manifest": manifest_hash,
    }
    return config_hash(material)


@dataclass
class TrainState:
    """Everything a resumed run needs besides model and optimizer."""

    step: int = 0
    best_auc: float = float("nan")
    best_step: int = -1
    bad_evals: int = 0
    done: bool = False
    history: list[list[float]] = field(default_factory=list)  # [step, val_auc, mean train loss]


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
        self.model = build_classifier(cfg.train.seed, device, self.c.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.c.lr, weight_decay=self.c.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.train.seed)
        self.state = TrainState()
        self.best: dict[str, torch.Tensor] = export_weights(self.model)
        self.losses: list[float] = []

    def checkpoint(self) -> dict[str, Any]:
        """The resumable state as a ``weights_only``-loadable dict."""
        s = self.state
        return {
            "kind": CHECKPOINT_KIND, "key": self.key, "step": s.step, "best_auc": s.best_auc,
            "best_step": s.best_step, "bad_evals": s.bad_evals, "done": s.done, "history": s.history,
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(), "best_model": self.best, "config": to_dict(self.cfg),
        }

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` for the same key."""
        if ckpt.get("kind") != CHECKPOINT_KIND:
            raise BenchError(f"{path}: not a classifier training checkpoint")
        if ckpt.get("key") != self.key:
            raise BenchError(f"{path}: checkpoint was written for other classifier settings or data "
                             f"(key {ckpt.get('key')} != {self.key}); delete it or run without resume")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(ckpt["generator"].cpu())
        self.best = ckpt["best_model"]
        self.state = TrainState(ckpt["step"], ckpt["best_auc"], ckpt["best_step"], ckpt["bad_evals"],
                                ckpt["done"], [list(h) for h in ckpt["history"]])

    def step(self) -> float:
        """One optimisation step on a balanced, augmented batch; returns the loss."""
        idx = balanced_indices(self.train_data.domains, self.c.batch_size, self.gen)
        batch = self.train_data.batch(idx)
        x = batch["image"]
        if self.c.augment:
            x = augment(x, self.gen)
        x = _to_model(x, self.device, self.c.channels_last)
        y = (batch["domain"] == PNEUMONIA).float().to(self.device)
        self.model.train()
        with _autocast(self.device, self.cfg.train.bf16):
            logits = self.model(x).float()[:, 0]
        loss = F.binary_cross_entropy_with_logits(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.state.step += 1
        return float(loss.detach())

    def evaluate(self) -> float:
        """Validation AUC; updates best weights and the patience counter."""
        logits = dataset_logits(self.model, self.val_data, self.cfg.eval.batch_size, self.cfg.train.bf16,
                                self.c.channels_last)
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
    """Train the classifier with early stopping on validation AUC, checkpointing at each evaluation.

    ``on_step(step, loss)`` is called after every optimisation step (logging, tests).
    """
    device = torch.device(device)
    checkpoint = Path(checkpoint)
    key = classifier_key(cfg, train.cache.content_hash)
    trainer = ClassifierTrainer(cfg, train, val, key, device)
    if resume and checkpoint.is_file():
        trainer.restore(load_checkpoint(checkpoint, map_location=device), checkpoint)
    start, t0 = trainer.state.step, time.perf_counter()
    total = cfg.classifier.iterations
    with tqdm(total=total, initial=start, desc="classifier", unit="it", disable=not progress) as bar:
        while not trainer.state.done:
            loss = trainer.step()
            trainer.losses.append(loss)
            bar.update(1)
            if on_step is not None:
                on_step(trainer.state.step, loss)
            if trainer.state.step % max(cfg.classifier.eval_every, 1) == 0 or trainer.state.step >= total:
                auc = trainer.evaluate()
                bar.set_postfix(loss=f"{loss:.3f}", val_auc=f"{auc:.3f}", best=f"{trainer.state.best_auc:.3f}")
                save_checkpoint(checkpoint, trainer.checkpoint())
    return TrainOutcome(trainer.finish(), trainer.state.best_auc, trainer.state,
                        time.perf_counter() - t0, resumed_from=start)
