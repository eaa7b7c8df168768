"""Recipes as presets: auto's choice from the snapshot, key-by-key overrides (augment too), null = recipe."""

from __future__ import annotations

import pytest

from sluice.config import AugmentParams, TrainParams
from train.presets import choose, describe, resolve


def manifest(side: int, n_train: int, classes: int = 10, n_val: int = 0) -> dict:
    return {"image_shape": [side, side, 3], "classes": [str(i) for i in range(classes)],
            "splits": {"train": {"rows": n_train}, "val": {"rows": n_val}}}


@pytest.mark.parametrize(("side", "n", "expected"), [(32, 1400, "demo"), (32, 45_000, "cifar_fast"),
                                                    (96, 16, "photo"), (224, 50_000, "photo")])
def test_auto_picks_the_preset_from_resolution_and_size(side, n, expected):
    assert choose([side, side, 3], n, 10) == expected
    assert resolve(TrainParams(), manifest(side, n))[1] == expected


@pytest.mark.parametrize(("side", "n", "expected"), [(32, 1400, "demo"), (32, 45_000, "cifar_gpu"), (224, 50_000, "photo")])
def test_auto_sizes_the_small_image_recipe_to_a_gpu_when_training_on_cuda(side, n, expected):
    assert choose([side, side, 3], n, 10, "cuda") == expected
    assert resolve(TrainParams(), manifest(side, n), "cuda")[1] == expected


def test_cifar_gpu_is_airbench_on_a_gpu_budget_and_weight_decay_is_a_recipe_key():
    gpu, _ = resolve(TrainParams(weight_decay=None), manifest(32, 43_617, n_val=4_794), "cuda")
    assert (gpu.arch, gpu.width, gpu.batch_size, gpu.epochs) == ("airnet", 128, 1024, 16)
    assert gpu.weight_decay == 1.3e-3 and gpu.bias_lr_scale == 64.0 and gpu.tta_flip and gpu.tta_translate
    assert gpu.whiten and gpu.lookahead and gpu.dirac and gpu.augment.alternate_flip
    cpu, _ = resolve(TrainParams(weight_decay=None), manifest(32, 43_617), "cpu")
    assert cpu.weight_decay == 5e-4  # null: the recipe's; every preset sets it
    pinned, _ = resolve(TrainParams(weight_decay=1e-4), manifest(32, 43_617), "cuda")
    assert pinned.weight_decay == 1e-4  # a value in params wins
    assert TrainParams.recipe_defaults()["weight_decay"] is None  # new projects leave it to the recipe


def test_demo_preset_is_the_fast_digit_recipe_and_cifar_fast_the_airbench_style_one():
    demo, _ = resolve(TrainParams(), manifest(32, 1400))
    assert (demo.arch, demo.width, demo.epochs, demo.augment.flip) == ("rescnn", 8, 6, False)
    fast, _ = resolve(TrainParams(), manifest(32, 50_000))
    assert fast.width >= 16 and fast.augment.flip and fast.tta_flip and not fast.bn_scale
    assert fast.label_smoothing == 0.2 and fast.nesterov and fast.schedule == "onecycle"
    wide, _ = resolve(TrainParams(), manifest(32, 50_000, classes=100))
    assert wide.width > fast.width
    photo, _ = resolve(TrainParams(), manifest(160, 500))
    assert photo.arch == "resnet18" and photo.augment.resized_crop_scale > 0 and photo.augment.jitter > 0


def test_explicit_keys_override_the_recipe_key_by_key_and_null_means_the_recipe():
    cfg = TrainParams.model_validate({"epochs": 3, "width": None, "augment": {"flip": False, "cutout": None}})
    out, name = resolve(cfg, manifest(32, 50_000))
    assert name == "cifar_fast" and out.epochs == 3 and out.width == 16
    assert out.augment.flip is False and out.augment.crop_padding == 2 and out.augment.cutout == 0
    forced, name = resolve(TrainParams(recipe="demo"), manifest(32, 50_000))
    assert name == "demo" and forced.width == 8
    # final_fit counts train+val towards the size auto looks at
    assert resolve(TrainParams(final_fit=True), manifest(32, 15_000, n_val=6_000))[1] == "cifar_fast"


def test_describe_is_the_resolved_recipe():
    out, name = resolve(TrainParams(), manifest(32, 1400))
    body = describe(out, name)
    assert body["recipe"] == "demo" and body["epochs"] == 6
    assert body["augment"] == AugmentParams(**body["augment"]).model_dump()


def test_cifar_fast_sizes_its_epochs_from_a_budget_of_training_images_and_uses_airbenchs_inits():
    from train.presets import CIFAR_IMAGE_STEPS, cifar_epochs

    train_only, _ = resolve(TrainParams(), manifest(32, 43_617, n_val=4_794))
    final, _ = resolve(TrainParams(final_fit=True), manifest(32, 43_617, n_val=4_794))
    assert (train_only.epochs, final.epochs) == (31, 28)  # CIFAR-10's snapshot: more images, fewer epochs
    assert abs(final.epochs * 48_411 - CIFAR_IMAGE_STEPS) < 48_411
    assert cifar_epochs(10_000_000) == 2 and cifar_epochs(20_000) == 68
    assert final.dirac and final.bn_momentum == 0.4 and final.bias_lr_scale == 16.0 and not final.tta_translate
    demo, _ = resolve(TrainParams(), manifest(32, 1400))
    assert not demo.dirac and demo.bn_momentum == 0.1 and demo.bias_lr_scale == 1.0
    pinned, _ = resolve(TrainParams(epochs=5, dirac=False), manifest(32, 43_617))
    assert pinned.epochs == 5 and not pinned.dirac  # explicit keys still win
