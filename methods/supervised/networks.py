"""A small U-Net for the supervised ceiling: (B, 1, H, W) images -> (B, 1, H, W) box logits.

Encoder stages of two 3x3 conv + GroupNorm + ReLU blocks with ``width``, 2 ``width``, 4 ``width``
channels, 2x2 max pooling between them; the decoder upsamples bilinearly, concatenates the encoder's
skip and runs one such stage per level; a 1x1 conv gives one logit per pixel. GroupNorm (not
BatchNorm) keeps the map of an image independent of the other images of its batch.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.errors import BenchError

LEVELS = 3


def block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + GroupNorm + ReLU blocks."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.GroupNorm(min(4, cout), cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.GroupNorm(min(4, cout), cout),
        nn.ReLU(),
    )


class BoxUNet(nn.Module):
    """Pixel logits of "inside a box" for images whose side is divisible by 4."""

    def __init__(self, width: int) -> None:
        super().__init__()
        widths = [width * 2**k for k in range(LEVELS)]
        self.enc = nn.ModuleList([block(cin, cout) for cin, cout in zip([1] + widths[:-1], widths)])
        self.dec = nn.ModuleList([block(widths[k] + widths[k + 1], widths[k]) for k in reversed(range(LEVELS - 1))])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = 2 ** (LEVELS - 1)
        if x.shape[-1] % side or x.shape[-2] % side:
            raise BenchError(f"the supervised U-Net needs image sides divisible by {side}, got {tuple(x.shape[-2:])}")
        skips = []
        h = x
        for k, stage in enumerate(self.enc):
            h = stage(h if k == 0 else self.pool(h))
            skips.append(h)
        for stage, skip in zip(self.dec, reversed(skips[:-1])):
            h = stage(torch.cat([self.up(h), skip], dim=1))
        return self.out(h)
