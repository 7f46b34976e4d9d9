"""Reference lesion maps (SPEC 3.3): what a method's score must beat to mean anything.

Nothing here is trained beyond a mean: chance (seeded uniform noise), the image itself, its Sobel
edge magnitude, the mean training box mask (a location prior) and, on synthetic data, the oracle
|x - twin|, with the twin the same image without its lesions.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from skimage.filters import sobel

from bench.errors import BenchError
from bench.evaluate.metrics import rasterize_boxes
from bench.method import PNEUMONIA, Method, Points, TrainContext
from bench.registry import register_method


class Reference(Method):
    """A reference map: no translation, no learned weights, no randomized counterpart."""

    reference = True
    translates = False

    def fit(self, ctx: TrainContext) -> Points:
        """Nothing to learn; a data set lacking what the map needs is an error now, not at evaluation."""
        missing = self.needs - getattr(ctx.train, "keys", frozenset())
        if missing:
            raise BenchError(self.unavailable(missing))
        return []

    def unavailable(self, missing: frozenset[str]) -> str:
        """One line saying why this reference cannot run on the data."""
        return f"{self.name} needs batch keys {sorted(missing)}, which this data set does not provide"

    def state_dict(self) -> dict[str, Any]:
        """The method's name (subclasses add what they learned)."""
        return {"method": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check the state belongs to this method."""
        if state.get("method") != self.name:
            raise BenchError(f"state of method {state.get('method')!r} cannot be loaded into {self.name!r}")


@register_method("ref_random")
class RandomNoise(Reference):
    """Chance: uniform noise in [0, 1), seeded by ``train.seed`` and a hash of each image's pixels,
    so the same image always gets the same map whatever batch it comes in."""

    title = "chance (uniform noise)"

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform noise of x's spatial shape, one reproducible draw per image."""
        pixels = x.detach().float().cpu().numpy()
        maps = []
        for img in pixels:
            digest = int.from_bytes(hashlib.sha256(np.ascontiguousarray(img).tobytes()).digest()[:8], "little")
            rng = np.random.default_rng([self.settings.seed, digest])
            maps.append(rng.random(img.shape[-2:], dtype=np.float32))
        return torch.from_numpy(np.stack(maps)).to(x.device)


@register_method("ref_intensity")
class Intensity(Reference):
    """The image itself (channel mean): lesions are brighter than the air around them."""

    title = "image intensity"

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """x averaged over channels, shape (B, H, W)."""
        return x.float().mean(1)


@register_method("ref_edge")
class Edge(Reference):
    """Sobel gradient magnitude of the image (``skimage.filters.sobel``, reflect padding)."""

    title = "Sobel edge magnitude"

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """skimage's Sobel magnitude of each image's channel mean, shape (B, H, W)."""
        pixels = x.detach().float().mean(1).cpu().numpy()
        return torch.from_numpy(np.stack([sobel(img) for img in pixels]).astype(np.float32)).to(x.device)


@register_method("ref_prior")
class Prior(Reference):
    """Where lesions usually are: the mean box mask of the training Pneumonia images at working size."""

    title = "location prior (mean training box mask)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prior: torch.Tensor | None = None

    def fit(self, ctx: TrainContext) -> Points:
        """Average the rasterized box masks of ``ctx.train``'s Pneumonia images."""
        pneumonia = np.asarray(ctx.train.domains) == PNEUMONIA
        if not pneumonia.any():
            raise BenchError("ref_prior: the training split holds no Pneumonia image to average boxes over")
        masks = rasterize_boxes(ctx.train.boxes[pneumonia], ctx.train.n_boxes[pneumonia], ctx.train.size)
        self.prior = torch.from_numpy(masks.mean(0, dtype=np.float64).astype(np.float32))
        return []

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """The prior, the same for every image, shape (B, H, W)."""
        if self.prior is None:
            raise BenchError("ref_prior has not been fitted (no mean box mask)")
        if tuple(self.prior.shape) != tuple(x.shape[-2:]):
            raise BenchError(f"ref_prior was fitted at {tuple(self.prior.shape)} px, images are {tuple(x.shape[-2:])}")
        return self.prior.to(x.device).expand(len(x), -1, -1).clone()

    def state_dict(self) -> dict[str, Any]:
        """Name and the mean box mask."""
        return {**super().state_dict(), "prior": self.prior}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the mean box mask."""
        super().load_state_dict(state)
        if not isinstance(state.get("prior"), torch.Tensor):
            raise BenchError("ref_prior: saved state holds no mean box mask")
        self.prior = state["prior"].float().cpu()


@register_method("ref_oracle")
class Oracle(Reference):
    """The ideal map |x - twin|: the image minus the same image without its lesions (synthetic data only)."""

    title = "oracle (distance to the lesion-free twin)"
    ceiling = True
    needs = frozenset({"healthy_twin"})

    def unavailable(self, missing: frozenset[str]) -> str:
        """The oracle exists only where the lesion-free twin does."""
        return (
            "ref_oracle needs synthetic data: it compares each image with its lesion-free twin "
            "(batch key 'healthy_twin'), which real data does not have"
        )

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Not computable from the image alone."""
        raise BenchError(self.unavailable(self.needs))

    def lesion_map(self, batch: dict[str, Any]) -> torch.Tensor:
        """|image - healthy_twin| averaged over channels, shape (B, H, W)."""
        if "healthy_twin" not in batch:
            raise BenchError(self.unavailable(self.needs))
        x, twin = batch["image"].to(self.device).float(), batch["healthy_twin"].to(self.device).float()
        return (x - twin).abs().mean(1)
