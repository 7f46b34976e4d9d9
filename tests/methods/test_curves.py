"""Learning curves of the shared GAN trainer and the training recipes (paper, fast, the R1 loss)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import Config, TrainConfig
from bench.errors import ConfigError
from bench.evaluate import metrics
from bench.evaluate.protocol import resize_maps
from bench.method import HEALTHY, PNEUMONIA
from bench.records.record import MethodResult
from bench.registry import create_method
from bench.report.curves import curve_sentences, flattening, learning_curves_figure
from bench.train.checkpoint import load_checkpoint
from bench.train.gan import CHECKPOINT_NAME, LOG_NAME, GANTrainer, Sampler
from bench.train.gan.curves import CurveProbe, curve_subset, is_due, kept_on_resume
from bench.train.gan.losses import r1_penalty
from bench.train.gan.recipe import FAST_CRITIC_LR_SCALE, PAPER, ema_decay_at, resolve_recipe
from bench.train.runner import FINAL, train_context, train_method

GAN_METHODS = ["stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan"]
KEYS = {
    "iteration",
    "seconds",
    "eval_seconds",
    "lm_auc",
    "mask_lm_auc",
    "pooled_auc",
    "mask_pooled_auc",
    "accuracy_p2h",
    "change_rate_tol8_p2h",
    "change_rate_tol8_h2h",
}
TIMINGS = {"seconds", "eval_seconds"}


class MeanJudge:
    """A stand-in evaluator: P(pneumonia) rises with the image's mean intensity."""

    threshold = 0.5

    def probs(self, images: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(8 * images.float().mean(dim=(1, 2, 3))).numpy()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _fit(name: str, cfg: Config, data, out: Path, resume: bool = False):
    """The method trained into ``out`` and the curve points its ``fit`` returned."""
    m = create_method(name, cfg)
    ctx = train_context(name, cfg, data.train, data.tune, out, resume=resume, progress=False, judge=MeanJudge())
    return m, m.fit(ctx)


def _values(points: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k not in TIMINGS} for p in points]


def test_curve_subset_takes_the_first_of_each_domain():
    domains = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    assert curve_subset(domains, 4).tolist() == [0, 1, 2, 3]
    assert curve_subset(domains, 5).tolist() == [0, 1, 2, 3, 4]  # the odd image is Pneumonia
    assert curve_subset(np.array([1, 0, 0, 0, 0]), 4).tolist() == [0, 1, 2, 3]  # Healthy fills in
    assert curve_subset(domains, 100).tolist() == list(range(8))
    assert [is_due(i, 4, 10) for i in (0, 3, 4, 8, 9, 10)] == [True, False, True, True, False, True]
    assert not is_due(0, 0, 10)
    points = [{"iteration": i} for i in (0, 4, 7, 8)]
    assert kept_on_resume(points, 4, 7) == [{"iteration": 0}, {"iteration": 4}]


def test_curves_have_their_keys_at_their_iterations(smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.train.eval_every = 4
    m, curves = _fit("stargan", smoke_cfg, smoke_data, tmp_path)
    assert [p["iteration"] for p in curves] == [0, 4, 8, 12]
    assert (smoke_data.tune.domains == PNEUMONIA).any() and (smoke_data.tune.domains == HEALTHY).any()
    for p in curves:
        assert set(p) == KEYS
        assert all(0.0 <= p[k] <= 1.0 for k in KEYS - TIMINGS - {"iteration"})
    seconds = [p["seconds"] for p in curves]
    assert seconds[0] == 0.0 and seconds == sorted(seconds)
    # known answer: the last point is the pooled AUC of the trained map on the subset's Pneumonia images
    idx = curve_subset(smoke_data.tune.domains, smoke_cfg.train.curve_images)
    batch = smoke_data.tune.batch(idx)
    pneu = np.asarray(smoke_data.tune.domains)[idx] == PNEUMONIA
    maps = resize_maps(m.localize(batch["image"]), smoke_data.tune.size)
    assert curves[-1]["pooled_auc"] == metrics.pooled_auc(maps[pneu], batch["box_mask"][:, 0].numpy()[pneu] > 0.5)
    assert curves[-1]["lm_auc"] == metrics.lm_auc(maps[pneu], batch["box_mask"][:, 0].numpy()[pneu] > 0.5)
    # the points are in the training log as their own records, and in the checkpoint
    logged = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert [r["curve"] for r in logged if "curve" in r] == curves
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["curves"] == curves
    assert "curves" not in m.state_dict()  # the method holds networks, not its training's record
    # without a judge the judged figure is left out
    probe = CurveProbe(smoke_data.tune, 8, judge=None)
    assert "accuracy_p2h" not in probe.measure(m) and "pooled_auc" in probe.measure(m)


def test_curves_leave_training_untouched(smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.train.eval_every = 0
    off, off_curves = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "off")
    assert off_curves == []
    smoke_cfg.train.eval_every = 2
    on, on_curves = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "on")
    assert len(on_curves) == 7
    for a, b in zip(off.generator.state_dict().values(), on.generator.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("recipe", ["paper", "fast"])
def test_resume_equals_uninterrupted_with_curves(recipe, smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.train.eval_every = 4
    smoke_cfg.train.recipe = recipe
    whole, whole_curves = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "whole")
    smoke_cfg.train.iterations = 7  # ends off the curve schedule: its last point (7) is retaken as due
    _, part_curves = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "parts")
    assert [p["iteration"] for p in part_curves] == [0, 4, 7]
    smoke_cfg.train.iterations = 12
    rest, rest_curves = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "parts", resume=True)
    assert _values(rest_curves) == _values(whole_curves)
    assert [p["iteration"] for p in rest_curves] == [0, 4, 8, 12]
    assert rest_curves[1]["seconds"] == part_curves[1]["seconds"]  # kept from the checkpoint
    _, done = _fit("pillet", smoke_cfg, smoke_data, tmp_path / "parts", resume=True)
    assert done == rest_curves  # a finished run returns its checkpoint's points at once
    for a, b in zip(whole.state_dict()["generator"].values(), rest.state_dict()["generator"].values()):
        assert torch.equal(a, b)
    if recipe == "fast":
        for a, b in zip(whole.generator_ema.state_dict().values(), rest.generator_ema.state_dict().values()):
            assert torch.equal(a, b)


