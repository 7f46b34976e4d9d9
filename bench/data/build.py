"""Building a decode-once cache in chunks, over several processes, resumable after a kill.

The selected images with a file are cut into chunks of ``CHUNK`` images, in patientId order.
Each chunk is decoded by a worker process (one decoder each, started by forkserver, torch-free)
that writes its rows straight into the memory-mapped ``.npy`` arrays of a hidden build folder
``.<key>-<size>px.partial`` next to the cache, then reports its boxes and problems; the main
process records each finished chunk in ``chunks/<n>.json``. A build that is killed keeps those
chunks: the next one with the same key decodes only the rest. When every chunk is done, the
rows of skipped images are squeezed out, the index is written and the folder is renamed into
place, so the published cache is byte for byte the one a single process writes, whatever the
number of workers. Only one chunk per worker is in memory at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.contents import CACHE_VERSION, content_hash, decode_one, selected
from bench.data.rsna import MAX_BOXES, Labels, Layout, Patient, Problem
from bench.errors import BenchError, DataError
from bench.progress import bar as progress_bar

CHUNK = 64  # images per chunk: the unit of work, of progress and of resumption
HASH_ROWS = 256  # rows read at a time when hashing or compacting


@dataclass(frozen=True)
class Job:
    """One chunk to decode: its patients, and where its rows go."""

    chunk: int
    start: int  # row of the chunk's first image in the build arrays
    patients: list[Patient]
    layout: Layout
    size: int
    folder: Path
    arrays: tuple[str, ...]  # names of the .npy arrays: images, and masks / twins on synthetic data


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def decode_chunk(job: Job) -> dict[str, Any]:
    """Decode one chunk into the build arrays; return which images were kept, their boxes and the
    problems of the others (a worker never raises on bad data: the main process decides)."""
    maps = {name: np.load(job.folder / f"{name}.npy", mmap_mode="r+") for name in job.arrays}
    kept: list[bool] = []
    boxes: list[list[list[float]]] = []
    problems: list[list[Any]] = []
    for row, pat in enumerate(job.patients, start=job.start):
        try:
            image, bx, mask, twin = decode_one(job.layout, pat, job.size)
        except DataError as err:
            kept.append(False)
            boxes.append(np.zeros((MAX_BOXES, 4), np.float32).tolist())
            problems.append([str(err.path), err.what, err.row])
            continue
        maps["images"][row] = image
        if "masks" in maps:
            maps["masks"][row] = mask
        if "twins" in maps:
            maps["twins"][row] = twin
        kept.append(True)
        boxes.append(bx.tolist())
    for arr in maps.values():
        arr.flush()
    return {"chunk": job.chunk, "kept": kept, "boxes": boxes, "problems": problems}


def _start_worker(main_pid: int) -> None:
    """Workers leave Ctrl-C to the main process, which stops the build cleanly, and exit as soon
    as the main process is gone (killed), instead of waiting forever on a queue nobody feeds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(main_pid,), daemon=True).start()


def _exit_with(pid: int) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)
        time.sleep(0.5)


def _results(jobs: list[Job], workers: int) -> Iterator[dict[str, Any]]:
    """Chunk results in the order they finish: in this process for one worker, else in a pool."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield decode_chunk(job)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # not the default __main__: a script is not re-run in the server
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )
    with pool:
        futures = [pool.submit(decode_chunk, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise BenchError(
                "a decoding process stopped abruptly (killed, out of memory, or a script calling open_data or "
                "prepare_cache without an `if __name__ == '__main__':` guard); finished chunks are kept: run again "
                "to resume, or use --workers 1"
            ) from None
        finally:
            for future in futures:
                future.cancel()


def check_not_bootstrapping() -> None:
    """Refuse to build inside a worker that is re-running its parent's script (spawn and forkserver
    re-import an unguarded ``__main__``): it would wait forever on the lock its parent holds."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise BenchError(
            "a cache build was started while a child process re-ran its parent's script: guard the script's top "
            "level with `if __name__ == '__main__':` (decoding runs in worker processes)"
        )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: two processes never build the same cache at once."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _plan(key: str, size: int, chunk: int, present: list[Patient], arrays: tuple[str, ...]) -> dict[str, Any]:
    ids = hashlib.sha256("\n".join(p.patient_id for p in present).encode()).hexdigest()
    return {"version": CACHE_VERSION, "key": key, "size": size, "chunk": chunk, "ids": ids, "arrays": list(arrays)}


def _start(partial: Path, plan: dict[str, Any], n: int, size: int) -> dict[int, dict[str, Any]]:
    """The chunks an earlier build of the same plan finished, or a fresh build folder (and none)."""
    plan_file = partial / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text()) == plan:
        done = {}
        for path in (partial / "chunks").glob("*.json"):
            result = json.loads(path.read_text())
            done[result["chunk"]] = result
        return done
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "chunks").mkdir(parents=True)
    for name in plan["arrays"]:
        np.lib.format.open_memmap(partial / f"{name}.npy", "w+", np.uint8, (max(n, 1), size, size)).flush()
    _write_json(plan_file, plan)  # last: a folder without it is never resumed
    return {}


