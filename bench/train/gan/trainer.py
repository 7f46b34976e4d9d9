"""The shared adversarial trainer: optimizers, step schedule, (distributed) networks and the loop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bench.method import Points, TrainContext
from bench.train import distributed
from bench.train.checkpoint import load_checkpoint, save_checkpoint
from bench.train.distributed import DistInfo
from bench.train.gan.curves import CurveProbe, is_due, kept_on_resume
from bench.train.gan.hooks import GANModel
from bench.train.gan.log import LOG_NAME, TrainLog, truncate_log
from bench.train.gan.losses import Batch, Network, Terms, total
from bench.train.gan.recipe import ema_decay_at
from bench.train.gan.sampler import Sampler
from bench.train.gan.state import CHECKPOINT_NAME, checkpoint_state, restore, resume_identity


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients from reaching ``module``'s parameters for the block."""
    params = [p for p in module.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def pure(module: nn.Module) -> bool:
    """Whether ``module``'s forward is a function of its weights and inputs alone: no buffers to update
    (BatchNorm's running statistics) and no dropout drawing random numbers."""
    has_dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules())
    return not has_dropout and next(module.buffers(), None) is None


class Reuse:
    """Generator outputs of the critic step before a generator step, kept with their graphs.

    The critic step does not change the generator's weights, so the generator step's forward pass
    on the same input tensors would recompute these outputs bit for bit; it takes them instead
    (each once). Only for a :func:`pure` generator called directly (not through DDP).
    """

    def __init__(self) -> None:
        self.kept: list[tuple[tuple[Any, ...], torch.Tensor]] = []

    def recording(self, net: Network) -> Network:
        """``net``, its tensor outputs computed with gradients, kept, and returned detached."""

        def call(*args: Any) -> Any:
            with torch.enable_grad():
                out = net(*args)
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                return out
            self.kept.append((args, out))
            return out.detach()

        return call

    def replaying(self, net: Network) -> Network:
        """``net``, answering a call on the very input tensors of a kept output with that output."""

        def call(*args: Any) -> Any:
            for i, (kept_args, out) in enumerate(self.kept):
                if len(kept_args) == len(args) and all(a is b for a, b in zip(kept_args, args)):
                    del self.kept[i]
                    return out
            return net(*args)

        return call


def _wrap(module: nn.Module, dist_info: DistInfo, device: torch.device) -> Network:
    """``module`` itself, or its DistributedDataParallel wrapper in a multi-process run."""
    if not dist_info.distributed:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


