"""The identity of a trained artefact: one hash of everything that determines it.

Used for the checkpoint folder of a trained method (:func:`bench.train.runner.training_key`), the shared
classifier's store key and training checkpoints (:func:`bench.classifier.train.classifier_key`),
the evaluator's in-process memo and the GAN trainer's resume check. Two artefacts with the same
identity are interchangeable; anything that changes the trained weights changes the identity.
"""

from __future__ import annotations

from typing import Any

from bench.config import Config, config_hash, to_dict

RUNTIME_KEYS = ("device", "num_workers", "log_every")  # how a run executes, not what it trains


def train_schedule(cfg: Config) -> dict[str, Any]:
    """``cfg.train`` without the keys that only say how a run executes (device, workers, logging)."""
    return {k: v for k, v in to_dict(cfg.train).items() if k not in RUNTIME_KEYS}


def classifier_settings(cfg: Config) -> dict[str, Any]:
    """What the shared classifier depends on: ``cfg.classifier`` with the seed and precision it trains with."""
    return {**to_dict(cfg.classifier), "seed": cfg.train.seed, "bf16": cfg.train.bf16}


def artifact_identity(
    name: str,
    cfg: Config,
    data_hash: str,
    params: dict[str, Any] | None = None,
    *,
    classifier: bool = False,
    model: bool = True,
    schedule: bool = True,
) -> str:
    """Hash of artefact ``name`` with its effective ``params`` trained on data ``data_hash``.

    Data settings always enter; ``model`` adds ``cfg.model`` (network sizes), ``schedule`` the train
    schedule (:func:`train_schedule`), ``classifier`` the shared classifier's settings, for artefacts
    that use it only, so classifier settings (such as user weights) never change a GAN's identity.
    """
    material: dict[str, Any] = {
        "artifact": name,
        "params": dict(params or {}),
        "data": to_dict(cfg.data),
        "data_hash": data_hash,
    }
    if model:
        material["model"] = to_dict(cfg.model)
    if schedule:
        material["train"] = train_schedule(cfg)
    if classifier:
        material["classifier"] = classifier_settings(cfg)
    return config_hash(material)
