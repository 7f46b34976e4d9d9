"""Classifier training: bit-exact resume, settings checks, bf16 and channels_last, seeded sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.classifier import export_weights, train_classifier
from bench.classifier.train import augment, balanced_indices
from bench.config import Config
from bench.data import PreparedData
from bench.errors import BenchError
from bench.train.checkpoint import load_checkpoint


def test_resume_gives_the_same_classifier(smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path) -> None:
    cfg = smoke_cfg
    cfg.classifier.iterations, cfg.classifier.eval_every, cfg.classifier.batch_size = 4, 2, 2
    cfg.classifier.patience = 100
    full = train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "a.pt", progress=False)

    def crash(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "b.pt", progress=False, on_step=crash)
    saved = load_checkpoint(tmp_path / "b.pt")
    assert saved["step"] == 2 and not saved["done"]
    resumed = train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "b.pt", resume=True, progress=False)
    assert resumed.resumed_from == 2 and resumed.state.step == 4
    assert resumed.state.history == full.state.history
    for (k, a), b in zip(export_weights(full.model).items(), export_weights(resumed.model).values()):
        assert torch.equal(a, b), k

    again = train_classifier(
        cfg, smoke_data.train, smoke_data.test, tmp_path / "b.pt", resume=True, progress=False, on_step=crash
    )  # finished: no step is taken
    assert again.resumed_from == 4
    cfg.classifier.lr = 0.5
    with pytest.raises(BenchError, match="other classifier settings"):
        train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "b.pt", resume=True, progress=False)


def test_bf16_and_channels_last_train(smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path) -> None:
    cfg = smoke_cfg
    cfg.train.bf16, cfg.classifier.channels_last = True, True
    cfg.classifier.iterations, cfg.classifier.eval_every, cfg.classifier.batch_size = 2, 2, 4
    out = train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "c.pt", progress=False)
    assert np.isfinite(out.state.history[-1][2]) and out.state.step == 2
    assert not out.model.training


def test_balanced_sampling_and_augmentation_are_seeded(images) -> None:
    domains = np.array([0] * 90 + [1] * 10)
    idx = balanced_indices(domains, 4000, torch.Generator().manual_seed(0))
    assert 0.45 < (domains[idx] == 1).mean() < 0.55
    x = images(4, 32)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
