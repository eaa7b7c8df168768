"""Muon for conv filters, SGD for the rest, in one optimiser (``train.optimizer: muon``).

Muon (momentum orthogonalised by Newton-Schulz; airbench94_muon, modded-nanogpt) replaces each conv
filter bank's momentum step by the nearest semi-orthogonal matrix: the (out, in x k x k) update has all
its singular values set to about 1, so every direction of the layer moves at the same rate whatever
the gradient's conditioning. Before each step the bank is rescaled to norm sqrt(out) (each filter
about unit norm): behind BatchNorm the filters' scale does not change the function, and fixing it
makes ``lr`` the relative size of every step (the role weight decay plays for SGD).

Every other parameter (biases, BatchNorm, the linear head) takes PyTorch's SGD step (momentum, Nesterov,
weight decay as ``torch.optim.SGD`` computes them). One optimiser with ordinary param groups, so the
per-step LambdaLR schedule, DDP (every rank orthogonalises the same all-reduced gradient) and the
checkpoints' ``state_dict`` treat it like SGD.
"""

from __future__ import annotations

import torch

# airbench94_muon's quintic Newton-Schulz coefficients: the slope at zero is maximised, so the iteration
# pushes singular values into roughly [0.5, 1.5] in a few steps instead of converging to exactly 1.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """``update`` (any shape, first dim = outputs) mapped to about U V^T of its (out, rest) matrix's SVD."""
    a, b, c = NS_COEFFICIENTS
    x = update.reshape(len(update), -1)
    x = x / (x.norm() + eps)  # largest singular value <= 1
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return (x.T if tall else x).reshape(update.shape)


class MuonSGD(torch.optim.Optimizer):
    """Param groups with ``muon=True`` take the Muon step, the others SGD's; see the module docstring."""

    def __init__(self, params, lr: float, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0,
                 ns_steps: int = 3):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      muon=False, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, momentum, muon = group["lr"], group["momentum"], group["muon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] and not muon:
                    grad = grad.add(p, alpha=group["weight_decay"])
                if momentum:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = grad.clone()
                    else:
                        buf = state["momentum_buffer"].mul_(momentum).add_(grad)
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                if muon:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                    grad = orthogonalize(grad, group["ns_steps"])
                p.add_(grad, alpha=-lr)
        return loss
