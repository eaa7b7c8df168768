"""Models, the training/evaluation engine, evaluation reports and McNemar comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sluice.config import TrainParams
from sluice.errors import InputError
from train.compare import compare_predictions, mcnemar
from train.engine import (evaluate, lr_factor, make_criterion, make_optimizer, make_scheduler,
                          train_one_epoch)
from train.evaluate import stratified_folds
from train.reports import class_report, write_confusion_csv
from train.model import build_model, load_model, model_config, save_model


@pytest.mark.parametrize("cfg", [{"arch": "rescnn", "width": 4, "depth": 0}, {"arch": "rescnn", "width": 8, "depth": 2},
                                 {"arch": "resnet18"}])
def test_models_map_32x32_images_to_class_logits(cfg):
    model = build_model(cfg, 7).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (2, 7)


def test_width_and_depth_change_the_model():
    sizes = {(w, d): sum(p.numel() for p in build_model({"width": w, "depth": d}, 10).parameters())
             for w, d in [(4, 1), (8, 1), (8, 2)]}
    assert sizes[(4, 1)] < sizes[(8, 1)] < sizes[(8, 2)]


def test_unknown_arch_is_a_user_error():
    with pytest.raises(InputError, match="unknown model arch 'vgg'"):
        build_model({"arch": "vgg"}, 10)


def test_saved_model_reloads_with_weights_only_and_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model(TrainParams(width=4), 10).eval()
    x = torch.randn(4, 3, 32, 32)
    save_model(tmp_path / "m", model, {"arch": "rescnn", "width": 4, "depth": 1, "num_classes": 10})
    torch.load(tmp_path / "m" / "model.pt", weights_only=True)  # a plain state dict: safe loading works
    loaded, config = load_model(tmp_path / "m")
    assert config["width"] == 4
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(InputError, match="not a saved model"):
        load_model(tmp_path / "missing")


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01
    assert lr_factor(55, 100, 10, "onecycle") == pytest.approx(0.5)
    assert lr_factor(80, 100, 10, "constant") == 1.0
    opt = make_optimizer(build_model({"width": 4}, 10), lr=0.2, weight_decay=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-3, 0.0]
    assert all(p.ndim > 1 for p in opt.param_groups[0]["params"])
    sched = make_scheduler(opt, 100, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04)


def test_sample_weights_rebalance_the_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])
    crit = make_criterion()
    unweighted = crit(logits, y, None)
    assert crit(logits, y, torch.tensor([1.0, 1.0])) == pytest.approx(float(unweighted))
    assert crit(logits, y, torch.tensor([0.0, 1.0])) > unweighted  # only the wrong one counts


def test_train_one_epoch_learns_and_evaluate_counts_a_confusion_matrix():
    torch.manual_seed(0)
    x = torch.randn(256, 3, 16, 16)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # learnable from the first channel
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    model = build_model({"width": 4, "depth": 0}, 2)
    opt = make_optimizer(model, lr=0.1)
    first = train_one_epoch(model, batches, opt)
    for _ in range(4):
        last = train_one_epoch(model, batches, opt)
    assert first.count == 256 and first.steps == 8
    assert last.loss < first.loss and last.accuracy > 0.8
    res = evaluate(model, batches, num_classes=2)
    assert res.count == 256 and res.predictions.shape == (256,)
    assert res.confusion[0].sum() == int((y == 0).sum())
    assert res.accuracy == pytest.approx(float((res.predictions == y).float().mean()))
    stopped = train_one_epoch(model, batches, opt, should_stop=lambda: True)
    assert stopped.stopped_early and stopped.steps == 1


def test_class_report_and_confusion_csv(tmp_path):
    cm = torch.tensor([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    rep = class_report(cm, ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(17 / 20)
    assert rep["per_class"]["a"] == {"precision": pytest.approx(8 / 9, abs=1e-6), "recall": 0.8, "support": 10}
    assert rep["macro_recall"] == pytest.approx((0.8 + 0.9) / 2)  # absent class c is not averaged in
    rows = write_confusion_csv(tmp_path / "c.csv", cm, ["a", "b", "c"]).read_text().splitlines()
    assert rows[0] == "actual,predicted" and rows.count("a,b") == 2 and rows.count("b,b") == 9 and len(rows) == 21
    json.dumps(rep)


def test_stratified_folds_partition_and_balance_classes():
    labels = torch.tensor([0] * 30 + [1] * 9 + [2] * 3).numpy()
    folds = stratified_folds(labels, 3, seed=1)
    allidx = sorted(i for f in folds for i in f.tolist())
    assert allidx == list(range(42))
    for f in folds:
        assert list((labels[f] == c).sum() for c in range(3)) == [10, 3, 1]


def test_stratified_folds_keep_a_subjects_rows_in_one_fold_and_are_unchanged_without_subjects():
    labels = np.array([0, 1, 2] * 20)
    units = np.array([f"patient-{i // 4}" for i in range(60)], dtype=object)  # 15 patients of 4 images
    folds = stratified_folds(labels, 3, seed=2, units=units)
    assert sorted(i for f in folds for i in f.tolist()) == list(range(60))
    assert all(len(set(units[f])) * 4 == len(f) for f in folds)  # every patient whole in its fold
    assert min(len(f) for f in folds) >= 16
    plain = stratified_folds(labels, 3, seed=2)
    alone = stratified_folds(labels, 3, seed=2, units=np.arange(60).astype(str))  # no subject shared: as before
    assert all((a == b).all() for a, b in zip(plain, alone))


def test_mcnemar_exact_and_chi_square():
    name, _, p = mcnemar(1, 9)
    assert name == "exact binomial" and p == pytest.approx(0.021484375)
    name, stat, p = mcnemar(10, 30)
    assert name.startswith("chi-square") and stat == pytest.approx(19 ** 2 / 40) and p < 0.01
    assert mcnemar(0, 0)[2] == 1.0


def test_compare_predictions_verdicts():
    t = torch.arange(100) % 10
    a = t.clone()
    b = t.clone()
    b[:12] = (b[:12] + 1) % 10  # B wrong on 12 images A gets right
    res = compare_predictions(a, b, t, names=("fp32", "int8"))
    assert (res.a_only, res.b_only) == (12, 0)
    assert res.verdict.startswith("fp32 is significantly more accurate")
    b2 = t.clone()
    b2[:2] = (b2[:2] + 1) % 10
    assert "no significant difference" in compare_predictions(a, b2, t).verdict


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"])
def test_registered_photo_models_use_standard_stems_from_96_px(arch):
    from train.model import MODELS, model_config

    assert arch in MODELS
    assert model_config({"arch": arch}, 2, image_size=96)["stem"] == "standard"
    assert model_config({"arch": arch}, 2, image_size=32)["stem"] == "small"
    model = build_model({"arch": arch}, 2, image_size=96).eval()
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 2)


def test_rescnn_airbench_options_bn_without_scale_and_flip_tta():
    model = build_model({"width": 4, "bn_scale": False, "tta_flip": True}, 3).eval()
    assert not model.features[0][1].weight.requires_grad
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-6)  # flip TTA: mirror-invariant logits
    model.train()
    assert not torch.allclose(model(x), model(x.flip(-1)), atol=1e-6)


def test_translate_tta_averages_the_one_pixel_shifted_views(tmp_path):
    from train.model import tta_logits

    model = build_model({"width": 4, "bn_scale": False, "tta_flip": True, "tta_translate": True}, 3).eval()
    x = torch.randn(2, 3, 32, 32)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    f = model._logits
    mirror = lambda v: 0.5 * (f(v) + f(v.flip(-1)))  # noqa: E731
    want = 0.5 * mirror(x) + 0.25 * (mirror(padded[..., :32, :32]) + mirror(padded[..., 2:, 2:]))
    assert torch.allclose(model(x), want, atol=1e-6)
    assert torch.allclose(tta_logits(f, x, flip=False, translate=False), f(x))
    assert not torch.allclose(model(x), mirror(x), atol=1e-4)  # the shifted views change the answer
    config = model_config({"arch": "airnet", "width": 4, "tta_flip": True, "tta_translate": True}, 3)
    assert config["tta_translate"]
    saved = build_model(config, 3).eval()
    save_model(tmp_path / "m", saved, config)
    loaded, _ = load_model(tmp_path / "m")
    assert loaded.tta_translate and torch.equal(loaded(x), saved(x))
    assert not build_model(model_config({"width": 4}, 3), 3).tta_translate  # old configs: off


def test_translate_tta_model_exports_to_int8():
    from train.quantize import example_input, quantize_ptq

    model = build_model({"width": 4, "whiten": True, "bn_scale": False, "tta_flip": True, "tta_translate": True}, 3).eval()
    x = torch.randn(3, 3, 32, 32)
    q = quantize_ptq(model, [torch.randn(8, 3, 32, 32)], example_input([32, 32, 3]))
    assert q(x).shape == (3, 3)  # the batch stays dynamic through the six views
    assert torch.allclose(q(x), model(x), atol=0.05)


def test_airnet_is_airbench94s_network_whitened_without_residuals(tmp_path):
    from train.airbench import whitening_layer

    config = model_config({"arch": "airnet", "width": 4, "tta_flip": True}, 10)
    assert config["whiten"]  # airnet always has the whitened first layer
    model = build_model(config, 10).eval()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [24, 4, 4, 16, 16, 16, 16]  # whitening, then (w, 4w, 4w) x 2 convs
    assert whitening_layer(model) is convs[0]
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-6)
    save_model(tmp_path / "m", model, config)
    loaded, _ = load_model(tmp_path / "m")
    assert torch.equal(loaded(x), model(x))
