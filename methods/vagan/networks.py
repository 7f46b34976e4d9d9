"""VA-GAN networks (Baumgartner et al. 2018), 2-D versions as SPEC 2 describes them.

Map generator M: a U-Net of 3x3 conv + BatchNorm + ReLU blocks, [16,16] -> pool -> [32,32] ->
pool -> [64,64] -> pool -> [128,128]; the decoder upsamples with 4x4/2 transposed convs
(+BN+ReLU) to 16 channels each (SPEC 2), concatenates the encoder's skip (64, 32, 16 channels), and
runs [64,64], [32,32] and [16]; a final 3x3 conv to one channel with no activation gives M(x).
Pooling is 2x2 max. 462,305 parameters.
Critic: 3x3 conv + ReLU stack 16, pool, 32, pool, 64, 64, pool, 128, 128, pool, 256, 256, 256,
a 1x1 conv to one channel and a global mean, one score per image; no normalization (WGAN-GP).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (no bias, BN follows), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def stage(channels: list[int], cin: int) -> nn.Sequential:
    """Consecutive conv-BN-ReLU blocks with the given output channels."""
    blocks = []
    for cout in channels:
        blocks.append(conv_bn_relu(cin, cout))
        cin = cout
    return nn.Sequential(*blocks)


def upsample(cin: int, cout: int) -> nn.Sequential:
    """4x4/2 transposed conv, BatchNorm, ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class MapUNet(nn.Module):
    """The map generator M(x): (B, 1, H, W) -> (B, 1, H, W), unbounded (H, W divisible by 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.ModuleList([stage([16, 16], 1), stage([32, 32], 16), stage([64, 64], 32), stage([128, 128], 64)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([upsample(128, 16), upsample(64, 16), upsample(32, 16)])
        self.dec = nn.ModuleList([stage([64, 64], 16 + 64), stage([32, 32], 16 + 32), stage([16], 16 + 16)])
        self.out = nn.Conv2d(16, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            h = block(h if i == 0 else self.pool(h))
            skips.append(h)
        for up, block, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            h = block(torch.cat([up(h), skip], dim=1))
        return self.out(h)


class VACritic(nn.Module):
    """The critic: (B, 1, H, W) -> (B,) scores (H, W divisible by 16)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for item in [16, "pool", 32, "pool", 64, 64, "pool", 128, 128, "pool", 256, 256, 256]:
            if item == "pool":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, 1, 1), nn.ReLU()]
                cin = int(item)
        layers.append(nn.Conv2d(cin, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1).mean(1)
