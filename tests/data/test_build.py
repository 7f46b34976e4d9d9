"""Building the cache in chunks over several processes: same bytes for any worker count, resumed
after an interrupt or a kill without redoing finished chunks, strict errors from workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bench.data.contents as cache_mod  # where decode_one looks up read_dicom
from bench.data import synth
from bench.data.cache import Cache, prepare_cache
from bench.data.contents import decode_one
from bench.data.rsna import read_labels
from bench.errors import BenchError, DataError

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32
N = 20  # images with a file; one of them is corrupt and skipped
CORRUPT = 7  # its position in patientId order


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data (masks and lesion-free twins included) with one unreadable DICOM."""
    out = tmp_path_factory.mktemp("build") / "rsna"
    synth.generate(out, synth.SynthConfig(n_pneumonia=10, n_healthy=10, size=96, seed=1), progress=False)
    files = sorted((out / synth.IMAGE_DIR).glob("*.dcm"))
    assert len(files) == N
    files[CORRUPT].write_bytes(b"not a dicom")
    return out


def _bytes(cache: Cache) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cache.path.iterdir())}


@pytest.fixture(scope="module")
def reference(root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every file of the cache built by one process, in one chunk."""
    return _bytes(prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path_factory.mktemp("c"), workers=1))


def test_same_bytes_whatever_the_workers(root: Path, reference: dict[str, bytes], tmp_path: Path) -> None:
    for workers, chunk in ((1, 3), (2, 3), (2, 7)):
        cache = prepare_cache(
            read_labels(root), SIZE, progress=False, root=tmp_path / f"{workers}-{chunk}", workers=workers, chunk=chunk
        )
        assert _bytes(cache) == reference, (workers, chunk)
    assert sorted(reference) == ["images.npy", "index.json", "masks.npy", "twins.npy"]


def test_rows_hold_their_images_and_skipped_rows_are_squeezed_out(root: Path, tmp_path: Path) -> None:
    labels = read_labels(root)
    cache = prepare_cache(labels, SIZE, progress=False, root=tmp_path, workers=2, chunk=3)
    assert len(cache.patient_ids) == N - 1 and len(cache.problems) == 1
    assert "not a readable DICOM file" in cache.problems[0].what
    by_id = {p.patient_id: p for p in labels.patients}
    for i, pid in enumerate(cache.patient_ids):
        image, boxes, mask, twin = decode_one(labels.layout, by_id[pid], SIZE)
        assert np.array_equal(cache.images[i], image) and np.array_equal(cache.boxes[i], boxes)
        assert np.array_equal(cache.masks[i], mask) and np.array_equal(cache.twins[i], twin)
    whole = np.load(cache.path / "images.npy")
    assert len(whole) == N and not whole[N - 1].any()  # the freed last row is zero, as one process leaves it


def test_interrupted_build_resumes_without_redoing_chunks(
    root: Path, reference: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cache_mod.read_dicom
    calls = {"n": 0}

    def interrupted(path: Path):
        calls["n"] += 1
        if calls["n"] == 8:  # chunks 0 and 1 (3 images each) are done, chunk 2 is half way
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(cache_mod, "read_dicom", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=1, chunk=3)

    def counted(path: Path):
        calls["n"] += 1
        return real(path)

    calls["n"] = 0
    monkeypatch.setattr(cache_mod, "read_dicom", counted)
    cache = prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=1, chunk=3)
    assert calls["n"] == N - 6 and cache.resumed == 6 and not cache.reused
    assert _bytes(cache) == reference
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [cache.path.name]


SLOW_BUILD = """
import sys, time
from pathlib import Path
import bench.data.contents as c
from bench.data.cache import prepare_cache
from bench.data.rsna import read_labels

real = c.read_dicom


def slow(path):
    time.sleep(0.2)
    return real(path)


c.read_dicom = slow
prepare_cache(read_labels(sys.argv[1]), int(sys.argv[2]), progress=False, root=Path(sys.argv[3]), workers=1, chunk=2)
"""


def test_killed_build_resumes_with_its_finished_chunks(root: Path, reference: dict[str, bytes], tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-c", SLOW_BUILD, str(root), str(SIZE), str(tmp_path)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    chunks: list[Path] = []
    while len(chunks) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        chunks = list(tmp_path.glob(".*.partial/chunks/*.json"))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    done = len(list(tmp_path.glob(".*.partial/chunks/*.json")))
    assert 2 <= done < N // 2  # killed with some chunks finished, not all
    cache = prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=2, chunk=2)
    assert cache.resumed == 2 * done
    assert _bytes(cache) == reference


def test_a_changed_plan_starts_over(root: Path, reference: dict[str, bytes], tmp_path: Path, monkeypatch) -> None:
    real = cache_mod.read_dicom
    calls = {"n": 0}

    def interrupted(path: Path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(cache_mod, "read_dicom", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=1, chunk=2)
    monkeypatch.setattr(cache_mod, "read_dicom", real)
    cache = prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=1, chunk=3)
    assert cache.resumed == 0 and _bytes(cache) == reference  # other chunks: the old ones are not reused


def test_strict_error_from_a_worker_names_the_file(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"\.dcm: not a readable DICOM file"):
        prepare_cache(read_labels(root), SIZE, strict=True, progress=False, root=tmp_path, workers=2, chunk=3)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    with pytest.raises(BenchError, match="at least 1"):
        prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=0)


def test_decoding_workers_do_not_import_torch() -> None:
    """Each worker imports bench.data.build; torch there would cost ~650 MB per core."""
    code = "import sys, bench.data.build; sys.exit('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT).returncode == 0


def test_datasets_read_the_memory_map_batch_by_batch(root: Path, tmp_path: Path) -> None:
    """A run reads images through RSNADataset.batch: the splits keep the memory map, a batch copies its rows only."""
    from bench.data.dataset import RSNADataset

    cache = prepare_cache(read_labels(root), SIZE, progress=False, root=tmp_path, workers=1)
    ds = RSNADataset(cache, np.arange(1, len(cache.patient_ids), 2))
    assert isinstance(cache.images, np.memmap) and Path(cache.images.filename) == cache.path / "images.npy"
    assert isinstance(ds.cache.images, np.memmap) and not hasattr(ds, "images")
    batch = ds.batch([0, 3])
    expected = np.stack([cache.images[1], cache.images[7]]).astype(np.float32) / 127.5 - 1
    assert batch["image"].shape == (2, 1, SIZE, SIZE) and np.allclose(batch["image"][:, 0].numpy(), expected)
    assert not isinstance(ds.images_u8([0, 3]), np.memmap)  # a copy of two rows, not a view of the file


def test_an_unguarded_script_fails_clearly_instead_of_hanging(root: Path, tmp_path: Path) -> None:
    """Worker processes re-run a script without a __main__ guard; its build must not wait on its parent's lock."""
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\nfrom bench.data.cache import prepare_cache\n"
        "from bench.data.rsna import read_labels\n"
        f"prepare_cache(read_labels({str(root)!r}), {SIZE}, progress=False, root=Path({str(tmp_path / 'c')!r}), "
        "workers=2, chunk=4)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert out.returncode != 0
    assert "without an `if __name__ == '__main__':` guard" in out.stderr.strip().splitlines()[-1]
    guarded = script.read_text().replace(
        "prepare_cache(read_labels", "if __name__ == '__main__':\n    prepare_cache(read_labels"
    )
    script.write_text(guarded)
    out = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "c").glob("*/index.json"))) == 1


def _worker_then_wait(main_pid: int) -> None:
    from bench.data.build import _start_worker

    _start_worker(main_pid)
    time.sleep(120)


def test_workers_exit_when_the_main_process_is_killed() -> None:
    """Killed with SIGKILL, the main process cannot stop its pool: each worker watches it and exits."""
    import multiprocessing

    main = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    worker = multiprocessing.get_context("forkserver").Process(target=_worker_then_wait, args=(main.pid,))
    worker.start()
    time.sleep(1)
    assert worker.is_alive()
    main.kill()
    main.wait()
    worker.join(timeout=30)
    assert worker.exitcode == 1
