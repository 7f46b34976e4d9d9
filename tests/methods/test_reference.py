"""Reference maps: chance, intensity, Sobel edges, the training box prior and the lesion-free-twin oracle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.filters import sobel

from bench.config import Config
from bench.data import PreparedData, open_data
from bench.data.dataset import RSNADataset
from bench.errors import BenchError
from bench.evaluate.metrics import pooled_auc
from bench.evaluate.protocol import collect_outputs
from bench.method import PNEUMONIA
from bench.registry import create_method, list_methods
from bench.settings import load_config
from bench.train.checkpoint import load_checkpoint, save_checkpoint
from bench.train.runner import train_context

REFERENCES = ["ref_random", "ref_intensity", "ref_edge", "ref_prior", "ref_oracle"]


@pytest.fixture(scope="module")
def ref_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data generated at 256 px like the quick preset's (12 Pneumonia + 8 Healthy)."""
    from bench.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("refdata") / "rsna"
    generate(root, SynthConfig(n_pneumonia=12, n_healthy=8, size=256, seed=1), progress=False)
    return root


def _cfg(root: Path) -> Config:
    return load_config("smoke", sets=[f"data.root={str(root)!r}", "data.size=64", "train.device='cpu'"])


@pytest.fixture(scope="module")
def data(ref_root: Path) -> PreparedData:
    return open_data(_cfg(ref_root).data, progress=False)


def _fitted(name: str, data: PreparedData, tmp_path: Path):
    cfg = _cfg(data.root)
    method = create_method(name, cfg)
    assert method.fit(train_context(name, cfg, data.train, data.tune, tmp_path, progress=False)) == []
    return method


def _everything(data: PreparedData) -> RSNADataset:
    return RSNADataset(data.cache, np.arange(len(data.cache.patient_ids)))


def test_registered_as_references() -> None:
    assert set(REFERENCES) <= set(list_methods())
    for name in REFERENCES:
        method = create_method(name, load_config("smoke", sets=["train.device='cpu'"]))
        assert method.reference and not method.translates
        assert method.title and "|" not in method.title and method.randomized(0) is None


def test_oracle_scores_pooled_auc_one_against_the_lesion_masks(data: PreparedData, tmp_path: Path) -> None:
    ds = _everything(data)
    oracle = _fitted("ref_oracle", data, tmp_path)
    assert oracle.needs <= ds.keys
    out = collect_outputs(oracle, ds, None, _cfg(data.root).eval, progress=False)
    pneumonia = out.domains == PNEUMONIA
    maps, masks = out.maps[pneumonia], out.lesion_masks[pneumonia]
    assert maps.shape[1:] == (64, 64) and masks.any()
    assert pooled_auc(maps, masks) == 1.0
    assert (maps[masks] > 0).all() and not maps[~masks].any() and not out.maps[~pneumonia].any()


def test_oracle_needs_the_twin(data: PreparedData, ref_root: Path, tmp_path: Path) -> None:
    oracle = create_method("ref_oracle", _cfg(ref_root))
    batch = data.test.batch([0, 1])
    del batch["healthy_twin"]
    with pytest.raises(BenchError, match="ref_oracle needs synthetic data"):
        oracle.lesion_map(batch)
    with pytest.raises(BenchError, match="ref_oracle needs synthetic data"):
        oracle.localize(batch["image"])
    plain = tmp_path / "plain"
    shutil.copytree(ref_root, plain)
    shutil.rmtree(plain / "synthetic_lesion_lift")  # no twins: as on real data
    no_twins = open_data(_cfg(plain).data, progress=False)
    assert not oracle.needs <= no_twins.train.keys
    with pytest.raises(BenchError, match="ref_oracle needs synthetic data"):
        oracle.fit(train_context("ref_oracle", _cfg(plain), no_twins.train, no_twins.tune, tmp_path, progress=False))


def test_prior_is_the_mean_training_box_mask(data: PreparedData, tmp_path: Path) -> None:
    prior = _fitted("ref_prior", data, tmp_path)
    train = data.train.batch(np.arange(len(data.train)))
    expected = train["box_mask"][train["domain"] == PNEUMONIA][:, 0].mean(0)
    x = data.train.batch([0, 1, 2])["image"]
    maps = prior.localize(x)
    assert maps.shape == (3, 64, 64) and 0 < expected.max() <= 1
    assert torch.allclose(maps, expected.expand(3, -1, -1), atol=1e-6)
    with pytest.raises(BenchError, match="not been fitted"):
        create_method("ref_prior", _cfg(data.root)).localize(x)


def test_random_is_reproducible_per_image_and_chance(data: PreparedData, tmp_path: Path) -> None:
    method = _fitted("ref_random", data, tmp_path)
    ds = _everything(data)
    x = ds.batch(np.arange(len(ds)))["image"]
    maps = method.localize(x)
    assert torch.equal(maps, method.localize(x))
    assert torch.equal(maps[3], method.localize(x[3:4])[0])  # the same whatever batch it comes in
    assert not torch.equal(maps[0], maps[1]) and 0 <= maps.min() and maps.max() < 1
    pneumonia = ds.domains == PNEUMONIA
    masks = ds.batch(np.flatnonzero(pneumonia))["lesion_mask"][:, 0].numpy() > 0.5
    assert abs(pooled_auc(maps[pneumonia].numpy(), masks) - 0.5) < 0.03


def test_edge_and_intensity_maps(data: PreparedData, tmp_path: Path) -> None:
    x = data.train.batch(np.arange(3))["image"]
    edge = _fitted("ref_edge", data, tmp_path).localize(x)
    for img, m in zip(x[:, 0].numpy(), edge.numpy()):
        np.testing.assert_allclose(m, sobel(img.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert torch.equal(_fitted("ref_intensity", data, tmp_path).localize(x), x[:, 0])


@pytest.mark.parametrize("name", REFERENCES)
def test_state_dict_round_trips(name: str, data: PreparedData, tmp_path: Path) -> None:
    method = _fitted(name, data, tmp_path)
    save_checkpoint(tmp_path / "m.pt", method.state_dict())
    again = create_method(name, _cfg(data.root))
    again.load_state_dict(load_checkpoint(tmp_path / "m.pt"))
    batch = data.test.batch([0, 1])
    assert torch.equal(method.lesion_map(batch), again.lesion_map(batch))
    other = "ref_edge" if name != "ref_edge" else "ref_random"
    with pytest.raises(BenchError, match="cannot be loaded"):
        create_method(other, _cfg(data.root)).load_state_dict(method.state_dict())
