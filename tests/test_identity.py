"""Artefact identities: what changes a trained method's, the classifier's and a GAN checkpoint's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.classifier import classifier_key
from bench.config import Config
from bench.identity import artifact_identity
from bench.registry import create_method, get_method_class, list_methods
from bench.settings import load_config
from bench.train.gan import resume_identity
from bench.train.gan.recipe import resolve_recipe
from bench.train.runner import train_context, training_key

DATA_HASH = "d0"


def _translating() -> list[str]:
    names = [n for n in list_methods() if get_method_class(n).translates]
    assert names, "no translating (GAN) method is registered"
    return names


def _cfg(*sets: str, preset: str = "quick") -> Config:
    return load_config(preset, sets=["train.device='cpu'", *sets])


def test_classifier_weights_change_only_classifier_users(tmp_path: Path) -> None:
    weights = f"classifier.weights={str(tmp_path / 'w.safetensors')!r}"  # what --classifier-weights sets
    for name in _translating():
        assert not get_method_class(name).uses_classifier
        assert training_key(name, _cfg(weights), DATA_HASH) == training_key(name, _cfg(), DATA_HASH), name
        assert training_key(name, _cfg("classifier.lr=0.5"), DATA_HASH) == training_key(name, _cfg(), DATA_HASH)
        assert training_key(name, _cfg("classifier.size=64"), DATA_HASH) == training_key(name, _cfg(), DATA_HASH)
    users = [n for n in list_methods() if get_method_class(n).uses_classifier]
    assert "chexnet_cam" in users
    for name in users:
        assert training_key(name, _cfg(weights), DATA_HASH) != training_key(name, _cfg(), DATA_HASH), name
        assert training_key(name, _cfg("classifier.size=128"), DATA_HASH) != training_key(name, _cfg(), DATA_HASH)


def test_method_params_enter_the_key() -> None:
    for name in _translating():
        base = training_key(name, _cfg(), DATA_HASH)
        assert training_key(name, _cfg(f"method.{name}.lambda_gp=5.0"), DATA_HASH) != base, name
        assert training_key(name, _cfg(f"method.{name}.lambda_gp=10.0"), DATA_HASH) == base, name  # the default
    other = training_key(_translating()[0], _cfg(), DATA_HASH)
    assert len({training_key(n, _cfg(), DATA_HASH) for n in _translating()}) == len(_translating())
    assert other != training_key(_translating()[0], _cfg(), "d1")  # the data manifest enters


def test_key_hashes_effective_params_not_their_spelling() -> None:
    cls = get_method_class("vagan")
    assert cls.preset_params["quick"] == {"boost_first": 0}
    quick = training_key("vagan", _cfg(), DATA_HASH)
    assert training_key("vagan", _cfg("method.vagan.boost_first=0"), DATA_HASH) == quick  # the preset's value
    assert training_key("vagan", _cfg("method.vagan.boost_first=25"), DATA_HASH) != quick


def test_schedule_without_runtime_settings() -> None:
    name = _translating()[0]
    base = training_key(name, _cfg(), DATA_HASH)
    for runtime in ("train.device='cuda'", "train.num_workers=4", "train.log_every=3"):
        assert training_key(name, load_config("quick", sets=[runtime]), DATA_HASH) == base, runtime
    for schedule in ("train.iterations=7", "train.seed=1", "train.batch_size=2", "model.width=8", "data.size=32"):
        assert training_key(name, _cfg(schedule), DATA_HASH) != base, schedule


def test_classifier_key_ignores_gan_settings() -> None:
    base = classifier_key(_cfg(), DATA_HASH)
    for gan in ("train.iterations=7", "model.width=8", "method.vagan.boost_first=3", "train.log_every=3"):
        assert classifier_key(_cfg(gan), DATA_HASH) == base, gan
    for own in ("classifier.lr=0.5", "classifier.size=128", "train.seed=1", "train.bf16=true", "data.size=32"):
        assert classifier_key(_cfg(own), DATA_HASH) != base, own
    assert classifier_key(_cfg(), "d1") != base


def _resume_identity(name: str, cfg: Config, data_hash: str) -> str:
    key = train_context(name, cfg, None, None, Path("unused")).checkpoint_key
    return resume_identity(key, create_method(name, cfg).params, resolve_recipe(cfg.train), data_hash)


def test_gan_resume_identity_allows_a_longer_schedule() -> None:
    name = _translating()[0]
    base = _resume_identity(name, _cfg(preset="smoke"), DATA_HASH)
    assert _resume_identity(name, _cfg("train.iterations=99", preset="smoke"), DATA_HASH) == base
    assert _resume_identity(name, _cfg("classifier.lr=0.5", preset="smoke"), DATA_HASH) == base
    assert _resume_identity(name, _cfg(f"method.{name}.lambda_gp=1.0", preset="smoke"), DATA_HASH) != base
    assert _resume_identity(name, _cfg("train.recipe='fast'", preset="smoke"), DATA_HASH) != base
    assert _resume_identity(name, _cfg(preset="smoke"), "d1") != base


@pytest.mark.parametrize("flag", ["model", "schedule", "classifier"])
def test_artifact_identity_parts(flag: str) -> None:
    cfg, other = _cfg(), _cfg("model.width=8", "train.iterations=7", "classifier.lr=0.5")
    on = {"model": True, "schedule": True, "classifier": True}
    off = dict(on, **{flag: False})
    assert artifact_identity("a", cfg, DATA_HASH, **on) != artifact_identity("a", other, DATA_HASH, **on)
    changed = {"model": "model.width=8", "schedule": "train.iterations=7", "classifier": "classifier.lr=0.5"}[flag]
    assert artifact_identity("a", _cfg(changed), DATA_HASH, **off) == artifact_identity("a", cfg, DATA_HASH, **off)
    assert artifact_identity("a", _cfg(changed), DATA_HASH, **on) != artifact_identity("a", cfg, DATA_HASH, **on)
