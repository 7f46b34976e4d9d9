"""CheXNet-CAM and CheXNet-IG: CAM formula, maps, user weights, the shared classifier.

The engine's classifier parts are tested in tests/classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from safetensors.torch import save_file

from bench import classifier as clf
from bench.classifier import obtain_classifier
from bench.classifier.model import resize_maps
from bench.config import Config
from bench.data import PreparedData, open_data
from bench.errors import BenchError, ConfigError
from bench.registry import create_method, list_methods
from bench.settings import load_config
from bench.train.runner import train_context
from methods.chexnet_cam.method import ChexNetCAM

pytestmark = pytest.mark.usefixtures("one_thread")


def cam_formula(model: clf.DenseNetClassifier, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """The CAM sum_k w_k f_k of the final ReLU'd features, upsampled bilinearly to the classifier's
    input size, then resized bilinearly to the image size (B, H, W): what Grad-CAM must equal up to scale."""
    feats = model.net.forward_features(model.backbone_input(x))
    cam = torch.einsum("k,bkhw->bhw", model.head_weight, feats).unsqueeze(1)
    cam = F.relu(cam) if relu else cam
    cam = F.interpolate(cam, size=(model.size, model.size), mode="bilinear", align_corners=False)[:, 0]
    return resize_maps(cam, tuple(x.shape[-2:]))


def mixed_sign_model(x: torch.Tensor, size: int) -> clf.DenseNetClassifier:
    """A random classifier at ``size`` px whose CAM on ``x`` has both signs (so the ReLU matters)."""
    for seed in range(20):
        model = clf.build_classifier(seed, size=size).eval()
        with torch.no_grad():
            model.net.classifier.weight.normal_(generator=torch.Generator().manual_seed(seed))
            raw = cam_formula(model, x, relu=False)
        if (raw > 0).float().mean() > 0.1 and (raw < 0).float().mean() > 0.1:
            return model
    raise AssertionError("no random model with a mixed-sign CAM")


def method_with(name: str, model: clf.DenseNetClassifier, sets: list[str] | None = None):
    """A chexnet method holding ``model`` (no training)."""
    method = create_method(name, load_config("smoke", sets=["train.device='cpu'"] + (sets or [])))
    method.model = model.eval()
    return method


def test_registered_and_not_translating(images: Callable[..., torch.Tensor]) -> None:
    assert {"chexnet_cam", "chexnet_ig"} <= set(list_methods())
    method = create_method("chexnet_cam", load_config("smoke", sets=["train.device='cpu'"]))
    assert not method.translates
    with pytest.raises(TypeError):
        method.translate(images(1, 32), 0)
    with pytest.raises(BenchError, match="fit it or load"):
        method.localize(images(1, 32))


def test_captum_gradcam_equals_cam_formula_up_to_scale(images: Callable[..., torch.Tensor]) -> None:
    x = images(2, 64, seed=3)  # working size 64 px, classifier at 96 px: 3x3 final feature maps
    model = mixed_sign_model(x, 96)
    xc = model.resize_input(x)
    layer_cam = LayerGradCam(model, model.cam_layer).attribute(xc, target=0)[:, 0]
    with torch.no_grad():
        feats = model.net.forward_features(model.backbone_input(x))
        cam = torch.einsum("k,bkhw->bhw", model.head_weight, feats)
    h, w = feats.shape[-2:]
    assert (h, w) == (3, 3)
    torch.testing.assert_close(layer_cam, cam / (h * w), rtol=1e-4, atol=1e-6 * cam.abs().max().item())

    got = method_with("chexnet_cam", model, ["classifier.size=96"]).localize(x)
    with torch.no_grad():
        want = cam_formula(model, x)
    assert got.shape == (2, 64, 64) and want.abs().max() > 0 and (want == 0).any()
    scale = float((got * want).sum() / (want * want).sum())
    assert scale > 0
    torch.testing.assert_close(got, scale * want, rtol=1e-4, atol=1e-5 * float(got.max()))
    assert scale == pytest.approx(1 / (h * w), rel=1e-3)


@pytest.mark.parametrize("name", ["chexnet_cam", "chexnet_ig"])
def test_maps_are_computed_at_the_classifier_size(name: str, images: Callable[..., torch.Tensor]) -> None:
    """A 32 px image is explained at the classifier's 64 px and its map brought back to 32 px: the
    map of the 64 px upsampled image averaged over 2x2 blocks (bilinear, exact for a factor 2)."""
    sets = ["classifier.size=64", "method.chexnet_ig.n_steps=4"]
    method = method_with(name, clf.build_classifier(0, size=64), sets)
    x = images(2, 32, seed=5)
    at_working = method.localize(x)
    at_classifier = method.localize(F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False))
    assert at_working.shape == (2, 32, 32) and at_classifier.shape == (2, 64, 64)
    want = F.avg_pool2d(at_classifier.unsqueeze(1), 2)[:, 0]
    torch.testing.assert_close(at_working, want, rtol=1e-4, atol=1e-5 * float(want.max()))


@pytest.mark.parametrize("name", ["chexnet_cam", "chexnet_ig"])
@pytest.mark.parametrize("size", [32, 64])
def test_map_shapes(name: str, size: int, images: Callable[..., torch.Tensor]) -> None:
    sets = ["method.chexnet_ig.n_steps=4", "method.chexnet_ig.internal_batch_size=3"]
    method = method_with(name, clf.build_classifier(0, size=32), sets)
    x = images(3, size)
    maps = method.localize(x)
    assert maps.shape == (3, size, size) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and (maps >= 0).all()


def test_ig_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="map"):
        create_method("chexnet_ig", load_config("smoke", sets=["method.chexnet_ig.map='signed'"]))


def test_ig_positive_vs_abs(images: Callable[..., torch.Tensor]) -> None:
    x = images(2, 32)
    model = clf.build_classifier(1, size=32)
    sets = ["method.chexnet_ig.n_steps=4"]
    pos = method_with("chexnet_ig", model, sets).localize(x)
    mag = method_with("chexnet_ig", model, sets + ["method.chexnet_ig.map='abs'"]).localize(x)
    assert (mag >= pos - 1e-6).all() and mag.sum() > pos.sum()


# ----------------------------------------------------------------------------- weights


def test_user_weights_skip_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.safetensors"
    save_file(clf.export_weights(clf.build_classifier(2, size=32)), str(path))
    monkeypatch.setattr("bench.classifier.shared.train_classifier", _no_training)
    cfg = load_config("smoke", sets=["train.device='cpu'", f"classifier.weights={str(path)!r}"])
    method = create_method("chexnet_cam", cfg)
    fake = _FakeSplit()
    assert method.fit(train_context("chexnet_cam", cfg, fake, fake, tmp_path / "out", progress=False)) == []
    assert method.classifier_info["source"] == "user weights"
    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    cfg.classifier.weights = str(bad)
    with pytest.raises(BenchError, match="1 unexpected keys"):
        create_method("chexnet_cam", cfg).fit(train_context("chexnet_cam", cfg, fake, fake, tmp_path, progress=False))


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("the classifier must not be trained here")


class _FakeSplit:
    """Stands in for a dataset where no data is read."""

    domains = np.array([0, 1])

    class cache:  # noqa: N801  (mimics RSNADataset.cache.content_hash)
        content_hash = "fake"


# ----------------------------------------------------------------------------- training


def test_bf16_and_channels_last(smoke_cfg: Config, smoke_data: PreparedData, tmp_path: Path) -> None:
    cfg = smoke_cfg
    cfg.train.bf16, cfg.classifier.channels_last = True, True
    cfg.classifier.iterations, cfg.classifier.eval_every, cfg.classifier.batch_size = 2, 2, 4
    out = clf.train_classifier(cfg, smoke_data.train, smoke_data.test, tmp_path / "c.pt", progress=False)
    method = ChexNetCAM.from_config(cfg)
    method.load_state_dict({"model": clf.export_weights(out.model)})
    maps = method.localize(smoke_data.test.batch([0, 1])["image"])
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()


@pytest.fixture(scope="module")
def auc_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, PreparedData, Path]:
    """A tiny-but-sufficient task: 80 + 80 synthetic radiographs at 64 px: 64 test, 24 tune, 72 train.

    The smoke preset's few images cannot measure an AUC and its 32 px hide the lesions' texture, so
    this test has its own data. DenseNet-121 from scratch learns the synthetic lesions slowly: 48 steps
    (~20 s on one core), early-stopped on the tune split, reached a held-out test AUC of 0.70 here (the
    quick preset reaches 0.96); under the null hypothesis the AUC of 64 images has a standard deviation
    of 0.07, so 0.65 is above chance.
    """
    from bench.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth160") / "rsna"
    generate(root, SynthConfig(n_pneumonia=80, n_healthy=80, size=64, seed=0), progress=False)
    cfg = load_config(
        "smoke",
        sets=[
            f"data.root={str(root)!r}",
            "data.size=64",
            "classifier.size=64",
            "data.val_fraction=0.4",
            "data.tune_fraction=0.25",
            "train.device='cpu'",
            "classifier.iterations=48",
            "classifier.eval_every=12",
            "classifier.patience=10",
            "classifier.augment=false",
            "classifier.lr=0.0003",
        ],
    )
    return cfg, open_data(cfg.data, progress=False), tmp_path_factory.mktemp("classifiers")


def test_trains_above_chance_and_is_shared(
    auc_setup: tuple[Config, PreparedData, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, data, store = auc_setup
    ctx = train_context(
        "chexnet_cam", cfg, data.train, data.tune, tmp_path / "cam", progress=False, classifier_store=store
    )
    cam = create_method("chexnet_cam", cfg)
    cam.fit(ctx)
    info = cam.classifier_info
    assert info["source"] == "trained" and (tmp_path / "cam" / "classifier_checkpoint.pt").is_file()
    logits = clf.dataset_logits(cam.model, data.tune)
    auc = clf.auc_or_nan(data.tune.domains, logits)
    assert auc == pytest.approx(info["train_tune_auc"], abs=1e-6)
    test_auc = clf.auc_or_nan(data.test.domains, clf.dataset_logits(cam.model, data.test))
    print(f"held-out test AUC {test_auc:.3f}")
    assert test_auc >= 0.65, f"test AUC {test_auc:.3f} on {len(data.test)} held-out synthetic images"

    monkeypatch.setattr("bench.classifier.shared.train_classifier", _no_training)
    ig = create_method("chexnet_ig", cfg)
    ig.fit(
        train_context("chexnet_ig", cfg, data.train, data.tune, tmp_path / "ig", progress=False, classifier_store=store)
    )
    assert ig.classifier_info["source"] == "reused"
    assert ig.classifier_info["train_tune_auc"] == info["train_tune_auc"]
    np.testing.assert_array_equal(clf.dataset_logits(ig.model, data.tune), logits)

    restored = ChexNetCAM.from_config(cfg)
    restored.load_state_dict(cam.state_dict())
    x = data.test.batch(np.arange(4))["image"]
    torch.testing.assert_close(restored.localize(x), cam.localize(x))
    again = obtain_classifier(cfg, data.train, data.test, torch.device("cpu"), store_dir=store, progress=False)
    assert again.source == "reused" and again.key == info["key"]


@pytest.mark.parametrize("name", ["chexnet_cam", "chexnet_ig"])
def test_randomized_is_seeded_and_untrained(
    name: str, auc_setup: tuple[Config, PreparedData, Path], tmp_path: Path
) -> None:
    cfg, data, store = auc_setup
    trained = create_method(name, cfg)
    trained.fit(train_context(name, cfg, data.train, data.tune, tmp_path, progress=False, classifier_store=store))
    x = data.test.batch(np.flatnonzero(data.test.domains == 1)[:3])["image"]
    first, again, other = trained.randomized(3), trained.randomized(3), trained.randomized(4)
    assert type(first) is type(trained) and first.params == trained.params and first.model is not trained.model
    assert first.classifier_info == {"source": "randomized", "seed": 3}
    maps = first.localize(x)
    torch.testing.assert_close(maps, again.localize(x), rtol=0, atol=0)  # same seed, same maps
    assert not torch.allclose(maps, trained.localize(x), atol=1e-6)  # randomization changes the map
    assert not torch.allclose(maps, other.localize(x), atol=1e-6)
    fresh = clf.build_classifier(3, size=32)
    assert all(
        torch.equal(a, b) for a, b in zip(clf.export_weights(first.model).values(), clf.export_weights(fresh).values())
    )
