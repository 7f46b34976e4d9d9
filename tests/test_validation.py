"""Settings checked where the configuration is resolved: one line, exit code 2, before any work starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bench.data
import bench.pipeline
from bench.cli.main import main
from bench.errors import ConfigError
from bench.settings import load_config


@pytest.fixture()
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading data (the first step of every command's work) fails the test: checks must come first."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(bench.data, "open_data", started)
    monkeypatch.setattr(bench.pipeline, "open_data", started)


def _one_line_error(capsys: pytest.CaptureFixture, *fragments: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars may come before the error
    err = lines[-1] if lines else ""
    assert err.startswith("error: ") and not any(line.startswith("Traceback") for line in lines), lines
    for fragment in fragments:
        assert fragment in err, err
    return err


def _run(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--preset", "smoke", "--methods", "stargan", "--out", str(tmp_path / "runs"), *extra]


def _train(tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--method", "stargan", "--preset", "smoke", "--out", str(tmp_path / "ckpt"), *extra]


def test_negative_iterations_refused_before_training(tmp_path: Path, no_work, capsys) -> None:
    """Issue 11, 3: train.iterations=-5 'trained' and saved an untrained model."""
    assert main(_train(tmp_path, "--set", "train.iterations=-5")) == 2
    _one_line_error(capsys, "train.iterations=-5", ">= 1")
    assert main(_run(tmp_path, "--set", "train.iterations=-5")) == 2
    _one_line_error(capsys, "train.iterations=-5")


def test_typo_in_method_name_refused_with_close_matches(tmp_path: Path, no_work, capsys) -> None:
    """Issue 11, 3: method.pilet.lambda_id=1 was accepted and ignored."""
    assert main(_run(tmp_path, "--set", "method.pilet.lambda_id=1")) == 2
    _one_line_error(capsys, "method.pilet.lambda_id", "'pilet'", "did you mean pillet")
    assert main(_run(tmp_path, "--set", "method.nosuchmethod.x=1")) == 2
    _one_line_error(capsys, "method.nosuchmethod.x", "registered methods")


def test_unknown_parameter_of_a_real_method_refused_at_load(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[method.pillet]\nlambda_idd = 3.0\n")
    with pytest.raises(ConfigError, match="unknown config key 'method.pillet.lambda_idd'"):
        load_config("smoke", toml)
    with pytest.raises(ConfigError, match="'pilet'"):
        load_config("smoke", sets=["method.pilet={lambda_id=1}"])


def test_prepare_size_zero_refused(no_work, capsys) -> None:
    """Issue 11, 3: data prepare --size 0 built a 64 px cache."""
    assert main(["data", "prepare", "--size", "0"]) == 2
    _one_line_error(capsys, "data.size=0", "multiple of 16")


def test_prepare_negative_size_refused(no_work, capsys) -> None:
    """Issue 11, 6: data prepare --size -8 gave a traceback."""
    assert main(["data", "prepare", "--size", "-8"]) == 2
    _one_line_error(capsys, "data.size=-8", ">= 16")


def test_duplicate_method_names_refused(tmp_path: Path, no_work, capsys) -> None:
    """Issue 11, 3: --methods stargan,stargan trained twice and duplicated every per-image row."""
    assert main(["run", "--preset", "smoke", "--methods", "stargan,stargan", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "'stargan' is named twice")


@pytest.mark.parametrize(
    "setting,fragment",
    [
        ("train.checkpoint_every=0", "train.checkpoint_every=0"),  # issue 11, 6: ZeroDivisionError
        ("train.batch_size=0", "train.batch_size=0"),  # issue 11, 6
        ("data.size=0", "data.size=0"),  # issue 11, 6
        ("eval.n_bootstrap=0", "eval.n_bootstrap=0"),  # issue 11, 6: failed after the evaluator trained
        ("data.val_fraction=1.5", "data.val_fraction=1.5"),  # issue 11, 6: "the training split holds no all images"
    ],
)
def test_out_of_range_setting_refused_before_work(setting: str, fragment: str, tmp_path: Path, no_work, capsys) -> None:
    assert main(_run(tmp_path, "--set", setting)) == 2
    _one_line_error(capsys, fragment, "out of range; allowed:")


@pytest.mark.parametrize(
    "setting,allowed",
    [
        ("train.log_every=0", ">= 1"),
        ("classifier.eval_every=0", ">= 1"),
        ("classifier.patience=0", ">= 1"),
        ("classifier.batch_size=1", ">= 2"),
        ("data.tune_fraction=1.0", "< 1"),
        ("data.val_fraction=-0.1", ">= 0"),
        ("data.size=40", "multiple of 16"),
        ("data.synth_size=16", ">= 32"),
        ("eval.tolerances=[2,256]", "0 to 255"),
        ("eval.tolerances=[-1]", "0 to 255"),
        ("classifier.lr=0.0", "> 0"),
        ("classifier.size=0", ">= 32"),
        ("classifier.size=16", ">= 32"),
    ],
)
def test_range_rules(setting: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=r"is out of range; allowed: .*" + re.escape(allowed)):
        load_config("smoke", sets=[setting])


def test_range_checked_in_toml_too(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\ncheckpoint_every = 0\n")
    with pytest.raises(ConfigError, match="train.checkpoint_every=0"):
        load_config("smoke", toml)


def test_classifier_size_has_no_silent_default() -> None:
    for value in ("0", "none"):
        with pytest.raises(ConfigError) as err:
            load_config("smoke", sets=[f"classifier.size={value}"])
        assert str(err.value).startswith("classifier.size") and "\n" not in str(err.value)
    assert load_config("smoke", sets=["classifier.size=48"]).classifier.size == 48


def test_every_preset_is_valid() -> None:
    for name in ("smoke", "quick", "standard", "paper"):
        load_config(name)
