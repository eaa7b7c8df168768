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
