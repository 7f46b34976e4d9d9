"""The optimisation recipe of every GAN method (``train.recipe``, ``train.gan_loss``), resolved once.

``paper`` is the specification's: each method's own critic schedule (``critic_steps``), its learning
rates, WGAN-GP, no weight average. ``fast`` is a two-time-scale recipe: one critic step per generator
step for every method (methods' own critic schedules, such as boosted steps, are not consulted), the critic's
learning rate times :data:`FAST_CRITIC_LR_SCALE`, and an exponential moving average of the
generator's weights that translates and localizes. ``gan_loss`` is independent of the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import TrainConfig
from bench.errors import ConfigError

RECIPES = ("paper", "fast")
GAN_LOSSES = ("wgan-gp", "r1")
FAST_CRITIC_LR_SCALE = 4.0
EMA_WARMUP = 10.0  # decay at generator step g is min(ema_decay, (1 + g) / (EMA_WARMUP + g))


@dataclass(frozen=True)
class Recipe:
    """What the shared trainer does differently per recipe."""

    name: str
    n_critic: int | None  # critic steps per generator step for every method; None: the method's schedule
    lr_d_scale: float  # multiplies the method's critic learning rate
    ema_decay: float | None  # generator weight average; None: translate with the trained weights
    gan_loss: str
    r1_gamma: float

    def describe(self) -> dict[str, object]:
        """Plain values (for checkpoint identities and records)."""
        return {
            "recipe": self.name,
            "n_critic": self.n_critic,
            "lr_d_scale": self.lr_d_scale,
            "ema_decay": self.ema_decay,
            "gan_loss": self.gan_loss,
            "r1_gamma": self.r1_gamma if self.gan_loss == "r1" else None,
        }


# the specification's recipe (``train.recipe = "paper"`` with WGAN-GP): a GAN method's until it trains under another
PAPER = Recipe("paper", None, 1.0, None, "wgan-gp", 1.0)


def resolve_recipe(train: TrainConfig) -> Recipe:
    """The :class:`Recipe` of ``train``; an unknown name or an out-of-range value is a ConfigError."""
    if train.recipe not in RECIPES:
        raise ConfigError(f"train.recipe: expected one of {', '.join(RECIPES)}, got {train.recipe!r}")
    if train.gan_loss not in GAN_LOSSES:
        raise ConfigError(f"train.gan_loss: expected one of {', '.join(GAN_LOSSES)}, got {train.gan_loss!r}")
    if not 0.0 < train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay: expected a number in (0, 1), got {train.ema_decay!r}")
    if train.r1_gamma < 0:
        raise ConfigError(f"train.r1_gamma: expected a number >= 0, got {train.r1_gamma!r}")
    if train.recipe == "fast":
        return Recipe("fast", 1, FAST_CRITIC_LR_SCALE, train.ema_decay, train.gan_loss, train.r1_gamma)
    return Recipe("paper", None, 1.0, None, train.gan_loss, train.r1_gamma)


def ema_decay_at(decay: float, g_step: int) -> float:
    """The weight-average decay used after generator step ``g_step`` (0-based): ``decay`` with a warm-up
    so that short runs are not dominated by the initial weights."""
    return min(decay, (1.0 + g_step) / (EMA_WARMUP + g_step))
