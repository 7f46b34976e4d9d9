"""GANMethod.randomized: fresh weights under a seed, for the model-randomization sanity check."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["stargan", "vagan"])
def test_randomized_is_fresh_reproducible_and_untrained(kit, gan_images, name):
    m = kit.method(name)
    with torch.no_grad():  # stands in for training: weights moved away from their initialization
        for p in m.generator.parameters():
            p.add_(0.2 * torch.randn_like(p))
    state = torch.get_rng_state()
    a, b, c = m.randomized(3), m.randomized(3), m.randomized(4)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left alone
    assert type(a) is type(m) and a.settings is m.settings and a.device == m.device and a.recipe is m.recipe
    assert _same_weights(a.generator, b.generator) and _same_weights(a.critic, b.critic)
    assert not _same_weights(a.generator, c.generator)
    assert not _same_weights(a.generator, m.generator)
    assert torch.equal(a.localize(gan_images), b.localize(gan_images))
    assert not torch.allclose(a.localize(gan_images), m.localize(gan_images))
    assert a.generator is not m.generator and a.critic is not m.critic
