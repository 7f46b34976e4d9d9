"""StarGAN: networks per SPEC 2, its losses, and the paper-scale parameter counts."""

from __future__ import annotations

import pytest
import torch

from bench.errors import ConfigError
from bench.method import HEALTHY, PNEUMONIA
from methods.stargan.networks import MapHead, StarGANDiscriminator, StarGANGenerator, critic_depth

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kernel, size", [(7, 16), (3, 9), (1, 5)])
def test_map_head_is_the_conv_it_replaces(kernel, size):
    torch.manual_seed(0)
    head = MapHead(6, kernel)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 1, kernel, 1, kernel // 2, bias=False)
    assert torch.equal(head.weight, conv.weight) and head.state_dict().keys() == conv.state_dict().keys()
    x = torch.randn(3, 6, size, size + 2, dtype=torch.float64, requires_grad=True)
    head.double(), conv.double()
    y, expected = head(x), conv(x)
    assert y.shape == expected.shape == (3, 1, size, size + 2)
    assert torch.allclose(y, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    (dx, dw), (ex, ew) = (torch.autograd.grad(out, (x, w), g) for out, w in [(y, head.weight), (expected, conv.weight)])
    assert torch.allclose(dx, ex, rtol=1e-12, atol=1e-12) and torch.allclose(dw, ew, rtol=1e-12, atol=1e-12)


def test_generator_output_shape_and_range(kit, gan_images):
    m = kit.method("stargan")
    t = torch.tensor([0, 1, 0, 1])
    y = m.generator(gan_images, t)
    assert y.shape == gan_images.shape
    assert y.abs().max() <= 1
    assert m.translate(gan_images, HEALTHY).shape == gan_images.shape
    lesion = m.localize(gan_images)
    assert lesion.shape == (4, 32, 32) and (lesion >= 0).all()
    assert torch.allclose(lesion, (m.translate(gan_images, HEALTHY) - gan_images).abs().mean(1))


def test_target_domain_conditions_the_output(kit, gan_images):
    m = kit.method("stargan")
    assert not torch.allclose(m.translate(gan_images, HEALTHY), m.translate(gan_images, PNEUMONIA))


def test_instance_norm_same_in_train_and_eval(kit, gan_images):
    g = kit.method("stargan").generator
    t = torch.tensor([1, 0, 1, 0])
    g.train()
    y_train = g(gan_images, t)
    g.eval()
    assert torch.equal(y_train, g(gan_images, t))
    assert list(g.buffers()) == []  # no running statistics
    assert all(m.bias is None for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))


def test_discriminator_heads(kit, gan_images):
    d = kit.method("stargan").critic
    src, cls = d(gan_images)
    assert src.shape == (4, 1, 4, 4)  # default depth: down to 4x4
    assert cls.shape == (4, 2)
    shallow = kit.method("stargan", sets=["model.d_layers=2"]).critic
    src, cls = shallow(gan_images)
    assert src.shape == (4, 1, 8, 8) and cls.shape == (4, 2)


def test_bad_sizes_are_config_errors():
    assert critic_depth(256, 0) == 6 and critic_depth(64, 0) == 4 and critic_depth(64, 3) == 3
    with pytest.raises(ConfigError):
        critic_depth(48, 5)


def test_paper_scale_parameter_counts():
    c, R, k = 64, 6, 2  # width, residual blocks, domains
    conv = lambda cin, cout, ks, bias=False: cin * cout * ks * ks + (cout if bias else 0)  # noqa: E731
    norm = lambda ch: 2 * ch  # noqa: E731  (affine InstanceNorm: weight and bias)
    generator = (
        conv(1 + k, c, 7)
        + norm(c)
        + conv(c, 2 * c, 4)
        + norm(2 * c)
        + conv(2 * c, 4 * c, 4)
        + norm(4 * c)
        + R * 2 * (conv(4 * c, 4 * c, 3) + norm(4 * c))
        + conv(4 * c, 2 * c, 4)
        + norm(2 * c)
        + conv(2 * c, c, 4)
        + norm(c)
        + conv(c, 1, 7)
    )
    widths = [1, 64, 128, 256, 512, 1024, 2048]  # 6 layers: 256 -> 4 px
    discriminator = (
        sum(conv(a, b, 4, bias=True) for a, b in zip(widths, widths[1:])) + conv(2048, 1, 3) + conv(2048, k, 4)
    )
    assert generator == 8_408_576 and discriminator == 44_784_576
    with torch.device("meta"):
        g = StarGANGenerator(c, R, k)
        d = StarGANDiscriminator(256, c, critic_depth(256, 0), k)
    assert n_params(g) == generator
    assert n_params(d) == discriminator


def test_loss_terms(kit):
    m = kit.method("stargan")
    batch = kit.batch(m)
    assert set(m.d_loss(batch, m.generator, m.critic)) == {"adv_real", "adv_fake", "cls", "gp"}
    assert set(m.g_loss(batch, m.generator, m.critic)) == {"adv", "cls", "rec"}


@pytest.mark.parametrize("weight", ["lambda_cls", "lambda_rec", "lambda_gp"])
def test_every_weight_reaches_the_gradient(kit, weight):
    kit.assert_weights_matter("stargan", weight)


def test_reconstruction_loss_falls_on_a_fixed_batch(kit):
    kit.assert_term_falls(kit.method("stargan", n_critic=1), "rec")
