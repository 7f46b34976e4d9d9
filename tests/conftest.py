"""Shared fixtures: tiny synthetic data sets and smoke configurations, isolated caches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from bench.config import Config
from bench.settings import load_config

RSNA_DIR = Path(
    os.environ.get("LESIONBENCH_RSNA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rsna")
)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep generated data and caches of the test run out of the user's home."""
    home = tmp_path_factory.mktemp("lesionbench_home")
    os.environ["LESIONBENCH_HOME"] = str(home)
    os.environ.pop("LESIONBENCH_CACHE", None)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small built-in synthetic data set (24 Pneumonia + 24 Healthy at 64 px), generated once."""
    from bench.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth") / "rsna"
    generate(root, SynthConfig(n_pneumonia=24, n_healthy=24, size=64, seed=0), progress=False)
    return root


@pytest.fixture()
def smoke_cfg(synth_root: Path) -> Config:
    """The smoke preset pointed at the small synthetic data set, on CPU."""
    cfg = load_config("smoke", sets=[f"data.root={str(synth_root)!r}", "train.device='cpu'"])
    return cfg


@pytest.fixture()
def smoke_data(smoke_cfg: Config):
    """PreparedData (train/val datasets) for ``smoke_cfg``."""
    from bench.data import open_data

    return open_data(smoke_cfg.data, progress=False)


@pytest.fixture(scope="session")
def rsna_dir() -> Path:
    """The real RSNA sample (CSVs + 11 DICOMs); tests needing it skip when it is absent."""
    if not (RSNA_DIR / "labels" / "stage_2_train_labels.csv").is_file():
        pytest.skip(f"real RSNA sample not found at {RSNA_DIR} (set LESIONBENCH_RSNA_DIR)")
    return RSNA_DIR


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """DenseNet on tiny images runs fastest on one thread; two threads on busy cores crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images (n, 1, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear") * 2 - 1


@pytest.fixture()
def images() -> Callable[..., torch.Tensor]:
    """Factory of smooth random images: ``images(n, size, seed=0)``."""
    return smooth_images
