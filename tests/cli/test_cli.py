"""Command line: data commands, list, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_data_info_json_on_real_csvs(rsna_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", "--data", str(rsna_dir / "labels"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == {"Lung Opacity": 6012, "Normal": 8851, "No Lung Opacity / Not Normal": 11821}
    assert info["boxes"] == 9555
    assert info["images_found"] == 0 and info["images_missing"] == 26684 and info["unreadable"] == 0
    assert info["split"] == {
        "train": {"pneumonia": 4870, "healthy": 7169},
        "tune": {"pneumonia": 541, "healthy": 797},
        "test": {"pneumonia": 601, "healthy": 885},
    }


def test_data_synth_info_prepare_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--n-pneumonia", "6", "--n-healthy", "4", "--size", "64"]) == 0
    assert main(["data", "info", "--data", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["classes"]["Lung Opacity"] == 6 and info["classes"]["Normal"] == 4
    assert info["images_found"] == 10 and info["images_missing"] == 0
    assert main(["data", "prepare", "--data", str(out), "--size", "32"]) == 0
    assert "10 images at 32px" in capsys.readouterr().out
    assert main(["data", "prepare", "--data", str(out), "--size", "32"]) == 0
    assert "(reused)" in capsys.readouterr().out
    png = tmp_path / "sheet.png"
    assert main(["data", "preview", "--data", str(out), "--out", str(png), "--size", "64", "--n", "4"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["data", "synth", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_list_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan", "chexnet_cam", "chexnet_ig"} <= names
    assert all(r["translates"] for r in rows if r["name"] in {"stargan", "pillet", "vagan"})


@pytest.mark.parametrize(
    "argv,message",
    [
        (["data", "info", "--data", "/nonexistent/rsna"], "/nonexistent/rsna: data folder does not exist"),
        (["data", "prepare", "--size", "32", "--workers", "0"], "--workers 0: the number of decoding processes"),
        (["train", "--method", "nope", "--preset", "smoke"], "unknown method 'nope'"),
        (["train", "--method", "pillet", "--preset", "tiny"], "unknown preset 'tiny'"),
        (["train", "--method", "pillet", "--set", "train.iters=3"], "unknown config key 'train.iters'"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_module_entry_point_help() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0
    for command in ("data", "list", "train", "run", "score", "compare", "baseline", "history"):
        assert command in out.stdout
