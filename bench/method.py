"""The interface every localization method implements.

A method is built from :class:`MethodSettings` (what it is: its params, image size, seed, device,
network and classifier settings), trained on a :class:`TrainContext` (data, schedule, where to
checkpoint), returning its learning-curve points, may translate images to a target domain (GAN
methods), and produces a lesion map (higher = more likely lesion). The engine makes both from the
run's Config and only ever talks to methods through this class, never through their names.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from bench.config import ClassifierConfig, Config, ModelConfig, TrainConfig, resolve_params
from bench.data.dataset import RSNADataset
from bench.data.domains import DOMAINS, HEALTHY, PNEUMONIA  # noqa: F401  (re-exported for methods)
from bench.train.device import resolve_device


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, nested tables merged key by key."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


@dataclass
class NoParams:
    """A method without hyper-parameters of its own."""


@dataclass(frozen=True)
class MethodSettings:
    """What a method is built from, made by the engine from the run's Config (:meth:`Method.settings_from`).

    ``params`` is the method's ``Params`` (defaults, preset values, the user's settings); ``size`` the
    image side (``data.size``); ``seed`` draws its initial weights and seeded maps (``train.seed``);
    ``model`` the GAN network sizes; ``classifier`` the shared classifier's settings (input size, layout).
    """

    params: Any
    size: int
    seed: int
    device: torch.device
    model: ModelConfig
    classifier: ClassifierConfig


class CheckpointKey(Protocol):
    """The identity of a method's training checkpoint (:func:`bench.identity.artifact_identity` of the run's
    Config and this method): its ``params`` trained on data ``data_hash``; ``schedule`` adds the train schedule."""

    def __call__(self, data_hash: str, params: dict[str, Any], *, schedule: bool = True) -> str: ...


Points = list[dict[str, float]]  # learning-curve points (``bench.train.gan.curves``), in training order


@dataclass
class TrainContext:
    """Everything a method needs to train: data, its training settings, where to checkpoint, whether to resume.

    ``tune`` is the only split a method may choose on (early stopping, checkpoints, thresholds).
    ``settings`` is the run's training settings (iterations, batch size, checkpoint and curve cadence,
    recipe, precision, seed, device). ``checkpoint_key`` identifies a resumable checkpoint (a checkpoint
    of another key is refused). ``classifier(device)`` gives the run's shared classifier (trained, reused
    or the user's weights; :func:`bench.classifier.shared.obtain_classifier`). ``judge`` is the run's
    evaluator (anything with ``probs(images)`` and ``threshold``) for learning curves measured during
    training; None leaves the judged figures out of them. ``progress_row`` is the terminal line of the
    progress bar (methods training side by side each keep their own line).
    The engine builds it with :func:`bench.train.runner.train_context`.
    """

    train: RSNADataset
    tune: RSNADataset
    out_dir: Path
    settings: TrainConfig
    checkpoint_key: CheckpointKey
    classifier: Callable[[torch.device], Any]
    resume: bool = False
    progress: bool = True
    judge: Any | None = None
    progress_row: int = 0


class Method(abc.ABC):
    """Base class of a lesion-localization method; register subclasses with ``@register_method``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # display name in reports; defaults to the registry name
    translates: ClassVar[bool] = False
    reference: ClassVar[bool] = False  # a reference map (chance, trivial, prior, oracle), reported in its own block
    ceiling: ClassVar[bool] = False  # a reference that sees what methods may not (lesion-free twin, boxes)
    needs: ClassVar[frozenset[str]] = frozenset()  # batch keys beyond "image" it needs (RSNADataset.keys)
    uses_classifier: ClassVar[bool] = False  # relies on the shared classifier: its settings enter the identity
    # training time relative to the other methods at equal settings; ``run --jobs`` starts the longest first
    training_cost: ClassVar[float] = 1.0
    Params: ClassVar[type] = NoParams
    # preset name -> parameter values for that preset (under the user's ``method.<name>.*`` settings)
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, settings: MethodSettings) -> None:
        self.settings = settings
        self.params = settings.params
        self.device = settings.device

    @classmethod
    def settings_from(cls, cfg: Config, device: str | torch.device | None = None) -> MethodSettings:
        """The :class:`MethodSettings` of this method under the run's ``cfg`` (``device`` overrides
        ``train.device``)."""
        return MethodSettings(
            params=cls.effective_params(cfg),
            size=cfg.data.size,
            seed=cfg.train.seed,
            device=resolve_device(cfg.train.device if device is None else device),
            model=cfg.model,
            classifier=cfg.classifier,
        )

    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device | None = None) -> Method:
        """This method built from the run's ``cfg`` (what :func:`bench.registry.create_method` does by name)."""
        return cls(cls.settings_from(cfg, device))

    @classmethod
    def effective_params(cls, cfg: Config) -> Any:
        """The ``Params`` dataclass for ``cfg``: defaults, then ``preset_params[cfg.preset]``, then
        the user's ``cfg.method[name]`` settings (unknown keys are a ConfigError)."""
        merged = _deep_merge(cls.preset_params.get(cfg.preset, {}), cfg.method.get(cls.name, {}))
        return resolve_params(cls.Params, merged, f"method.{cls.name}")

    @abc.abstractmethod
    def fit(self, ctx: TrainContext) -> Points:
        """Train on ``ctx.train`` (checkpointing into ``ctx.out_dir``, resuming if asked); returns the
        learning-curve points taken during training ([] for a method without curves)."""

    def translate(self, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
        """G(x, target): images (B, 1, H, W) in [-1, 1] translated to ``target`` domain.

        Like :meth:`localize`, it runs the networks in inference mode (eval, no grad) itself.
        """
        raise TypeError(f"method {self.name!r} does not translate images")

    @classmethod
    def cannot_run(cls, data: Any) -> str | None:
        """Why the method cannot run on ``data`` beyond missing batch keys (``needs``), or None. A reference
        that cannot run is left out of a run with this reason in the record instead of failing."""
        return None

    @abc.abstractmethod
    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Lesion map (B, H, W) for images (B, 1, H, W) in [-1, 1]; higher = lesion."""

    def lesion_map(self, batch: dict[str, Any]) -> torch.Tensor:
        """Lesion map of a dataset batch (dict samples); methods needing more than the image override it."""
        return self.localize(batch["image"].to(self.device))

    def randomized(self, seed: int) -> Method | None:
        """The same method and settings with freshly initialized weights (no training), for the
        model-randomization sanity check; None for a method that learns nothing."""
        return None

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the trained method (tensors and plain values)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` output."""
