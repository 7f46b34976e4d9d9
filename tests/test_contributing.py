"""The GAN example of CONTRIBUTING.md runs as written: it registers, trains, resumes its state and localizes."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.registry as registry
from bench.config import Config
from bench.registry import create_method
from bench.train.runner import train_context

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
NAME = "residual_gan"

pytestmark = pytest.mark.usefixtures("one_thread")


def example_source() -> str:
    """The one Python block of CONTRIBUTING.md that registers the example GAN."""
    blocks = re.findall(r"```python\n(.*?)```", CONTRIBUTING.read_text(), flags=re.S)
    found = [b for b in blocks if f'@register_method("{NAME}")' in b]
    assert len(found) == 1, f"CONTRIBUTING.md should hold exactly one block registering {NAME!r}"
    return found[0]


@pytest.fixture()
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The example executed as a module of its own (in ``sys.modules``, as an import would put it);
    unregistered afterwards."""
    registry.list_methods()  # discover the built-in methods first, so the example is one more
    module = types.ModuleType("contributing_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(example_source(), str(CONTRIBUTING), "exec"), module.__dict__)  # noqa: S102
    yield module
    registry._REGISTRY.pop(NAME, None)


def test_the_example_registers_with_its_title(example: types.ModuleType) -> None:
    assert NAME in registry.list_methods()
    assert registry.get_method_class(NAME) is example.ResidualGAN
    assert example.ResidualGAN.translates


def test_the_example_trains_and_localizes(example: types.ModuleType, smoke_cfg: Config, smoke_data, tmp_path) -> None:
    smoke_cfg.train.iterations = 6
    smoke_cfg.train.checkpoint_every = 3
    method = create_method(NAME, smoke_cfg)
    before = [p.detach().clone() for p in method.generator.parameters()]
    curves = method.fit(train_context(NAME, smoke_cfg, smoke_data.train, smoke_data.tune, tmp_path, progress=False))
    assert isinstance(curves, list)
    after = list(method.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "training left the generator unchanged"

    x = smoke_data.test.batch(np.arange(4))["image"]
    maps = method.localize(x)
    assert maps.shape == (4, smoke_cfg.data.size, smoke_cfg.data.size)
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    healthy = method.translate(x, 0)
    assert torch.allclose(maps, (healthy - x).abs().mean(1))

    restored = create_method(NAME, smoke_cfg)
    restored.load_state_dict(method.state_dict())
    assert torch.equal(restored.localize(x), maps)
