"""Structured channel pruning (a smaller, faster network) and unstructured magnitude pruning (sparsity).

Structured: Torch-Pruning builds the model's dependency graph, so a channel removed from one conv is
removed from everything coupled to it (its batch norm, the next conv's input, every member of a residual
sum). Channels are ranked by group L2 magnitude and removed in ``steps`` equal steps up to ``ratio`` of
each layer's channels (the classifier head keeps its outputs); after each step the network is fine-tuned
so the next ranking sees weights that have adapted. The result is an ordinary dense model with fewer
channels: fewer FLOPs, fewer parameters, faster on any backend.

Unstructured: global magnitude pruning of conv and linear weights to a target sparsity, fine-tuned with
the mask held, then made permanent (the mask is folded into the weight). Dense kernels do not skip zeros,
so this is reported as a size saving (compressed size on disk), not as a speed-up.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune as torch_prune

FineTune = Callable[[nn.Module, int], None]  # (model, step) -> trains it in place


def count_macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass for a single image, and the parameter count."""
    macs, params = tp.utils.count_ops_and_params(model, example[:1])
    return int(macs), int(params)


def _prunable_head(model: nn.Module) -> list[nn.Module]:
    """Layers whose outputs must keep their size: the final linear classifier(s)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def structured_prune(model: nn.Module, example: torch.Tensor, *, ratio: float, steps: int, round_to: int = 1,
                     fine_tune: FineTune | None = None, log: Callable[[str], None] = print) -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable layer in ``steps`` steps, fine-tuning after each.

    Works in place and returns ``model``. ``round_to`` keeps channel counts multiples of it (SIMD-friendly).
    """
    model.eval()
    base_macs, base_params = count_macs_params(model, example)
    pruner = tp.pruner.MetaPruner(
        model, example[:1], importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        iterative_steps=steps, ignored_layers=_prunable_head(model), round_to=round_to, global_pruning=False)
    for step in range(steps):
        model.eval()
        pruner.step()
        macs, params = count_macs_params(model, example)
        log(f"[prune] step {step + 1}/{steps}: {base_macs / macs:.2f}x fewer MACs, "
            f"{base_params / params:.2f}x fewer parameters")
        if fine_tune is not None:
            fine_tune(model, step)
    return model.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Re-estimate every batch norm's running mean/var as an exact average over ``batches``.

    Removing channels changes the statistics every later layer sees, and a short fine-tune moves the running
    averages only part of the way (momentum 0.1 per step), so eval-mode outputs can lag far behind train
    mode. A pass over clean train images with cumulative averaging fixes that without touching weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    for x in batches:
        model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()


def _weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def unstructured_prune(model: nn.Module, sparsity: float, fine_tune: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """Zero the ``sparsity`` fraction of smallest-magnitude conv/linear weights (globally), permanently."""
    targets = _weights(model)
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    if fine_tune is not None:
        fine_tune(model)  # the pruning hooks re-apply the mask on every forward, so zeros stay zero
    for module, name in targets:
        torch_prune.remove(module, name)
    return model.eval()


def sparsity_of(model: nn.Module) -> float:
    """Fraction of exactly-zero entries in the conv/linear weights."""
    total = zeros = 0
    for module, name in _weights(model):
        w = getattr(module, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / max(total, 1)
