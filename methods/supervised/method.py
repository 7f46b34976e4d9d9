"""``ref_supervised``: a supervised ceiling, a small U-Net trained on the tune split's box masks.

The few-box protocol of Choe et al. 2020 ("Evaluating weakly supervised object localization methods
right"): a weakly supervised method may choose on a few boxed images, so the same boxes can also
train a segmentation network outright. Its row says how much of the gap between the methods and the
oracle full supervision on those few boxes closes. It trains on the tune split only (both domains;
Healthy images have empty masks) with pixel BCE (:mod:`methods.supervised.losses`), random
horizontal flips, and its map is the sigmoid of the network's output. It uses boxes, which the
weakly supervised methods never see: a ceiling reported among the references, not a method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from bench import progress
from bench.data.dataset import RSNADataset
from bench.errors import BenchError, ConfigError
from bench.method import Method, MethodSettings, Points, TrainContext
from bench.registry import register_method
from bench.train.checkpoint import load_checkpoint, save_checkpoint
from methods.supervised.losses import box_bce
from methods.supervised.networks import BoxUNet

CHECKPOINT = "supervised.pt"


@dataclass
class SupervisedParams:
    """Training settings of the supervised ceiling (its own, apart from the GANs' schedule)."""

    iterations: int = 300
    batch_size: int = 16
    lr: float = 2e-3  # Adam
    width: int = 8  # channels of the U-Net's first stage (doubled at each of its two poolings)
    flip: bool = True  # random horizontal flips of image and mask
    checkpoint_every: int = 100  # iterations between resumable checkpoints (0: none)


@dataclass
class Batches:
    """The tune split as whole tensors: images (N, 1, S, S) in [-1, 1] and box masks (N, 1, S, S)."""

    images: torch.Tensor
    masks: torch.Tensor


def tune_batches(tune: RSNADataset) -> Batches:
    """Images and rasterized box masks of every tune image; an error when there is no box to learn."""
    if len(tune) == 0:
        raise BenchError("ref_supervised: the tune split is empty; it trains on the tune split's boxes")
    whole = tune.batch(np.arange(len(tune)))
    if not whole["box_mask"].any():
        n = f"{len(tune)} image{'s' if len(tune) > 1 else ''}"
        raise BenchError(f"ref_supervised: the tune split ({n}) holds no lesion box to learn from")
    return Batches(whole["image"], whole["box_mask"])


def draw(seed: int, step: int, n: int, batch_size: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Image positions and flip flags of training step ``step``: a function of (seed, step) alone,
    so a resumed run draws what an uninterrupted one would."""
    rng = np.random.default_rng([seed, step])
    idx = rng.choice(n, size=min(batch_size, n), replace=False)
    return idx, (rng.random(len(idx)) < 0.5) & flip


@register_method("ref_supervised")
class SupervisedCeiling(Method):
    """Supervised ceiling: a small U-Net trained with pixel BCE on the tune split's box masks."""

    title = "supervised ceiling (U-Net on tune-split boxes)"
    reference = True
    ceiling = True
    translates = False
    training_cost = 0.1
    Params = SupervisedParams
    # Both presets see the tune split about 35 times (iterations x batch / tune images): on quick's 135
    # tune images box AUC on the test split rose from 0.83 at 100 iterations to 0.95 at 300 and 0.954
    # at 600 (docs/decisions.md, "Supervised ceiling"); standard has twice the tune images.
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"iterations": 20, "batch_size": 4, "checkpoint_every": 10},
        "quick": {"iterations": 300},
        "standard": {"iterations": 600},
    }

    @classmethod
    def cannot_run(cls, data: Any) -> str | None:
        """It needs box masks to learn from: a tune split without any box leaves it out of the run."""
        if not (np.asarray(data.tune.n_boxes) > 0).any():
            return "the tune split holds no lesion box to train on"
        return None

    def __init__(self, settings: MethodSettings) -> None:
        super().__init__(settings)
        p = self.params
        if p.iterations < 1 or p.batch_size < 1 or p.width < 1 or p.lr <= 0 or p.checkpoint_every < 0:
            raise ConfigError(
                "method.ref_supervised: iterations, batch_size and width must be at least 1, lr positive, "
                "checkpoint_every at least 0"
            )
        self.net: BoxUNet | None = None
        self.size = settings.size
        self.losses: list[float] = []  # training loss per step of the last fit (this process's steps)

    def build(self, seed: int) -> BoxUNet:
        """A freshly initialized U-Net, drawn from ``seed`` without touching the global RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return BoxUNet(self.params.width).to(self.device)

    def fit(self, ctx: TrainContext) -> Points:
        """Train on ``ctx.tune``'s images and box masks, resuming from ``ctx.out_dir`` when asked (no curves)."""
        data, p, seed = tune_batches(ctx.tune), self.params, ctx.settings.seed
        net = self.build(seed)
        opt = torch.optim.Adam(net.parameters(), lr=p.lr)
        identity = ctx.checkpoint_key(ctx.tune.cache.content_hash, asdict(p))
        path = ctx.out_dir / CHECKPOINT
        start = self._resume(path, identity, net, opt) if ctx.resume and path.is_file() else 0
        self.losses = []
        net.train()
        bar = progress.bar(
            total=p.iterations,
            initial=start,
            desc=self.name,
            unit="it",
            enabled=ctx.progress,
            position=ctx.progress_row,
            leave=ctx.progress_row == 0,
        )
        for step in range(start, p.iterations):
            self.losses.append(self._step(net, opt, data, seed, step))
            bar.update(1)
            if p.checkpoint_every and (step + 1) % p.checkpoint_every == 0 and step + 1 < p.iterations:
                save_checkpoint(
                    path, {"identity": identity, "step": step + 1, "net": net.state_dict(), "opt": opt.state_dict()}
                )
        bar.close()
        self.net = net.eval()
        return []

    def _step(self, net: BoxUNet, opt: torch.optim.Optimizer, data: Batches, seed: int, step: int) -> float:
        idx, flip = draw(seed, step, len(data.images), self.params.batch_size, self.params.flip)
        x, y = data.images[idx].clone(), data.masks[idx].clone()
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = box_bce(net(x.to(self.device)), y.to(self.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _resume(self, path: Any, identity: str, net: BoxUNet, opt: torch.optim.Optimizer) -> int:
        saved = load_checkpoint(path, map_location=self.device)
        if saved.get("identity") != identity:
            raise BenchError(
                f"{path}: a checkpoint of other settings or data; use another output folder or drop --resume"
            )
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        return int(saved["step"])

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(U-Net(x)): the probability that each pixel lies in a lesion box, shape (B, H, W)."""
        net = self._ready()
        if tuple(x.shape[-2:]) != (self.size, self.size):
            raise BenchError(f"ref_supervised was trained at {self.size} px, images are {tuple(x.shape[-2:])}")
        with torch.no_grad():
            return torch.sigmoid(net(x.to(self.device).float()))[:, 0].to(x.device)

    def _ready(self) -> BoxUNet:
        if self.net is None:
            raise BenchError("ref_supervised has not been trained: fit it or load its state first")
        return self.net.eval()

    def state_dict(self) -> dict[str, Any]:
        """Name, working size and the U-Net's weights."""
        return {"method": self.name, "size": self.size, "net": self._ready().state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the U-Net saved by :meth:`state_dict`."""
        if state.get("method") != self.name:
            raise BenchError(f"state of method {state.get('method')!r} cannot be loaded into {self.name!r}")
        net = BoxUNet(self.params.width).to(self.device)
        net.load_state_dict(state["net"])
        self.net, self.size = net.eval(), int(state["size"])
