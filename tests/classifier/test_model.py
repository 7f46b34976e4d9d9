"""The classifier network: the CAM layer is the final ReLU'd feature map, GAP then linear head."""

from __future__ import annotations

import torch

from bench.classifier import build_classifier
from bench.classifier.model import place


def test_cam_layer_is_final_relu_features(images) -> None:
    model = build_classifier(0).eval()
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
    a, b, c = build_classifier(4), build_classifier(4), build_classifier(5)
    wa, wb, wc = (m.net.classifier.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    before = torch.get_rng_state()
    build_classifier(6)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    conv = place(a, "cpu", channels_last=True).net.features.conv0.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
