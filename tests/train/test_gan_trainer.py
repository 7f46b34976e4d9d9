"""The shared adversarial trainer: gradient penalty, sampling, schedule, checkpoints, resume, DDP."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.registry import create_method, list_methods
from bench.train.checkpoint import load_checkpoint
from bench.train.gan import CHECKPOINT_NAME, LOG_NAME, GANTrainer, Sampler, gradient_penalty
from bench.train.gan.recipe import resolve_recipe
from bench.train.gan.trainer import Reuse, pure
from bench.train.runner import train_context

ROOT = Path(__file__).resolve().parents[2]
GAN_METHODS = ["stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan"]

# Trains a method in a child process (one thread, so runs are bit-reproducible). Optional slow
# checkpoints give the parent time to kill the child between two of them; optionally records the
# dataset positions each rank drew.
TRAIN_SCRIPT = """
import os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import bench.train.gan as gan
import bench.train.gan.trainer as gan_trainer
from bench import create_method, load_config
from bench.data import open_data
from bench.train.runner import train_context

method, root, out, resume, pause, *sets = sys.argv[1:]
cfg = load_config("smoke", sets=[f"data.root={root!r}", "train.device='cpu'", *sets])
save = gan_trainer.save_checkpoint
def slow_save(path, state):
    save(path, state)
    time.sleep(float(pause))
gan_trainer.save_checkpoint = slow_save
drawn = []
positions = gan.Sampler.positions
def logged(self, n, domain=None):
    drawn.append(positions(self, n, domain))
    return drawn[-1]
gan.Sampler.positions = logged
data = open_data(cfg.data, progress=False)
m = create_method(method, cfg)
m.fit(train_context(method, cfg, data.train, data.tune, Path(out), resume=resume == "1", progress=False))
rank = os.environ.get("RANK", "0")
torch.save({"generator": m.generator.state_dict(), "drawn": drawn}, Path(out) / f"rank{rank}.pt")
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    return env


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "train_gan.py"
    path.write_text(TRAIN_SCRIPT)
    return path


def _train_cmd(script: Path, method: str, root: Path, out: Path, resume: bool, pause: float, *sets: str) -> list[str]:
    return [sys.executable, str(script), method, str(root), str(out), "1" if resume else "0", str(pause), *sets]


TIMINGS = {"seconds", "eval_seconds"}  # wall-clock fields: the only values two identical runs may differ in


