"""Training orchestration shared by ``train`` and ``run``: checkpoints keyed by method, data and config."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.config import Config, from_dict, to_dict
from bench.data import PreparedData
from bench.data.cache import lesionbench_home
from bench.data.dataset import RSNADataset
from bench.errors import BenchError
from bench.identity import artifact_identity
from bench.method import Method, Points, TrainContext
from bench.registry import create_method, get_method_class, method_params
from bench.train.checkpoint import load_checkpoint, save_checkpoint

FINAL = "final.pt"


@dataclass
class TrainedMethod:
    """A trained method, its checkpoint folder and the learning-curve points its training took."""

    method: Method
    out_dir: Path
    curves: Points


def training_key(name: str, cfg: Config, data_hash: str) -> str:
    """Identity of a trained method (:func:`bench.identity.artifact_identity`): the method, its
    effective params, data, model, schedule, and the classifier settings if it uses the classifier."""
    uses_classifier = get_method_class(name).uses_classifier
    return artifact_identity(name, cfg, data_hash, method_params(name, cfg), classifier=uses_classifier)


def checkpoints_root() -> Path:
    """Where trained models are kept (``$LESIONBENCH_CHECKPOINTS`` or <home>/checkpoints)."""
    return Path(os.environ.get("LESIONBENCH_CHECKPOINTS", lesionbench_home() / "checkpoints"))


def default_out_dir(name: str, cfg: Config, data: PreparedData) -> Path:
    """The checkpoint folder of a method trained with this config on this data."""
    return checkpoints_root() / f"{name}-{cfg.preset}-{training_key(name, cfg, data.manifest_hash)}"


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _classifier_source(
    cfg: Config, train: RSNADataset, tune: RSNADataset, out_dir: Path, store: Path | None, resume: bool, progress: bool
) -> Callable[[torch.device], Any]:
    """The run's shared classifier on a device, obtained when a method asks for it."""

    def obtain(device: torch.device) -> Any:
        from bench.classifier.shared import obtain_classifier

        return obtain_classifier(
            cfg, train, tune, device, store_dir=store, work_dir=out_dir, resume=resume, progress=progress
        )

    return obtain


def train_context(
    name: str,
    cfg: Config,
    train: RSNADataset,
    tune: RSNADataset,
    out_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    judge: Any | None = None,
    progress_row: int = 0,
    classifier_store: Path | None = None,
) -> TrainContext:
    """What method ``name`` trains with under ``cfg``: the data, ``cfg.train``, its checkpoint identity
    (:func:`bench.identity.artifact_identity` of ``cfg``) and the shared classifier (kept in
    ``classifier_store``, default ``<LESIONBENCH_HOME>/classifiers``)."""
    out_dir = Path(out_dir)
    return TrainContext(
        train=train,
        tune=tune,
        out_dir=out_dir,
        settings=cfg.train,
        checkpoint_key=functools.partial(artifact_identity, name, cfg),
        classifier=_classifier_source(cfg, train, tune, out_dir, classifier_store, resume, progress),
        resume=resume,
        progress=progress,
        judge=judge,
        progress_row=progress_row,
    )


def load_trained(name: str, cfg: Config, out_dir: Path, data_hash: str) -> TrainedMethod | None:
    """The trained method saved in ``out_dir`` with its curve points, or None when it has not finished training.

    A model trained with other settings or on other data is an error, never silently reused.
    """
    path = out_dir / FINAL
    if not path.is_file():
        return None
    saved = load_checkpoint(path)
    if saved.get("method") != name:
        raise BenchError(f"{path}: holds method {saved.get('method')!r}, not {name!r}")
    theirs = training_key(name, from_dict(saved["config"]), saved.get("data_hash", ""))
    if theirs != training_key(name, cfg, data_hash):
        raise BenchError(
            f"{path}: was trained with other settings or data; choose another --out or train without --resume"
        )
    method = create_method(name, cfg)
    method.load_state_dict(saved["state"])
    # a model saved before the curves moved out of the method's state keeps them in it
    curves = saved["curves"] if "curves" in saved else saved["state"].get("curves", [])
    return TrainedMethod(method, out_dir, [dict(point) for point in curves])


def train_method(
    name: str,
    cfg: Config,
    data: PreparedData,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
    judge: Any | None = None,
    progress_row: int = 0,
) -> TrainedMethod:
    """Train ``name`` (or reuse its finished checkpoint) and return it with its folder and curve points;
    ``judge`` (the run's evaluator, optional) scores the learning curves taken during training;
    ``progress_row`` is the terminal line of its progress bar."""
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(name, cfg, data)
    if resume:
        done = load_trained(name, cfg, out_dir, data.manifest_hash)
        if done is not None:
            return done
    method = create_method(name, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = train_context(
        name,
        cfg,
        data.train,
        data.tune,
        out_dir,
        resume=resume,
        progress=progress,
        judge=judge,
        progress_row=progress_row,
    )
    curves = [dict(point) for point in method.fit(ctx) or []]  # None: a method written before fit returned points
    if _is_main():
        save_checkpoint(
            out_dir / FINAL,
            {
                "method": name,
                "config": to_dict(cfg),
                "data_hash": data.manifest_hash,
                "state": method.state_dict(),
                "curves": curves,
            },
        )
    return TrainedMethod(method, out_dir, curves)
