"""Adversarial examples: FGSM and L-infinity PGD in [0, 1] pixel space.

The models take normalised input (``(x - mean) / std`` per channel, train/data.py ``normalize``), so
the attack runs on pixels and normalises inside the loss: an ``eps`` is a fraction of the pixel range
(``8/255`` is the usual CIFAR budget) whatever the dataset's statistics. Adversarial examples stay in
[0, 1] (valid images).

Attacks need gradients. An int8 program has none worth following (quantize/dequantize steps are
flat), so int8 models are attacked by **transfer**: the examples crafted against the fp32 model they
came from are fed to them (``train.robustness`` does this and says so in its output).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Model = Callable[[torch.Tensor], torch.Tensor]


def normalized(model: Model, mean: torch.Tensor, std: torch.Tensor) -> Model:
    """``model`` as a function of [0, 1] NCHW pixels."""
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return lambda x: model(((x - m) / s).contiguous(memory_format=torch.channels_last))


def _grad(f: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(f(x).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(f: Model, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``eps`` up the loss."""
    if eps <= 0:
        return x.clone()
    return (x + eps * _grad(f, x, y).sign()).clamp_(0, 1).detach()


def pgd(f: Model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 7, step_size: float | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018), L-infinity ball of radius ``eps``: a uniform random
    start in the ball, then ``steps`` signed-gradient steps of ``step_size`` (default ``2.5 * eps / steps``),
    each projected back onto the ball and [0, 1]."""
    if eps <= 0:
        return x.clone()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    start = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    adv = (x + eps * start).clamp_(0, 1)
    for _ in range(steps):
        adv = adv + alpha * _grad(f, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp_(0, 1).detach()
    return adv


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def has_gradients(model: Model, example: torch.Tensor) -> bool:
    """Whether the loss of ``model`` has a usable (non-zero, finite) gradient with respect to its input."""
    try:
        g = _grad(model, example, model(example).argmax(1).detach())
    except RuntimeError:
        return False
    return bool(torch.isfinite(g).all()) and bool(g.abs().sum() > 0)
