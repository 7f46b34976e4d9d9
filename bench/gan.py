"""The shared adversarial trainer of every GAN method (SPEC 2) and their base class.

A GAN method supplies a generator and a critic (:meth:`GANMethod.build_generator`,
:meth:`GANMethod.build_critic`), what one training batch holds (:meth:`GANMethod.draw`), its loss
terms (:meth:`GANMethod.d_loss`, :meth:`GANMethod.g_loss`), its critic schedule
(:meth:`GANMethod.critic_steps`) and its Adam settings (``Params``). Everything else is owned here,
identically for every method: the WGAN-GP gradient penalty (an eager double backward), the loop,
the optimizers, the device and DistributedDataParallel, optional bf16 autocast, logging, and
checkpoints that resume bit-exactly.

Counting: one *iteration* is one critic (discriminator) step. After ``critic_steps(g)`` critic
steps the generator takes its step number ``g`` on the same batch, so with 5 critic steps 100K
iterations make 20K generator steps. A run that ends inside a cycle ends without that cycle's
generator step.

Randomness: network initialisation uses ``cfg.train.seed`` under a forked global RNG, and
training seeds the global RNGs with it as well; everything drawn during training (batch indices,
target domains, gradient-penalty mixing weights) comes from one ``torch.Generator`` owned by the
:class:`Sampler`. All ranks of a distributed run hold the same generator state, draw
``world_size`` times a batch and keep their own slice, so every rank sees distinct images and a
checkpoint written by rank 0 restores every rank exactly. ``cfg.train.batch_size`` is per process.

Precision: with ``cfg.train.bf16`` the loss hooks (the forward passes) run under bf16 autocast;
backward passes run outside it, losses are summed in float32, and the gradient penalty's double
backward stays eager (nothing here is compiled). Translation and localization always run in fp32.
"""
from __future__ import annotations

import abc
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from bench import distributed
from bench.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from bench.config import Config, config_hash, to_dict
from bench.data.dataset import RSNADataset
from bench.distributed import DistInfo
from bench.errors import BenchError
from bench.method import DOMAINS, HEALTHY, Method, TrainContext

Batch = dict[str, torch.Tensor]
Terms = dict[str, torch.Tensor]
Network = Callable[..., Any]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"
CHECKPOINT_FORMAT = "lesionbench-gan/1"


