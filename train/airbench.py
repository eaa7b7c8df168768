"""The airbench techniques that need more than a flag in the model: the whitened first layer's
data-dependent initialisation and lookahead (an exponential moving average of the weights that the
model is pulled back to every few steps).

- ``init_whitening(model, images)``: the first conv of a ``rescnn`` built with ``whiten`` gets, from
  the normalised training images' ``k x k`` patches (k = 2: 12-dimensional), the eigenvectors of their
  covariance scaled by 1/sqrt(eigenvalue + eps), and their negatives (24 filters), so the layer's
  outputs are decorrelated with unit variance; the weights stay frozen, only the bias trains
  (airbench94, Keller Jordan 2024).
- ``identity_init(model)``: every trainable 3x3 conv starts as the identity on its first ``in`` output
  channels (``dirac_``; the rest keep their random init), so a deep plain stack starts near a shallow
  one and trains sooner (airbench94's conv init).
- ``set_bn_momentum(model, m)``: the BatchNorm running statistics' momentum (PyTorch's sense: the new
  batch's weight; airbench uses 0.4, PyTorch's default is 0.1), so short runs evaluate with statistics
  of the current weights.
- ``Lookahead``: every ``every`` optimiser steps ``ema = ema * d + model * (1 - d)`` and the model is
  set to ``ema``, with ``d = base**every * (step / total)**3`` growing over the run (0 at the start: plain
  SGD; strongest averaging when the learning rate is lowest); ``finish()`` copies the average into the
  model at the end. Its state (the average and the step count) goes into checkpoints for exact resume.
  Every rank holds identical weights under DDP, so every rank's lookahead is identical too.
"""

from __future__ import annotations

import torch
from torch import nn

from train.model import unwrap

WHITEN_EPS = 5e-4
WHITEN_IMAGES = 5000


def whitening_layer(model: nn.Module) -> nn.Conv2d | None:
    """The model's whitening conv (the first conv of a ``rescnn`` built with ``whiten``), else None."""
    m = unwrap(model)
    first = getattr(m, "features", None)
    conv = first[0] if first is not None and len(first) else None
    if isinstance(conv, nn.Conv2d) and conv.bias is not None and not conv.weight.requires_grad:
        return conv
    return None


@torch.no_grad()
def init_whitening(model: nn.Module, images: torch.Tensor, eps: float = WHITEN_EPS) -> bool:
    """Set the whitening conv of ``model`` from normalised NCHW ``images``; False when it has none."""
    conv = whitening_layer(model)
    if conv is None:
        return False
    c, k = conv.in_channels, conv.kernel_size[0]
    x = images.float().contiguous()
    # (N, C, H', W', kh, kw) -> (N, W', H', C, kh, kw): one row per patch, laid out (c, kh, kw) like the kernel
    patches = x.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
    patches = patches.double() - patches.double().mean(0)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).view(-1, c, k, k)
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
    conv.bias.zero_()
    return True


@torch.no_grad()
def identity_init(model: nn.Module) -> int:
    """airbench's identity (Dirac) init of every trainable 3x3 conv; returns how many were set."""
    n = 0
    for m in unwrap(model).modules():
        if isinstance(m, nn.Conv2d) and m.weight.requires_grad and m.kernel_size == (3, 3) and m.groups == 1:
            nn.init.dirac_(m.weight[:m.in_channels])
            n += 1
    return n


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    for m in unwrap(model).modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def prepare(model: nn.Module, cfg, data) -> None:
    """The airbench initialisation ``cfg`` (resolved train params) asks for, on a freshly built model:
    identity init and whitening unless ``init_weights`` loaded trained weights; BN momentum always."""
    if not cfg.init_weights:
        if cfg.dirac:
            identity_init(model)
        if cfg.whiten:
            init_whitening(model, whitening_sample(data))
    if cfg.bn_momentum is not None:
        set_bn_momentum(model, cfg.bn_momentum)


class Lookahead:
    """airbench's lookahead over the model's floating-point state (parameters and BN statistics)."""

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5, base: float = 0.95):
        self.model, self.total, self.every, self.base = unwrap(model), max(total_steps, 1), every, base
        self.steps = 0
        self.average = {k: v.detach().clone() for k, v in self._floats().items()}

    def _floats(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def _pull(self, decay: float) -> None:
        for key, value in self._floats().items():
            avg = self.average[key]
            avg.lerp_(value, 1 - decay)
            value.copy_(avg)

    def step(self) -> None:
        """Call after every optimiser step."""
        self.steps += 1
        if self.steps % self.every == 0:
            self._pull(self.base ** self.every * (self.steps / self.total) ** 3)

    def finish(self) -> None:
        """The end of training: the model takes the averaged weights."""
        self._pull(1.0)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "average": {k: v.cpu() for k, v in self.average.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for k, v in state["average"].items():
            self.average[k].copy_(v)


def whitening_sample(data, n: int = WHITEN_IMAGES) -> torch.Tensor:
    """The first ``n`` training images of ``data`` (a ``train.data.Data``), normalised NCHW, on CPU:
    the same images on every rank, so every rank computes the same whitening."""
    from train.data import normalize

    split = data.train.split
    idx = torch.arange(min(n, len(split)))
    return normalize(split.images(idx).cpu(), data.mean.cpu(), data.std.cpu())
