"""Cost of one training step of the CheXNet classifier (DenseNet-121), per preset and precision.

Run explicitly (not part of the default test run)::

    python -m pytest benchmarks/bench_classifier.py            # quick + standard, 4 variants each
    python -m pytest benchmarks/bench_classifier.py -k quick   # a subset

A step is what :class:`bench.classifier.train.ClassifierTrainer` does per iteration:
balanced sampling, augmentation, forward, backward and the AdamW update, on random images at the
preset's size and batch size. Variants: fp32 or bf16 autocast, NCHW or channels_last. Where bf16
is emulated (CPUs without native bf16: a bf16 matmul slower than fp32) the bf16 cases are skipped
unless LESIONBENCH_BENCH_BF16=1. On a CPU shared with other processes set
``OMP_WAIT_POLICY=PASSIVE`` or ``OMP_NUM_THREADS=1`` before Python starts: spinning OpenMP
workers on busy cores made DenseNet steps ~50x slower here. No timing is asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import torch
from random_split import RandomSplit

from bench.classifier import ClassifierTrainer
from bench.settings import load_config
from bench.train.device import resolve_device

PRESETS = ["quick", "standard"]
VARIANTS = ["fp32", "fp32+cl", "bf16", "bf16+cl"]
ROUNDS = {"quick": 5, "standard": 3}
ROWS: list[dict[str, object]] = []


def _bf16_native(device: torch.device) -> bool:
    """Whether a bf16 matmul beats fp32 here (False where bf16 is emulated)."""
    a = torch.randn(1024, 1024, device=device)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x
        t0 = time.perf_counter()
        for _ in range(3):
            x @ x
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times[dtype] = time.perf_counter() - t0
    return times[torch.bfloat16] < times[torch.float32]


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest) -> Iterator[torch.device]:
    """The benchmark device; prints the results table when the module ends."""
    dev = resolve_device("auto")
    yield dev
    if ROWS:
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print(f"\nclassifier training step on {dev} ({torch.get_num_threads()} threads)")
            print(f"{'preset':9s} {'size':>5s} {'batch':>5s} {'variant':8s} {'ms/step':>9s} {'img/s':>8s}")
            for r in ROWS:
                print(
                    f"{r['preset']:9s} {r['size']:5d} {r['batch']:5d} {r['variant']:8s} "
                    f"{r['ms_per_step']:9.1f} {r['images_per_s']:8.1f}"
                )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("preset", PRESETS)
def test_classifier_step(benchmark, device: torch.device, preset: str, variant: str) -> None:
    if variant.startswith("bf16") and not _bf16_native(device) and not os.environ.get("LESIONBENCH_BENCH_BF16"):
        pytest.skip("bf16 is emulated on this device; set LESIONBENCH_BENCH_BF16=1 to measure it anyway")
    cfg = load_config(preset)
    cfg.train.bf16 = variant.startswith("bf16")
    cfg.classifier.channels_last = variant.endswith("+cl")
    split = RandomSplit(cfg.data.size)
    trainer = ClassifierTrainer(cfg, split, split, "bench", device)
    trainer.step()  # warm-up
    benchmark.pedantic(trainer.step, rounds=ROUNDS[preset], iterations=1)
    seconds = benchmark.stats.stats.min if benchmark.stats is not None else float("nan")
    row = {
        "preset": preset,
        "size": cfg.data.size,
        "batch": cfg.classifier.batch_size,
        "variant": variant,
        "ms_per_step": seconds * 1e3,
        "images_per_s": cfg.classifier.batch_size / seconds,
    }
    benchmark.extra_info.update(row)
    ROWS.append(row)
