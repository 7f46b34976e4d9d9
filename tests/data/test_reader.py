"""RSNA reader: label parsing, domains, split, bad input, DICOM decoding, cache, box scaling."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import gradient, write_dicom

from bench.config import DataConfig
from bench.data import open_data
from bench.data.cache import prepare_cache
from bench.data.dicom import read_dicom, resize_area
from bench.data.rsna import read_labels, split_patients, splits_for
from bench.errors import DataError

HEADER_L = "patientId,x,y,width,height,Target\n"
HEADER_C = "patientId,class\n"


def make_folder(
    root: Path, labels: list[str], classes: list[str], images: dict[str, np.ndarray] | None = None, stage: int = 2
) -> Path:
    """A Kaggle-layout folder with the given CSV lines and 8-bit images."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"stage_{stage}_train_labels.csv").write_text(HEADER_L + "".join(s + "\n" for s in labels))
    (root / f"stage_{stage}_detailed_class_info.csv").write_text(HEADER_C + "".join(s + "\n" for s in classes))
    for pid, px in (images or {}).items():
        write_dicom(root / f"stage_{stage}_train_images" / f"{pid}.dcm", px)
    return root


def basic(root: Path, size: int = 64, stage: int = 2) -> Path:
    """Two pneumonia patients (one with two boxes), two healthy, one not-normal."""
    labels = ["p1,8,8,16,16,1", "p1,40,8,16,20,1", "p2,0,0,32,32,1", "h1,,,,,0", "h2,,,,,0", "n1,,,,,0"]
    classes = [
        "p1,Lung Opacity",
        "p1,Lung Opacity",
        "p2,Lung Opacity",
        "h1,Normal",
        "h2,Normal",
        "n1,No Lung Opacity / Not Normal",
    ]
    img = gradient(size, size).astype(np.uint8)
    return make_folder(root, labels, classes, {p: img for p in ("p1", "p2", "h1", "h2", "n1")}, stage)


