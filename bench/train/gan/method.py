"""The base class of the GAN methods: networks and losses come from hooks, training from the trainer.

The trainer (:mod:`bench.train.gan.trainer`) sees a method through :class:`bench.train.gan.hooks.GANModel`
and never imports this module.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.data.domains import HEALTHY
from bench.errors import BenchError
from bench.method import Method, MethodSettings, Points, TrainContext
from bench.train.gan.losses import Batch, Network, Terms, gradient_penalty, r1_penalty
from bench.train.gan.recipe import PAPER, Recipe, resolve_recipe
from bench.train.gan.sampler import Sampler
from bench.train.gan.state import CHECKPOINT_FORMAT
from bench.train.gan.trainer import train


@dataclass
class GANParams:
    """Optimisation settings every GAN method has (defaults: SPEC 2's lr, betas, n_critic, lambda_gp)."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5  # critic steps per generator step
    lambda_gp: float = 10.0


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block, restoring their previous modes afterwards."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode whose parameters take no gradients."""
    out = copy.deepcopy(module).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


class GANMethod(Method):
    """Base class of the GAN methods: networks and losses come from hooks, training from here.

    Subclasses implement :meth:`build_generator`, :meth:`build_critic`, :meth:`draw`,
    :meth:`d_loss` and :meth:`g_loss`; they may override :meth:`critic_steps` (default
    ``params.n_critic``) and :meth:`generate` (default ``generator(x, target)``). ``Params`` must
    derive from :class:`GANParams` (learning rates, Adam betas, n_critic, lambda_gp). The networks are
    built from ``settings`` (``model``, ``size``) under ``settings.seed``; :meth:`fit` trains under the
    recipe of ``ctx.settings`` (:meth:`use_recipe`; the paper's until then).
    """

    translates: ClassVar[bool] = True
    Params: ClassVar[type] = GANParams

    def __init__(self, settings: MethodSettings) -> None:
        super().__init__(settings)
        self.recipe: Recipe = PAPER
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.generator: nn.Module = self.build_generator()
            self.critic: nn.Module = self.build_critic()
        self.generator_ema: nn.Module | None = None
        self.to(self.device)

    def use_recipe(self, recipe: Recipe) -> None:
        """Train (and translate) with ``recipe``: its adversarial loss in the loss pieces and, when it keeps
        one, a weight average of the generator, starting from the generator's weights now."""
        self.recipe = recipe
        if recipe.ema_decay is not None and self.generator_ema is None:
            self.generator_ema = frozen_copy(self.generator)

    @property
    def translator(self) -> nn.Module:
        """The generator that translates and localizes: the weight average when kept, else the trained one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    # ---- hooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    def build_generator(self) -> nn.Module:
        """The generator network (called once, under the run's seed)."""

    @abc.abstractmethod
    def build_critic(self) -> nn.Module:
        """The critic (discriminator) network (called once, under the run's seed)."""

    @abc.abstractmethod
    def draw(self, sampler: Sampler, n: int) -> Batch:
        """One training batch of ``n`` samples per rank; all randomness from ``sampler``."""

    @abc.abstractmethod
    def d_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Weighted critic loss terms (summed by the trainer), using networks ``G`` and ``D``."""

    @abc.abstractmethod
    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Weighted generator loss terms (summed by the trainer), using networks ``G`` and ``D``."""

    def critic_steps(self, g_step: int) -> int:
        """Critic steps taken before generator step number ``g_step`` (0-based)."""
        return self.params.n_critic

    def generate(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """G(x, target) with :attr:`translator`; ``target`` holds one domain per image."""
        return self.translator(x, target)

    # ---- adversarial loss pieces (``train.gan_loss``), for the loss hooks -----------------------

    def critic_adversarial(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> Terms:
        """Critic terms ``adv_real`` and ``adv_fake``: Wasserstein (wgan-gp) or non-saturating (r1)."""
        if self.recipe.gan_loss == "r1":
            return {"adv_real": F.softplus(-real_out.float()).mean(), "adv_fake": F.softplus(fake_out.float()).mean()}
        return {"adv_real": -real_out.float().mean(), "adv_fake": fake_out.float().mean()}

    def critic_penalty(self, critic: Network, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> Terms:
        """``gp``: lambda_gp times the WGAN-GP penalty, or ``r1``: gamma/2 times the R1 penalty on ``real``."""
        if self.recipe.gan_loss == "r1":
            return {"r1": self.recipe.r1_gamma / 2 * r1_penalty(critic, real)}
        return {"gp": self.params.lambda_gp * gradient_penalty(critic, real, fake, alpha)}

    def generator_adversarial(self, fake_out: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term: -mean D(G(x)) (wgan-gp) or mean softplus(-D(G(x))) (r1)."""
        if self.recipe.gan_loss == "r1":
            return F.softplus(-fake_out.float()).mean()
        return -fake_out.float().mean()

    # ---- Method interface --------------------------------------------------------------------

    @property
    def betas(self) -> tuple[float, float]:
        """Adam betas of both optimizers."""
        return (self.params.beta1, self.params.beta2)

    def to(self, device: torch.device) -> GANMethod:
        """Move both networks to ``device``."""
        self.device = torch.device(device)
        self.generator.to(self.device)
        self.critic.to(self.device)
        if self.generator_ema is not None:
            self.generator_ema.to(self.device)
        return self

    def translate(self, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
        """G(x, target) in [-1, 1], shape (B, 1, H, W), on ``x``'s device; no gradients."""
        t = torch.as_tensor(target, dtype=torch.int64)
        t = t.expand(len(x)) if t.dim() == 0 else t
        with torch.no_grad(), eval_mode(self.translator):
            y = self.generate(x.to(self.device).float(), t.to(self.device))
        return y.to(x.device)

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """|G(x, healthy) - x| averaged over channels, shape (B, H, W)."""
        return (self.translate(x, HEALTHY) - x.float()).abs().mean(1)

    @property
    def map_is_change(self) -> bool:
        """Whether the lesion map is this base map |translate(x, healthy) - x| (no override)."""
        cls = type(self)
        return cls.localize is GANMethod.localize and cls.lesion_map is Method.lesion_map

    def randomized(self, seed: int) -> GANMethod:
        """Same class, settings and device, with generator and critic freshly initialized under
        ``torch.manual_seed(seed)`` (global RNG state untouched) and no training."""
        fresh = type(self)(self.settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.generator = fresh.build_generator()
            fresh.critic = fresh.build_critic()
        fresh.recipe = self.recipe
        fresh.generator_ema = None if self.generator_ema is None else frozen_copy(fresh.generator)
        return fresh.to(self.device)

    def fit(self, ctx: TrainContext) -> Points:
        """Train with the shared WGAN-GP loop (see :func:`train`) under ``ctx.settings``' recipe; returns
        the learning-curve points."""
        self.use_recipe(resolve_recipe(ctx.settings))
        return train(self, ctx)

    def state_dict(self) -> dict[str, Any]:
        """Both networks (and the generator's weight average when kept)."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "method": self.name,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
        }
        if self.generator_ema is not None:
            state["generator_ema"] = self.generator_ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore both networks from :meth:`state_dict` (or a training checkpoint)."""
        if state.get("method") != self.name:
            raise BenchError(f"state of method {state.get('method')!r} cannot be loaded into {self.name!r}")
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        if "generator_ema" in state:
            if self.generator_ema is None:
                self.generator_ema = frozen_copy(self.generator)
            self.generator_ema.load_state_dict(state["generator_ema"])
