"""Structured and unstructured pruning of a model trained on real demo digits (small_snapshot fixture)."""

from __future__ import annotations

import copy
import gzip
import io

import pytest
import torch
from torch import nn

from train import prune, quantize
from train.data import EvalLoader, LoaderSpec, load_data
from train.engine import evaluate
from train.model import load_model
from train.tradeoff import fine_tuner

AGREEMENT = 0.9  # pruned (fine-tuned) and fp32 predict the same class on at least 90% of the test split


@pytest.fixture(scope="module")
def trained(small_snapshot, trained_fp32):
    """A width-8 ResCNN trained for a few epochs by the real trainer (in-process, one rank)."""
    model, _ = load_model(trained_fp32)
    data = load_data(small_snapshot, LoaderSpec(batch_size=16, eval_batch_size=256))
    clean = quantize.calibration_batches(EvalLoader(data.train.split, data.mean, data.std, batch_size=100), 300)
    return model, data, clean


def _predictions(model: nn.Module, data) -> torch.Tensor:
    return evaluate(model, data.test, num_classes=data.num_classes, device="cpu").predictions


def test_structured_pruning_shrinks_the_network_and_keeps_its_predictions(trained):
    fp32, data, clean = trained
    example = quantize.example_input(data.manifest["image_shape"])
    before_macs, before_params = prune.count_macs_params(fp32, example)
    pruned = copy.deepcopy(fp32)
    tune = fine_tuner(data, epochs=1, lr=0.05, bn_batches=clean)
    steps_tuned = []
    prune.structured_prune(pruned, example, ratio=0.5, steps=2, round_to=2,
                           fine_tune=lambda m, step: (tune(m), steps_tuned.append(step)), log=lambda _: None)
    macs, params = prune.count_macs_params(pruned, example)
    assert steps_tuned == [0, 1]  # fine-tuned after every step
    assert before_macs / macs >= 2.0 and before_params / params >= 2.0
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 4  # the real tensor shapes shrank (8 -> 4 channels), not a mask
    assert pruned(example).shape == (2, data.num_classes)
    agreement = float((_predictions(pruned, data) == _predictions(fp32, data)).float().mean())
    assert agreement >= AGREEMENT, agreement


def test_unstructured_pruning_is_permanent_and_saves_size_only(trained):
    fp32, data, clean = trained
    keys = set(fp32.state_dict())
    sparse = prune.unstructured_prune(copy.deepcopy(fp32), 0.6)
    assert set(sparse.state_dict()) == keys  # no weight_orig / weight_mask left: the zeros are baked in
    assert not any(hasattr(m, "weight_mask") for m in sparse.modules())
    assert prune.sparsity_of(sparse) == pytest.approx(0.6, abs=0.01)
    assert prune.sparsity_of(fp32) < 0.01
    # global: layers are pruned to different sparsities, not 60% each
    per_layer = [float((m.weight == 0).float().mean()) for m in sparse.modules() if isinstance(m, nn.Conv2d)]
    assert max(per_layer) - min(per_layer) > 0.05

    def gz(model: nn.Module) -> int:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        return len(gzip.compress(buf.getvalue()))

    assert gz(sparse) < 0.8 * gz(fp32)
    agreement = float((_predictions(sparse, data) == _predictions(fp32, data)).float().mean())
    assert agreement >= 0.8, agreement


def test_fine_tuning_keeps_unstructured_zeros(trained):
    fp32, data, clean = trained
    sparse = prune.unstructured_prune(copy.deepcopy(fp32), 0.5, fine_tune=fine_tuner(data, epochs=1, lr=0.01, bn_batches=clean))
    assert prune.sparsity_of(sparse) >= 0.5 - 1e-3


def test_pruned_model_exports_and_reloads_with_the_same_outputs(trained, tmp_path):
    fp32, data, clean = trained
    example = quantize.example_input(data.manifest["image_shape"], 5)
    pruned = prune.structured_prune(copy.deepcopy(fp32), example, ratio=0.5, steps=1, log=lambda _: None)
    quantize.save_program(tmp_path, quantize.export_program(pruned, example), {"classes": data.classes})
    loaded = quantize.load_program(tmp_path / quantize.PROGRAM)
    with torch.no_grad():
        torch.testing.assert_close(loaded(example), pruned(example))
        assert loaded(example[:1]).shape == (1, data.num_classes)  # dynamic batch dimension
