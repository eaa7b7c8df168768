"""One recipe, one fit(): the schedule's warm-up rounding, resume positions, stop flags, frozen backbones."""

from __future__ import annotations

import torch

from sluice.config import TrainParams
from train.data import LoaderSpec, load_data
from train.engine import evaluate
from train.model import build_model, head_parameters
from train.recipe import Recipe, fit


def test_recipe_from_params_and_its_fine_tune():
    r = Recipe.of(TrainParams(epochs=4, lr=0.2, warmup_epochs=0.5, label_smoothing=0.1))
    assert (r.epochs, r.lr, r.warmup_epochs, r.label_smoothing) == (4, 0.2, 0.5, 0.1)
    model = build_model({"width": 4, "depth": 0}, 10)
    sched = r.scheduler(r.make_optimizer(model), steps_per_epoch=3)  # warm-up round(1.5) = 2 steps
    assert [round(f(0), 3) for f in sched.lr_lambdas] == [0.5, 0.5]
    tune = r.fine_tune(1, 0.01)
    assert (tune.epochs, tune.lr, tune.warmup_epochs, tune.label_smoothing) == (1, 0.01, 0.0, 0.0)


def test_fit_learns_calls_back_every_epoch_and_stops_where_asked(small_snapshot):
    torch.manual_seed(0)
    data = load_data(small_snapshot, LoaderSpec(batch_size=32))
    model = build_model({"width": 8}, data.num_classes)
    seen = []
    res = fit(model, data.train, Recipe(epochs=3, lr=0.3, warmup_epochs=1, label_smoothing=0.1),
              on_epoch=lambda e, s: seen.append((e, s.steps)), progress_bar=False)
    assert res.stopped_at is None and seen == [(0, 9), (1, 9), (2, 9)]
    assert evaluate(model, data.val, num_classes=10).accuracy > 0.5
    calls = iter(range(100))
    stopped = fit(build_model({"width": 4}, 10), data.train, Recipe(epochs=2, lr=0.1), progress_bar=False,
                  should_stop=lambda: next(calls) == 3)
    assert stopped.stopped_at == (0, 4) and stopped.last.steps == 4
    resumed = fit(build_model({"width": 4}, 10), data.train, Recipe(epochs=2, lr=0.1), progress_bar=False,
                  start=(1, 5), on_epoch=lambda e, s: seen.append((e, s.steps)))
    assert resumed.stopped_at is None and seen[-1] == (1, 4)  # the rest of epoch 2 only


class LenlessWrapper(torch.nn.Module):
    """Like torch.compile's OptimizedModule: ``len()`` is forwarded to a model that has none."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner, self.calls = model, 0

    def __len__(self) -> int:
        raise TypeError(f"{type(self.inner).__name__} does not support len()")

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_fit_trains_through_a_wrapper_that_has_no_len(small_snapshot):
    # the GPU check found `net or model` failing on a torch.compile'd net (bool() asks len())
    data = load_data(small_snapshot, LoaderSpec(batch_size=32))
    model = build_model({"width": 4}, data.num_classes)
    net = LenlessWrapper(model)
    fit(model, data.train, Recipe(epochs=1, lr=0.1), net=net, progress_bar=False)
    assert net.calls == len(data.train)


def test_frozen_backbone_trains_only_the_head_for_freeze_epochs(small_snapshot):
    data = load_data(small_snapshot, LoaderSpec(batch_size=50))
    model = build_model({"width": 4, "depth": 0}, 10)
    head = head_parameters(model, "rescnn")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    changed = []

    def after(epoch, stats):
        changed.append({n for n, p in model.named_parameters() if not torch.equal(p, before[n])})

    fit(model, data.train, Recipe(epochs=2, lr=0.1, freeze_epochs=1), head=head, progress_bar=False, on_epoch=after)
    assert changed[0] == {"head.weight"}  # epoch 1: the backbone held at lr 0
    assert "features.0.0.weight" in changed[1]  # epoch 2: everything trains
