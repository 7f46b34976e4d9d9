"""Classifier weights: strict loading with one clear error, user files, 2-class heads, load_classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.classifier import (
    build_classifier,
    export_weights,
    load_classifier,
    predict_logits,
)
from bench.classifier.weights import (
    WEIGHTS_KIND,
    load_user_classifier,
    load_weights,
    read_weights_file,
)
from bench.errors import BenchError


def test_wrong_keys_give_one_clear_error() -> None:
    model = build_classifier(0, size=32)
    state = export_weights(model)
    renamed = {k.replace("denseblock4", "block4"): v for k, v in state.items()}
    with pytest.raises(BenchError) as err:
        load_weights(model, renamed, "user.pt")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("user.pt:")
    assert "missing keys (features.denseblock4" in msg and "unexpected keys (features.block4" in msg
    n = sum("denseblock4" in k for k in state)
    assert f"{n} missing keys" in msg and f"{n} unexpected keys" in msg

    wrong_head = dict(state, **{"classifier.weight": torch.zeros(14, 1024), "classifier.bias": torch.zeros(14)})
    with pytest.raises(BenchError, match=r"2 shape mismatches \(classifier.bias: file \(14,\) vs model \(1,\)"):
        load_weights(model, wrong_head, "chexnet14.pt")


def test_user_weights_files(tmp_path: Path, images) -> None:
    source = build_classifier(5, size=32).eval()
    x = images(2, 32)
    want = predict_logits(source, x)
    weights = export_weights(source)
    save_file(weights, str(tmp_path / "w.safetensors"))
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        model = load_user_classifier(tmp_path / name, torch.device("cpu"), size=32)
        torch.testing.assert_close(predict_logits(model, x), want)

    two = dict(weights)  # a (Healthy, Pneumonia) softmax head gives the same P(pneumonia)
    w, b = weights["classifier.weight"], weights["classifier.bias"]
    two["classifier.weight"] = torch.cat([torch.zeros_like(w) + 0.01, w + 0.01])
    two["classifier.bias"] = torch.cat([torch.zeros_like(b) - 0.3, b - 0.3])
    model = build_classifier(0, size=32)
    load_weights(model, two, "two-class")
    torch.testing.assert_close(predict_logits(model, x), want, rtol=1e-4, atol=1e-4)

    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(BenchError, match="bad.safetensors"):
        read_weights_file(tmp_path / "bad.safetensors")
    with pytest.raises(BenchError, match="does not exist"):
        read_weights_file(tmp_path / "missing.pt")


def test_load_classifier_is_ready_for_inference(images) -> None:
    source = build_classifier(7, size=32).eval()
    x = images(2, 32)
    for state in (export_weights(source), {"kind": WEIGHTS_KIND, "model": export_weights(source)}):
        model = load_classifier(state, "state", "cpu", channels_last=True, size=32)
        assert not model.training
        assert model.net.features.conv0.weight.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(predict_logits(model, x), predict_logits(source, x))
    with pytest.raises(BenchError, match="^broken: weights do not fit"):
        load_classifier({"x": torch.zeros(1)}, "broken", size=32)
