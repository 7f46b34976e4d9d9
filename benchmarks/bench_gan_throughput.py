"""GAN training throughput: iterations per second of the committed trainer against the reference step.

Run explicitly (not part of the default test run)::

    OMP_WAIT_POLICY=PASSIVE python -m pytest benchmarks/bench_gan_throughput.py   # every GAN, quick + standard
    OMP_WAIT_POLICY=PASSIVE python -m pytest benchmarks/bench_gan_throughput.py -k "pillet and quick"

The reference is the training step as it was before the throughput work of issue 19 (the trainer
of commit da32a2b, copied below as :class:`ReferenceTrainer`): every generator step runs a fresh
forward pass of the generator on the batch the critic step before it had already translated. Both
trainers start from
the same weights and run the same batches of the preset (its recipe, its network, its batch size)
on one thread, as training runs (``torch.set_num_threads(1)``). A round is ``STEPS`` iterations
(``trainer.step``: one critic step, plus a generator step when the recipe's cycle is complete,
plus the weight average); the reference's round runs in pytest-benchmark's untimed setup just
before each timed round of the committed trainer, so the two alternate (R C R C ...) and the ratio
of each pair is immune to the machine's drift. The table printed at the end gives, per GAN and
preset, iterations per second of both (median round), the speed-up (committed / reference: min,
median and max over the pairs), the FLOPs each executes per iteration (convolutions and matmuls,
``FlopCounterMode``) and the share of the machine's fp32 peak (:func:`bench_gan_step.measure_peak`,
measured in this session on one thread) each achieves. A trainer that skips work executes fewer
FLOPs: its share of the peak can fall while its iterations per second rise. On a machine shared
with other processes the peak is measured under their load too.

``LESIONBENCH_BENCH_ROUNDS`` (default 5) sets the number of pairs.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from bench_gan_step import count_flops, measure_peak
from random_split import RandomSplit

from bench.registry import create_method
from bench.settings import load_config
from bench.train.gan import GANMethod, GANTrainer, Sampler
from bench.train.gan.losses import Batch, Terms, total
from bench.train.gan.recipe import ema_decay_at, resolve_recipe
from bench.train.gan.trainer import frozen

METHODS = ["stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan"]
PRESETS = ["quick", "standard"]
STEPS = 5  # iterations per round: one full cycle of the paper recipe's n_critic = 5
WARMUP = 2  # untimed rounds of each trainer before the first pair
ROUNDS = int(os.environ.get("LESIONBENCH_BENCH_ROUNDS", "5"))
N_BATCHES = 4  # distinct batches the rounds cycle through
ROWS: list[dict[str, Any]] = []


class ReferenceTrainer(GANTrainer):
    """The training step of commit da32a2b (before issue 19's throughput work), kept as the yardstick.

    Optimizers, critic step, generator step, iteration and weight average exactly as they were;
    schedule, state and wrapping come from :class:`GANTrainer`.
    """

    def __init__(self, method: GANMethod) -> None:
        super().__init__(method)
        p = method.params
        self.opt_g = torch.optim.Adam(method.generator.parameters(), lr=p.lr_g, betas=method.betas)
        recipe = method.recipe
        lr_d = p.lr_d if recipe.lr_d_scale == 1.0 else p.lr_d * recipe.lr_d_scale
        self.opt_d = torch.optim.Adam(method.critic.parameters(), lr=lr_d, betas=method.betas)

    @torch.no_grad()
    def update_ema(self) -> None:
        ema = self.method.generator_ema
        if ema is None:
            return
        decay = ema_decay_at(self.method.recipe.ema_decay, self.g_steps)
        live = self.method.generator.state_dict()
        for key, value in ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(live[key].detach(), 1.0 - decay)
            else:
                value.copy_(live[key])

    def d_step(self, batch: Batch, before_g_step: bool = False) -> Terms:
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            terms = self.method.d_loss(batch, self.method.generator, self.D)
        total(terms).backward()
        self.opt_d.step()
        return {k: v.detach() for k, v in terms.items()}

    def g_step(self, batch: Batch) -> Terms:
        self.opt_g.zero_grad(set_to_none=True)
        with frozen(self.method.critic):
            with self.autocast():
                terms = self.method.g_loss(batch, self.G, self.method.critic)
            total(terms).backward()
        self.opt_g.step()
        return {k: v.detach() for k, v in terms.items()}

    def step(self, batch: Batch) -> tuple[Terms, Terms | None]:
        d_terms = self.d_step(batch)
        g_terms = None
        self.cycle += 1
        if self.cycle >= self.critic_steps():
            g_terms = self.g_step(batch)
            self.update_ema()
            self.g_steps += 1
            self.cycle = 0
        self.iteration += 1
        self.method.iteration = self.iteration
        return d_terms, g_terms


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One thread, as every training process runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def peak(request: pytest.FixtureRequest, one_thread: None) -> Iterator[float]:
    """The machine's fp32 peak on one thread, measured once; prints the table when the module ends."""
    value = measure_peak(torch.device("cpu"))["fp32"]
    yield value
    if ROWS:
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print_table(value)


def print_table(peak: float) -> None:
    """This session's measurements, one line per GAN and preset."""
    print(f"\nGAN training throughput, 1 thread, {STEPS} iterations a round, {ROUNDS} pairs")
    print(f"fp32 peak {peak:.1f} GFLOP/s (1 thread, measured in this session)")
    print(
        f"{'method':13s} {'preset':9s} {'it/s ref':>8s} {'it/s now':>8s} {'speed-up min/med/max':>21s} "
        f"{'GFLOP/it ref':>12s} {'now':>6s} {'%peak ref':>9s} {'now':>5s}"
    )
    for r in ROWS:
        print(
            f"{r['method']:13s} {r['preset']:9s} {r['ref_it_per_s']:8.2f} {r['it_per_s']:8.2f} "
            f"{r['speedup_min']:6.3f} {r['speedup_median']:6.3f} {r['speedup_max']:6.3f} "
            f"{r['ref_gflop_per_it']:12.3f} {r['gflop_per_it']:6.3f} {r['ref_percent_of_peak']:9.1f} "
            f"{r['percent_of_peak']:5.1f}"
        )


def build(name: str, preset: str) -> tuple[GANTrainer, ReferenceTrainer, list[Batch]]:
    """The committed and the reference trainer of one method at ``preset`` (same weights), and batches."""
    cfg = load_config(preset)
    cfg.train.device = "cpu"
    method = create_method(name, cfg)
    method.use_recipe(resolve_recipe(cfg.train))  # the preset's recipe, as its training applies it
    sampler = Sampler(RandomSplit(cfg.data.size), seed=0)
    batches = [method.draw(sampler, cfg.train.batch_size) for _ in range(N_BATCHES)]
    return GANTrainer(method), ReferenceTrainer(copy.deepcopy(method)), batches


def run_round(trainer: GANTrainer, batches: list[Batch]) -> None:
    """``STEPS`` training iterations, cycling through ``batches``."""
    for _ in range(STEPS):
        trainer.step(batches[trainer.iteration % len(batches)])


def timed_round(trainer: GANTrainer, batches: list[Batch]) -> float:
    """Seconds of one :func:`run_round`."""
    t0 = time.perf_counter()
    run_round(trainer, batches)
    return time.perf_counter() - t0


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", METHODS)
def test_training_throughput(benchmark, peak: float, name: str, preset: str) -> None:
    trainer, reference, batches = build(name, preset)
    flops = count_flops(lambda: run_round(trainer, batches)) / STEPS  # also a warm-up round
    ref_flops = count_flops(lambda: run_round(reference, batches)) / STEPS
    for _ in range(WARMUP):
        run_round(trainer, batches)
        run_round(reference, batches)
    ref_seconds: list[float] = []
    benchmark.pedantic(
        run_round,
        args=(trainer, batches),
        setup=lambda: ref_seconds.append(timed_round(reference, batches)),
        rounds=ROUNDS,
        iterations=1,
    )
    if benchmark.stats is not None:
        seconds = list(benchmark.stats.stats.data)
    else:  # --benchmark-disable: one untimed round each; time one more pair here
        ref_seconds = [timed_round(reference, batches)]
        seconds = [timed_round(trainer, batches)]
    speedups = sorted(r / c for r, c in zip(ref_seconds, seconds))
    it_s, ref_it_s = STEPS / statistics.median(seconds), STEPS / statistics.median(ref_seconds)
    row = {
        "method": name,
        "preset": preset,
        "it_per_s": it_s,
        "ref_it_per_s": ref_it_s,
        "speedup_min": speedups[0],
        "speedup_median": statistics.median(speedups),
        "speedup_max": speedups[-1],
        "gflop_per_it": flops / 1e9,
        "ref_gflop_per_it": ref_flops / 1e9,
        "percent_of_peak": 100 * flops * it_s / 1e9 / peak,
        "ref_percent_of_peak": 100 * ref_flops * ref_it_s / 1e9 / peak,
        "peak_gflops_per_s": peak,
    }
    benchmark.extra_info.update(row)
    ROWS.append(row)
    assert trainer.iteration == reference.iteration and flops > 0 and ref_flops > 0
