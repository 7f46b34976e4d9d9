"""Checks before any training: writable output folders, a data folder, non-empty splits, disk space."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import bench.data
import bench.pipeline
from bench.cli.main import main
from bench.data.rsna import read_labels, split_patients

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dicom_factory import gradient, write_dicom


@pytest.fixture()
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading data fails the test: the output folders must be checked before it."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output folder was checked")

    monkeypatch.setattr(bench.data, "open_data", started)
    monkeypatch.setattr(bench.pipeline, "open_data", started)


@pytest.fixture()
def read_only_dir(tmp_path: Path):
    """A folder nobody can write into: permission bits, or sysfs where even root cannot."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        yield ro
    else:  # root ignores permission bits; sysfs refuses new entries even to root
        (ro / "probe").unlink()
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no folder that is read-only for this user")
        yield Path("/sys/kernel")
    finally:
        ro.chmod(0o755)


def _error(capsys: pytest.CaptureFixture, *fragments: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars may come before the error
    err = lines[-1] if lines else ""
    assert err.startswith("error: ") and not any(line.startswith("Traceback") for line in lines), lines
    for fragment in fragments:
        assert fragment in err, err
    return err


def _run(out: Path, *extra: str) -> list[str]:
    return ["run", "--preset", "smoke", "--methods", "stargan", "--out", str(out), *extra]


def test_read_only_runs_folder_refused_before_training(read_only_dir: Path, no_work, capsys) -> None:
    """Issue 11, 4: a read-only results folder failed with PermissionError after all the training."""
    assert main(_run(read_only_dir)) == 2
    _error(capsys, str(read_only_dir), "runs folder")


def test_out_under_read_only_folder_refused(read_only_dir: Path, no_work, capsys) -> None:
    """Issue 11, 4: --out R/sub under a read-only R."""
    assert main(_run(read_only_dir / "lesionbench-sub")) == 2
    _error(capsys, "lesionbench-sub", "cannot create the runs folder")
    assert not (read_only_dir / "lesionbench-sub").exists()


def test_out_that_is_a_file_refused(tmp_path: Path, no_work, capsys) -> None:
    """Issue 11, 4: --out FILE failed with NotADirectoryError after the training."""
    file = tmp_path / "results.txt"
    file.write_text("not a folder")
    assert main(_run(file)) == 2
    _error(capsys, "is a file, not a folder")
    assert main(_run(file / "sub")) == 2
    _error(capsys, "is a file, not a folder")
    assert main(["train", "--method", "stargan", "--preset", "smoke", "--out", str(file)]) == 2
    _error(capsys, "checkpoint folder", "is a file, not a folder")


def test_data_that_is_a_file(tmp_path: Path, capsys) -> None:
    """Issue 11, 9: --data FILE said 'data folder does not exist'."""
    file = tmp_path / "labels.csv"
    file.write_text("patientId,x,y,width,height,Target\n")
    assert main(["data", "info", "--data", str(file)]) == 2
    err = _error(capsys, "is a file, not a data folder")
    assert "does not exist" not in err


def make_rsna(root: Path, n_pneumonia: int, n_healthy: int, size: int = 64) -> Path:
    """A Kaggle-layout folder: Pneumonia patients p* with one box each, Healthy patients h*."""
    pneu = [f"p{i:02d}" for i in range(n_pneumonia)]
    healthy = [f"h{i:02d}" for i in range(n_healthy)]
    labels = [f"{p},8,8,16,16,1" for p in pneu] + [f"{h},,,,,0" for h in healthy]
    classes = [f"{p},Lung Opacity" for p in pneu] + [f"{h},Normal" for h in healthy]
    root.mkdir(parents=True)
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + "\n".join(labels) + "\n")
    (root / "stage_2_detailed_class_info.csv").write_text("patientId,class\n" + "\n".join(classes) + "\n")
    img = gradient(size, size).astype(np.uint8)
    for pid in pneu + healthy:
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", img)
    return root


def test_dropped_only_test_pneumonia_image_is_named(tmp_path: Path, capsys) -> None:
    """Issue 11, 5: when the dropped image was the only test Pneumonia image, the error did not name it."""
    root = make_rsna(tmp_path / "rsna", 10, 10)
    test = [p.patient_id for p in split_patients(read_labels(root).patients, 0.1, 0)["test"] if p.domain == 1]
    assert len(test) == 1
    (root / "stage_2_train_images" / f"{test[0]}.dcm").write_bytes(b"not a dicom at all")
    argv = [
        "run",
        "--preset",
        "smoke",
        "--methods",
        "stargan",
        "--data",
        str(root),
        "--out",
        str(tmp_path / "r"),
        "--set",
        "train.device='cpu'",
    ]
    assert main(argv) == 2
    _error(capsys, "the test split has no Pneumonia images", f"{test[0]}.dcm")


def test_missing_only_test_pneumonia_image_is_named(tmp_path: Path, capsys) -> None:
    root = make_rsna(tmp_path / "rsna", 10, 10)
    test = [p.patient_id for p in split_patients(read_labels(root).patients, 0.1, 0)["test"] if p.domain == 1]
    (root / "stage_2_train_images" / f"{test[0]}.dcm").unlink()
    assert (
        main(["run", "--preset", "smoke", "--methods", "stargan", "--data", str(root), "--out", str(tmp_path / "r")])
        == 2
    )
    _error(capsys, f"{test[0]}.dcm: image file is missing")


def test_training_needs_both_domains(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_rsna(tmp_path / "rsna", 10, 10)
    for h in (root / "stage_2_train_images").glob("h*.dcm"):
        h.unlink()
    import bench.train.runner

    monkeypatch.setattr(bench.train.runner, "train_method", lambda *a, **k: pytest.fail("training started"))
    assert (
        main(
            ["train", "--method", "stargan", "--preset", "smoke", "--data", str(root), "--out", str(tmp_path / "ckpt")]
        )
        == 2
    )
    _error(capsys, "the train split has no Healthy images", "image file is missing", "more")


def test_cache_refused_when_the_disk_is_too_small(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_rsna(tmp_path / "rsna", 4, 4)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    assert main(["data", "prepare", "--data", str(root), "--size", "32"]) == 2
    _error(capsys, "the cache needs about 8.0 KiB", "only 1,000 bytes free")
