"""Lesion-free twins of synthetic images: the generator's lift, the cache's twins and masks, the batch key."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import gradient, write_dicom
from PIL import Image
from scipy import ndimage
from synth_cases import render_case

from bench.data import synth
from bench.data.cache import prepare_cache
from bench.data.dataset import RSNADataset, to_unit
from bench.data.dicom import resize_area
from bench.data.domains import LUNG_OPACITY, NORMAL
from bench.data.rsna import LIFT_DIR, LIFT_SCALE, read_labels
from bench.data.synth.render import case_rng, make_case, render_case_and_lift
from bench.errors import DataError

CFG = synth.SynthConfig(n_pneumonia=8, n_healthy=3, size=256, seed=3)
SIZE = 64


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("twins") / "rsna"
    synth.generate(out, CFG, progress=False)
    return out


@pytest.fixture(scope="module")
def cache(root: Path, tmp_path_factory: pytest.TempPathFactory):
    return prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path_factory.mktemp("cache"))


def _case(label: str, index: int) -> tuple[str, np.random.Generator]:
    rng = case_rng(CFG.seed, label, index)
    return str(uuid.UUID(bytes=rng.bytes(16), version=4)), rng


def test_lift_is_what_the_lesions_add() -> None:
    for index in range(3):
        _, rng = _case(LUNG_OPACITY, index)
        image, mask, boxes, lift = render_case_and_lift(rng, 128)
        _, rng = _case(LUNG_OPACITY, index)
        plain, mask2, boxes2 = render_case(rng, 128)
        _, rng = _case(LUNG_OPACITY, index)
        twin = render_case(rng, 128, with_lesions=False)[0]
        assert np.array_equal(image, plain) and np.array_equal(mask, mask2) and boxes == boxes2
        assert lift.dtype == np.float32 and lift.min() >= 0 and lift[mask].mean() > 10
        # image = round(grey), twin = round(grey - lift): they differ by the lift up to rounding
        assert np.abs(image.astype(np.float64) - lift - twin).max() <= 1.0
        near = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=4)  # the blur's reach
        assert not lift[~near].any()
    _, rng = _case(NORMAL, 0)
    assert not render_case_and_lift(rng, 128, NORMAL)[3].any()


def test_lift_files_are_written_for_every_image(root: Path) -> None:
    for index in range(CFG.n_pneumonia):
        pid, _ = _case(LUNG_OPACITY, index)
        stored = np.asarray(Image.open(root / LIFT_DIR / f"{pid}.png"))
        assert stored.dtype == np.uint16 and stored.shape == (CFG.size, CFG.size)
        lift = make_case(CFG.seed, LUNG_OPACITY, index, CFG.size).lift
        assert np.abs(stored / LIFT_SCALE - lift).max() <= 0.5 / LIFT_SCALE + 1e-6
    pid, _ = _case(NORMAL, 0)
    assert not np.asarray(Image.open(root / LIFT_DIR / f"{pid}.png")).any()


def test_twin_differs_from_the_image_exactly_on_the_mask(cache) -> None:
    images, twins, masks = (np.asarray(a).astype(np.int16) for a in (cache.images, cache.twins, cache.masks))
    assert twins.shape == images.shape == (CFG.n_pneumonia + CFG.n_healthy, SIZE, SIZE)
    assert np.array_equal(masks, (twins != images).astype(np.int16))
    assert (twins <= images).all()  # lesions only add density (brightness)
    pneumonia = cache.domains == 1
    assert masks[pneumonia].reshape(pneumonia.sum(), -1).any(axis=1).all()
    assert not masks[~pneumonia].any() and np.array_equal(twins[~pneumonia], images[~pneumonia])


def test_twin_is_the_lesion_free_render_up_to_jpeg(cache) -> None:
    """x - twin equals the difference of the two float renders (no JPEG) to one grey level."""
    position = {pid: i for i, pid in enumerate(cache.patient_ids)}
    for index in range(4):
        pid, rng = _case(LUNG_OPACITY, index)
        image = render_case(rng, CFG.size)[0]
        _, rng = _case(LUNG_OPACITY, index)
        twin = render_case(rng, CFG.size, with_lesions=False)[0]
        honest = resize_area(image, SIZE).astype(np.int16) - resize_area(twin, SIZE)
        i = position[pid]
        oracle = cache.images[i].astype(np.int16) - cache.twins[i]
        assert np.abs(oracle - honest).max() <= 1 and (oracle != honest).mean() < 0.1


def test_batches_carry_the_twin(cache) -> None:
    ds = RSNADataset(cache, np.arange(len(cache.patient_ids)))
    assert ds.has_healthy_twin and {"healthy_twin", "lesion_mask"} <= ds.keys
    batch = ds.batch([0, 3])
    assert set(batch) == ds.keys
    assert torch_equal(batch["healthy_twin"], to_unit(cache.twins[[0, 3]]))
    sample = ds[1]
    assert sample["healthy_twin"].shape == (1, SIZE, SIZE) and set(sample) == ds.keys


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_data_without_lifts_has_no_twins(root: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(root, old)
    shutil.rmtree(old / LIFT_DIR)  # synthetic data written before the lifts existed
    cache = prepare_cache(read_labels(old), SIZE, progress=False, root=tmp_path / "cache")
    ds = RSNADataset(cache, np.arange(3))
    assert cache.twins is None and cache.masks is not None
    assert not ds.has_healthy_twin and "healthy_twin" not in ds.keys and "healthy_twin" not in ds.batch([0])


def test_real_layout_has_no_twins(tmp_path: Path) -> None:
    root = tmp_path / "real"
    root.mkdir()
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np1,8,8,16,16,1\nh1,,,,,0\n")
    (root / "stage_2_detailed_class_info.csv").write_text("patientId,class\np1,Lung Opacity\nh1,Normal\n")
    for pid in ("p1", "h1"):
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", gradient(64, 64))
    ds = RSNADataset(prepare_cache(read_labels(root), 32, progress=False, root=tmp_path / "cache"), np.arange(2))
    assert not ds.has_healthy_twin and not ds.has_lesion_masks
    assert ds.keys == {"image", "domain", "boxes", "n_boxes", "box_mask", "patientId"} == set(ds.batch([0, 1]))


def test_lift_of_the_wrong_size_is_named(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    pid, _ = _case(LUNG_OPACITY, 0)
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(bad / LIFT_DIR / f"{pid}.png")
    with pytest.raises(DataError, match=rf"{pid}\.png: lesion lift is 32x32"):
        prepare_cache(read_labels(bad, strict=True), SIZE, strict=True, progress=False, root=tmp_path / "cache")
