"""One training epoch and one evaluation pass, shared by the DDP trainer, the evaluation stage and the
compression stages (fine-tuning after pruning, evaluating quantized models).

Both functions work on any iterable of batches ``(x, y)`` or ``(x, y, w)`` (``w`` per-sample loss
weights), e.g. the loaders of ``train.data.load_data``. They return local sums (not means) so a
distributed caller can all-reduce them before dividing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sluice.progress import progress
from train.muon import MuonSGD

Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class EpochStats:
    loss_sum: float
    correct: int
    count: int
    steps: int
    seconds: float
    stopped_early: bool = False

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)

    @property
    def images_per_s(self) -> float:
        return self.count / max(self.seconds, 1e-9)


@dataclass
class EvalResult:
    loss_sum: float
    confusion: torch.Tensor  # int64 (classes, classes): rows actual, columns predicted
    predictions: torch.Tensor  # int64 (n,) in loader order
    targets: torch.Tensor  # int64 (n,)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(self.confusion.diag().sum()) / max(self.count, 1)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)


def make_criterion(label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None) -> Criterion:
    """Cross-entropy with label smoothing, optional per-class weights and optional per-sample weights.

    With per-sample weights ``w`` the loss is ``sum(w * l) / sum(w)``, so weights only re-balance.
    """

    def criterion(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        weight = class_weights.to(logits.device, logits.dtype) if class_weights is not None else None
        losses = F.cross_entropy(logits, y, weight=weight, label_smoothing=label_smoothing, reduction="none")
        if w is None:
            return losses.mean()
        return (losses * w).sum() / w.sum().clamp_min(1e-12)

    return criterion


def make_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, nesterov: bool = True,
                   weight_decay: float = 5e-4, head: list[nn.Parameter] | None = None,
                   bias_lr_scale: float = 1.0, muon_lr: float | None = None,
                   muon_momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD; weight decay applies to weight matrices and kernels, not to biases and norm scales.

    With ``head`` the other parameters (the backbone) get groups of their own marked ``backbone``, so a
    scheduler can hold their learning rate at 0 for the first steps (a frozen backbone that DDP and
    checkpoints see as an ordinary optimiser). ``bias_lr_scale`` multiplies the learning rate of the
    BatchNorm parameters (airbench's 64: without a learnable scale their biases are the only per-channel
    offsets, and a network whose kernels are scale-invariant under BN moves them too slowly at the
    kernels' rate). With ``muon_lr`` the trainable conv filters take Muon steps at that rate and
    momentum instead (``train.muon.MuonSGD``; the rest keeps these SGD settings)."""
    head_ids = {id(p) for p in head} if head is not None else None
    norm_ids = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                for p in m.parameters()} if bias_lr_scale != 1.0 else set()
    groups = []
    for backbone in ((False, True) if head_ids is not None else (False,)):
        params = [p for p in model.parameters() if p.requires_grad
                  and (head_ids is None or (id(p) not in head_ids) == backbone)]
        filters = [p for p in params if p.ndim == 4] if muon_lr is not None else []
        filter_ids = {id(p) for p in filters}
        groups += [{"params": [p for p in params if p.ndim > 1 and id(p) not in filter_ids],
                    "weight_decay": weight_decay, "backbone": backbone},
                   {"params": [p for p in params if p.ndim <= 1 and id(p) not in norm_ids], "weight_decay": 0.0,
                    "backbone": backbone},
                   {"params": [p for p in params if id(p) in norm_ids], "weight_decay": 0.0, "backbone": backbone,
                    "lr": lr * bias_lr_scale}]
        if filters:
            groups.append({"params": filters, "weight_decay": 0.0, "backbone": backbone, "lr": muon_lr,
                           "momentum": muon_momentum, "muon": True})
    groups = [g for g in groups if g["params"]]
    if muon_lr is not None:
        return MuonSGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine / linear (one-cycle) / flat."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    if schedule == "onecycle":
        return max(1.0 - t, 0.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                   schedule: str = "cosine", frozen_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR; its state_dict holds only numbers, so it checkpoints with weights_only.
    Groups marked ``backbone`` stay at lr 0 for the first ``frozen_steps`` steps."""

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup_steps, schedule)

    def frozen_factor(step: int) -> float:
        return 0.0 if step < frozen_steps else factor(step)

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [frozen_factor if g.get("backbone") else factor for g in optimizer.param_groups])


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _split(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return batch[0], batch[1], (batch[2] if len(batch) > 2 else None)


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, *,
                    criterion: Criterion | None = None, device: torch.device | str | None = None,
                    autocast_dtype: torch.dtype | None = None, grad_clip: float | None = None,
                    should_stop: Callable[[], bool] | None = None, desc: str = "train",
                    progress_bar: bool = True, on_step: Callable[[], None] | None = None) -> EpochStats:
    """Train ``model`` for one pass over ``loader``; the scheduler (if any) steps once per batch.

    ``should_stop`` is asked after every step; when it returns True the epoch ends early (the trainer
    uses this to checkpoint on SIGTERM at a step boundary all ranks agree on). ``progress_bar`` shows a
    bar on an interactive terminal (the trainer turns it off on ranks other than 0). ``on_step`` runs after
    every optimiser (and scheduler) step (lookahead).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    criterion = criterion or make_criterion()
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = steps = 0
    stopped = False
    start = time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None
    for batch in (progress(loader, total=total, desc=desc, unit="batch") if progress_bar else loader):
        x, y, w = _split(batch)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        w = w.to(device, non_blocking=True) if w is not None else None
        with _autocast(device, autocast_dtype):
            logits = model(x)
            loss = criterion(logits.float(), y, w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if on_step is not None:
            on_step()
        n = y.shape[0]
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == y).sum()
        count += n
        steps += 1
        if should_stop is not None and should_stop():
            stopped = True
            break
    return EpochStats(float(loss_sum), int(correct), count, steps, time.perf_counter() - start, stopped)


@torch.inference_mode()
def evaluate(model: nn.Module, loader: Iterable, *, num_classes: int, device: torch.device | str | None = None,
             criterion: Criterion | None = None, autocast_dtype: torch.dtype | None = None) -> EvalResult:
    """Loss, confusion matrix and per-sample predictions of ``model`` over ``loader`` (eval mode)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    criterion = criterion or make_criterion()
    model.eval()
    loss_sum = 0.0
    preds, targets = [], []
    for batch in loader:
        x, y, _ = _split(batch)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, autocast_dtype):
            logits = model(x).float()
        loss_sum += float(criterion(logits, y, None)) * y.shape[0]
        preds.append(logits.argmax(1).cpu())
        targets.append(y.cpu())
    p = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)
    t = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.int64)
    confusion = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(num_classes, num_classes)
    return EvalResult(loss_sum, confusion, p, t)
