"""Classifier weights: export, strict loading of user files, 2-class head conversion, and
:func:`load_classifier`, the one way to get a ready classifier from a state dict.

A user checkpoint with a 2-class softmax head (Healthy, Pneumonia) is converted on load:
logit = z_1 - z_0, which gives the same P(pneumonia) and CAM. Files are ``.safetensors`` or torch
state dicts read with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.classifier.model import ARCH, DenseNetClassifier, build_classifier, place
from bench.data.domains import HEALTHY, PNEUMONIA
from bench.errors import BenchError
from bench.train.checkpoint import load_checkpoint

WEIGHTS_KIND = "lesionbench.classifier"


def export_weights(model: DenseNetClassifier) -> dict[str, torch.Tensor]:
    """The network's weights with timm ``densenet121`` key names, on CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop wrapper prefixes ('module.', 'net.') that DataParallel or our own wrapper add."""
    out = dict(state)
    for prefix in ("module.", "net."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _two_class_to_logit(state: dict[str, Any]) -> dict[str, Any]:
    """Convert a (Healthy, Pneumonia) softmax head to the single logit z_1 - z_0."""
    w = state.get("classifier.weight")
    if isinstance(w, torch.Tensor) and w.ndim == 2 and w.shape[0] == 2:
        state = dict(state)
        state["classifier.weight"] = (w[PNEUMONIA] - w[HEALTHY]).unsqueeze(0)
        b = state.get("classifier.bias")
        if isinstance(b, torch.Tensor) and b.shape == (2,):
            state["classifier.bias"] = (b[PNEUMONIA] - b[HEALTHY]).unsqueeze(0)
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


def load_classifier(
    state: dict[str, Any], source: str, device: torch.device | str = "cpu", channels_last: bool = False, *, size: int
) -> DenseNetClassifier:
    """A classifier at input ``size`` px holding ``state`` (timm names, a 2-class head or our weights
    file), on ``device``, in eval mode; ``source`` names the origin in error messages."""
    model = build_classifier(0, "cpu", size=size)
    load_weights(model, state, source)
    return place(model, device, channels_last).eval()


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


def load_user_classifier(
    path: str | Path, device: torch.device | str, channels_last: bool = False, *, size: int
) -> DenseNetClassifier:
    """A classifier with user-supplied weights (``cfg.classifier.weights``) at input ``size`` px, in eval mode."""
    return load_classifier(read_weights_file(path), str(path), device, channels_last, size=size)
