"""The classifier network: the CAM layer is the final ReLU'd feature map, GAP then linear head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.classifier import build_classifier
from bench.classifier.model import DenseNetClassifier, feature_map_side, place, resize_maps, resize_square


def test_cam_layer_is_final_relu_features(images) -> None:
    model = build_classifier(0, size=64).eval()
    x = images(2, 64)
    seen = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad():
        feats = model.net.forward_features(model.backbone_input(x))
        logits = model(x)
    handle.remove()
    assert torch.equal(seen[0], feats) and feats.min() >= 0  # norm5 output is the ReLU'd final map
    gap = feats.mean(dim=(2, 3)) @ model.net.classifier.weight.T + model.net.classifier.bias
    torch.testing.assert_close(logits, gap, rtol=1e-4, atol=1e-5)  # GAP then linear: CAM applies


def test_build_depends_only_on_seed() -> None:
    a, b, c = build_classifier(4, size=32), build_classifier(4, size=32), build_classifier(5, size=32)
    wa, wb, wc = (m.net.classifier.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    before = torch.get_rng_state()
    build_classifier(6, size=32)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    conv = place(a, "cpu", channels_last=True).net.features.conv0.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size,side", [(32, 1), (64, 2), (96, 3), (128, 4), (224, 7)])
def test_feature_map_side(size: int, side: int, images) -> None:
    model = build_classifier(0, size=size).eval()
    assert feature_map_side(size) == side and model.feature_side == side
    with torch.no_grad():
        feats = model.net.forward_features(model.backbone_input(images(1, 32)))
    assert feats.shape[-2:] == (side, side)  # any input is resized to the classifier's own size first


def test_every_input_is_resized_bilinearly_to_the_classifier_size(images) -> None:
    model = build_classifier(1, size=64).eval()
    x = images(2, 32)
    up = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(model.resize_input(x), up) and model.resize_input(up) is up
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(up), rtol=0, atol=0)
        assert not torch.allclose(model(x), build_classifier(1, size=32).eval()(x))  # the size matters
    with pytest.raises(ValueError, match="below DenseNet-121's 32 px"):
        DenseNetClassifier(16)


def test_maps_resized_down_by_two_are_the_two_by_two_mean() -> None:
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(resize_maps(maps, (4, 4)), F.avg_pool2d(maps.unsqueeze(1), 2)[:, 0])
    assert resize_maps(maps, (8, 8)) is maps and resize_square(maps.unsqueeze(1), 16).shape == (3, 1, 16, 16)
