"""VA-GAN (Baumgartner et al. 2018): visual feature attribution by a learned additive map.

Trained on Pneumonia images only: y = tanh(x + M(x)) must look Healthy to a critic trained with
WGAN-GP between real Healthy images and y. Generator: -mean D(y) + lambda_map |y - x|_1.
Adam betas (0, 0.9); 5 critic steps per generator step, 100 during the first 25 generator steps
and before every 100th. The lesion map is |y - x| = |tanh(x + M(x)) - x|, like every translation
method (the base class's ``localize``; SPEC 2). The reference code's |M(x)| is not used: with the
tanh, a healthy image stays unchanged only if M(x) = atanh(x) - x, so |M| tracks brightness rather
than lesions. VA-GAN only translates to Healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from bench.method import HEALTHY, PNEUMONIA
from bench.registry import register_method
from bench.train.gan import Batch, GANMethod, GANParams, Network, Sampler, Terms, check_size, l1
from methods.vagan.networks import MapUNet, VACritic


@dataclass
class VAGANParams(GANParams):
    """VA-GAN's settings (SPEC 2)."""

    beta1: float = 0.0
    beta2: float = 0.9
    lambda_map: float = 100.0
    boost_critic_steps: int = 100  # critic steps before a boosted generator step
    boost_first: int = 25  # the first generator steps are boosted
    boost_every: int = 100  # and so is every generator step number divisible by this


@register_method("vagan")
class VAGAN(GANMethod):
    """VA-GAN (Baumgartner et al. 2018): additive map M(x), Healthy translation tanh(x + M(x))."""

    title = "VA-GAN"

    Params = VAGANParams
    # The SPEC's 100 critic steps for each of the first 25 generator steps take 2,500 iterations, more
    # than the short presets have: they keep only the boost of every 100th generator step.
    training_cost: ClassVar[float] = 2.0  # its U-Net and critic take about twice a StarGAN iteration
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"boost_first": 0}, "standard": {"boost_first": 0}}

    def build_generator(self) -> nn.Module:
        """The U-Net map generator."""
        check_size(self.settings.size, 8, "the VA-GAN map generator")
        return MapUNet()

    def build_critic(self) -> nn.Module:
        """The convolutional critic."""
        check_size(self.settings.size, 16, "the VA-GAN critic")
        return VACritic()

    def critic_steps(self, g_step: int) -> int:
        """100 critic steps for the first 25 generator steps and every 100th, else n_critic."""
        p = self.params
        boosted = g_step < p.boost_first or (p.boost_every > 0 and g_step % p.boost_every == 0)
        return p.boost_critic_steps if boosted else p.n_critic

    def draw(self, sampler: Sampler, n: int) -> Batch:
        """Pneumonia images to translate, real Healthy images for the critic, GP mixing weights."""
        return {
            "x": sampler.images(n, PNEUMONIA)["image"],
            "real": sampler.images(n, HEALTHY)["image"],
            "alpha": sampler.rand(n),
        }

    @staticmethod
    def healthy(G: Network, x: torch.Tensor) -> torch.Tensor:
        """y = tanh(x + M(x))."""
        return torch.tanh(x + G(x))

    def d_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """WGAN-GP (or the recipe's loss) between real Healthy images and translated Pneumonia images."""
        x, real = batch["x"], batch["real"]
        with torch.no_grad():
            fake = self.healthy(G, x)
        return {**self.critic_adversarial(D(real), D(fake)), **self.critic_penalty(D, real, fake, batch["alpha"])}

    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Adversarial term plus lambda_map |y - x|_1."""
        x = batch["x"]
        y = self.healthy(G, x)
        return {"adv": self.generator_adversarial(D(y)), "map": self.params.lambda_map * l1(y, x)}

    def generate(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """tanh(x + M(x)) for target Healthy; other targets are not supported."""
        if bool((target != HEALTHY).any()):
            raise ValueError("VA-GAN only translates to the Healthy domain (target 0); it has no Pneumonia generator")
        return self.healthy(self.translator, x)
