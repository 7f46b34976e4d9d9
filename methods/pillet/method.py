"""PILLET-GAN (the paper) and its ablation without the spatial attention block.

Losses: StarGAN's plus the identity loss of Eq. 8,
lambda_id (|G(x, t) - x|_1 + |G(x, o) - x|_1). With ``id_same_domain_only`` the first term is
restricted to the samples whose target equals their own domain (default: literal Eq. 8).
With ``clamp`` (default on) x + L_mixed is clamped to [-1, 1] before the critic, the classifier
and the metrics; off, the raw sum (in [-2, 2]) is used everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.registry import register_method
from bench.train.gan import Batch, Network, Terms, check_size, l1
from methods.pillet.networks import PilletGenerator
from methods.stargan.method import N_DOMAINS, StarGAN, StarGANParams


@dataclass
class PilletParams(StarGANParams):
    """StarGAN's settings plus the identity weight and the two PILLET switches."""

    lambda_id: float = 10.0
    clamp: bool = True  # clamp x + L_mixed to [-1, 1]
    id_same_domain_only: bool = False  # restrict |G(x,t) - x| to samples with t == o


def masked_l1(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the samples where ``keep`` is true (0 when none is)."""
    per_sample = (a.float() - b.float()).abs().flatten(1).mean(1)
    return (per_sample * keep).sum() / keep.sum().clamp(min=1)


@register_method("pillet")
class Pillet(StarGAN):
    """PILLET-GAN (the paper): StarGAN trunk, spatial attention and mixing blocks, G(x, t) = x + L_mixed."""

    title = "PILLET-GAN"

    Params = PilletParams
    use_sab: bool = True

    def build_generator(self) -> nn.Module:
        """StarGAN trunk with the SAB and mixing head."""
        check_size(self.settings.size, 4, "the generator")
        model = self.settings.model
        return PilletGenerator(model.width, model.n_res, N_DOMAINS, sab=self.use_sab, clamp=self.params.clamp)

    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """StarGAN's generator terms plus lambda_id (|G(x,t) - x|_1 + |G(x,o) - x|_1)."""
        x, o, t = batch["x"], batch["o"], batch["t"]
        terms, fake = self.translation_terms(G, D, x, o, t)
        target_id = masked_l1(fake, x, (t == o).float()) if self.params.id_same_domain_only else l1(fake, x)
        return {**terms, "id": self.params.lambda_id * (target_id + l1(G(x, o), x))}


@register_method("pillet_nosab")
class PilletNoSAB(Pillet):
    """The paper's ablation: PILLET-GAN with SAB(G') replaced by 0."""

    title = "PILLET-GAN w/o SAB"

    use_sab = False
