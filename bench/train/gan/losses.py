"""Loss pieces shared by the GAN methods: the WGAN-GP gradient penalty, L1, and summing terms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Batch = dict[str, torch.Tensor]
Terms = dict[str, torch.Tensor]
Network = Callable[..., Any]


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP penalty mean_i (||grad_x D(x_i)||_2 - 1)^2 at x = a*real + (1-a)*fake.

    ``alpha`` holds one mixing weight per sample; the gradient is that of the critic's output
    summed over everything but the batch (a patch map counts as one sum per sample). The graph is
    kept (``create_graph``) so the penalty's gradient reaches the critic's weights.
    """
    a = alpha.to(real.dtype).view(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(_at_least_fp32(out).sum(), x_hat, create_graph=True)
    return ((_at_least_fp32(grad).flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, computed in float32."""
    return (a.float() - b.float()).abs().mean()


def total(terms: Terms) -> torch.Tensor:
    """Sum of weighted loss terms."""
    return torch.stack([v.float() for v in terms.values()]).sum()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """Zero-centred R1 penalty mean_i ||grad_x D(x_i)||_2^2 at the real images (Mescheder et al. 2018).

    The gradient is that of the critic's output summed per sample; the graph is kept so the penalty's
    gradient reaches the critic's weights. The caller weights it by gamma / 2.
    """
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_at_least_fp32(critic(x)).sum(), x, create_graph=True)
    return _at_least_fp32(grad).flatten(1).pow(2).sum(1).mean()
