"""Cost of one training iteration of every GAN method, and the FLOP rate it achieves.

Run explicitly (not part of the default test run)::

    python -m pytest benchmarks/bench_gan_step.py            # all: quick + standard, fp32 + bf16
    python -m pytest benchmarks/bench_gan_step.py -k quick   # a subset

One *iteration* is one critic step plus its share of a generator step, as the trainer counts it:
each benchmark round runs one full cycle (n_critic = 5 critic steps and one generator step; VA-GAN
in its steady state, without the 100-step boosts) and the reported time is the cycle's divided by 5.
FLOPs are counted once per configuration with ``torch.utils.flop_counter.FlopCounterMode``
(forward, backward and the gradient penalty's double backward; convolutions and matmuls only) and
set against the machine's peak measured in the same session (the best of a large fp32 matmul and
a large conv, and the bf16 matmul for bf16 runs). The table is printed at the end of the module.
Where bf16 is slower than fp32 (CPUs without native bf16, e.g. AVX2 only: autocast then emulates
it at a tenth of the fp32 speed) the bf16 cases are skipped unless LESIONBENCH_BENCH_BF16=1.

On a CPU shared with other processes set ``OMP_WAIT_POLICY=PASSIVE`` (before Python starts):
with the default spinning OpenMP workers, two threads on two busy cores ran ~30x slower here.

FlopCounterMode normally attributes FLOPs to modules through backward hooks that torch cannot run
inside ``torch.autograd.grad`` (the gradient penalty raises "A leaf node was passed to
_will_engine_execute_node"), so the counter here keeps the global total only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import pytest
import torch
from random_split import RandomSplit
from torch.utils.flop_counter import FlopCounterMode

from bench.registry import create_method
from bench.settings import load_config
from bench.train.gan import GANMethod, GANTrainer, Sampler
from bench.train.gan.recipe import resolve_recipe

METHODS = ["stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan"]
PRESETS = ["quick", "standard"]
PRECISIONS = ["fp32", "bf16"]
CYCLE = 5  # critic steps per generator step
ROUNDS = {"quick": 3, "standard": 2}
ROWS: list[dict[str, object]] = []


class _GlobalOnly(nullcontext):
    """Stands in for FlopCounterMode's module tracker: every FLOP counts towards 'Global'."""

    parents = frozenset({"Global"})


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (convs and matmuls, forward and backward) of one call of ``fn``."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], object], flops: float, device: torch.device, repeat: int = 3) -> float:
    """Best GFLOP/s of ``fn`` over ``repeat`` timed calls after one warm-up call."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def measure_peak(device: torch.device) -> dict[str, float]:
    """Peak GFLOP/s of a large fp32 matmul, a large fp32 conv and a large bf16 matmul."""
    n = 4096 if device.type == "cuda" else 1536
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a16, b16 = a.bfloat16(), b.bfloat16()
    x = torch.randn(8, 64, 128, 128, device=device)
    w = torch.randn(64, 64, 3, 3, device=device)
    conv_flops = 2 * 8 * 64 * 128 * 128 * 64 * 9
    return {
        "fp32": max(
            _rate(lambda: a @ b, 2 * n**3, device), _rate(lambda: torch.conv2d(x, w, padding=1), conv_flops, device)
        ),
        "bf16": _rate(lambda: a16 @ b16, 2 * n**3, device),
    }


@pytest.fixture(scope="module")
def peak(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """The machine's peak, measured once; prints the results table when the module ends."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    values = measure_peak(device)
    yield values
    if ROWS:
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print_table(device, values)


def print_table(device: torch.device, values: dict[str, float]) -> None:
    """The measurements of this session, one line per configuration."""
    print("")
    print(
        f"GAN training iteration on {device} ({torch.get_num_threads()} threads); "
        f"peak fp32 {values['fp32']:.1f} GFLOP/s, bf16 {values['bf16']:.1f} GFLOP/s"
    )
    print(
        f"{'method':14s} {'preset':9s} {'prec':5s} {'ms/iter':>9s} {'GFLOP/iter':>11s} {'GFLOP/s':>9s} {'% peak':>7s}"
    )
    for r in ROWS:
        print(
            f"{r['method']:14s} {r['preset']:9s} {r['precision']:5s} {r['ms_per_iteration']:9.1f} "
            f"{r['gflop_per_iteration']:11.3f} {r['gflops_per_s']:9.1f} {r['percent_of_peak']:7.1f}"
        )


def build(name: str, preset: str, precision: str) -> tuple[GANMethod, GANTrainer, dict[str, torch.Tensor]]:
    """A method at ``preset`` scale, its trainer, and one batch on its device."""
    cfg = load_config(preset)
    cfg.train.bf16 = precision == "bf16"
    cfg.method["vagan"] = {"boost_first": 0, "boost_every": 0}  # steady state: 5 critic steps
    method = create_method(name, cfg)
    method.use_recipe(resolve_recipe(cfg.train))  # the preset's recipe, as its training applies it
    trainer = GANTrainer(method, bf16=cfg.train.bf16)
    batch = method.draw(Sampler(RandomSplit(cfg.data.size), seed=0), cfg.train.batch_size)
    return method, trainer, {k: v.to(method.device) for k, v in batch.items()}


def cycle(trainer: GANTrainer, batch: dict[str, torch.Tensor]) -> None:
    """CYCLE critic steps and one generator step."""
    for _ in range(CYCLE):
        trainer.d_step(batch)
    trainer.g_step(batch)
    _sync(trainer.method.device)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", METHODS)
def test_training_iteration(benchmark, peak: dict[str, float], name: str, preset: str, precision: str) -> None:
    if precision == "bf16" and peak["bf16"] < peak["fp32"] and not os.environ.get("LESIONBENCH_BENCH_BF16"):
        pytest.skip(
            f"bf16 is emulated here (bf16 matmul {peak['bf16']:.1f} GFLOP/s < fp32 {peak['fp32']:.1f}); "
            "set LESIONBENCH_BENCH_BF16=1 to measure it anyway"
        )
    method, trainer, batch = build(name, preset, precision)
    flops = count_flops(lambda: cycle(trainer, batch)) / CYCLE  # also the warm-up
    benchmark.pedantic(cycle, args=(trainer, batch), rounds=ROUNDS[preset], iterations=1)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.min / CYCLE
    else:  # --benchmark-disable ran the cycle once, untimed
        seconds = 1 / _rate(lambda: cycle(trainer, batch), 1e9, method.device, repeat=1) / CYCLE
    rate = flops / seconds / 1e9
    row = {
        "method": name,
        "preset": preset,
        "precision": precision,
        "ms_per_iteration": seconds * 1e3,
        "gflop_per_iteration": flops / 1e9,
        "gflops_per_s": rate,
        "peak_gflops_per_s": peak[precision],
        "percent_of_peak": 100 * rate / peak[precision],
    }
    benchmark.extra_info.update(row)
    ROWS.append(row)
    assert flops > 0 and seconds > 0
