"""The Table 1 evaluator: threshold on real tune images, AUC on test, reuse, user weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import bench.evaluate.judge as ev
from bench import classifier as clf
from bench.config import Config
from bench.data import PreparedData
from bench.errors import BenchError
from bench.evaluate.metrics import accuracy_healthy


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every classifier test runs on one thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    """No evaluator kept from another test."""
    ev._MEMO.clear()
    yield
    ev._MEMO.clear()


def _is_healthy(judge: ev.Evaluator, images: torch.Tensor, threshold: float | None = None) -> np.ndarray:
    """The judge's verdict as the protocol reads it: Healthy when P(pneumonia) < threshold (default: Youden's)."""
    t = judge.threshold if threshold is None else threshold
    return accuracy_healthy(judge.probs(images), t).astype(bool)


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("the classifier must not be trained again")


def test_fixed_threshold() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    probs = np.array([0.1, 0.2, 0.5, 0.3, 0.4, 0.8])
    assert ev.fixed_threshold(labels, probs) == pytest.approx(0.4)  # J = 1 - 1/4, the unique maximum
    assert ev.fixed_threshold(labels, np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.9])) == pytest.approx(0.6)
    assert ev.fixed_threshold(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5


def test_trains_then_reuses(
    smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = smoke_cfg
    cfg.classifier.iterations, cfg.classifier.eval_every = 4, 2
    judge = ev.get_evaluator(cfg, smoke_data, cache_dir=tmp_path, progress=False)
    assert ev.get_evaluator(cfg, smoke_data, cache_dir=tmp_path, progress=False) is judge  # in-process memo
    x = smoke_data.test.batch(np.arange(len(smoke_data.test)))["image"]
    p = judge.probs(x)
    assert p.shape == (len(x),) and p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
    assert np.isfinite(judge.threshold) and 0 <= judge.test_auc <= 1
    assert judge.test_auc == pytest.approx(clf.auc_or_nan(smoke_data.test.domains, p))
    tune = smoke_data.tune.batch(np.arange(len(smoke_data.tune)))
    p_tune = judge.probs(tune["image"])
    assert judge.threshold == ev.fixed_threshold(tune["domain"].numpy(), p_tune)  # chosen on tune, never on test
    assert judge.describe()["threshold_source"] == "tune"
    np.testing.assert_array_equal(_is_healthy(judge, x), p < judge.threshold)
    np.testing.assert_array_equal(_is_healthy(judge, x, 0.5), p < 0.5)
    info = judge.describe()
    assert info["source"] == "trained" and info["threshold"] == judge.threshold
    assert Path(info["path"]).is_file() and Path(info["path"]).is_relative_to(tmp_path)

    ev._MEMO.clear()
    monkeypatch.setattr("bench.classifier.shared.train_classifier", _no_training)
    again = ev.get_evaluator(cfg, smoke_data, cache_dir=tmp_path, progress=False)
    assert again.describe()["source"] == "reused" and again.threshold == judge.threshold
    np.testing.assert_array_equal(again.probs(x), p)
    assert (info["input_size"], info["feature_map"]) == (32, 1)


def test_another_input_size_trains_another_classifier(
    smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path
) -> None:
    cfg = smoke_cfg
    cfg.classifier.iterations, cfg.classifier.eval_every = 2, 2
    small = ev.get_evaluator(cfg, smoke_data, cache_dir=tmp_path, progress=False).describe()
    cfg.classifier.size = 64
    large = ev.get_evaluator(cfg, smoke_data, cache_dir=tmp_path, progress=False).describe()
    assert small["source"] == large["source"] == "trained" and small["key"] != large["key"]
    assert (small["input_size"], small["feature_map"], large["input_size"], large["feature_map"]) == (32, 1, 64, 2)
    assert Path(small["path"]).is_file() and Path(large["path"]).is_file()


def test_user_weights(
    smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bench.classifier.shared.train_classifier", _no_training)
    model = clf.build_classifier(3, size=32).eval()
    path = tmp_path / "chexnet.safetensors"
    save_file(clf.export_weights(model), str(path))
    smoke_cfg.classifier.weights = str(path)
    judge = ev.get_evaluator(smoke_cfg, smoke_data, cache_dir=tmp_path / "store", progress=False)
    assert judge.describe()["source"] == "user weights" and judge.describe()["train_tune_auc"] is None
    x = smoke_data.test.batch([0, 1])["image"]
    want = torch.sigmoid(clf.predict_logits(model, x)).double().numpy()
    np.testing.assert_allclose(judge.probs(x), want, rtol=1e-5)
    assert not (tmp_path / "store").exists()

    torch.save({"features.conv0.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pt")
    smoke_cfg.classifier.weights = str(tmp_path / "partial.pt")
    with pytest.raises(BenchError, match=r"partial.pt: weights do not fit densenet121 .* missing keys"):
        ev.get_evaluator(smoke_cfg, smoke_data, cache_dir=tmp_path / "store", progress=False)
