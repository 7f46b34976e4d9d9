"""Process-group helpers for multi-process training (``torchrun --nproc_per_node N``).

A run is distributed when the ``WORLD_SIZE`` environment variable (set by torchrun) is above 1.
The backend is NCCL on CUDA and gloo on CPU. Outside a process group every helper degrades to the
single-process answer, so code calling them needs no special case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the (possibly trivial) process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment variables (defaults: 0, 1, 0)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def backend_for(device_type: str) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device_type == "cuda" else "gloo"


def init_from_env(device_type: str = "cpu") -> bool:
    """Join the process group described by the environment when WORLD_SIZE > 1.

    Returns True when this call created the group (and so should destroy it), False when the run
    is single-process or a group already exists.
    """
    info = env_info()
    if not info.distributed or dist.is_initialized():
        return False
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    else:
        # processes on one CPU share its cores; more threads than cores makes OpenMP crawl
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    dist.init_process_group(backend=backend_for(device_type), rank=info.rank, world_size=info.world_size)
    return True


def info() -> DistInfo:
    """The current process group's view of this process, or the environment's if none exists."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env_info().local_rank)
    return env_info()


def is_main() -> bool:
    """True on rank 0 (and in single-process runs)."""
    return info().is_main


def barrier() -> None:
    """Wait for every process of the group; a no-op without one."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device_type: str = "cpu") -> Iterator[DistInfo]:
    """Join the environment's process group for the duration of the block (if distributed)."""
    created = init_from_env(device_type)
    try:
        yield info()
    finally:
        if created:
            cleanup()
