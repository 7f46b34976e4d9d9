"""A stand-in for a dataset split made of random images, shared by the speed benchmarks."""

from __future__ import annotations

import numpy as np
import torch


class RandomSplit:
    """Random images in [-1, 1] with alternating domains, standing in for a dataset split."""

    class cache:  # noqa: N801  (mimics RSNADataset.cache.content_hash)
        content_hash = "random"

    def __init__(self, size: int, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        self.domains = np.arange(n, dtype=np.int64) % 2

    def __len__(self) -> int:
        return len(self.domains)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """The images and domains at positions ``idx``."""
        idx = np.asarray(idx)
        return {"image": self.images[torch.from_numpy(idx)], "domain": torch.from_numpy(self.domains[idx])}
