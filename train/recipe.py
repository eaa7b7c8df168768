"""One training recipe and one ``fit()``: used by the DDP trainer, k-fold evaluation and the compress
stage's fine-tuning alike, so the optimiser, schedule (one rounding of the warm-up), criterion and
epoch loop cannot drift apart.

A ``Recipe`` is the optimisation half of the resolved train params (``train.presets.resolve`` picks
the values); ``fit`` runs its epochs over a loader with optional resume position, stop flag and a
per-epoch callback (the trainer's evaluation, curve and checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from sluice.config import TrainParams
from train.engine import (
    Criterion,
    EpochStats,
    make_criterion,
    make_optimizer,
    make_scheduler,
    train_one_epoch,
)


@dataclass(frozen=True)
class Recipe:
    epochs: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    freeze_epochs: int = 0
    bias_lr_scale: float = 1.0
    optimizer: str = "sgd"
    muon_lr: float = 0.05
    muon_momentum: float = 0.9

    @classmethod
    def of(cls, cfg: TrainParams) -> Recipe:
        return cls(cfg.epochs, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.label_smoothing,
                   cfg.warmup_epochs, cfg.schedule, cfg.freeze_epochs, cfg.bias_lr_scale or 1.0,
                   cfg.optimizer or "sgd", cfg.muon_lr or 0.05, cfg.muon_momentum if cfg.muon_momentum is not None else 0.9)

    def fine_tune(self, epochs: int, lr: float) -> Recipe:
        """The same recipe as a short fine-tune: no warm-up, cosine decay, no smoothing, nothing frozen."""
        return replace(self, epochs=epochs, lr=lr, warmup_epochs=0.0, schedule="cosine", label_smoothing=0.0,
                       freeze_epochs=0, bias_lr_scale=1.0, optimizer="sgd")

    def make_optimizer(self, model: nn.Module, head: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
        return make_optimizer(model, self.lr, self.momentum, self.nesterov, self.weight_decay,
                              head=head if self.freeze_epochs else None, bias_lr_scale=self.bias_lr_scale,
                              muon_lr=self.muon_lr if self.optimizer == "muon" else None,
                              muon_momentum=self.muon_momentum)

    def scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
        return make_scheduler(optimizer, self.epochs * steps_per_epoch, round(self.warmup_epochs * steps_per_epoch),
                              self.schedule, frozen_steps=self.freeze_epochs * steps_per_epoch)

    def criterion(self, class_weights: torch.Tensor | None = None) -> Criterion:
        return make_criterion(self.label_smoothing, class_weights)


@dataclass
class FitResult:
    last: EpochStats | None  # the last (possibly partial) epoch's local statistics
    stopped_at: tuple[int, int] | None  # (epoch, step) to resume from when should_stop ended the run


def fit(model: nn.Module, loader, recipe: Recipe, *, net: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None, scheduler=None, class_weights: torch.Tensor | None = None,
        device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None, start: tuple[int, int] = (0, 0),
        should_stop: Callable[[], bool] | None = None, on_epoch: Callable[[int, EpochStats], None] | None = None,
        desc: str = "epoch", progress_bar: bool = True, head: list[nn.Parameter] | None = None,
        on_step: Callable[[], None] | None = None) -> FitResult:
    """Train ``model`` (through ``net``: its DDP/compiled wrapper, if any) for ``recipe.epochs`` from
    ``start`` = (epoch, step). ``optimizer``/``scheduler`` default to the recipe's (pass restored ones to
    resume). ``on_epoch(epoch, stats)`` runs after every complete epoch, ``on_step()`` after every step
    (``train.airbench.Lookahead.step``)."""
    optimizer = optimizer or recipe.make_optimizer(model, head)
    scheduler = scheduler or recipe.scheduler(optimizer, len(loader))
    criterion = recipe.criterion(class_weights)
    last = None
    for epoch in range(start[0], recipe.epochs):
        first = start[1] if epoch == start[0] else 0
        loader.set_epoch(epoch, first)
        # `net or model` would call len(net): torch.compile's wrapper forwards it to a model without one
        last = train_one_epoch(net if net is not None else model, loader, optimizer, scheduler, criterion=criterion,
                               device=device, autocast_dtype=autocast_dtype, should_stop=should_stop, desc=f"{desc} {epoch + 1}",
                               progress_bar=progress_bar, on_step=on_step)
        if last.stopped_early and first + last.steps < len(loader):
            return FitResult(last, (epoch, first + last.steps))
        if on_epoch is not None:
            on_epoch(epoch, last)
        if last.stopped_early:
            return FitResult(last, (epoch + 1, 0))
    return FitResult(last, None)
