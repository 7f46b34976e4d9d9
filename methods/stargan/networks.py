"""StarGAN networks (Choi et al. 2018) as SPEC 2 fixes them.

Generator: every conv without bias; InstanceNorm with affine parameters and no running statistics,
so train and eval modes compute the same function. The trunk (stem, two downsampling convs,
R residual blocks, two transposed convs) is shared with Fixed-Point GAN and PILLET-GAN, which only
replace the head. Discriminator: a PatchGAN of 4x4/2 convs with bias and LeakyReLU(0.01), a
bias-free 3x3 source head (a patch map) and a bias-free class head whose kernel covers the
remaining spatial size (as in the reference implementation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import ConfigError


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """Affine InstanceNorm without running statistics (same output in train and eval mode)."""
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


def conv_block(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """Bias-free conv, InstanceNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), instance_norm(cout), nn.ReLU())


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Bias-free 4x4/2 transposed conv (doubles the size), InstanceNorm, ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), instance_norm(cout), nn.ReLU())


class ResidualBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3(x))))), no activation after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            instance_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def with_domain(x: torch.Tensor, target: torch.Tensor, n_domains: int) -> torch.Tensor:
    """Concatenate the one-hot target domain, tiled over H x W, to the image channels."""
    onehot = F.one_hot(target.long(), n_domains).to(x.dtype)
    return torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)


class StarGANTrunk(nn.Module):
    """Everything of the StarGAN generator but its head: (x, t) -> G', (B, c, H, W)."""

    def __init__(self, width: int, n_res: int, n_domains: int = 2, in_channels: int = 1) -> None:
        super().__init__()
        self.n_domains = n_domains
        c = width
        self.stem = conv_block(in_channels + n_domains, c, 7, 1, 3)
        self.down = nn.Sequential(conv_block(c, 2 * c, 4, 2, 1), conv_block(2 * c, 4 * c, 4, 2, 1))
        self.res = nn.Sequential(*[ResidualBlock(4 * c) for _ in range(n_res)])
        self.up = nn.Sequential(up_block(4 * c, 2 * c), up_block(2 * c, c))

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.up(self.res(self.down(self.stem(with_domain(x, target, self.n_domains)))))


class StarGANGenerator(nn.Module):
    """G(x, t) = tanh(conv7x7(G')), in [-1, 1]."""

    def __init__(self, width: int, n_res: int, n_domains: int = 2) -> None:
        super().__init__()
        self.trunk = StarGANTrunk(width, n_res, n_domains)
        self.head = nn.Conv2d(width, 1, 7, 1, 3, bias=False)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.trunk(x, target)))


def critic_depth(size: int, d_layers: int) -> int:
    """Number of stride-2 convs of the discriminator: ``d_layers``, or down to 4x4 when 0."""
    n = d_layers if d_layers > 0 else int(round(math.log2(size / 4))) if size >= 8 else 0
    if n <= 0 or size % (2**n):
        raise ConfigError(
            f"data.size={size}, model.d_layers={d_layers}: the discriminator needs "
            f"a size divisible by 2**layers with at least one layer"
        )
    return n


class StarGANDiscriminator(nn.Module):
    """PatchGAN critic: x -> (source patch map (B, 1, s, s), class logits (B, n_domains))."""

    def __init__(self, size: int, width: int, n_layers: int, n_domains: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i in range(n_layers):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.01)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.src = nn.Conv2d(cin, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(cin, n_domains, size >> n_layers, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.src(h), self.cls(h).flatten(1)
