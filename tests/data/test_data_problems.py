"""Data problems are counted once, reported, and never hidden (issue 11, items 9 and 10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import gradient, write_dicom

from bench.cli.main import main
from bench.data.rsna import read_labels

HEADER_L = "patientId,x,y,width,height,Target\n"
HEADER_C = "patientId,class\n"


def folder(root: Path, labels: list[str], classes: list[str], images: list[str]) -> Path:
    """A Kaggle-layout folder with these CSV lines and 64 px images for ``images``."""
    root.mkdir(parents=True)
    (root / "stage_2_train_labels.csv").write_text(HEADER_L + "".join(s + "\n" for s in labels))
    (root / "stage_2_detailed_class_info.csv").write_text(HEADER_C + "".join(s + "\n" for s in classes))
    img = gradient(64, 64).astype(np.uint8)
    for pid in images:
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", img)
    return root


def four(root: Path, extra_labels: tuple[str, ...] = (), images: tuple[str, ...] = ("p1", "p2", "h1", "h2")) -> Path:
    labels = ["p1,8,8,16,16,1", "p2,0,0,32,32,1", "h1,,,,,0", "h2,,,,,0", *extra_labels]
    classes = ["p1,Lung Opacity", "p2,Lung Opacity", "h1,Normal", "h2,Normal"]
    return folder(root, labels, classes, list(images))


def test_duplicate_rows_count_once_and_are_reported(tmp_path: Path) -> None:
    """Issue 11, 9: identical rows (patientId and box) were counted as extra boxes."""
    root = four(tmp_path / "d", extra_labels=("p1,8,8,16,16,1", "p1,40,8,16,20,1"))
    labels = read_labels(root)
    p1 = next(p for p in labels.patients if p.patient_id == "p1")
    assert p1.boxes == [(8.0, 8.0, 16.0, 16.0), (40.0, 8.0, 16.0, 20.0)]  # the copy dropped, the other box kept
    assert labels.n_boxes() == 3
    assert len(labels.problems) == 1
    problem = labels.problems[0]
    assert problem.row == 6 and "repeats row 2" in problem.what and "counted once" in problem.what


def test_image_without_a_csv_row_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 11, 9: a DICOM without a CSV row was not reported."""
    root = four(tmp_path / "d", images=("p1", "p2", "h1", "h2", "stray1", "stray2"))
    assert main(["data", "info", "--data", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unlabelled_images"] == 2 and info["unlabelled_files"] == ["stray1.dcm", "stray2.dcm"]
    assert main(["data", "info", "--data", str(root)]) == 0
    text = capsys.readouterr().out
    assert "images without a row in stage_2_train_labels.csv (not used): 2 - stray1.dcm, stray2.dcm" in text
    assert main(["data", "prepare", "--data", str(root), "--size", "32"]) == 0
    assert "2 image(s) without a row in the label CSV, not used: stray1.dcm, stray2.dcm" in capsys.readouterr().out


def test_header_only_labels_csv_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 11, 9: a labels CSV with only its header exited 0 with an empty cache."""
    root = folder(tmp_path / "d", [], ["p1,Lung Opacity"], [])
    assert main(["data", "prepare", "--data", str(root), "--size", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "stage_2_train_labels.csv: holds only its header line: no patients" in err


def test_prepare_counts_skipped_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 11, 10: prepare printed "0 skipped" beside a skipped row."""
    root = four(tmp_path / "d", extra_labels=("p3,4,4,,10,1",))
    (root / "stage_2_detailed_class_info.csv").write_text(
        (root / "stage_2_detailed_class_info.csv").read_text() + "p3,Lung Opacity\n"
    )
    assert main(["data", "prepare", "--data", str(root), "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "1 skipped" in out and "skipped: " in out and "row 6" in out


def test_info_split_counts_only_usable_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 11, 10: data info split counts included missing and unreadable images."""
    labels = [f"p{i},8,8,16,16,1" for i in range(4)] + [f"h{i},,,,,0" for i in range(4)]
    classes = [f"p{i},Lung Opacity" for i in range(4)] + [f"h{i},Normal" for i in range(4)]
    root = folder(tmp_path / "d", labels, classes, ["p0", "p1", "p2", "h0", "h1", "h2", "h3"])  # p3 missing
    (root / "stage_2_train_images" / "h3.dcm").write_bytes(b"garbage")  # h3 unreadable
    assert main(["data", "info", "--data", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["split"]["train"] == {"pneumonia": 4, "healthy": 4}  # patients according to the CSVs
    usable = info["split_images"]
    assert usable["train"] == {"pneumonia": 3, "healthy": 3}  # images that can be used
    assert sum(sum(v.values()) for v in usable.values()) == info["images_found"] - info["unreadable"] == 6
    assert main(["data", "info", "--data", str(root)]) == 0
    text = capsys.readouterr().out
    assert (
        "split train: patients pneumonia 4, healthy 4 (total 8); usable images pneumonia 3, healthy 3 (total 6)"
    ) in text
