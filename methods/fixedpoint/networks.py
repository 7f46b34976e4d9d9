"""Fixed-Point GAN generator (Siddiquee et al. 2019): StarGAN's without the final tanh.

The head outputs a residual Delta and the translated image is tanh(x + Delta).
"""

from __future__ import annotations

import torch
from torch import nn

from methods.stargan.networks import MapHead, StarGANTrunk


class FixedPointGenerator(nn.Module):
    """G(x, t) = tanh(x + Delta(x, t)) with Delta = conv7x7(G') (no tanh, no bias)."""

    def __init__(self, width: int, n_res: int, n_domains: int = 2) -> None:
        super().__init__()
        self.trunk = StarGANTrunk(width, n_res, n_domains)
        self.head = MapHead(width, 7)

    def delta(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The residual Delta(x, t), unbounded, shape (B, 1, H, W)."""
        return self.head(self.trunk(x, target))

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x + self.delta(x, target))
