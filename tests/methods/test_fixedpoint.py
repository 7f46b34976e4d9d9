"""Fixed-Point GAN: residual output tanh(x + Delta), same-domain and identity terms."""

from __future__ import annotations

import pytest
import torch

from bench.method import HEALTHY
from bench.train.gan import l1

pytestmark = pytest.mark.usefixtures("one_thread")


def test_image_is_tanh_of_x_plus_delta(kit, gan_images):
    g = kit.method("fixedpoint").generator
    t = torch.tensor([0, 1, 1, 0])
    delta = g.delta(gan_images, t)
    assert delta.shape == gan_images.shape
    assert torch.allclose(g(gan_images, t), torch.tanh(gan_images + delta))


def test_translate_and_localize(kit, gan_images):
    m = kit.method("fixedpoint")
    y = m.translate(gan_images, HEALTHY)
    assert y.shape == gan_images.shape and y.abs().max() <= 1
    assert torch.allclose(m.localize(gan_images), (y - gan_images).abs().mean(1))


def test_same_parameters_as_stargan(kit):
    fp = {k: v.shape for k, v in kit.method("fixedpoint").generator.state_dict().items()}
    sg = {k: v.shape for k, v in kit.method("stargan").generator.state_dict().items()}
    assert fp == sg


def test_instance_norm_same_in_train_and_eval(kit, gan_images):
    g = kit.method("fixedpoint").generator
    t = torch.tensor([1, 0, 1, 0])
    y_train = g.train()(gan_images, t)
    assert torch.equal(y_train, g.eval()(gan_images, t))


def test_loss_terms_include_same_domain_and_identity(kit):
    m = kit.method("fixedpoint", lambda_id=3.0)
    batch = kit.batch(m)
    terms = m.g_loss(batch, m.generator, m.critic)
    assert set(terms) == {"adv", "cls", "rec", "adv_same", "cls_same", "rec_same", "id"}
    expected = 3.0 * l1(torch.tanh(batch["x"] + m.generator.delta(batch["x"], batch["o"])), batch["x"])
    assert torch.allclose(terms["id"], expected)
    assert set(m.d_loss(batch, m.generator, m.critic)) == {"adv_real", "adv_fake", "cls", "gp"}


@pytest.mark.parametrize("weight", ["lambda_cls", "lambda_rec", "lambda_gp", "lambda_id"])
def test_every_weight_reaches_the_gradient(kit, weight):
    kit.assert_weights_matter("fixedpoint", weight)


def test_reconstruction_loss_falls_on_a_fixed_batch(kit):
    kit.assert_term_falls(kit.method("fixedpoint", n_critic=1), "rec")