def test_trained_method_keeps_its_curves_through_the_cache(smoke_cfg, smoke_data, tmp_path, monkeypatch):
    smoke_cfg.train.eval_every = 6
    first = train_method("stargan", smoke_cfg, smoke_data, tmp_path / "m", progress=False, judge=MeanJudge())
    assert [p["iteration"] for p in first.curves] == [0, 6, 12]
    saved = torch.load(tmp_path / "m" / FINAL, weights_only=True)
    assert saved["curves"] == first.curves and "curves" not in saved["state"]

    def refuse(self, ctx):
        raise AssertionError("trained again instead of loading the finished model")

    monkeypatch.setattr(type(first.method), "fit", refuse)
    again = train_method("stargan", smoke_cfg, smoke_data, tmp_path / "m", progress=False)
    assert again.curves == first.curves and again.out_dir == first.out_dir
    # a model saved when the curves were part of the method's state keeps them
    saved["state"]["curves"] = saved.pop("curves")
    torch.save(saved, tmp_path / "m" / FINAL)
    assert train_method("stargan", smoke_cfg, smoke_data, tmp_path / "m", progress=False).curves == first.curves


def test_a_gan_method_takes_its_recipe_from_training(smoke_cfg, smoke_data, tmp_path):
    assert resolve_recipe(TrainConfig()) == PAPER
    smoke_cfg.train.recipe = "fast"
    smoke_cfg.train.iterations = 2
    m = create_method("stargan", smoke_cfg)
    assert m.recipe == PAPER and m.generator_ema is None  # built from its settings, not the schedule
    m.fit(train_context("stargan", smoke_cfg, smoke_data.train, smoke_data.tune, tmp_path, progress=False))
    assert m.recipe == resolve_recipe(smoke_cfg.train) and m.generator_ema is not None