@dataclass
class GANParams:
    """Optimisation settings every GAN method has (defaults: SPEC 2's lr, betas, n_critic, lambda_gp)."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5  # critic steps per generator step
    lambda_gp: float = 10.0


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP penalty mean_i (||grad_x D(x_i)||_2 - 1)^2 at x = a*real + (1-a)*fake.

    ``alpha`` holds one mixing weight per sample; the gradient is that of the critic's output
    summed over everything but the batch (a patch map counts as one sum per sample). The graph is
    kept (``create_graph``) so the penalty's gradient reaches the critic's weights.
    """
    a = alpha.to(real.dtype).view(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(_at_least_fp32(out).sum(), x_hat, create_graph=True)
    return ((_at_least_fp32(grad).flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, computed in float32."""
    return (a.float() - b.float()).abs().mean()


def total(terms: Terms) -> torch.Tensor:
    """Sum of weighted loss terms."""
    return torch.stack([v.float() for v in terms.values()]).sum()


class IndexStream:
    """Endless shuffled passes over a pool of dataset positions (one permutation per pass).

    A draw that straddles two passes moves the positions it already took to the end of the new
    pass, so one draw never repeats a position (as long as it is not larger than the pool).
    """

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = torch.as_tensor(np.asarray(pool), dtype=torch.int64)
        self.order = torch.empty(0, dtype=torch.int64)
        self.cursor = 0

    def take(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The next ``n`` positions, starting a new pass whenever one is used up."""
        parts = []
        while n > 0:
            if self.cursor >= len(self.order):
                order = self.pool[torch.randperm(len(self.pool), generator=gen)]
                taken = torch.isin(order, torch.cat(parts)) if parts else torch.zeros(len(order), dtype=torch.bool)
                self.order = torch.cat([order[~taken], order[taken]])
                self.cursor = 0
            part = self.order[self.cursor : self.cursor + n]
            self.cursor += len(part)
            n -= len(part)
            parts.append(part)
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        """Current pass order and position."""
        return {"order": self.order.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.order = state["order"].clone()
        self.cursor = int(state["cursor"])


class Sampler:
    """All training randomness: this rank's share of batches, labels and uniform numbers.

    Every draw takes ``world_size * n`` values from the shared generator and keeps slice
    ``rank``, so ranks see distinct samples (within a pass over the data) and stay in step.
    """

    def __init__(self, data: RSNADataset, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.data = data
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.streams: dict[str, IndexStream] = {}

    def _share(self, values: torch.Tensor, n: int) -> torch.Tensor:
        return values[self.rank * n : (self.rank + 1) * n]

    def _stream(self, domain: int | None) -> IndexStream:
        key = "all" if domain is None else DOMAINS[domain]
        if key not in self.streams:
            pool = np.arange(len(self.data)) if domain is None else np.flatnonzero(self.data.domains == domain)
            if len(pool) == 0:
                raise BenchError(f"the training split holds no {key} images")
            self.streams[key] = IndexStream(pool)
        return self.streams[key]

    def positions(self, n: int, domain: int | None = None) -> torch.Tensor:
        """``n`` dataset positions for this rank, from one domain or from all."""
        return self._share(self._stream(domain).take(n * self.world_size, self.generator), n)

    def images(self, n: int, domain: int | None = None) -> Batch:
        """A batch of ``n`` images (key ``image``) and their domains (key ``domain``)."""
        batch = self.data.batch(self.positions(n, domain).numpy())
        return {"image": batch["image"], "domain": batch["domain"]}

    def randint(self, high: int, n: int) -> torch.Tensor:
        """``n`` integers uniform in [0, high)."""
        return self._share(torch.randint(high, (n * self.world_size,), generator=self.generator), n)

    def rand(self, n: int) -> torch.Tensor:
        """``n`` floats uniform in [0, 1)."""
        return self._share(torch.rand(n * self.world_size, generator=self.generator), n)

    def state_dict(self) -> dict[str, Any]:
        """Generator state and the position of every stream."""
        streams = {k: s.state_dict() for k, s in self.streams.items()}
        return {"generator": self.generator.get_state(), "streams": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.generator.set_state(state["generator"])
        for key, stream_state in state["streams"].items():
            self._stream(None if key == "all" else DOMAINS.index(key)).load_state_dict(stream_state)


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block, restoring their previous modes afterwards."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


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


class GANMethod(Method):
    """Base class of the GAN methods: networks and losses come from hooks, training from here.

    Subclasses implement :meth:`build_generator`, :meth:`build_critic`, :meth:`draw`,
    :meth:`d_loss` and :meth:`g_loss`; they may override :meth:`critic_steps` (default
    ``params.n_critic``) and :meth:`generate` (default ``generator(x, target)``). ``Params`` must
    derive from :class:`GANParams` (learning rates, Adam betas, n_critic, lambda_gp).
    """

    translates: ClassVar[bool] = True
    Params: ClassVar[type] = GANParams

    def __init__(self, cfg: Config, device: str | torch.device | None = None) -> None:
        super().__init__(cfg, device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.generator: nn.Module = self.build_generator()
            self.critic: nn.Module = self.build_critic()
        self.iteration = 0
        self.to(self.device)

    # ---- hooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    def build_generator(self) -> nn.Module:
        """The generator network (called once, under the run's seed)."""

    @abc.abstractmethod
    def build_critic(self) -> nn.Module:
        """The critic (discriminator) network (called once, under the run's seed)."""

    @abc.abstractmethod
    def draw(self, sampler: Sampler, n: int) -> Batch:
        """One training batch of ``n`` samples per rank; all randomness from ``sampler``."""

    @abc.abstractmethod
    def d_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Weighted critic loss terms (summed by the trainer), using networks ``G`` and ``D``."""

    @abc.abstractmethod
    def g_loss(self, batch: Batch, G: Network, D: Network) -> Terms:
        """Weighted generator loss terms (summed by the trainer), using networks ``G`` and ``D``."""

    def critic_steps(self, g_step: int) -> int:
        """Critic steps taken before generator step number ``g_step`` (0-based)."""
        return self.params.n_critic

    def generate(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """G(x, target) with the raw generator; ``target`` holds one domain per image."""
        return self.generator(x, target)

    # ---- Method interface --------------------------------------------------------------------

    @property
    def betas(self) -> tuple[float, float]:
        """Adam betas of both optimizers."""
        return (self.params.beta1, self.params.beta2)

    def to(self, device: torch.device) -> GANMethod:
        """Move both networks to ``device``."""
        self.device = torch.device(device)
        self.generator.to(self.device)
        self.critic.to(self.device)
        return self

    def translate(self, x: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
        """G(x, target) in [-1, 1], shape (B, 1, H, W), on ``x``'s device; no gradients."""
        t = torch.as_tensor(target, dtype=torch.int64)
        t = t.expand(len(x)) if t.dim() == 0 else t
        with torch.no_grad(), eval_mode(self.generator):
            y = self.generate(x.to(self.device).float(), t.to(self.device))
        return y.to(x.device)

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """|G(x, healthy) - x| averaged over channels, shape (B, H, W)."""
        return (self.translate(x, HEALTHY) - x.float()).abs().mean(1)

    def fit(self, ctx: TrainContext) -> None:
        """Train with the shared WGAN-GP loop (see :func:`train`)."""
        train(self, ctx)

    def state_dict(self) -> dict[str, Any]:
        """Both networks, the iteration reached and the resolved config."""
        return {
            "format": CHECKPOINT_FORMAT,
            "method": self.name,
            "config": to_dict(self.cfg),
            "iteration": self.iteration,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore both networks from :meth:`state_dict` (or a training checkpoint)."""
        if state.get("method") != self.name:
            raise BenchError(f"state of method {state.get('method')!r} cannot be loaded into {self.name!r}")
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.iteration = int(state.get("iteration", 0))


def _wrap(module: nn.Module, dist_info: DistInfo, device: torch.device) -> Network:
    """``module`` itself, or its DistributedDataParallel wrapper in a multi-process run."""
    if not dist_info.distributed:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


class GANTrainer:
    """The optimizers, step schedule and (distributed) network handles of one method's training.

    In a critic step the critic runs through its DDP wrapper and the generator raw (its output is
    not trained); in a generator step the reverse, with the critic's weights frozen.
    """

    def __init__(self, method: GANMethod, dist_info: DistInfo | None = None, bf16: bool = False) -> None:
        dist_info = dist_info or DistInfo()
        p = method.params
        self.method = method
        self.bf16 = bf16
        self.opt_g = torch.optim.Adam(method.generator.parameters(), lr=p.lr_g, betas=method.betas)
        self.opt_d = torch.optim.Adam(method.critic.parameters(), lr=p.lr_d, betas=method.betas)
        self.G = _wrap(method.generator, dist_info, method.device)
        self.D = _wrap(method.critic, dist_info, method.device)
        self.iteration = 0
        self.g_steps = 0
        self.cycle = 0  # critic steps taken since the last generator step

    def autocast(self) -> torch.autocast:
        """bf16 autocast for forward passes when enabled."""
        return torch.autocast(self.method.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def d_step(self, batch: Batch) -> Terms:
        """One critic update; returns the detached weighted terms."""
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            terms = self.method.d_loss(batch, self.method.generator, self.D)
        total(terms).backward()
        self.opt_d.step()
        return {k: v.detach() for k, v in terms.items()}

    def g_step(self, batch: Batch) -> Terms:
        """One generator update (critic frozen); returns the detached weighted terms."""
        self.opt_g.zero_grad(set_to_none=True)
        with frozen(self.method.critic):
            with self.autocast():
                terms = self.method.g_loss(batch, self.G, self.method.critic)
            total(terms).backward()
        self.opt_g.step()
        return {k: v.detach() for k, v in terms.items()}

    def step(self, batch: Batch) -> tuple[Terms, Terms | None]:
        """One iteration: a critic step, then a generator step when the cycle is complete."""
        d_terms = self.d_step(batch)
        g_terms = None
        self.cycle += 1
        if self.cycle >= self.method.critic_steps(self.g_steps):
            g_terms = self.g_step(batch)
            self.g_steps += 1
            self.cycle = 0
        self.iteration += 1
        self.method.iteration = self.iteration
        return d_terms, g_terms

    def state_dict(self) -> dict[str, Any]:
        """Optimizers and schedule position."""
        return {
            "iteration": self.iteration,
            "g_steps": self.g_steps,
            "cycle": self.cycle,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.iteration = int(state["iteration"])
        self.g_steps = int(state["g_steps"])
        self.cycle = int(state["cycle"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.method.iteration = self.iteration


def _identity(method: GANMethod) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: data, model and the method's settings."""
    cfg = method.cfg
    return {"data": to_dict(cfg.data), "model": to_dict(cfg.model), "params": dataclasses.asdict(method.params)}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def checkpoint_state(trainer: GANTrainer, sampler: Sampler) -> dict[str, Any]:
    """Everything needed to continue training exactly: networks, optimizers, RNGs, iteration."""
    method = trainer.method
    return {
        **method.state_dict(),
        "identity": config_hash(_identity(method)),
        "trainer": trainer.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": _rng_state(),
    }


def restore(trainer: GANTrainer, sampler: Sampler, state: dict[str, Any], path: Path) -> None:
    """Load :func:`checkpoint_state` output, refusing a checkpoint of other settings."""
    method = trainer.method
    if state.get("format") != CHECKPOINT_FORMAT:
        raise BenchError(f"{path}: not a GAN training checkpoint")
    if state.get("identity") != config_hash(_identity(method)):
        raise BenchError(f"{path}: written with other data, model or method.{method.name} settings; "
                         "use another output folder or drop --resume")
    method.load_state_dict(state)
    trainer.load_state_dict(state["trainer"])
    sampler.load_state_dict(state["sampler"])
    _set_rng_state(state["rng"])


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines written after ``iteration`` (by a run killed after its last checkpoint)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if _logged_iteration(line) <= iteration]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _logged_iteration(line: str) -> float:
    """The iteration of a log line; infinity for a line cut short by a kill."""
    try:
        return json.loads(line)["iteration"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _summary(terms: Terms) -> dict[str, float]:
    return {"total": float(total(terms)), **{k: float(v) for k, v in terms.items()}}


class _Log:
    """Progress bar on the main process and a JSON-lines log of the losses in ``out_dir``."""

    def __init__(self, path: Path, start: int, end: int, images_per_iteration: int, show: bool, main: bool) -> None:
        self.path = path
        self.main = main
        self.start = start
        self.images_per_iteration = images_per_iteration
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=end, initial=start, disable=not (show and main), unit="it", dynamic_ncols=True)
        self.last_g: Terms | None = None

    def update(self, iteration: int, g_steps: int, d_terms: Terms, g_terms: Terms | None, write: bool) -> None:
        """Advance the bar; on ``write`` iterations also show and record the losses."""
        self.bar.update(1)
        self.last_g = g_terms if g_terms is not None else self.last_g
        if not (write and self.main):
            return
        rate = (iteration - self.start) * self.images_per_iteration / max(time.perf_counter() - self.t0, 1e-9)
        d = _summary(d_terms)
        g = _summary(self.last_g) if self.last_g is not None else {}
        self.bar.set_postfix({"D": f"{d['total']:.3f}", "G": f"{g.get('total', math.nan):.3f}", "img/s": f"{rate:.1f}"})
        with self.path.open("a") as fh:
            record = {"iteration": iteration, "g_step": g_steps, "d": d, "g": g, "images_per_s": rate}
            if not g:  # no generator step yet in this process (e.g. just after a resume): no G losses to log
                del record["g"]
            fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()


def train(method: GANMethod, ctx: TrainContext) -> None:
    """Train ``method`` for ``cfg.train.iterations`` critic steps, checkpointing into ``ctx.out_dir``.

    With ``ctx.resume`` and an existing checkpoint the run continues where it stopped (a finished
    run returns at once). Under torchrun (WORLD_SIZE > 1) the networks are wrapped in
    DistributedDataParallel and only rank 0 writes files.
    """
    cfg = method.cfg.train
    out_dir = Path(ctx.out_dir)
    path = out_dir / CHECKPOINT_NAME
    with distributed.process_group(method.device.type) as dist_info:
        if dist_info.distributed and method.device.type == "cuda":
            method.to(torch.device("cuda", dist_info.local_rank))
        torch.manual_seed(cfg.seed)  # the global RNGs start seeded too (a checkpoint then restores them)
        sampler = Sampler(ctx.train, cfg.seed, dist_info.rank, dist_info.world_size)
        trainer = GANTrainer(method, dist_info, bf16=cfg.bf16)
        if ctx.resume and path.is_file():
            # loaded on CPU, where RNG states must live; weights and optimizer states copy to the device
            restore(trainer, sampler, load_checkpoint(path), path)
        if trainer.iteration >= cfg.iterations:
            return
        if dist_info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            if trainer.iteration == 0:
                (out_dir / LOG_NAME).unlink(missing_ok=True)
            _truncate_log(out_dir / LOG_NAME, trainer.iteration)
        _loop(trainer, sampler, ctx, path, dist_info)
        distributed.barrier()


def _loop(trainer: GANTrainer, sampler: Sampler, ctx: TrainContext, path: Path, dist_info: DistInfo) -> None:
    """The training loop proper, from ``trainer.iteration`` to ``cfg.train.iterations``."""
    method = trainer.method
    cfg = method.cfg.train
    log = _Log(Path(ctx.out_dir) / LOG_NAME, trainer.iteration, cfg.iterations,
               cfg.batch_size * dist_info.world_size, ctx.progress, dist_info.is_main)
    method.generator.train()
    method.critic.train()
    try:
        while trainer.iteration < cfg.iterations:
            batch = _to_device(method.draw(sampler, cfg.batch_size), method.device)
            d_terms, g_terms = trainer.step(batch)
            it = trainer.iteration
            log.update(it, trainer.g_steps, d_terms, g_terms, it % cfg.log_every == 0 or it == cfg.iterations)
            if dist_info.is_main and (it % cfg.checkpoint_every == 0 or it == cfg.iterations):
                save_checkpoint(path, checkpoint_state(trainer, sampler))
    finally:
        log.close()
