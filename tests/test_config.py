"""Configuration: presets, TOML and --set overrides, validation, round trip, hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import PRESETS, config_hash, from_dict, to_dict
from bench.errors import ConfigError
from bench.settings import load_config


def test_presets_scale_up() -> None:
    sizes = [load_config(p).data.size for p in ("smoke", "quick", "standard", "paper")]
    assert sizes == sorted(sizes) and sizes[-1] == 256
    paper = load_config("paper")
    assert (paper.model.width, paper.model.n_res, paper.train.batch_size, paper.train.iterations) == (64, 6, 8, 100_000)
    assert set(PRESETS) == {"smoke", "quick", "standard", "paper"}


def test_classifier_has_its_own_input_size() -> None:
    """CheXNet's 224 px at paper; at least 128 px (a 4x4 final map) at standard, whatever the working size."""
    assert load_config("paper").classifier.size == 224
    standard = load_config("standard")
    assert standard.classifier.size >= 128 and standard.classifier.size != standard.data.size
    assert load_config("standard", sets=["data.size=32"]).classifier.size == standard.classifier.size


def test_set_overrides_and_types() -> None:
    cfg = load_config(
        "quick",
        sets=[
            "train.iterations=7",
            "data.root=/some/where",
            "train.bf16=true",
            "eval.tolerances=[1, 4]",
            "method.pillet.lambda_id=0.5",
            "data.root=none",
        ],
    )
    assert cfg.train.iterations == 7 and cfg.train.bf16 is True
    assert cfg.eval.tolerances == (1, 4)
    assert cfg.method["pillet"] == {"lambda_id": 0.5}
    assert cfg.data.root is None


def test_toml_then_set(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\niterations = 11\nbatch_size = 2\n[method.stargan]\nlambda_rec = 5.0\n")
    cfg = load_config("smoke", toml, ["train.iterations=12"])
    assert (cfg.train.iterations, cfg.train.batch_size) == (12, 2)
    assert cfg.method["stargan"]["lambda_rec"] == 5.0


@pytest.mark.parametrize(
    "item,message",
    [
        ("train.iteratons=3", "unknown config key 'train.iteratons'"),
        ("train.iterations=abc", "expected an integer"),
        ("train.bf16=maybe", "expected true or false"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_overrides(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", sets=[item])


def test_bad_preset_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("huge")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("smoke", tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config("smoke", bad)


def test_round_trip_and_hash() -> None:
    cfg = load_config("standard", sets=["method.vagan.lambda_map=50", "train.seed=3"])
    again = from_dict(to_dict(cfg))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config("standard")) != config_hash(cfg)


def test_cpu_presets_train_with_the_fast_recipe() -> None:
    """quick and standard use the recipe the study chose (docs/decisions.md); paper keeps the SPEC's."""
    assert load_config("quick").train.recipe == "fast"
    standard = load_config("standard")
    assert standard.train.recipe == "fast" and standard.train.bf16 is False
    assert standard.train.iterations > load_config("quick").train.iterations
    assert load_config("paper").train.recipe == "paper"