@pytest.mark.parametrize("name", GAN_METHODS)
def test_fast_recipe_trains_every_gan_and_translates_with_the_average(name, smoke_cfg, smoke_data, tmp_path):
    smoke_cfg.train.recipe = "fast"
    smoke_cfg.method["vagan"] = {"boost_first": 3}  # the fast recipe takes no boosted critic steps
    m, _ = _fit(name, smoke_cfg, smoke_data, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["trainer"]["g_steps"] == smoke_cfg.train.iterations  # one critic step per generator step
    lr_d = state["trainer"]["opt_d"]["param_groups"][0]["lr"]
    assert lr_d == pytest.approx(FAST_CRITIC_LR_SCALE * m.params.lr_d)
    assert state["trainer"]["opt_g"]["param_groups"][0]["lr"] == pytest.approx(m.params.lr_g)
    assert m.generator_ema is not None and "generator_ema" in state
    live, avg = m.generator.state_dict(), m.generator_ema.state_dict()
    assert any(not torch.equal(live[k], avg[k]) for k in live)
    x = smoke_data.tune.batch(np.arange(4))["image"]
    target = torch.full((4,), HEALTHY)
    with torch.no_grad():
        m.generator_ema.eval()
        expected = m.healthy(m.generator_ema, x) if name == "vagan" else m.generator_ema(x, target)
    assert torch.equal(m.translate(x, HEALTHY), expected)
    reloaded = create_method(name, smoke_cfg)
    reloaded.load_state_dict(m.state_dict())
    assert torch.equal(reloaded.translate(x, HEALTHY), expected)


def test_ema_follows_the_warmed_up_decay(kit):
    m = kit.method("stargan", sets=["train.recipe='fast'", "train.ema_decay=0.9"])
    start = {k: v.clone() for k, v in m.generator_ema.state_dict().items()}
    trainer = GANTrainer(m)
    trainer.step(kit.batch(m))
    decay = ema_decay_at(0.9, 0)
    assert decay == pytest.approx(0.1)
    for key, value in m.generator_ema.state_dict().items():
        if value.dtype.is_floating_point:
            want = decay * start[key] + (1 - decay) * m.generator.state_dict()[key]
            assert torch.allclose(value, want, atol=1e-6), key
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_r1_loss_terms_and_penalty_known_answer(kit):
    w = torch.randn(1, 1, 4, 4)
    linear = lambda x: (x * w).sum(dim=(1, 2, 3))  # noqa: E731 (gradient w for every sample)
    assert torch.allclose(r1_penalty(linear, torch.randn(3, 1, 4, 4)), (w**2).sum())
    for name in GAN_METHODS:
        m = kit.method(name, sets=["train.gan_loss='r1'", "train.r1_gamma=2.0"])
        batch = kit.batch(m)
        d_terms = m.d_loss(batch, m.generator, m.critic)
        assert "r1" in d_terms and "gp" not in d_terms and all(torch.isfinite(v) for v in d_terms.values())
        assert d_terms["adv_real"] > 0 and d_terms["adv_fake"] > 0  # softplus terms are positive
        g_terms = m.g_loss(batch, m.generator, m.critic)
        assert all(torch.isfinite(v) for v in g_terms.values())


def test_bad_recipe_settings_are_config_errors(kit):
    for sets, match in (
        (["train.recipe='quick'"], "train.recipe"),
        (["train.gan_loss='hinge'"], "train.gan_loss"),
        (["train.ema_decay=1.0"], "train.ema_decay"),
        (["train.r1_gamma=-1.0"], "train.r1_gamma"),
    ):
        with pytest.raises(ConfigError, match=match):
            resolve_recipe(kit.cfg(sets=sets).train)


def test_paper_recipe_keeps_the_method_schedule(kit):
    m = kit.method("vagan", boost_first=1, boost_critic_steps=3, n_critic=2)
    trainer = GANTrainer(m)
    sampler = Sampler(kit.split(), seed=0)
    g_at = [i for i in range(1, 8) if trainer.step(m.draw(sampler, 2))[1] is not None]
    assert g_at == [3, 5, 7] and m.generator_ema is None


def _points(values: list[float], every: int = 100) -> list[dict]:
    return [
        {"iteration": i * every, "seconds": float(i), "eval_seconds": 0.1, "pooled_auc": v}
        for i, v in enumerate(values)
    ]


def test_flattening_rule_and_figure(tmp_path):
    assert "has flattened (range 0.010" in flattening(_points([0.5, 0.6, 0.70, 0.71, 0.70]), "pooled_auc")
    assert "still moving (range 0.100" in flattening(_points([0.5, 0.6, 0.70, 0.75, 0.80]), "pooled_auc")
    assert "too few points" in flattening(_points([0.5, 0.6]), "pooled_auc")
    never = flattening(_points([0.45, 0.46, 0.45, 0.445, 0.45]), "pooled_auc")
    assert never.startswith("pooled AUC (boxes) has not moved from its first point (0.450; range 0.015")
    assert "not because it converged" in never
    assert flattening(_points([0.5, 0.6]), "accuracy_p2h") is None
    curves = _points([0.5, 0.6, 0.7, 0.7, 0.7])
    methods = {"stargan": MethodResult("ok", curves=curves, curve_eval_seconds=0.5, curve_train_seconds=4.0)}
    (sentence,) = curve_sentences(methods)
    assert sentence.startswith("- StarGAN: pooled AUC (boxes) has flattened") and "(12.5% of it)" in sentence
    learning_curves_figure(methods, tmp_path / "learning_curves.png")
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_cli_train_judges_its_curves(smoke_cfg, tmp_path):
    """`python -m bench train` scores a translating method's curves with the evaluator (P→H share)."""
    from bench.cli.main import main

    out = tmp_path / "stargan"
    args = ["train", "--method", "stargan", "--preset", "smoke", "--data", smoke_cfg.data.root, "--out", str(out)]
    assert main([*args, "--set", "train.device='cpu'"]) == 0
    curves = load_checkpoint(out / "final.pt")["curves"]
    assert len(curves) >= 2 and all("accuracy_p2h" in point for point in curves)
