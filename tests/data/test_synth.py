"""Tests of the synthetic RSNA-layout generator (bench.data.synth)."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage
from synth_cases import render_case

from bench.data import rsna_stats, synth
from bench.data.domains import LUNG_OPACITY, NORMAL, NOT_NORMAL
from bench.data.synth import SynthConfig, generate, writer
from bench.data.synth.boxes import sample_boxes
from bench.data.synth.render import case_rng

SIZE = 96
CFG = SynthConfig(n_pneumonia=6, n_healthy=6, n_not_normal=2, size=SIZE, seed=3)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "rsna"
    generate(out, CFG, progress=False)
    return out


@pytest.fixture(scope="module")
def labels(dataset: Path) -> list[dict[str, str]]:
    return _rows(dataset / synth.LABELS_CSV)


def _boxes_by_patient(labels: list[dict[str, str]]) -> dict[str, list[tuple[float, float, float, float]]]:
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in labels:
        boxes.setdefault(r["patientId"], [])
        if r["Target"] == "1":
            boxes[r["patientId"]].append(tuple(float(r[k]) for k in ("x", "y", "width", "height")))
    return boxes


def test_layout_and_headers(dataset: Path, labels: list[dict[str, str]]) -> None:
    assert (dataset / synth.LABELS_CSV).read_text().splitlines()[0] == "patientId,x,y,width,height,Target"
    assert (dataset / synth.CLASS_CSV).read_text().splitlines()[0] == "patientId,class"
    classes = _rows(dataset / synth.CLASS_CSV)
    assert [r["patientId"] for r in classes] == [r["patientId"] for r in labels]
    for lab, cls in zip(labels, classes):
        assert (lab["Target"] == "1") == (cls["class"] == LUNG_OPACITY)
    patients = {r["patientId"]: r["class"] for r in classes}
    assert len(patients) == CFG.n_pneumonia + CFG.n_healthy + CFG.n_not_normal
    assert sorted(patients.values()).count(LUNG_OPACITY) == CFG.n_pneumonia
    assert sorted(patients.values()).count(NORMAL) == CFG.n_healthy
    assert sorted(patients.values()).count(NOT_NORMAL) == CFG.n_not_normal
    for pid in patients:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", pid)
    dicoms = {p.stem for p in (dataset / synth.IMAGE_DIR).iterdir()}
    masks = {p.stem for p in (dataset / synth.MASK_DIR).iterdir()}
    assert dicoms == masks == set(patients)
    assert not [p for p in dataset.parent.iterdir() if p.name.startswith(".")]
    manifest = json.loads((dataset / synth.MANIFEST).read_text())
    assert manifest["generator"] == synth.GENERATOR_NAME
    assert manifest["seed"] == CFG.seed and manifest["size"] == SIZE
    assert manifest["jpeg_quality"] == CFG.jpeg_quality
    assert manifest["counts"] == {LUNG_OPACITY: 6, NORMAL: 6, NOT_NORMAL: 2}


def test_dicoms_decode_like_rsna(dataset: Path) -> None:
    for path in (dataset / synth.IMAGE_DIR).iterdir():
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        assert (ds.Rows, ds.Columns) == (SIZE, SIZE)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel) == (8, 8, 7, 1)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.Modality == "CR" and ds.PatientID == path.stem
        pixels = ds.pixel_array
        assert pixels.shape == (SIZE, SIZE) and pixels.dtype == np.uint8
        assert pixels.std() > 20


def test_boxes_inside_image(labels: list[dict[str, str]]) -> None:
    positives = [r for r in labels if r["Target"] == "1"]
    assert len(positives) >= CFG.n_pneumonia
    for r in positives:
        for k in ("x", "y", "width", "height"):
            assert re.fullmatch(r"\d+\.0", r[k]), r
        x, y, w, h = (float(r[k]) for k in ("x", "y", "width", "height"))
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE
    for r in labels:
        if r["Target"] == "0":
            assert r["x"] == r["y"] == r["width"] == r["height"] == ""


def test_masks_inside_boxes(dataset: Path, labels: list[dict[str, str]]) -> None:
    for pid, boxes in _boxes_by_patient(labels).items():
        mask = np.asarray(Image.open(dataset / synth.MASK_DIR / f"{pid}.png"))
        assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        if not boxes:
            assert not mask.any()
            continue
        union = np.zeros((SIZE, SIZE), dtype=bool)
        for x, y, w, h in boxes:
            union[int(y) : int(y + h), int(x) : int(x + w)] = True
            assert mask[int(y) : int(y + h), int(x) : int(x + w)].any()
        assert mask.any() and not mask[~union].any()


def test_lesions_brighten_the_lung_only_inside_the_mask() -> None:
    for index in range(4):
        with_lesion = render_case(case_rng(5, LUNG_OPACITY, index), 128)
        without = render_case(case_rng(5, LUNG_OPACITY, index), 128, with_lesions=False)
        image, mask, boxes = with_lesion
        assert np.array_equal(mask, without[1]) and boxes == without[2] and mask.any()
        diff = image.astype(float) - without[0].astype(float)
        assert diff[mask].mean() > 12.0
        assert not diff[~ndimage.binary_dilation(mask, iterations=5)].any()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    cfg = SynthConfig(n_pneumonia=2, n_healthy=2, size=64, seed=11)
    a = generate(tmp_path / "a", cfg, progress=False)
    b = generate(tmp_path / "b", cfg, progress=False)
    c = generate(tmp_path / "c", SynthConfig(n_pneumonia=2, n_healthy=2, size=64, seed=12), progress=False)
    assert a == b
    for name in (synth.LABELS_CSV, synth.CLASS_CSV, synth.MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for path in (tmp_path / "a" / synth.IMAGE_DIR).iterdir():
        other = tmp_path / "b" / synth.IMAGE_DIR / path.name
        assert np.array_equal(pydicom.dcmread(path).pixel_array, pydicom.dcmread(other).pixel_array)
    assert (tmp_path / "a" / synth.LABELS_CSV).read_bytes() != (tmp_path / "c" / synth.LABELS_CSV).read_bytes()
    assert a != c


def test_images_do_not_depend_on_the_other_counts(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", SynthConfig(n_pneumonia=2, n_healthy=1, size=64), progress=False)
    large = generate(tmp_path / "large", SynthConfig(n_pneumonia=3, n_healthy=2, size=64), progress=False)
    assert small["n_boxes"] <= large["n_boxes"]
    small_rows = (tmp_path / "small" / synth.LABELS_CSV).read_text().splitlines()
    large_rows = (tmp_path / "large" / synth.LABELS_CSV).read_text().splitlines()
    assert set(small_rows) <= set(large_rows)
    for path in (tmp_path / "small" / synth.MASK_DIR).iterdir():
        assert path.read_bytes() == (tmp_path / "large" / synth.MASK_DIR / path.name).read_bytes()


def test_refuses_non_empty_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    cfg = SynthConfig(n_pneumonia=1, n_healthy=1, size=64)
    with pytest.raises(ValueError, match="taken"):
        generate(out, cfg, progress=False)
    assert (out / "keep.txt").exists()
    generate(out, cfg, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / synth.LABELS_CSV).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    generate(empty, cfg, progress=False)
    assert (empty / synth.LABELS_CSV).exists()


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_write(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = writer.write_dicom
    monkeypatch.setattr(writer, "write_dicom", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "out", SynthConfig(n_pneumonia=2, n_healthy=2, size=64), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_sampled_boxes_follow_rsna_statistics() -> None:
    rng = np.random.default_rng(0)
    sets = [sample_boxes(rng) for _ in range(3000)]
    counts = np.array([len(s) for s in sets])
    expected = rsna_stats.N_BOXES / rsna_stats.N_LUNG_OPACITY_PATIENTS
    assert abs(counts.mean() - expected) < 0.05
    boxes = np.concatenate(sets)
    cx = boxes[:, 0] + boxes[:, 2] / 2
    assert abs((cx < 512).mean() - rsna_stats.FRACTION_IMAGE_LEFT) < 0.03
    assert abs(np.median(boxes[:, 2]) / rsna_stats.QUANTILES["w"][2] - 1) < 0.08
    assert abs(np.median(boxes[:, 3]) / rsna_stats.QUANTILES["h"][2] - 1) < 0.1
    two = [s for s in sets if len(s) == 2]
    opposite = np.mean([(s[0, 0] + s[0, 2] / 2 < 512) != (s[1, 0] + s[1, 2] / 2 < 512) for s in two])
    assert abs(opposite - rsna_stats.FRACTION_OPPOSITE_SIDES_TWO_BOXES) < 0.03


def test_full_resolution_case() -> None:
    image, mask, boxes = render_case(case_rng(0, LUNG_OPACITY, 0), 1024)
    assert image.shape == mask.shape == (1024, 1024) and image.dtype == np.uint8
    assert boxes and all(x + w <= 1024 and y + h <= 1024 for x, y, w, h in boxes)


@pytest.mark.parametrize("change", [{"size": 16}, {"n_healthy": -1}, {"jpeg_quality": 0}])
def test_rejects_bad_settings(tmp_path: Path, change: dict) -> None:
    cfg = dataclasses.replace(SynthConfig(n_pneumonia=1, n_healthy=1, size=64), **change)
    with pytest.raises(ValueError, match=next(iter(change))):
        generate(tmp_path / "out", cfg, progress=False)
    assert not (tmp_path / "out").exists()
