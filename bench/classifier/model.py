"""The CheXNet classifier network: DenseNet-121 (timm) with a single Pneumonia logit, and inference.

One network serves two roles (SPEC 2 and 3.2): the classifier that the classifier-based methods
explain (``Method.uses_classifier``) and the evaluator of Table 1.

- **Input.** Images (B, 1, H, W) in [-1, 1] are mapped to [0, 1], replicated to 3 channels and
  normalized with the mean/std of timm's ``pretrained_cfg`` for ``densenet121`` (ImageNet), so a
  user-supplied ImageNet- or CheXNet-style checkpoint sees what it was trained on.
- **Head.** A single logit, P(pneumonia) = sigmoid(logit). The CAM of the Pneumonia class is
  then exactly sum_k w_k f_k with ``w = classifier.weight[0]``.
"""

from __future__ import annotations

import numpy as np
import timm
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from bench.data.dataset import RSNADataset
from bench.domains import PNEUMONIA

ARCH = "densenet121"


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


def place(model: DenseNetClassifier, device: torch.device | str, channels_last: bool = False) -> DenseNetClassifier:
    """Move ``model`` to ``device``, in channels-last memory format when asked."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_classifier(seed: int, device: torch.device | str = "cpu", channels_last: bool = False) -> DenseNetClassifier:
    """A freshly initialised classifier; the initialisation depends only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DenseNetClassifier()
    return place(model, device, channels_last)


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on ``device`` when ``bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def to_model_input(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Images as float32 on ``device``, channels-last when the model is."""
    x = x.to(device, torch.float32, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, batch_size: int = 32, bf16: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """Pneumonia logits (B,) on CPU for images (B, 1, H, W) in [-1, 1], model in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size], device, channels_last)
        with autocast(device, bf16):
            out.append(model(x).float()[:, 0].cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def dataset_logits(
    model: nn.Module, data: RSNADataset, batch_size: int = 32, bf16: bool = False, channels_last: bool = False
) -> np.ndarray:
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
