"""The interface every localization method implements.

A method is trained on a :class:`TrainContext`, may translate images to a target domain
(GAN methods), and produces a lesion map (higher = more likely lesion). The engine only ever
talks to methods through this class, never through their names.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from bench.config import Config, resolve_params
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


@dataclass
class TrainContext:
    """Everything a method needs to train: data, where to checkpoint, whether to resume.

    ``tune`` is the only split a method may choose on (early stopping, checkpoints, thresholds).
    ``classifier_store`` is where the shared classifier is kept (None: ``<LESIONBENCH_HOME>/classifiers``).
    ``judge`` is the run's evaluator (anything with ``probs(images)`` and ``threshold``) for learning
    curves measured during training; None leaves the judged figures out of them. ``progress_row`` is the
    terminal line of the progress bar (methods training side by side each keep their own line).
    """

    train: RSNADataset
    tune: RSNADataset
    out_dir: Path
    resume: bool = False
    progress: bool = True
    classifier_store: Path | None = None
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

    def __init__(self, cfg: Config, device: str | torch.device | None = None) -> None:
        self.cfg = cfg
        self.params = self.effective_params(cfg)
        self.device = resolve_device(cfg.train.device if device is None else device)

    @classmethod
    def effective_params(cls, cfg: Config) -> Any:
        """The ``Params`` dataclass for ``cfg``: defaults, then ``preset_params[cfg.preset]``, then
        the user's ``cfg.method[name]`` settings (unknown keys are a ConfigError)."""
        merged = _deep_merge(cls.preset_params.get(cfg.preset, {}), cfg.method.get(cls.name, {}))
        return resolve_params(cls.Params, merged, f"method.{cls.name}")

    @abc.abstractmethod
    def fit(self, ctx: TrainContext) -> None:
        """Train on ``ctx.train`` (checkpointing into ``ctx.out_dir``, resuming if asked)."""

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
