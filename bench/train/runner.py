"""Training orchestration shared by ``train`` and ``run``: checkpoints keyed by method, data and config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.config import Config, from_dict, to_dict
from bench.data import PreparedData
from bench.data.cache import lesionbench_home
from bench.errors import BenchError
from bench.identity import artifact_identity
from bench.method import Method, TrainContext
from bench.registry import create_method, get_method_class, method_params
from bench.train.checkpoint import load_checkpoint, save_checkpoint

FINAL = "final.pt"


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


def load_trained(name: str, cfg: Config, out_dir: Path, data_hash: str) -> Method | None:
    """The trained method saved in ``out_dir``, or None when it has not finished training.

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
    return method


def train_method(
    name: str,
    cfg: Config,
    data: PreparedData,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
    judge: Any | None = None,
    progress_row: int = 0,
) -> tuple[Method, Path]:
    """Train ``name`` (or reuse its finished checkpoint) and return it with its folder; ``judge`` (the
    run's evaluator, optional) scores the learning curves taken during training; ``progress_row`` is
    the terminal line of its progress bar."""
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(name, cfg, data)
    if resume:
        done = load_trained(name, cfg, out_dir, data.manifest_hash)
        if done is not None:
            return done, out_dir
    method = create_method(name, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    method.fit(
        TrainContext(
            train=data.train,
            tune=data.tune,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            judge=judge,
            progress_row=progress_row,
        )
    )
    if _is_main():
        save_checkpoint(
            out_dir / FINAL,
            {
                "method": name,
                "config": to_dict(cfg),
                "data_hash": data.manifest_hash,
                "state": method.state_dict(),
            },
        )
    return method, out_dir
