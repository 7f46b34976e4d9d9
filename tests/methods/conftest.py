"""Helpers for the GAN method tests: tiny CPU configs, fake data splits, gradients, short fits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from bench.config import Config
from bench.registry import create_method
from bench.settings import load_config
from bench.train.gan import Batch, GANMethod, GANTrainer, Sampler, total
from bench.train.gan.recipe import resolve_recipe


@dataclass
class FakeSplit:
    """A stand-in for RSNADataset: smooth random images in [-1, 1], alternating domains."""

    n: int = 16
    size: int = 32
    seed: int = 0
    domains: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(self.n, 1, self.size // 8, self.size // 8, generator=g)
        self.images = torch.nn.functional.interpolate(coarse, size=self.size, mode="bilinear") * 2 - 1
        self.domains = np.arange(self.n, dtype=np.int64) % 2

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: np.ndarray) -> dict:
        idx = np.asarray(idx)
        return {"image": self.images[torch.from_numpy(idx)], "domain": torch.from_numpy(self.domains[idx])}


class Kit:
    """Builds tiny methods and batches and runs the generic checks every GAN method must pass."""

    def cfg(self, name: str = "", sets: list[str] | None = None, **params: object) -> Config:
        cfg = load_config("smoke", sets=["train.device='cpu'"] + (sets or []))
        if name:
            cfg.method[name] = dict(params)
        return cfg

    def method(self, name: str, sets: list[str] | None = None, **params: object) -> GANMethod:
        """A tiny CPU method set up for the config's recipe, as its training would set it up."""
        cfg = self.cfg(name, sets, **params)
        method = create_method(name, cfg)
        method.use_recipe(resolve_recipe(cfg.train))
        return method

    def split(self, size: int = 32, seed: int = 0) -> FakeSplit:
        return FakeSplit(size=size, seed=seed)

    def batch(self, method: GANMethod, n: int = 4, seed: int = 0) -> Batch:
        split = self.split(method.settings.size, seed)
        return method.draw(Sampler(split, seed=seed), n)

    def grads(self, method: GANMethod, batch: Batch) -> torch.Tensor:
        """Gradients of the critic loss (critic weights) and the generator loss (generator weights)."""
        parts = []
        for loss, net in ((method.d_loss, method.critic), (method.g_loss, method.generator)):
            method.generator.zero_grad(set_to_none=True)
            method.critic.zero_grad(set_to_none=True)
            total(loss(batch, method.generator, method.critic)).backward()
            parts += [p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in net.parameters()]
        return torch.cat(parts)

    def assert_weights_matter(self, name: str, weight: str) -> None:
        """Setting ``weight`` to 0 changes the gradients (the term is in the loss, weighted)."""
        base = self.method(name)
        zero = self.method(name, **{weight: 0.0})
        batch = self.batch(base)
        g_base, g_zero = self.grads(base, batch), self.grads(zero, batch)
        assert torch.isfinite(g_base).all()
        assert not torch.allclose(g_base, g_zero), f"{name}.{weight} does not reach the gradients"

    def fit_fixed(self, method: GANMethod, batch: Batch, iterations: int) -> list[dict[str, float]]:
        """Train on one fixed batch; the generator terms of every generator step."""
        trainer = GANTrainer(method)
        history = []
        for _ in range(iterations):
            _, g_terms = trainer.step(batch)
            if g_terms is not None:
                history.append({k: float(v) for k, v in g_terms.items()})
        return history

    def assert_term_falls(self, method: GANMethod, term: str, iterations: int = 40) -> None:
        """``term`` averaged over the last 3 generator steps is well below its first 3."""
        torch.manual_seed(0)
        history = self.fit_fixed(method, self.batch(method, n=4), iterations)
        values = [h[term] for h in history]
        first, last = np.mean(values[:3]), np.mean(values[-3:])
        assert last < 0.7 * first, f"{term}: {first:.4f} -> {last:.4f}"


@pytest.fixture(scope="session")
def kit() -> Kit:
    """The helper toolkit of the GAN method tests."""
    return Kit()


@pytest.fixture()
def gan_images() -> torch.Tensor:
    """Four random 32-px images in [-1, 1] (the smoke preset's size)."""
    return torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