def build(
    labels: Labels, size: int, key: str, dest: Path, strict: bool, progress: bool, workers: int, chunk: int = CHUNK
) -> int:
    """Build the cache ``dest`` (see the module docstring); returns the images an interrupted
    build had already decoded (0 for a fresh build, -1 when another process built it meanwhile)."""
    lay = labels.layout
    pats = selected(labels)
    found = [(lay.images / f"{p.patient_id}.dcm").is_file() for p in pats]
    present = [p for p, f in zip(pats, found) if f]
    missing = [p.patient_id for p, f in zip(pats, found) if not f]
    if strict and missing:
        raise DataError(lay.images / f"{missing[0]}.dcm", f"image file is missing ({len(missing)} missing in all)")
    check_not_bootstrapping()
    arrays = ("images",) + (("masks",) if lay.masks else ()) + (("twins",) if lay.lifts else ())
    partial = dest.parent / f".{dest.name}.partial"
    with _locked(dest.parent / f".{dest.name}.lock"):
        if (dest / "index.json").is_file():
            return -1
        done = _start(partial, _plan(key, size, chunk, present, arrays), len(present), size)
        resumed = sum(len(r["kept"]) for r in done.values())
        jobs = [
            Job(c, start, present[start : start + chunk], lay, size, partial, arrays)
            for c, start in enumerate(range(0, len(present), chunk))
            if c not in done
        ]
        used = min(max(workers, 1), max(len(jobs), 1))
        desc = f"decoding DICOMs to {size}px cache ({used} worker{'s' if used > 1 else ''})"
        # closing(): an error here stops the pool now (pending chunks cancelled), not when the traceback is freed
        with (
            progress_bar(total=len(present), initial=resumed, desc=desc, unit="img", enabled=progress) as bar,
            closing(_results(jobs, workers)) as results,
        ):
            for result in results:
                if strict and result["problems"]:
                    break
                _write_json(partial / "chunks" / f"{result['chunk']:06d}.json", result)
                done[result["chunk"]] = result
                bar.update(len(result["kept"]))
            else:
                result = None
        if result is not None:  # strict: the first bad image stops the build (the pool has stopped)
            shutil.rmtree(partial, ignore_errors=True)
            raise DataError(*result["problems"][0])
        _publish(partial, dest, [done[c] for c in sorted(done)], present, missing, key, size, arrays)
    return resumed


def _publish(
    partial: Path,
    dest: Path,
    results: list[dict[str, Any]],
    present: list[Patient],
    missing: list[str],
    key: str,
    size: int,
    arrays: tuple[str, ...],
) -> None:
    """Squeeze out skipped rows, hash, write the index, and rename the build folder into place."""
    flags = [k for r in results for k in r["kept"]]
    rows = [i for i, k in enumerate(flags) if k]
    kept = [present[i] for i in rows]
    boxes = np.asarray([b for r in results for b in r["boxes"]], np.float32).reshape(-1, MAX_BOXES, 4)[rows]
    problems = [Problem(*p) for r in results for p in r["problems"]]
    for name in arrays:
        _compact(partial / f"{name}.npy", rows)
    files = {name: _Rows(partial / f"{name}.npy", len(kept)) for name in arrays}
    content = content_hash(kept, boxes, files["images"], files.get("masks"), files.get("twins"))
    index = {
        "version": CACHE_VERSION,
        "key": key,
        "size": size,
        "n": len(kept),
        "patient_ids": [p.patient_id for p in kept],
        "classes": [p.cls for p in kept],
        "domains": [p.domain for p in kept],
        "n_boxes": [len(p.boxes) for p in kept],
        "boxes": boxes.tolist(),
        "missing": missing,
        "problems": [[p.path, p.what, p.row] for p in problems],
        "has_masks": "masks" in arrays,
        "has_twins": "twins" in arrays,
        "content_hash": content,
    }
    (partial / "index.json").write_text(json.dumps(index))
    (partial / "plan.json").unlink()
    shutil.rmtree(partial / "chunks")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(partial, dest)


def _compact(path: Path, rows: list[int]) -> None:
    """Move row ``rows[k]`` to row k for every k and zero the rows after, a block at a time
    (rows[k] >= k, so reading a block before writing it never reads an overwritten row)."""
    n = len(np.load(path, mmap_mode="r"))
    if rows == list(range(len(rows))):
        return
    for start in range(0, n, HASH_ROWS):
        arr = np.load(path, mmap_mode="r+")
        stop = min(start + HASH_ROWS, n)
        if start < len(rows):
            block = arr[rows[start:stop]]
            arr[start : start + len(block)] = block
            arr[start + len(block) : stop] = 0
        else:
            arr[start:stop] = 0
        arr.flush()
        del arr


class _Rows:
    """The first ``n`` rows of a ``.npy`` file, read block by block for hashing; each block is
    mapped only while it is copied, so a large cache never stays resident."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> np.ndarray:
        arr = np.load(self.path, mmap_mode="r")
        block = np.array(arr[rows.start : min(rows.stop, self.n)])
        del arr
        return block
