"""StarGAN (Choi et al. 2018) on the shared WGAN-GP trainer, and the losses its variants reuse.

Critic: -mean D_src(x) + mean D_src(G(x,t)) + lambda_cls CE(D_cls(x), o) + lambda_gp GP.
Generator: -mean D_src(G(x,t)) + lambda_cls CE(D_cls(G(x,t)), t) + lambda_rec |x - G(G(x,t), o)|_1.
(With ``train.gan_loss = "r1"`` the adversarial terms and the penalty are the shared trainer's
non-saturating loss and R1 penalty instead; see :class:`bench.train.gan.GANMethod`.)
The target t is drawn uniformly per sample (so about half the samples keep their domain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.method import DOMAINS
from bench.registry import register_method
from bench.train.gan import Batch, GANMethod, GANParams, Network, Sampler, Terms, check_size, l1
from methods.stargan.networks import StarGANDiscriminator, StarGANGenerator, critic_depth

N_DOMAINS = len(DOMAINS)


@dataclass
class StarGANParams(GANParams):
    """StarGAN's loss weights (SPEC 2), on top of the shared optimisation settings."""

    lambda_cls: float = 1.0
    lambda_rec: float = 10.0


def classification(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of domain logits, in float32."""
    return F.cross_entropy(logits.float(), labels)


@register_method("stargan")
class StarGAN(GANMethod):
    """StarGAN (Choi et al. 2018): conditional generator G(x, t), PatchGAN critic with a domain classifier."""

    title = "StarGAN"

    Params = StarGANParams

    def build_generator(self) -> nn.Module:
        """StarGAN generator (tanh head)."""
        check_size(self.settings.size, 4, "the generator")
        return StarGANGenerator(self.settings.model.width, self.settings.model.n_res, N_DOMAINS)

    def build_critic(self) -> nn.Module:
        """PatchGAN discriminator with source and class heads."""
        size, model = self.settings.size, self.settings.model
        return StarGANDiscriminator(size, model.width, critic_depth(size, model.d_layers), N_DOMAINS)

    def draw(self, sampler: Sampler, n: int) -> Batch:
        """Images of both domains (x, o), a random target t per image, GP mixing weights."""
        batch = sampler.images(n)
        return {"x": batch["image"], "o": batch["domain"], "t": sampler.randint(N_DOMAINS, n), "alpha": sampler.rand(n)}

    def d_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Adversarial terms on real vs G(x, t), real-image classification, the critic's penalty."""
        p = self.params
        x, o, t = batch["x"], batch["o"], batch["t"]
        with torch.no_grad():
            fake = G(x, t)
        src_real, cls_real = D(x)
        src_fake, _ = D(fake)
        return {
            **self.critic_adversarial(src_real, src_fake),
            "cls": p.lambda_cls * classification(cls_real, o),
            **self.critic_penalty(lambda z: D(z)[0], x, fake, batch["alpha"]),
        }

    def translation_terms(
        self, G: Network, D: Network, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, suffix: str = ""
    ) -> tuple[Terms, torch.Tensor]:
        """Adversarial, classification and cycle terms of x -> target -> source; also G(x, target)."""
        p = self.params
        fake = G(x, target)
        src, cls = D(fake)
        terms = {
            f"adv{suffix}": self.generator_adversarial(src),
            f"cls{suffix}": p.lambda_cls * classification(cls, target),
            f"rec{suffix}": p.lambda_rec * l1(G(fake, source), x),
        }
        return terms, fake

    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """StarGAN's generator objective for x -> t -> o."""
        terms, _ = self.translation_terms(G, D, batch["x"], batch["o"], batch["t"])
        return terms
