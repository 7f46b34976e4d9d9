"""Shared fixtures: tiny synthetic data sets and smoke configurations, isolated caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.config import Config, load_config

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
