"""Fixed-Point GAN (Siddiquee et al. 2019): StarGAN with residual output and same-domain training.

The critic is StarGAN's (trained on cross-domain fakes, as in the reference code). The generator
adds to StarGAN's cross-domain terms the same terms for x -> o -> o (adversarial, classification,
reconstruction) and the conditional identity loss lambda_id |tanh(x + Delta(x, o)) - x|_1.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.registry import register_method
from bench.train.gan import Batch, Network, Terms, check_size, l1
from methods.fixedpoint.networks import FixedPointGenerator
from methods.stargan.method import N_DOMAINS, StarGAN, StarGANParams


@dataclass
class FixedPointParams(StarGANParams):
    """StarGAN's settings plus the identity weight (10 by default; the BRATS paper used 0.1)."""

    lambda_id: float = 10.0


@register_method("fixedpoint")
class FixedPoint(StarGAN):
    """Fixed-Point GAN (Siddiquee et al. 2019): G(x, t) = tanh(x + Delta(x, t)), identity-trained."""

    title = "Fixed-Point GAN"

    Params = FixedPointParams

    def build_generator(self) -> nn.Module:
        """StarGAN trunk with a residual (tanh-free) head."""
        check_size(self.settings.size, 4, "the generator")
        return FixedPointGenerator(self.settings.model.width, self.settings.model.n_res, N_DOMAINS)

    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Cross-domain terms, same-domain terms (suffix ``_same``) and the identity term."""
        x, o, t = batch["x"], batch["o"], batch["t"]
        terms, _ = self.translation_terms(G, D, x, o, t)
        same, fake_same = self.translation_terms(G, D, x, o, o, suffix="_same")
        return {**terms, **same, "id": self.params.lambda_id * l1(fake_same, x)}