class GANTrainer:
    """The optimizers, step schedule and (distributed) network handles of one method's training.

    In a critic step the critic runs through its DDP wrapper and the generator raw (its output is
    not trained); in a generator step the reverse, with the critic's weights frozen. The method's
    recipe (:mod:`bench.train.gan.recipe`) sets the critic schedule, the critic's learning rate and whether
    a weight average of the generator follows each generator step.
    """

    def __init__(self, method: GANModel, dist_info: DistInfo | None = None, bf16: bool = False) -> None:
        dist_info = dist_info or DistInfo()
        p = method.params
        self.method = method
        self.bf16 = bf16
        self.opt_g = torch.optim.Adam(method.generator.parameters(), lr=p.lr_g, betas=method.betas)
        recipe = method.recipe
        lr_d = p.lr_d if recipe.lr_d_scale == 1.0 else p.lr_d * recipe.lr_d_scale
        self.opt_d = torch.optim.Adam(method.critic.parameters(), lr=lr_d, betas=method.betas)
        self.G = _wrap(method.generator, dist_info, method.device)
        self.D = _wrap(method.critic, dist_info, method.device)
        self.iteration = 0
        self.g_steps = 0
        self.cycle = 0  # critic steps taken since the last generator step
        self.seconds = 0.0  # training wall-clock so far, learning-curve evaluations excluded
        self.reuse = Reuse() if self.G is method.generator and pure(method.generator) else None

    def critic_steps(self) -> int:
        """Critic steps before the next generator step: the recipe's, else the method's schedule."""
        n = self.method.recipe.n_critic
        return n if n is not None else self.method.critic_steps(self.g_steps)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the generator's weight average towards the weights after generator step ``g_steps``."""
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

    def autocast(self) -> torch.autocast:
        """bf16 autocast for forward passes when enabled."""
        return torch.autocast(self.method.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def d_step(self, batch: Batch, before_g_step: bool = False) -> Terms:
        """One critic update; returns the detached weighted terms. Before a generator step on the same
        batch the generator's outputs are kept for it (see :class:`Reuse`)."""
        self.opt_d.zero_grad(set_to_none=True)
        G: Network = self.method.generator
        if self.reuse is not None:
            self.reuse.kept.clear()
            G = self.reuse.recording(G) if before_g_step else G
        with self.autocast():
            terms = self.method.d_loss(batch, G, self.D)
        total(terms).backward()
        self.opt_d.step()
        return {k: v.detach() for k, v in terms.items()}

    def g_step(self, batch: Batch) -> Terms:
        """One generator update (critic frozen); returns the detached weighted terms."""
        self.opt_g.zero_grad(set_to_none=True)
        G = self.G if self.reuse is None else self.reuse.replaying(self.G)
        with frozen(self.method.critic):
            with self.autocast():
                terms = self.method.g_loss(batch, G, self.method.critic)
            total(terms).backward()
        if self.reuse is not None:
            self.reuse.kept.clear()
        self.opt_g.step()
        return {k: v.detach() for k, v in terms.items()}

    def step(self, batch: Batch) -> tuple[Terms, Terms | None]:
        """One iteration: a critic step, then a generator step when the cycle is complete."""
        g_due = self.cycle + 1 >= self.critic_steps()
        d_terms = self.d_step(batch, before_g_step=g_due)
        g_terms = None
        self.cycle += 1
        if g_due:
            g_terms = self.g_step(batch)
            self.update_ema()
            self.g_steps += 1
            self.cycle = 0
        self.iteration += 1
        return d_terms, g_terms

    def state_dict(self) -> dict[str, Any]:
        """Optimizers and schedule position."""
        return {
            "iteration": self.iteration,
            "g_steps": self.g_steps,
            "cycle": self.cycle,
            "seconds": self.seconds,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.iteration = int(state["iteration"])
        self.g_steps = int(state["g_steps"])
        self.cycle = int(state["cycle"])
        self.seconds = float(state.get("seconds", 0.0))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(method: GANModel, ctx: TrainContext) -> Points:
    """Train ``method`` for ``ctx.settings.iterations`` critic steps, checkpointing into ``ctx.out_dir``;
    returns the learning-curve points (:mod:`bench.train.gan.curves`, on ``ctx.tune`` judged by ``ctx.judge``).

    With ``ctx.resume`` and an existing checkpoint the run continues where it stopped (a finished
    run returns at once, with the checkpoint's points). Under torchrun (WORLD_SIZE > 1) the networks
    are wrapped in DistributedDataParallel and only rank 0 writes files and takes learning-curve points.
    """
    settings = ctx.settings
    out_dir = Path(ctx.out_dir)
    path = out_dir / CHECKPOINT_NAME
    with distributed.process_group(method.device.type) as dist_info:
        if dist_info.distributed and method.device.type == "cuda":
            method.to(torch.device("cuda", dist_info.local_rank))
        torch.manual_seed(settings.seed)  # the global RNGs start seeded too (a checkpoint then restores them)
        sampler = Sampler(ctx.train, settings.seed, dist_info.rank, dist_info.world_size)
        trainer = GANTrainer(method, dist_info, bf16=settings.bf16)
        identity = resume_identity(ctx.checkpoint_key, method.params, method.recipe, ctx.train.cache.content_hash)
        curves: Points = []
        if ctx.resume and path.is_file():
            # loaded on CPU, where RNG states must live; weights and optimizer states copy to the device
            curves = restore(method, trainer, sampler, load_checkpoint(path), path, identity, method.name)
        if trainer.iteration >= settings.iterations:
            return curves
        curves = kept_on_resume(curves, settings.eval_every, trainer.iteration)
        if dist_info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            if trainer.iteration == 0:
                (out_dir / LOG_NAME).unlink(missing_ok=True)
            truncate_log(out_dir / LOG_NAME, trainer.iteration)
        _loop(trainer, sampler, ctx, path, dist_info, identity, curves)
        distributed.barrier()
    return curves


def _loop(
    trainer: GANTrainer,
    sampler: Sampler,
    ctx: TrainContext,
    path: Path,
    dist_info: DistInfo,
    identity: str,
    curves: Points,
) -> None:
    """The training loop proper, from ``trainer.iteration`` to ``ctx.settings.iterations``, taking the
    learning-curve points into ``curves``."""
    method = trainer.method
    settings = ctx.settings
    log = TrainLog(
        Path(ctx.out_dir) / LOG_NAME,
        trainer.iteration,
        settings.iterations,
        settings.batch_size * dist_info.world_size,
        ctx.progress,
        dist_info.is_main,
        label=method.name,
        row=ctx.progress_row,
    )
    due = settings.eval_every > 0 and dist_info.is_main
    probe = CurveProbe(ctx.tune, settings.curve_images, ctx.judge) if due else None
    probe = probe if probe is not None and len(probe) else None
    method.generator.train()
    method.critic.train()
    try:
        if probe is not None and trainer.iteration == 0 and not curves:
            curves.append(_take_point(trainer, probe, log))
        clock = time.perf_counter()
        while trainer.iteration < settings.iterations:
            batch = _to_device(method.draw(sampler, settings.batch_size), method.device)
            d_terms, g_terms = trainer.step(batch)
            it = trainer.iteration
            log.update(it, trainer.g_steps, d_terms, g_terms, it % settings.log_every == 0 or it == settings.iterations)
            now = time.perf_counter()
            trainer.seconds += now - clock
            if probe is not None and is_due(it, settings.eval_every, settings.iterations):
                curves.append(_take_point(trainer, probe, log))
            clock = time.perf_counter()
            if dist_info.is_main and (it % settings.checkpoint_every == 0 or it == settings.iterations):
                save_checkpoint(path, checkpoint_state(method, trainer, sampler, identity, curves))
    finally:
        log.close()


def _take_point(trainer: GANTrainer, probe: CurveProbe, log: TrainLog) -> dict[str, float]:
    """Measure a learning-curve point, write it to the log and return it."""
    t0 = time.perf_counter()
    values = probe.measure(trainer.method)
    point = {
        "iteration": trainer.iteration,
        "seconds": trainer.seconds,
        "eval_seconds": time.perf_counter() - t0,
        **values,
    }
    log.curve(point)
    return point