def test_real_labels_figures(rsna_dir: Path) -> None:
    labels = read_labels(rsna_dir / "labels")
    assert labels.by_class() == {"Lung Opacity": 6012, "Normal": 8851, "No Lung Opacity / Not Normal": 11821}
    assert labels.n_boxes() == 9555
    assert labels.problems == []
    split = split_patients(labels.patients, 0.1, 0)
    n_test = {d: sum(p.domain == d for p in split["test"]) for d in (0, 1)}
    assert n_test == {0: 885, 1: 601}  # the paper's validation split is our test split, unchanged
    n_tune = {d: sum(p.domain == d for p in split["tune"]) for d in (0, 1)}
    assert n_tune == {0: 797, 1: 541}  # 10% of the remaining patients per domain
    assert len(split["train"]) + len(split["tune"]) + len(split["test"]) == 6012 + 8851
    ids = [{p.patient_id for p in split[k]} for k in ("train", "tune", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    without_tune = split_patients(labels.patients, 0.1, 0, tune_fraction=0.0)
    assert without_tune["test"] == split["test"] and without_tune["tune"] == []


def test_domains_and_not_normal(tmp_path: Path) -> None:
    labels = read_labels(basic(tmp_path / "d"))
    dom = {p.patient_id: p.domain for p in labels.patients}
    assert dom == {"p1": 1, "p2": 1, "h1": 0, "h2": 0, "n1": -1}
    labels = read_labels(tmp_path / "d", include_not_normal=True)
    assert {p.patient_id: p.domain for p in labels.patients}["n1"] == 0
    assert len(next(p for p in labels.patients if p.patient_id == "p1").boxes) == 2


def test_stage1_names(tmp_path: Path) -> None:
    data = open_data(DataConfig(root=str(basic(tmp_path / "s1", stage=1)), size=32, val_fraction=0.5), progress=False)
    assert len(data.train) + len(data.test) == 4


def test_split_is_deterministic_and_order_free(rsna_dir: Path) -> None:
    labels = read_labels(rsna_dir / "labels")
    a = split_patients(labels.patients, 0.1, seed=0)
    shuffled = list(labels.patients)
    np.random.default_rng(1).shuffle(shuffled)
    b = split_patients(shuffled, 0.1, seed=0)
    assert [p.patient_id for p in a["test"]] == [p.patient_id for p in b["test"]]
    assert [p.patient_id for p in a["tune"]] == [p.patient_id for p in b["tune"]]
    c = split_patients(labels.patients, 0.1, seed=1)
    assert {p.patient_id for p in a["test"]} != {p.patient_id for p in c["test"]}


def test_splits_for_reads_the_split_settings(synth_root: Path) -> None:
    labels = read_labels(synth_root)  # 24 Pneumonia + 24 Healthy
    parts = splits_for(labels, DataConfig(val_fraction=0.25, tune_fraction=0.5, split_seed=3))
    assert parts == split_patients(labels.patients, 0.25, 3, 0.5)
    assert {k: len(v) for k, v in parts.items()} == {"train": 18, "tune": 18, "test": 12}  # 6 test, 9 tune per domain
    assert parts != splits_for(labels, DataConfig(val_fraction=0.25, tune_fraction=0.5, split_seed=4))


@pytest.mark.parametrize(
    "labels,classes,message",
    [
        (["p1,8,8,nan,16,1"], ["p1,Lung Opacity"], "NaN"),
        (["p1,8,8,0,16,1"], ["p1,Lung Opacity"], "non-positive size"),
        (["p1,-3,8,10,16,1"], ["p1,Lung Opacity"], "outside the image"),
        (["p1,,,,,0"], ["p1,Lung Opacity"], "contradicts Target"),
        (["p1,8,8,10,10,1"], ["p1,Normal"], "contradicts Target"),
        (["../p1,,,,,0"], ["../p1,Normal"], "path separator"),
        (["a/b,,,,,0"], ["a/b,Normal"], "path separator"),
        (["p1,,,,,2"], ["p1,Normal"], "Target must be 0 or 1"),
        (["p1,,,,,0"], ["p1,Pneumonia"], "unknown class"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, labels: list[str], classes: list[str], message: str) -> None:
    root = make_folder(tmp_path / "bad", labels, classes)
    parsed = read_labels(root)
    assert parsed.problems, "the bad row must be reported"
    text = str(parsed.problems[0])
    assert message in text and ".csv" in text and "row 2" in text
    assert parsed.patients == []
    with pytest.raises(DataError, match="row 2"):
        read_labels(root, strict=True)


def test_box_outside_image_detected_at_decode(tmp_path: Path) -> None:
    img = gradient(64, 64).astype(np.uint8)
    root = make_folder(
        tmp_path / "o", ["p1,40,40,30,10,1", "h1,,,,,0"], ["p1,Lung Opacity", "h1,Normal"], {"p1": img, "h1": img}
    )
    cache = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert cache.patient_ids == ["h1"]
    assert "outside the 64x64 image" in str(cache.problems[0]) and "row 2" in str(cache.problems[0])


def test_missing_column(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,Target\np1,,,,0\n")
    (root / "stage_2_detailed_class_info.csv").write_text(HEADER_C + "p1,Normal\n")
    with pytest.raises(DataError, match=r"stage_2_train_labels.csv: missing column\(s\) height"):
        read_labels(root)


def test_missing_folder_and_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_labels(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no label CSV"):
        read_labels(tmp_path / "empty")


def test_real_dicoms_decode(rsna_dir: Path) -> None:
    files = sorted((rsna_dir / "dicom").glob("*.dcm"))
    assert len(files) == 11
    for f in files:
        dec = read_dicom(f)
        assert dec.image.shape == (1024, 1024) and dec.image.dtype == np.uint8
        assert dec.image.std() > 20


def _real_layout(rsna_dir: Path, root: Path) -> Path:
    root.mkdir()
    for f in (rsna_dir / "labels").glob("*.csv"):
        os.symlink(f, root / f.name)
    (root / "stage_2_train_images").mkdir()
    for f in (rsna_dir / "dicom").glob("*.dcm"):
        os.symlink(f, root / "stage_2_train_images" / f.name)
    return root


@pytest.mark.parametrize("size", [32, 64, 256])
def test_real_boxes_land_on_lungs(rsna_dir: Path, tmp_path: Path, size: int) -> None:
    root = _real_layout(rsna_dir, tmp_path / "real")
    data = open_data(DataConfig(root=str(root), size=size), progress=False)
    assert len(data.cache.patient_ids) == 6 and len(data.cache.missing) == 14857
    pneu = np.flatnonzero(data.cache.domains == 1)
    assert len(pneu) == 3
    for i in pneu:
        boxes = data.cache.boxes[i, : data.cache.n_boxes[i]] / size
        assert len(boxes) == 2
        # boxes of the real files lie in the lung fields: middle band vertically, one per side
        assert np.all(boxes[:, 1] > 0.1) and np.all(boxes[:, 3] < 0.95)
        centres = (boxes[:, 0] + boxes[:, 2]) / 2
        assert centres.min() < 0.5 < centres.max()
        # lungs are darker than the mediastinum in the same rows
        img = data.cache.images[i].astype(float)
        x0, y0, x1, y1 = (data.cache.boxes[i, 0]).astype(int)
        assert img[y0:y1, x0:x1].mean() < img[y0:y1, size // 2 - size // 32 : size // 2 + size // 32].mean()


def test_box_scaling_uses_each_files_rows_columns(tmp_path: Path) -> None:
    img = gradient(128, 128).astype(np.uint8)
    root = make_folder(
        tmp_path / "s",
        ["p1,32,64,32,16,1", "h1,,,,,0"],
        ["p1,Lung Opacity", "h1,Normal"],
        {"p1": img, "h1": gradient(64, 64).astype(np.uint8)},
    )
    cache = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    i = cache.patient_ids.index("p1")
    np.testing.assert_allclose(cache.boxes[i, 0], [8, 16, 16, 20])


def test_16bit_and_monochrome1(tmp_path: Path) -> None:
    d16 = read_dicom(write_dicom(tmp_path / "a.dcm", gradient(maximum=4095), bits=12))
    assert d16.image[0, 0] == 0 and d16.image[0, -1] == 255
    inv = read_dicom(write_dicom(tmp_path / "b.dcm", gradient(), photometric="MONOCHROME1"))
    assert inv.image[0, 0] == 255 and inv.image[0, -1] == 0
    win = read_dicom(write_dicom(tmp_path / "c.dcm", gradient(maximum=4095), bits=12, window=(2048, 1024)))
    assert win.image[0, 0] == 0 and win.image[0, -1] == 255 and 100 < win.image[0, 32] < 160


@pytest.mark.parametrize(
    "kind,message",
    [
        ("truncated", "truncated"),
        ("text", "not a readable DICOM"),
        ("nopixels", "no pixel data"),
        ("rgb", "colour image"),
        ("nonsquare", "not square"),
    ],
)
def test_bad_dicoms(tmp_path: Path, rsna_dir: Path, kind: str, message: str) -> None:
    path = tmp_path / f"{kind}.dcm"
    if kind == "truncated":
        real = sorted((rsna_dir / "dicom").glob("*.dcm"))[0].read_bytes()
        path.write_bytes(real[: len(real) // 2])
    elif kind == "text":
        path.write_text("patientId,class\n")
    elif kind == "nopixels":
        write_dicom(path, None)
    elif kind == "rgb":
        write_dicom(path, np.zeros((16, 16, 3)), photometric="RGB")
    else:
        write_dicom(path, gradient(32, 48))
    with pytest.raises(DataError, match=message) as info:
        read_dicom(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_image_is_skipped_and_counted_or_fatal_when_strict(tmp_path: Path) -> None:
    root = basic(tmp_path / "d")
    (root / "stage_2_train_images" / "h2.dcm").write_bytes(b"not a dicom")
    os.remove(root / "stage_2_train_images" / "h1.dcm")
    cache = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert cache.patient_ids == ["p1", "p2"]
    assert cache.missing == ["h1"] and "h2.dcm" in str(cache.problems[0])
    with pytest.raises(DataError, match="missing"):
        prepare_cache(read_labels(root), 32, strict=True, progress=False, root=tmp_path / "c2")


def test_cache_reused_and_invalidated(tmp_path: Path) -> None:
    root = basic(tmp_path / "d")
    first = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    again = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert not first.reused and again.reused and again.path == first.path
    np.testing.assert_array_equal(first.images, again.images)
    other = prepare_cache(read_labels(root), 16, progress=False, root=tmp_path / "c")
    assert not other.reused and other.path != first.path
    write_dicom(root / "stage_2_train_images" / "h1.dcm", 255 - gradient(64, 64))
    changed = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert not changed.reused and changed.key != first.key
    i = changed.patient_ids.index("h1")
    assert changed.images[i][0, 0] > first.images[i][0, 0]


def test_interrupted_build_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.data.contents as cache_mod  # where decode_one looks up read_dicom

    root = basic(tmp_path / "d")
    calls = {"n": 0}
    real = cache_mod.read_dicom

    def flaky(path: Path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(cache_mod, "read_dicom", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    # only the hidden build folder (resumed by the next build) and its lock: no cache to mistake
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(names) == 2 and names[0].endswith("-32px.lock") and names[1].endswith("-32px.partial")
    assert not list((tmp_path / "c").glob("*/index.json"))


def test_dataset_samples(tmp_path: Path) -> None:
    data = open_data(DataConfig(root=str(basic(tmp_path / "d")), size=32, val_fraction=0.5), progress=False)
    ds = data.train
    s = ds[0]
    assert set(s) >= {"image", "domain", "boxes", "n_boxes", "box_mask", "patientId"}
    assert s["image"].shape == (1, 32, 32) and s["image"].min() >= -1 and s["image"].max() <= 1
    pneu = [i for i in range(len(ds)) if ds.domains[i] == 1]
    for i in pneu:
        s = ds[i]
        assert s["box_mask"].sum() > 0
    for i in range(len(ds)):
        if ds.domains[i] == 0:
            assert ds[i]["box_mask"].sum() == 0 and ds[i]["n_boxes"] == 0
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_resize_area_averages() -> None:
    img = np.zeros((4, 4), np.uint8)
    img[:2, :2] = 200
    np.testing.assert_array_equal(resize_area(img, 2), [[200, 0], [0, 0]])
    img[0, 0] = 0
    assert resize_area(img, 2)[0, 0] == 150


def test_no_image_folder_counts_every_image_missing(tmp_path: Path) -> None:
    root = basic(tmp_path / "d")
    shutil.rmtree(root / "stage_2_train_images")
    cache = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert cache.patient_ids == [] and len(cache.missing) == 4


def test_content_hash_ignores_file_times_but_not_pixels(tmp_path: Path) -> None:
    root = basic(tmp_path / "d")
    first = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    path = root / "stage_2_train_images" / "h1.dcm"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    touched = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert touched.key != first.key and touched.content_hash == first.content_hash
    write_dicom(path, 255 - gradient(64, 64))
    changed = prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "c")
    assert changed.content_hash != first.content_hash


def test_plain_8bit_pixels_skip_the_float_conversion_with_the_same_result(rsna_dir: Path, tmp_path: Path) -> None:
    from bench.data.dicom import is_plain_8bit, read_header, to_uint8, to_uint8_general

    for f in sorted((rsna_dir / "dicom").glob("*.dcm")):
        ds = read_header(f)
        px = ds.pixel_array
        assert is_plain_8bit(ds, px)  # every real RSNA file takes the fast path
        np.testing.assert_array_equal(to_uint8(ds, px), to_uint8_general(ds, px))
    img = gradient(16, 16).astype(np.uint8)
    for kind, kwargs in (("inverted", {"photometric": "MONOCHROME1"}), ("windowed", {"window": (100.0, 80.0)})):
        ds = read_header(write_dicom(tmp_path / f"{kind}.dcm", img, **kwargs))
        assert not is_plain_8bit(ds, ds.pixel_array), kind
        assert not np.array_equal(to_uint8(ds, ds.pixel_array), img), kind
