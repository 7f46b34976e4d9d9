"""What the shared trainer uses of a GAN method: its networks, recipe, loss hooks and state.

:class:`bench.train.gan.method.GANMethod` has all of it; the trainer is written against this protocol,
so that it never imports the method module (which imports the trainer to train).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from bench.train.gan.curves import Translator
from bench.train.gan.losses import Batch, Network, Terms
from bench.train.gan.recipe import Recipe
from bench.train.gan.sampler import Sampler


class GANModel(Translator, Protocol):
    """A GAN method as the trainer sees it (see :class:`~bench.train.gan.method.GANMethod` for each hook)."""

    name: str
    params: Any  # a GANParams: learning rates, Adam betas, n_critic, lambda_gp
    recipe: Recipe
    device: torch.device
    generator: nn.Module
    critic: nn.Module
    generator_ema: nn.Module | None

    @property
    def betas(self) -> tuple[float, float]:
        """Adam betas of both optimizers."""
        ...

    def critic_steps(self, g_step: int) -> int: ...

    def draw(self, sampler: Sampler, n: int) -> Batch: ...

    def d_loss(self, batch: Batch, G: Network, D: Network) -> Terms: ...

    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms: ...

    def to(self, device: torch.device) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
