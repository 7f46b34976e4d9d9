"""CheXNet-CAM (the paper's baseline) and CheXNet-IG (a saliency baseline beyond the paper).

Both explain the Pneumonia logit of the one shared DenseNet-121 classifier
(:mod:`bench.classifier`, published in the store of :mod:`bench.classifier.shared`) and
translate nothing.

- ``chexnet_cam``: captum ``LayerGradCam`` on ``features.norm5`` (BatchNorm + ReLU, the final
  ReLU'd feature maps f_k), ReLU applied, upsampled with ``LayerAttribution.interpolate(...,
  "bilinear")``. For DenseNet-121 (global average pool, linear head) the Grad-CAM weight of
  channel k is the mean gradient w_k / (h * w), so the map is the CAM sum_k w_k f_k up to the
  positive factor 1 / (h * w). The feature maps are 1/32 of the classifier's input side
  (``classifier.size``: 7x7 at 224 px as in CheXNet, 4x4 at 128 px, 2x2 at 64 px).
- ``chexnet_ig``: captum ``IntegratedGradients`` of the logit w.r.t. the 1-channel input image,
  from a black baseline (-1) by default, with ``internal_batch_size`` bounding memory. The map is
  the *positive part* of the attributions (summed over the single input channel): positive
  attributions are evidence for Pneumonia, negative ones evidence for Healthy, and the benchmark's
  map must be "higher = lesion". ``map = "abs"`` is available as a setting.

Both maps are computed at the classifier's input size (images resized there by
:meth:`DenseNetClassifier.resize_input`, as for classification) and resized back bilinearly to the
image's own size for scoring (:func:`bench.classifier.model.resize_maps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

from bench.classifier import ClassifierBundle, DenseNetClassifier, build_classifier, export_weights, load_classifier
from bench.classifier.model import resize_maps
from bench.errors import BenchError, ConfigError
from bench.method import Method, MethodSettings, Points, TrainContext
from bench.registry import register_method

IG_MAPS = ("positive", "abs")


def gradcam_map(model: DenseNetClassifier, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the Pneumonia logit, ReLU'd, upsampled bilinearly to the classifier's input size,
    then resized bilinearly to the image size (B, H, W)."""
    xc = model.resize_input(x)
    layer_cam = LayerGradCam(model, model.cam_layer).attribute(xc, target=0, relu_attributions=True)
    cam = LayerAttribution.interpolate(layer_cam, tuple(xc.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    return resize_maps(cam, tuple(x.shape[-2:]))


def integrated_gradients_map(
    model: DenseNetClassifier, x: torch.Tensor, n_steps: int, internal_batch_size: int, baseline: float, mode: str
) -> torch.Tensor:
    """Integrated Gradients of the Pneumonia logit w.r.t. the image resized to the classifier's input
    size, positive part or absolute value, resized bilinearly back to the image size (B, H, W)."""
    # captum evaluates at least one path point per image in each pass; asking for fewer only warns
    per_pass = max(internal_batch_size, len(x))
    attr = IntegratedGradients(model).attribute(
        model.resize_input(x), baselines=baseline, target=0, n_steps=n_steps, internal_batch_size=per_pass
    )
    attr = attr.clamp(min=0) if mode == "positive" else attr.abs()
    return resize_maps(attr.sum(dim=1), tuple(x.shape[-2:]))


class _ChexNetMethod(Method):
    """Shared part: obtain the shared classifier, save and restore it, run maps on its device."""

    translates = False
    uses_classifier = True
    training_cost = 0.0  # loads the shared classifier, which the run trains before any method

    def __init__(self, settings: MethodSettings) -> None:
        super().__init__(settings)
        self.model: DenseNetClassifier | None = None
        self.classifier_info: dict[str, Any] = {}

    def fit(self, ctx: TrainContext) -> Points:
        """Obtain the run's shared classifier (trained, the published one reused, or user weights)."""
        bundle: ClassifierBundle = ctx.classifier(self.device)
        self.model = bundle.model
        self.classifier_info = bundle.info()
        return []

    def randomized(self, seed: int) -> _ChexNetMethod:
        """The same method and settings on a freshly initialized DenseNet-121 (``torch.manual_seed(seed)``,
        then built; no training), for the model-randomization check."""
        twin = type(self)(self.settings)
        c = self.settings.classifier
        twin.model = build_classifier(seed, self.device, c.channels_last, size=c.size).eval()
        twin.classifier_info = {"source": "randomized", "seed": seed}
        return twin

    def state_dict(self) -> dict[str, Any]:
        """Classifier weights (timm key names) and where they came from."""
        return {"model": export_weights(self._ready()), "classifier": dict(self.classifier_info)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the classifier saved by :meth:`state_dict`."""
        c = self.settings.classifier
        self.model = load_classifier(state["model"], f"{self.name} state", self.device, c.channels_last, size=c.size)
        self.classifier_info = dict(state.get("classifier", {}))

    def _ready(self) -> DenseNetClassifier:
        if self.model is None:
            raise BenchError(f"method {self.name!r} has no classifier yet: fit it or load its state first")
        return self.model

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise BenchError(f"{self.name}: expected images (B, 1, H, W), got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        return x.contiguous(memory_format=torch.channels_last) if self.settings.classifier.channels_last else x


@register_method("chexnet_cam")
class ChexNetCAM(_ChexNetMethod):
    """CheXNet-CAM: class activation map of the Pneumonia logit (Rajpurkar et al. 2017)."""

    title = "CheXNet-CAM"

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU'd Grad-CAM (= CAM up to scale) at the classifier's size, resized to image size (B, H, W)."""
        model = self._ready().eval()
        with torch.enable_grad():
            out = gradcam_map(model, self._input(x))
        return out.detach().float().contiguous().to(x.device)


@dataclass
class IGParams:
    """Integrated Gradients settings."""

    n_steps: int = 16  # Gauss-Legendre quadrature points along the path
    internal_batch_size: int = 16  # path points (over all images) per forward pass: bounds memory
    baseline: float = -1.0  # constant baseline image in [-1, 1]; -1 = black
    map: str = "positive"  # "positive": positive part (evidence for Pneumonia) | "abs"


@register_method("chexnet_ig")
class ChexNetIG(_ChexNetMethod):
    """Integrated Gradients of the shared CheXNet classifier's Pneumonia logit."""

    title = "CheXNet-IG"

    Params = IGParams

    def __init__(self, settings: MethodSettings) -> None:
        super().__init__(settings)
        p = self.params
        if p.map not in IG_MAPS:
            raise ConfigError(f"method.chexnet_ig.map: expected one of {', '.join(IG_MAPS)}, got {p.map!r}")
        if p.n_steps < 1 or p.internal_batch_size < 1:
            raise ConfigError("method.chexnet_ig: n_steps and internal_batch_size must be at least 1")

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Integrated-Gradients map at the classifier's size, resized to image size (B, H, W), higher =
        more Pneumonia evidence."""
        model, p = self._ready().eval(), self.params
        with torch.enable_grad():
            out = integrated_gradients_map(model, self._input(x), p.n_steps, p.internal_batch_size, p.baseline, p.map)
        return out.detach().float().contiguous().to(x.device)
