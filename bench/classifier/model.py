"""The CheXNet classifier network: DenseNet-121 (timm) with a single Pneumonia logit, and inference.

One network serves two roles (SPEC 2 and 3.2): the classifier that the classifier-based methods
explain (``Method.uses_classifier``) and the evaluator of Table 1.

- **Input size.** The classifier works at its own input size (``cfg.classifier.size``, SPEC 2),
  independent of the working size: :meth:`DenseNetClassifier.resize_input` resizes every image
  bilinearly to it, the one place where that happens (training, the evaluator's probabilities, CAM
  and IG). DenseNet-121's final feature map is 1/32 of that side (:func:`feature_map_side`: 7x7 at
  224 px, 4x4 at 128 px, 2x2 at 64 px). No antialiasing: images are upsampled in every preset but
  ``paper`` (256 -> 224, a factor 0.875), and a map resized down by exactly 2 is the 2x2 mean anyway.
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
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from bench.data.dataset import RSNADataset
from bench.data.domains import PNEUMONIA

ARCH = "densenet121"


def feature_map_side(size: int) -> int:
    """Side of DenseNet-121's final feature map for ``size`` px input: the 7x7 stride-2 stem, the
    stride-2 max pool, then three stride-2 transitions."""
    side = (size + 2 * 3 - 7) // 2 + 1
    side = (side + 2 * 1 - 3) // 2 + 1
    for _ in range(3):
        side //= 2
    return side


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to (B, C, size, size); unchanged when already that size."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def resize_maps(maps: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of maps (B, h, w) back to ``shape`` (the working / map size) for scoring."""
    if tuple(maps.shape[-2:]) == tuple(shape):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=shape, mode="bilinear", align_corners=False, antialias=False)[:, 0]


class DenseNetClassifier(nn.Module):
    """DenseNet-121 on 1-channel images in [-1, 1] with one Pneumonia logit, output (B, 1); any input
    is resized to ``size`` px first."""

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 32:
            raise ValueError(f"classifier input size {size} px is below DenseNet-121's 32 px")
        self.size = int(size)
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

    @property
    def feature_side(self) -> int:
        """Side of the final feature map (the CAM's resolution) at this input size."""
        return feature_map_side(self.size)

    def resize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, H, W) resized bilinearly to the classifier's input size."""
        return resize_square(x, self.size)

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] 1-channel images -> resized, 3-channel ImageNet-normalized backbone input."""
        x = (self.resize_input(x) + 1.0) * 0.5
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pneumonia logits (B, 1) of images (B, 1, H, W) in [-1, 1]."""
        return self.net(self.backbone_input(x))


def place(model: DenseNetClassifier, device: torch.device | str, channels_last: bool = False) -> DenseNetClassifier:
    """Move ``model`` to ``device``, in channels-last memory format when asked."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_classifier(
    seed: int, device: torch.device | str = "cpu", channels_last: bool = False, *, size: int
) -> DenseNetClassifier:
    """A freshly initialised classifier at input ``size`` px; the initialisation depends only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DenseNetClassifier(size)
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
