"""VA-GAN: map generator, critic, Pneumonia-only training, critic schedule, |y - x| lesion map."""

from __future__ import annotations

import pytest
import torch

from bench.method import HEALTHY, PNEUMONIA
from bench.train.gan import Sampler, l1

pytestmark = pytest.mark.usefixtures("one_thread")


def test_networks_shapes(kit, gan_images):
    m = kit.method("vagan")
    assert m.generator(gan_images).shape == gan_images.shape
    assert m.critic(gan_images).shape == (4,)


def test_translate_healthy_is_tanh_x_plus_map(kit, gan_images):
    m = kit.method("vagan")
    y = m.translate(gan_images, HEALTHY)
    m.generator.eval()
    with torch.no_grad():
        expected = torch.tanh(gan_images + m.generator(gan_images))
    assert y.shape == gan_images.shape and y.abs().max() <= 1
    assert torch.allclose(y, expected)
    assert m.generator.training is False  # eval_mode restored the mode it found


def test_translate_to_pneumonia_is_an_error(kit, gan_images):
    with pytest.raises(ValueError, match="only translates to the Healthy"):
        kit.method("vagan").translate(gan_images, PNEUMONIA)


def test_lesion_map_is_the_translation_difference(kit, gan_images):
    m = kit.method("vagan")
    with torch.no_grad():  # a visible map: the untrained M(x) is small
        m.generator.out.bias.fill_(0.3)
    lesion = m.localize(gan_images)
    expected = (m.translate(gan_images, HEALTHY) - gan_images).abs().mean(1)
    assert lesion.shape == (4, 32, 32)
    assert torch.equal(lesion, expected)
    m.generator.eval()
    with torch.no_grad():
        raw = m.generator(gan_images)[:, 0]
    assert not torch.allclose(lesion, raw.abs(), atol=1e-3)  # not the reference code's |M(x)|
    assert torch.allclose(lesion, (torch.tanh(gan_images + raw[:, None]) - gan_images).abs()[:, 0])


def test_map_generator_has_the_spec_decoder():
    from methods.vagan.networks import MapUNet

    net = MapUNet()
    assert sum(p.numel() for p in net.parameters()) == 462_305
    assert [up[0].out_channels for up in net.up] == [16, 16, 16]


def test_critic_schedule():
    from bench.registry import create_method
    from bench.settings import load_config

    m = create_method("vagan", load_config("smoke", sets=["train.device='cpu'"]))
    steps = [m.critic_steps(g) for g in range(201)]
    assert steps[:25] == [100] * 25
    assert steps[25:100] == [5] * 75
    assert steps[100] == 100 and steps[101] == 5 and steps[200] == 100


def test_draws_pneumonia_to_translate_and_healthy_for_the_critic(kit):
    m = kit.method("vagan")
    split = kit.split(size=32)
    sampler = Sampler(split, seed=0)
    positions = []
    original = sampler.positions
    sampler.positions = lambda n, domain=None: positions.append(domain) or original(n, domain)
    batch = m.draw(sampler, 4)
    assert positions == [PNEUMONIA, HEALTHY]
    assert set(batch) == {"x", "real", "alpha"}
    for key, domain in (("x", PNEUMONIA), ("real", HEALTHY)):
        pool = split.images[torch.from_numpy(split.domains == domain)]
        assert all(any(torch.equal(img, p) for p in pool) for img in batch[key])


def test_loss_terms(kit):
    m = kit.method("vagan", lambda_map=7.0)
    batch = kit.batch(m)
    assert set(m.d_loss(batch, m.generator, m.critic)) == {"adv_real", "adv_fake", "gp"}
    terms = m.g_loss(batch, m.generator, m.critic)
    assert set(terms) == {"adv", "map"}
    assert torch.allclose(terms["map"], 7.0 * l1(torch.tanh(batch["x"] + m.generator(batch["x"])), batch["x"]))


@pytest.mark.parametrize("weight", ["lambda_map", "lambda_gp"])
def test_every_weight_reaches_the_gradient(kit, weight):
    kit.assert_weights_matter("vagan", weight)


def test_map_loss_falls_on_a_fixed_batch(kit):
    m = kit.method("vagan", n_critic=1, boost_first=0, boost_every=0)
    kit.assert_term_falls(m, "map")
