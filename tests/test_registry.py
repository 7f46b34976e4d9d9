"""Method registry: registration, lookup errors, and third-party entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

import bench.registry as registry
from bench import Method, create_method, list_methods, load_config, register_method
from bench.errors import BenchError


class _Tiny(Method):
    """A trivial method for registry tests: the map is the image itself."""

    def fit(self, ctx) -> list:
        return []

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def test_register_and_create() -> None:
    register_method("registry_test_tiny")(_Tiny)
    try:
        assert "registry_test_tiny" in list_methods()
        method = create_method("registry_test_tiny", load_config("smoke"), device="cpu")
        assert isinstance(method, _Tiny) and method.name == "registry_test_tiny"
        x = torch.zeros(2, 1, 8, 8)
        assert method.localize(x).shape == (2, 8, 8)
        with pytest.raises(TypeError, match="does not translate"):
            method.translate(x, 0)
    finally:
        registry._REGISTRY.pop("registry_test_tiny", None)


def test_a_method_is_built_from_its_settings_not_the_config() -> None:
    cfg = load_config("smoke", sets=["train.seed=5", "data.size=48"])
    settings = _Tiny.settings_from(cfg, "cpu")
    assert (settings.size, settings.seed, settings.device) == (48, 5, torch.device("cpu"))
    assert settings.model == cfg.model and settings.classifier == cfg.classifier
    method = _Tiny.from_config(cfg, "cpu")
    assert method.settings == settings and method.params == settings.params and not hasattr(method, "cfg")


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="unknown method 'nope'; registered methods:"):
        create_method("nope", load_config("smoke"))


def test_name_clash_rejected() -> None:
    register_method("registry_test_clash")(_Tiny)
    try:
        other = type("Other", (_Tiny,), {"__module__": "elsewhere"})
        with pytest.raises(ValueError, match="already registered"):
            register_method("registry_test_clash")(other)
    finally:
        registry._REGISTRY.pop("registry_test_clash", None)


def test_register_requires_method_subclass() -> None:
    with pytest.raises(TypeError):
        register_method("registry_test_bad")(object)


def test_unknown_hyper_parameter_rejected() -> None:
    from dataclasses import dataclass

    @dataclass
    class P:
        weight: float = 1.0

    cls = type("WithParams", (_Tiny,), {"Params": P})
    register_method("registry_test_params")(cls)
    try:
        cfg = load_config("smoke", sets=["method.registry_test_params.weight=3"])
        assert create_method("registry_test_params", cfg, "cpu").params.weight == 3.0
        with pytest.raises(BenchError, match="unknown config key 'method.registry_test_params.wieght'"):
            load_config("smoke", sets=["method.registry_test_params.wieght=3"])  # refused where it is set
        cfg.method["registry_test_params"] = {"wieght": 3}
        with pytest.raises(BenchError, match="unknown config key 'method.registry_test_params.wieght'"):
            create_method("registry_test_params", cfg, "cpu")
    finally:
        registry._REGISTRY.pop("registry_test_params", None)


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party package registers a method through the 'lesionbench.methods' group."""
    (tmp_path / "thirdparty_lb.py").write_text(
        textwrap.dedent('''
        import torch
        from bench import Method

        class Brightness(Method):
            """Lesion map = pixel brightness (a third-party example)."""
            def fit(self, ctx):
                pass
            def localize(self, x):
                return (x[:, 0] + 1) / 2
            def state_dict(self):
                return {}
            def load_state_dict(self, state):
                pass
    ''')
    )
    dist = tmp_path / "thirdparty_lb-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-lb\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lesionbench.methods]\nbrightness = thirdparty_lb:Brightness\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.discover(refresh=True)
        assert "brightness" in list_methods()
        m = create_method("brightness", load_config("smoke"), "cpu")
        assert torch.allclose(m.localize(torch.ones(1, 1, 4, 4)), torch.ones(1, 4, 4))
    finally:
        registry._REGISTRY.pop("brightness", None)
        sys.modules.pop("thirdparty_lb", None)


def test_preset_params_sit_under_user_settings() -> None:
    from dataclasses import dataclass

    @dataclass
    class P:
        a: int = 1
        b: int = 2

    cls = type("_Preset", (_Tiny,), {"Params": P, "preset_params": {"quick": {"a": 10, "b": 20}}})
    register_method("registry_test_preset")(cls)
    try:
        assert registry.method_params("registry_test_preset", load_config("smoke")) == {"a": 1, "b": 2}
        assert registry.method_params("registry_test_preset", load_config("quick")) == {"a": 10, "b": 20}
        cfg = load_config("quick", sets=["method.registry_test_preset.b=3"])
        assert registry.method_params("registry_test_preset", cfg) == {"a": 10, "b": 3}
        assert create_method("registry_test_preset", cfg, device="cpu").params == P(10, 3)
        with pytest.raises(BenchError, match="method.registry_test_preset.c"):
            registry.method_params(
                "registry_test_preset", load_config("quick", sets=["method.registry_test_preset.c=1"])
            )
    finally:
        registry._REGISTRY.pop("registry_test_preset", None)


def test_vagan_short_presets_drop_the_early_boost() -> None:
    assert registry.method_params("vagan", load_config("quick"))["boost_first"] == 0
    assert registry.method_params("vagan", load_config("standard"))["boost_first"] == 0
    assert registry.method_params("vagan", load_config("paper"))["boost_first"] == 25
    cfg = load_config("quick", sets=["method.vagan.boost_first=7"])
    assert registry.method_params("vagan", cfg)["boost_first"] == 7
    assert "vagan" not in load_config("quick").method  # the preset values live with the method
