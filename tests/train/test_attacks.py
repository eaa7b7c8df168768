"""FGSM and PGD on a linear model, where the worst case is known in closed form."""

from __future__ import annotations

import torch
from torch import nn

from train.attacks import fgsm, has_gradients, normalized, pgd


def _linear() -> nn.Module:
    """Two classes, logit difference = sum of the pixels minus 0.5 per pixel: class 1 when the mean > 0.5."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(12), torch.ones(12)]))
        model[1].bias.copy_(torch.tensor([0.0, -6.0]))
    return model


def test_fgsm_moves_every_pixel_by_eps_against_the_label():
    f = _linear()
    x = torch.full((2, 3, 2, 2), 0.6)
    y = torch.ones(2, dtype=torch.int64)
    adv = fgsm(f, x, y, 0.05)
    assert torch.allclose(adv, torch.full_like(x, 0.55))
    assert (f(adv).argmax(1) == 1).all()  # mean 0.55 > 0.5: still right
    adv = fgsm(f, x, y, 0.2)
    assert (f(adv).argmax(1) == 0).all()  # mean 0.4: fooled


def test_pgd_stays_in_the_ball_and_in_range():
    f = _linear()
    x = torch.rand((4, 3, 2, 2), generator=torch.Generator().manual_seed(0))
    y = f(x).argmax(1)
    adv = pgd(f, x, y, 0.1, steps=10, generator=torch.Generator().manual_seed(1))
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    margin_before = (f(x)[:, 1] - f(x)[:, 0]) * (2 * y - 1)
    margin_after = (f(adv)[:, 1] - f(adv)[:, 0]) * (2 * y - 1)
    assert (margin_after < margin_before - 0.5).all()  # PGD reaches the corner: 12 pixels x 0.1 at best
    assert torch.equal(pgd(f, x, y, 0.0), x)


def test_normalized_applies_mean_std_and_gradient_probe():
    seen = {}

    def model(z):
        seen["z"] = z
        return z.flatten(1)[:, :2]

    f = normalized(model, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25]))
    f(torch.ones(1, 3, 2, 2))
    assert torch.allclose(seen["z"], torch.full((1, 3, 2, 2), 2.0))
    assert has_gradients(_linear(), torch.rand(2, 3, 2, 2))
    assert not has_gradients(lambda z: torch.round(z.flatten(1)[:, :2]), torch.rand(2, 3, 2, 2))
