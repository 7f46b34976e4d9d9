"""All training randomness of a GAN run: shuffled index streams and the per-rank sampler."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.data.dataset import RSNADataset
from bench.data.domains import DOMAINS
from bench.errors import BenchError
from bench.train.gan.losses import Batch


class IndexStream:
    """Endless shuffled passes over a pool of dataset positions (one permutation per pass).

    A draw that straddles two passes moves the positions it already took to the end of the new
    pass, so one draw never repeats a position (as long as it is not larger than the pool).
    """

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = torch.as_tensor(np.asarray(pool), dtype=torch.int64)
        self.order = torch.empty(0, dtype=torch.int64)
        self.cursor = 0

    def take(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The next ``n`` positions, starting a new pass whenever one is used up."""
        parts = []
        while n > 0:
            if self.cursor >= len(self.order):
                order = self.pool[torch.randperm(len(self.pool), generator=gen)]
                taken = torch.isin(order, torch.cat(parts)) if parts else torch.zeros(len(order), dtype=torch.bool)
                self.order = torch.cat([order[~taken], order[taken]])
                self.cursor = 0
            part = self.order[self.cursor : self.cursor + n]
            self.cursor += len(part)
            n -= len(part)
            parts.append(part)
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        """Current pass order and position."""
        return {"order": self.order.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.order = state["order"].clone()
        self.cursor = int(state["cursor"])


class Sampler:
    """All training randomness: this rank's share of batches, labels and uniform numbers.

    Every draw takes ``world_size * n`` values from the shared generator and keeps slice
    ``rank``, so ranks see distinct samples (within a pass over the data) and stay in step.
    """

    def __init__(self, data: RSNADataset, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.data = data
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.streams: dict[str, IndexStream] = {}

    def _share(self, values: torch.Tensor, n: int) -> torch.Tensor:
        return values[self.rank * n : (self.rank + 1) * n]

    def _stream(self, domain: int | None) -> IndexStream:
        key = "all" if domain is None else DOMAINS[domain]
        if key not in self.streams:
            pool = np.arange(len(self.data)) if domain is None else np.flatnonzero(self.data.domains == domain)
            if len(pool) == 0:
                raise BenchError(f"the training split holds no {key} images")
            self.streams[key] = IndexStream(pool)
        return self.streams[key]

    def positions(self, n: int, domain: int | None = None) -> torch.Tensor:
        """``n`` dataset positions for this rank, from one domain or from all."""
        return self._share(self._stream(domain).take(n * self.world_size, self.generator), n)

    def images(self, n: int, domain: int | None = None) -> Batch:
        """A batch of ``n`` images (key ``image``) and their domains (key ``domain``)."""
        batch = self.data.batch(self.positions(n, domain).numpy())
        return {"image": batch["image"], "domain": batch["domain"]}

    def randint(self, high: int, n: int) -> torch.Tensor:
        """``n`` integers uniform in [0, high)."""
        return self._share(torch.randint(high, (n * self.world_size,), generator=self.generator), n)

    def rand(self, n: int) -> torch.Tensor:
        """``n`` floats uniform in [0, 1)."""
        return self._share(torch.rand(n * self.world_size, generator=self.generator), n)

    def state_dict(self) -> dict[str, Any]:
        """Generator state and the position of every stream."""
        streams = {k: s.state_dict() for k, s in self.streams.items()}
        return {"generator": self.generator.get_state(), "streams": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.generator.set_state(state["generator"])
        for key, stream_state in state["streams"].items():
            self._stream(None if key == "all" else DOMAINS.index(key)).load_state_dict(stream_state)
