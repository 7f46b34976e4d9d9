"""A GAN run's checkpoint (networks, optimizers, sampler, RNGs, curve points) and its resume check."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import torch

from bench.errors import BenchError
from bench.method import CheckpointKey, Points
from bench.train.gan.recipe import Recipe
from bench.train.gan.sampler import Sampler

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "lesionbench-gan/1"


class Restorable(Protocol):
    """Anything saved into a checkpoint and restored from it (the method's networks, the trainer's optimizers)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def resume_identity(key: CheckpointKey, params: Any, recipe: Recipe, data_hash: str) -> str:
    """What must match for a checkpoint to be resumed: the method, its effective ``params`` and ``recipe``,
    data and model; the schedule may change (e.g. more iterations)."""
    return key(data_hash, {**dataclasses.asdict(params), "recipe": recipe.describe()}, schedule=False)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def checkpoint_state(
    method: Restorable, trainer: Restorable, sampler: Sampler, identity: str, curves: Points
) -> dict[str, Any]:
    """Everything needed to continue training exactly: networks, optimizers, RNGs, iteration, curve points."""
    position = trainer.state_dict()
    return {
        **method.state_dict(),
        "iteration": position["iteration"],
        "curves": [dict(point) for point in curves],
        "identity": identity,
        "trainer": position,
        "sampler": sampler.state_dict(),
        "rng": _rng_state(),
    }


def restore(
    method: Restorable,
    trainer: Restorable,
    sampler: Sampler,
    state: dict[str, Any],
    path: Path,
    identity: str,
    name: str,
) -> Points:
    """Load :func:`checkpoint_state` output into ``method`` (registered as ``name``), ``trainer`` and
    ``sampler``, refusing a checkpoint of another ``identity``; returns its curve points."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise BenchError(f"{path}: not a GAN training checkpoint")
    if state.get("identity") != identity:
        raise BenchError(
            f"{path}: written with other data, model or method.{name} settings; "
            "use another output folder or drop --resume"
        )
    method.load_state_dict(state)
    trainer.load_state_dict(state["trainer"])
    sampler.load_state_dict(state["sampler"])
    _set_rng_state(state["rng"])
    return [dict(point) for point in state.get("curves", [])]
