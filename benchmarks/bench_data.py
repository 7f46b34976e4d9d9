"""Cached loading against decoding the DICOMs, measured in one run (pytest benchmarks/bench_data.py).

Both paths produce the same (B, 1, S, S) float batch in [-1, 1]; the ratio of their mean times
is printed and stored in the benchmark's extra_info. No timed assertion: speed is a figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.config import DataConfig
from bench.data import open_data
from bench.data.dataset import to_unit
from bench.data.dicom import read_dicom, resize_area

N_IMAGES, SIZE, BATCH = 200, 64, 32
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    from bench.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("bench") / "rsna"
    generate(root, SynthConfig(n_pneumonia=N_IMAGES // 2, n_healthy=N_IMAGES // 2, size=1024, seed=0), progress=False)
    return open_data(DataConfig(root=str(root), size=SIZE, val_fraction=0.0), progress=False)


def _batches(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.choice(n, BATCH, replace=False) for _ in range(4)]


def test_cached_loading(benchmark, data) -> None:
    batches = _batches(len(data.train))
    benchmark(lambda: [data.train.batch(b)["image"] for b in batches])
    RESULTS["cached"] = benchmark.stats.stats.mean
    benchmark.extra_info["images_per_s"] = 4 * BATCH / benchmark.stats.stats.mean


def test_decoding_dicoms(benchmark, data) -> None:
    images = data.cache.path
    paths = [Path(data.root) / "stage_2_train_images" / f"{pid}.dcm" for pid in data.train.patient_ids]
    batches = _batches(len(paths))

    def decode() -> list:
        return [to_unit(np.stack([resize_area(read_dicom(paths[i]).image, SIZE) for i in b])) for b in batches]

    benchmark.pedantic(decode, rounds=3, iterations=1)
    RESULTS["decoded"] = benchmark.stats.stats.mean
    benchmark.extra_info["images_per_s"] = 4 * BATCH / benchmark.stats.stats.mean
    assert images.is_dir()
    ratio = RESULTS["decoded"] / RESULTS["cached"]
    benchmark.extra_info["cached_speedup"] = ratio
    print(
        f"\ncached loading is {ratio:.0f}x faster than decoding 1024px JPEG DICOMs "
        f"({4 * BATCH / RESULTS['cached']:.0f} vs {4 * BATCH / RESULTS['decoded']:.1f} images/s)"
    )
