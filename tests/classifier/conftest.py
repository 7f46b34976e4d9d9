"""Helpers for the classifier tests: one thread, smooth random images."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """DenseNet on tiny images runs fastest on one thread; two threads on busy cores crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images (n, 1, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear") * 2 - 1


@pytest.fixture()
def images() -> Callable[..., torch.Tensor]:
    """Factory of smooth random images: ``images(n, size, seed=0)``."""
    return smooth_images


def no_training(*args: object, **kwargs: object) -> None:
    """Stands in for ``train_classifier`` where the classifier must not be trained."""
    raise AssertionError("the classifier must not be trained here")
