"""Messages say what is wrong in words (issue 11, 10): refused pickles, non-npz maps, the GAN log after a resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli.main import main
from bench.errors import BenchError
from bench.registry import create_method
from bench.train.checkpoint import load_checkpoint
from bench.train.gan import LOG_NAME
from bench.train.runner import train_context


class _Payload:
    """Any Python object: unpickling it could run code, so weights_only=True refuses it."""


def test_refused_pickle_says_why_without_ansi_codes(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state": _Payload()}, path)
    with pytest.raises(BenchError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\x1b[" not in message and "\n" not in message
    assert message == (
        f"{path}: holds pickled Python objects that are not plain tensors; refused for safety "
        "(loaded with weights_only=True)"
    )


def test_refused_pickle_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"net.weight": _Payload()}, path)
    assert (
        main(
            [
                "train",
                "--method",
                "chexnet_cam",
                "--preset",
                "smoke",
                "--classifier-weights",
                str(path),
                "--out",
                str(tmp_path / "ckpt"),
                "--set",
                "train.device='cpu'",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "refused for safety" in err and "\x1b[" not in err


def test_text_file_as_maps_is_not_called_pickled(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = tmp_path / "maps.txt"
    text.write_text("patientId,map\nabc,0.5\n")
    assert main(["score", "--maps", str(text), "--preset", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {text}: not a readable .npz of lesion maps: not an .npz (zip) file at all"
    npy = tmp_path / "maps.npy"
    np.save(npy, np.zeros((4, 4)))
    assert main(["score", "--maps", str(npy), "--preset", "smoke"]) == 2
    assert "a single .npy array, not one map per patientId" in capsys.readouterr().err


def test_log_after_resume_has_no_empty_generator_entry(smoke_cfg, smoke_data, tmp_path: Path) -> None:
    """After a resume the first logged step had "g": {} (no generator step yet in the new process)."""
    smoke_cfg.train.iterations = 7
    ctx = train_context("stargan", smoke_cfg, smoke_data.train, smoke_data.tune, tmp_path, progress=False)
    create_method("stargan", smoke_cfg).fit(ctx)
    smoke_cfg.train.iterations = 12
    create_method("stargan", smoke_cfg).fit(
        train_context("stargan", smoke_cfg, smoke_data.train, smoke_data.tune, tmp_path, resume=True, progress=False)
    )
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    lines = [r for r in lines if "curve" not in r]  # training steps only; learning-curve points have their own lines
    assert [r["iteration"] for r in lines] == [2, 4, 6, 7, 8, 10, 12]
    assert all(r.get("g", None) != {} for r in lines)
    assert "g" not in lines[4]  # iteration 8: the resumed process has made no generator step yet
    assert all(r["g"]["total"] == r["g"]["total"] for r in lines if "g" in r)
    assert "g" in lines[-1]