def _assert_same_tensors(a: object, b: object, where: str = "") -> None:
    """Every tensor (and plain value) of two nested checkpoints is identical (wall-clock timings aside)."""
    if where.rpartition("/")[2] in TIMINGS:
        return
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}/{i}")
    else:
        assert a == b, where


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TinyCritic(torch.nn.Module):
    """A smooth two-layer critic in float64 (finite differences need smooth functions)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(1, 3, 3, padding=1).double()
        self.b = torch.nn.Conv2d(3, 1, 3, padding=1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


def test_gradient_penalty_matches_finite_differences():
    torch.manual_seed(0)
    critic = TinyCritic()
    real, fake = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    alpha = torch.tensor([0.3, 0.8], dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, alpha)
    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    eps = 1e-6
    norms = []
    for i in range(2):  # d sum(D(x_i)) / d x_i by central differences, pixel by pixel
        grad = torch.zeros(16, dtype=torch.float64)
        for j in range(16):
            step = torch.zeros(2, 16, dtype=torch.float64)
            step[i, j] = eps
            step = step.view(2, 1, 4, 4)
            with torch.no_grad():
                grad[j] = (critic(x_hat + step)[i].sum() - critic(x_hat - step)[i].sum()) / (2 * eps)
        norms.append(grad.norm())
    expected = ((torch.stack(norms) - 1) ** 2).mean()
    assert torch.allclose(gp, expected, rtol=1e-6, atol=1e-9)
    # the penalty's own gradient reaches the critic's weights (double backward), as differences say
    gp.backward()
    w = critic.a.weight
    values = []
    for shift in (eps, -2 * eps, eps):
        with torch.no_grad():
            w[0, 0, 1, 1] += shift
        values.append(gradient_penalty(critic, real, fake, alpha).detach())
    up, down = values[0], values[1]
    assert torch.allclose(w.grad[0, 0, 1, 1], (up - down) / (2 * eps), rtol=1e-5)


def test_sampler_ranks_draw_distinct_samples_and_resume():
    class Split:
        domains = np.array([0, 1] * 10)

        def __len__(self) -> int:
            return 20

        def batch(self, idx: np.ndarray) -> dict:
            return {
                "image": torch.as_tensor(idx).float().view(-1, 1, 1, 1),
                "domain": torch.as_tensor(self.domains[idx]),
            }

    ranks = [Sampler(Split(), seed=3, rank=r, world_size=2) for r in range(2)]
    a, b = (s.positions(5) for s in ranks)
    assert len(set(a.tolist()) | set(b.tolist())) == 10
    p0, p1 = (s.positions(4, domain=1) for s in ranks)
    assert set(p0.tolist()).isdisjoint(p1.tolist()) and (Split.domains[torch.cat([p0, p1]).numpy()] == 1).all()
    for _ in range(6):  # 6 of 20 images per step: draws straddle passes, still distinct
        a, b = (s.positions(3) for s in ranks)
        assert len(set(a.tolist()) | set(b.tolist())) == 6
    state = ranks[0].state_dict()
    ahead = [ranks[0].positions(7), ranks[0].randint(2, 3), ranks[0].rand(3), ranks[0].positions(4, domain=1)]
    fresh = Sampler(Split(), seed=99, rank=0, world_size=2)
    fresh.load_state_dict(state)
    again = [fresh.positions(7), fresh.randint(2, 3), fresh.rand(3), fresh.positions(4, domain=1)]
    for x, y in zip(ahead, again):
        assert torch.equal(x, y)


def test_iterations_count_critic_steps(smoke_cfg, smoke_data):
    smoke_cfg.method["stargan"] = {"n_critic": 3}
    m = create_method("stargan", smoke_cfg)
    trainer = GANTrainer(m)
    sampler = Sampler(smoke_data.train, seed=0)
    g_iterations = [i for i in range(1, 8) if trainer.step(m.draw(sampler, 2))[1] is not None]
    assert g_iterations == [3, 6]
    assert (trainer.iteration, trainer.g_steps, trainer.cycle) == (7, 2, 1)


@pytest.mark.parametrize("name", GAN_METHODS)
def test_bf16_autocast_step(name, smoke_cfg, smoke_data):
    smoke_cfg.train.bf16 = True
    smoke_cfg.method["vagan"] = {"boost_first": 0, "boost_every": 0}
    smoke_cfg.method[name] = {**smoke_cfg.method.get(name, {}), "n_critic": 1}
    m = create_method(name, smoke_cfg)
    trainer = GANTrainer(m, bf16=True)
    before = [p.clone() for p in m.generator.parameters()]
    d_terms, g_terms = trainer.step(m.draw(Sampler(smoke_data.train, seed=0), 2))
    assert g_terms is not None
    assert all(torch.isfinite(v) for v in [*d_terms.values(), *g_terms.values()])
    assert all(p.dtype == torch.float32 for p in m.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, m.generator.parameters()))


def _counted_forwards(module: torch.nn.Module) -> list[int]:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    module.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("recipe", ["paper", "fast"])
@pytest.mark.parametrize("name", ["stargan", "fixedpoint", "pillet"])
def test_generator_step_reuses_the_critic_steps_outputs_bit_for_bit(name, recipe, smoke_cfg, smoke_data):
    smoke_cfg.train.recipe = recipe
    smoke_cfg.method[name] = {"n_critic": 2}
    m = create_method(name, smoke_cfg)
    m.use_recipe(resolve_recipe(smoke_cfg.train))
    kept = GANTrainer(m)
    fresh = GANTrainer(copy.deepcopy(m))
    fresh.reuse = None  # every generator step recomputes its forward passes, as before the reuse
    calls_kept, calls_fresh = _counted_forwards(kept.method.generator), _counted_forwards(fresh.method.generator)
    sampler = Sampler(smoke_data.train, seed=0)
    for _ in range(6):
        batch = m.draw(sampler, 2)
        kept.step(batch)
        fresh.step(batch)
    assert kept.reuse is not None and kept.g_steps == fresh.g_steps == (3 if recipe == "paper" else 6)
    assert calls_fresh[0] - calls_kept[0] == kept.g_steps  # one generator forward pass saved per generator step
    _assert_same_tensors(kept.method.state_dict(), fresh.method.state_dict())
    _assert_same_tensors(kept.state_dict(), fresh.state_dict())


def test_reuse_only_for_pure_generators_and_the_same_inputs():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Tanh())
    assert pure(net)
    assert not pure(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)))  # running statistics
    assert not pure(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Dropout(0.5)))  # draws random numbers
    calls = _counted_forwards(net)
    x, same_values = torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    same_values.copy_(x)
    reuse = Reuse()
    with torch.no_grad():
        detached = reuse.recording(net)(x)
    assert not detached.requires_grad and calls[0] == 1
    replay = reuse.replaying(net)
    other = replay(same_values)  # equal values, another tensor: computed afresh
    first = replay(x)  # the kept output, with its graph
    again = replay(x)  # kept outputs are taken once
    assert calls[0] == 3 and first.requires_grad and torch.equal(first, detached) and torch.equal(other, first)
    assert again is not first and not reuse.kept


def test_impure_generator_trains_without_reuse(smoke_cfg):
    trainer = GANTrainer(create_method("vagan", smoke_cfg))  # its U-Net has BatchNorm
    assert trainer.reuse is None


def _ctx(name: str, cfg, data, out: Path, resume: bool = False):
    return train_context(name, cfg, data.train, data.tune, out, resume=resume, progress=False)


def test_fit_checkpoints_and_finished_resume_returns_at_once(smoke_cfg, smoke_data, tmp_path):
    m = create_method("stargan", smoke_cfg)
    curves = m.fit(_ctx("stargan", smoke_cfg, smoke_data, tmp_path))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["iteration"] == smoke_cfg.train.iterations == state["trainer"]["iteration"]
    assert {"generator", "critic", "trainer", "sampler", "rng", "identity"} <= set(state)
    assert state["curves"] == curves and [p["iteration"] for p in curves] == [0, 12]
    assert {"opt_g", "opt_d", "g_steps", "cycle"} <= set(state["trainer"])
    assert {"generator", "streams"} <= set(state["sampler"]) and "torch" in state["rng"]
    log = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert len([r for r in log if "curve" not in r]) == smoke_cfg.train.iterations // smoke_cfg.train.log_every
    assert [r["iteration"] for r in log if "curve" in r] == [0, 12]  # eval_every 250: the start and the end
    stamp = (tmp_path / CHECKPOINT_NAME).stat().st_mtime_ns
    again = create_method("stargan", smoke_cfg)
    assert again.fit(_ctx("stargan", smoke_cfg, smoke_data, tmp_path, resume=True)) == curves
    assert (tmp_path / CHECKPOINT_NAME).stat().st_mtime_ns == stamp
    _assert_same_tensors(again.state_dict(), m.state_dict())


@pytest.mark.parametrize("name", ["pillet", "vagan"])
def test_resume_in_process_equals_uninterrupted(name, smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.method["vagan"] = {"boost_first": 1, "boost_critic_steps": 3}
    whole = create_method(name, smoke_cfg)
    whole.fit(_ctx(name, smoke_cfg, smoke_data, tmp_path / "whole"))
    smoke_cfg.train.iterations = 7
    create_method(name, smoke_cfg).fit(_ctx(name, smoke_cfg, smoke_data, tmp_path / "parts"))
    smoke_cfg.train.iterations = 12
    rest = create_method(name, smoke_cfg)
    rest.fit(_ctx(name, smoke_cfg, smoke_data, tmp_path / "parts", resume=True))
    _assert_same_tensors(
        load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "parts" / CHECKPOINT_NAME)
    )


def test_resume_refuses_other_settings(smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.train.iterations = 2
    create_method("pillet", smoke_cfg).fit(_ctx("pillet", smoke_cfg, smoke_data, tmp_path))
    smoke_cfg.train.iterations = 4
    smoke_cfg.method["pillet"] = {"lambda_id": 1.0}
    with pytest.raises(BenchError, match="other data, model or method.pillet settings"):
        create_method("pillet", smoke_cfg).fit(_ctx("pillet", smoke_cfg, smoke_data, tmp_path, resume=True))


def test_killed_run_resumes_to_the_uninterrupted_weights(synth_root, tmp_path):
    script = _script(tmp_path)
    sets = ("train.iterations=16", "train.checkpoint_every=2")
    whole = subprocess.Popen(
        _train_cmd(script, "pillet", synth_root, tmp_path / "whole", False, 0, *sets), env=_env(), cwd=ROOT
    )
    killed = subprocess.Popen(
        _train_cmd(script, "pillet", synth_root, tmp_path / "killed", False, 0.3, *sets), env=_env(), cwd=ROOT
    )
    ckpt = tmp_path / "killed" / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.35)  # land between checkpoints, mid-iteration or mid-pause
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert load_checkpoint(ckpt)["iteration"] < 16
    resumed = subprocess.run(
        _train_cmd(script, "pillet", synth_root, tmp_path / "killed", True, 0, *sets), env=_env(), cwd=ROOT
    )
    assert resumed.returncode == 0 and whole.wait() == 0
    _assert_same_tensors(load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME), load_checkpoint(ckpt))


def test_two_process_distributed_run(synth_root, tmp_path):
    script = _script(tmp_path)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        "stargan",
        str(synth_root),
        str(out),
        "0",
        "0",
        "train.iterations=6",
        "train.checkpoint_every=3",
    ]
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    _assert_same_tensors(ranks[0]["generator"], ranks[1]["generator"])  # DDP kept the replicas equal
    assert len(ranks[0]["drawn"]) == 6
    for a, b in zip(ranks[0]["drawn"], ranks[1]["drawn"]):
        assert set(a.tolist()).isdisjoint(b.tolist())
    state = load_checkpoint(out / CHECKPOINT_NAME)
    assert state["iteration"] == 6
    _assert_same_tensors(state["generator"], ranks[0]["generator"])
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == [CHECKPOINT_NAME, "rank0.pt", "rank1.pt"]


def test_registry_lists_the_gan_methods():
    assert set(GAN_METHODS) <= set(list_methods())
    assert all(create_method(n, _cpu_cfg()).translates for n in GAN_METHODS)


def _cpu_cfg():
    from bench.settings import load_config

    return load_config("smoke", sets=["train.device='cpu'"])


def test_the_trainer_never_imports_the_method_module():
    """Imports in bench/train/gan run one way (method -> trainer): no other module of the package imports
    the method module or the package itself, at module level, in a function or under TYPE_CHECKING."""
    import ast

    for path in sorted((ROOT / "bench" / "train" / "gan").glob("*.py")):
        if path.name in ("__init__.py", "method.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                assert node.module != "bench.train.gan", path.name  # the package imports every module
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            assert "bench.train.gan.method" not in modules, path.name
