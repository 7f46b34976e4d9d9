"""Data layer: RSNA reader, decode-once cache, built-in synthetic radiographs, torch dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.config import DataConfig
from bench.data.cache import Cache, lesionbench_home, prepare_cache
from bench.data.domains import DOMAINS, HEALTHY, PNEUMONIA
from bench.data.rsna import Labels, Problem, read_labels, splits_for

if TYPE_CHECKING:
    from bench.data.dataset import RSNADataset

__all__ = ["PreparedData", "RSNADataset", "default_data_root", "open_data", "read_labels"]


def __getattr__(name: str) -> Any:
    """``RSNADataset`` is imported on first use: it needs torch, the decoding workers do not."""
    if name != "RSNADataset":
        raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
    from bench.data.dataset import RSNADataset

    return RSNADataset


@dataclass
class PreparedData:
    """Labels, cache, and the train/tune/test datasets of one data configuration.

    ``test`` is the paper's validation split: every reported figure is computed on it and nothing is
    chosen on it. ``tune`` is where a run chooses (early stopping, thresholds, checkpoints)."""

    root: Path
    synthetic: bool
    labels: Labels
    cache: Cache
    train: RSNADataset
    tune: RSNADataset
    test: RSNADataset
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def manifest_hash(self) -> str:
        """Hash of the exact data a run sees (ids, domains, boxes, decoded pixels at the working size)."""
        return self.cache.content_hash

    @property
    def problems(self) -> list[Problem]:
        """Label and image problems met (skipped items), in order."""
        return self.labels.problems + self.cache.problems


def synthetic_root(cfg: DataConfig) -> Path:
    """Folder of the built-in synthetic data for these settings."""
    from bench.data.synth import GENERATOR_VERSION

    tag = f"p{cfg.synth_pneumonia}-h{cfg.synth_healthy}-s{cfg.synth_size}-seed{cfg.synth_seed}-v{GENERATOR_VERSION}"
    return lesionbench_home() / "synth" / tag


def default_data_root(cfg: DataConfig, progress: bool = True) -> Path:
    """The data folder: ``cfg.root`` if given, else the built-in synthetic data (generated once)."""
    if cfg.root is not None:
        return Path(cfg.root)
    from bench.data.synth import SynthConfig, generate

    root = synthetic_root(cfg)
    if not (root / "synthetic.json").is_file():
        generate(
            root,
            SynthConfig(
                n_pneumonia=cfg.synth_pneumonia, n_healthy=cfg.synth_healthy, size=cfg.synth_size, seed=cfg.synth_seed
            ),
            progress=progress,
            overwrite=True,
        )
    return root


def split_counts(labels: Labels, cfg: DataConfig) -> dict[str, dict[str, int]]:
    """Patients per split and domain according to the CSVs (whatever images are present)."""
    parts = splits_for(labels, cfg)
    return {k: {DOMAINS[d]: sum(p.domain == d for p in v) for d in (PNEUMONIA, HEALTHY)} for k, v in parts.items()}


def open_data(cfg: DataConfig, progress: bool = True, workers: int | None = None) -> PreparedData:
    """Read labels, build or reuse the cache, and split it into train/tune/test datasets.

    ``workers`` decoding processes build a missing cache (default: one per core)."""
    from bench.data.dataset import RSNADataset

    root = default_data_root(cfg, progress)
    labels = read_labels(root, include_not_normal=cfg.include_not_normal, strict=cfg.strict)
    cache = prepare_cache(labels, cfg.size, strict=cfg.strict, progress=progress, workers=workers)
    parts = splits_for(labels, cfg)
    position = {pid: i for i, pid in enumerate(cache.patient_ids)}
    idx = {
        k: np.array(sorted(position[p.patient_id] for p in v if p.patient_id in position), dtype=np.int64)
        for k, v in parts.items()
    }
    return PreparedData(
        root=root,
        synthetic=cfg.root is None or (root / "synthetic.json").is_file(),
        labels=labels,
        cache=cache,
        train=RSNADataset(cache, idx["train"]),
        tune=RSNADataset(cache, idx["tune"]),
        test=RSNADataset(cache, idx["test"]),
        split_counts=split_counts(labels, cfg),
    )
