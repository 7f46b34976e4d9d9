"""Cache building throughput per core against pydicom's own decode, in one run (pytest benchmarks/bench_decode.py).

The layout holds N_IMAGES patients whose DICOMs are hard links to the real RSNA sample
($LESIONBENCH_RSNA_DIR/dicom, 1024 px JPEG Baseline; skipped when absent). The reference is
pydicom decoding one image (``dcmread(...).pixel_array``, no resize, no cache); the build is
``prepare_cache`` with 1 worker and with one worker per core (header checks, LUTs, area resize to
64 px, memory-mapped writes, pool start-up included). The figure is decoded images/s per core
divided by pydicom's images/s: near 1 means the workers add little to the decode itself and the
cores are used. On a CPU shared with other processes, read it with the load printed next to it.
No timed assertion: speed is a figure.
"""

from __future__ import annotations

import os
import shutil
import time
from itertools import cycle
from pathlib import Path

import pydicom
import pytest

from bench.data.build import default_workers
from bench.data.cache import prepare_cache
from bench.data.rsna import read_labels

N_IMAGES, SIZE, CHUNK = 256, 64, 32
RSNA_DIR = Path(os.environ.get("LESIONBENCH_RSNA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared/data/rsna"))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_IMAGES 'Normal' patients, each DICOM a hard link (or copy) of one of the real ones."""
    real = sorted((RSNA_DIR / "dicom").glob("*.dcm"))
    if not real:
        pytest.skip(f"real RSNA sample not found at {RSNA_DIR} (set LESIONBENCH_RSNA_DIR)")
    root = tmp_path_factory.mktemp("decode") / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    ids = [f"bench-{i:05d}" for i in range(N_IMAGES)]
    (root / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\n" + "".join(f"{p},,,,,0\n" for p in ids)
    )
    (root / "stage_2_detailed_class_info.csv").write_text("patientId,class\n" + "".join(f"{p},Normal\n" for p in ids))
    for pid, src in zip(ids, cycle(real)):
        dst = root / "stage_2_train_images" / f"{pid}.dcm"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy(src, dst)
    return root


def _pydicom_rate(layout: Path, n: int = 22) -> float:
    """pydicom's single-image decodes per second, timed on ``n`` images (the 11 real files in turn)."""
    files = cycle(sorted((layout / "stage_2_train_images").glob("*.dcm"))[:11])
    start = time.perf_counter()
    for _ in range(n):
        assert pydicom.dcmread(next(files)).pixel_array.size
    return n / (time.perf_counter() - start)


def test_pydicom_single_image(benchmark, layout: Path) -> None:
    files = cycle(sorted((layout / "stage_2_train_images").glob("*.dcm"))[:11])
    benchmark(lambda: pydicom.dcmread(next(files)).pixel_array)
    benchmark.extra_info["images_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.parametrize("workers", ["1", "all"])
def test_cache_build(benchmark, layout: Path, tmp_path: Path, workers: str) -> None:
    """The reference is timed just before and just after the build, so both see the same load."""
    n_workers = 1 if workers == "1" else default_workers()
    labels = read_labels(layout)
    roots = iter(tmp_path / f"c{i}" for i in range(100))

    def build() -> None:
        cache = prepare_cache(labels, SIZE, progress=False, root=next(roots), workers=n_workers, chunk=CHUNK)
        assert len(cache.patient_ids) == N_IMAGES and not cache.reused

    before = _pydicom_rate(layout)
    benchmark.pedantic(build, rounds=2, iterations=1, warmup_rounds=0)
    reference = (before + _pydicom_rate(layout)) / 2
    per_core = N_IMAGES / benchmark.stats.stats.mean / n_workers
    ratio = per_core / reference
    benchmark.extra_info.update(
        workers=n_workers, images_per_s=per_core * n_workers, per_core=per_core, pydicom=reference, ratio=ratio
    )
    print(
        f"\ncache build, {n_workers} worker(s): {per_core * n_workers:.1f} images/s, {per_core:.1f} per core = "
        f"{ratio:.2f} x pydicom's single-image decode ({reference:.1f} images/s, timed around it); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
