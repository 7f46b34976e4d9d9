"""PILLET-GAN and its ablation: SAB, mixing block, x + L_mixed output, identity loss."""

from __future__ import annotations

import pytest
import torch

from bench.method import HEALTHY
from bench.train.gan import l1
from methods.pillet.networks import PilletGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_output_is_x_plus_l_mixed_clamped(kit, gan_images):
    g = kit.method("pillet").generator
    t = torch.tensor([0, 1, 0, 1])
    mixed = g.mixed(gan_images, t)
    assert mixed.shape == gan_images.shape and mixed.abs().max() <= 1
    assert torch.allclose(g(gan_images, t), (gan_images + mixed).clamp(-1, 1))


def test_clamp_setting_off_gives_the_raw_sum(kit, gan_images):
    g = kit.method("pillet", clamp=False).generator
    t = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        g.mix.weight.fill_(1.0)  # saturate L_mixed so the sum leaves [-1, 1]
    y = g(gan_images, t)
    assert torch.allclose(y, gan_images + g.mixed(gan_images, t))
    assert y.abs().max() > 1


def test_sab_is_one_channel_broadcast_over_features(kit, gan_images):
    g = kit.method("pillet").generator
    t = torch.tensor([1, 1, 0, 0])
    features = g.trunk(gan_images, t)
    attention = g.sab(features)
    assert features.shape == (4, 8, 32, 32)
    assert attention.shape == (4, 1, 32, 32)
    assert (attention > 0).all() and (attention < 1).all()
    expected = torch.tanh(g.mix((attention + 1) * features))
    assert torch.allclose(g.mixed(gan_images, t), expected)


def test_nosab_differs_only_by_the_sab(kit, gan_images):
    full = kit.method("pillet").generator.state_dict()
    ablated = kit.method("pillet_nosab").generator
    sab = {k for k in full if k.startswith("sab.")}
    assert sab
    assert {k: v.shape for k, v in full.items() if k not in sab} == {
        k: v.shape for k, v in ablated.state_dict().items()
    }
    t = torch.tensor([0, 0, 1, 1])
    assert torch.allclose(ablated.mixed(gan_images, t), torch.tanh(ablated.mix(ablated.trunk(gan_images, t))))


def test_paper_scale_head_parameters():
    c = 64
    sab = c * c * 9 + 2 * c + c * 1 * 9  # conv3x3 c->c, IN affine, conv3x3 c->1 (no biases)
    with torch.device("meta"):
        full, ablated = PilletGenerator(c, 6), PilletGenerator(c, 6, sab=False)
    trunk = sum(p.numel() for p in full.trunk.parameters())
    assert sum(p.numel() for p in full.parameters()) == trunk + sab + c
    assert sum(p.numel() for p in ablated.parameters()) == trunk + c


def test_translate_localize_and_train_eval(kit, gan_images):
    m = kit.method("pillet")
    y = m.translate(gan_images, HEALTHY)
    assert y.shape == gan_images.shape and y.abs().max() <= 1
    assert torch.allclose(m.localize(gan_images), (y - gan_images).abs().mean(1))
    t = torch.full((4,), HEALTHY)
    assert torch.equal(m.generator.train()(gan_images, t), m.generator.eval()(gan_images, t))


def test_identity_loss_is_eq_8(kit):
    m = kit.method("pillet", lambda_id=2.0)
    batch = kit.batch(m)
    x, o, t = batch["x"], batch["o"], batch["t"]
    terms = m.g_loss(batch, m.generator, m.critic)
    assert set(terms) == {"adv", "cls", "rec", "id"}
    G = m.generator
    assert torch.allclose(terms["id"], 2.0 * (l1(G(x, t), x) + l1(G(x, o), x)))


def test_identity_loss_restricted_to_same_domain(kit):
    m = kit.method("pillet", id_same_domain_only=True)
    batch = kit.batch(m, n=8)
    x, o, t = batch["x"], batch["o"], batch["t"]
    same = t == o
    assert same.any() and (~same).any()
    G = m.generator
    expected = 10.0 * (l1(G(x[same], t[same]), x[same]) + l1(G(x, o), x))
    assert torch.allclose(m.g_loss(batch, G, m.critic)["id"], expected)


@pytest.mark.parametrize("name", ["pillet", "pillet_nosab"])
@pytest.mark.parametrize("weight", ["lambda_cls", "lambda_rec", "lambda_gp", "lambda_id"])
def test_every_weight_reaches_the_gradient(kit, name, weight):
    kit.assert_weights_matter(name, weight)


@pytest.mark.parametrize("name", ["pillet", "pillet_nosab"])
def test_reconstruction_loss_falls_on_a_fixed_batch(kit, name):
    kit.assert_term_falls(kit.method(name, n_critic=1), "rec")
