"""PILLET-GAN generator: StarGAN's trunk with the spatial attention block and mixing block.

G' is the c-channel full-resolution feature map after the last transposed conv (+IN+ReLU).
SAB(G') = Upsample x4 (bilinear) (sigmoid(conv3x3(c->1)(ReLU(IN(conv3x3(c->c)(AvgPool4x4/4(G'))))))),
one channel broadcast over the c channels of G'. L_mixed = tanh(conv1x1(c->1)((SAB(G') + 1) * G')),
and the output is x + L_mixed, clamped to [-1, 1] when ``clamp`` is on. Without SAB (the paper's
ablation) L_mixed = tanh(conv1x1(G')). Like the rest of the generator, these convs have no bias.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.stargan.networks import StarGANTrunk, instance_norm


class SpatialAttention(nn.Module):
    """SAB: a one-channel attention map in (0, 1) at the resolution of G', shape (B, 1, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.AvgPool2d(4, 4),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            instance_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 1, 3, 1, 1, bias=False),
            nn.Sigmoid(),
            nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class PilletGenerator(nn.Module):
    """G(x, t) = x + L_mixed(x, t) (clamped to [-1, 1] when ``clamp``)."""

    def __init__(self, width: int, n_res: int, n_domains: int = 2, sab: bool = True, clamp: bool = True) -> None:
        super().__init__()
        self.clamp = clamp
        self.trunk = StarGANTrunk(width, n_res, n_domains)
        self.sab = SpatialAttention(width) if sab else None
        self.mix = nn.Conv2d(width, 1, 1, bias=False)

    def mixed(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The lesion map L_mixed in [-1, 1], shape (B, 1, H, W)."""
        features = self.trunk(x, target)
        if self.sab is not None:
            features = (self.sab(features) + 1) * features
        return torch.tanh(self.mix(features))

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = x + self.mixed(x, target)
        return y.clamp(-1, 1) if self.clamp else y
