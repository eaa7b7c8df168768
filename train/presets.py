"""Recipes as presets: ``train.recipe: auto | demo | cifar_fast | cifar_gpu | photo``.

A preset chooses model, width, epochs, augmentation, schedule and batch size; ``auto`` picks the preset
from the snapshot (image side, train size, class count) and the device the trainer runs on. Every key set explicitly in params (or the
TrainParams constructor) wins over the preset, key by key, inside ``augment`` too (null or absent: the
preset's value); the trainer prints
the resolved recipe at start and records it in its metrics.

- ``demo``: the small-data default (1.8k 32x32 digits in about a minute): width-8 ResCNN, 6 epochs, crop
  + small rotation, no flip (digits are not mirror-symmetric).
- ``cifar_fast``: airbench-style for ~50k small natural images on a CPU budget: width 16 (32 beyond
  10 classes), label smoothing 0.2, Nesterov SGD with warm-up then linear decay, BatchNorm without a
  learnable scale (momentum 0.4, biases at 16x the lr), flip (alternating) + 2-px translate, flip
  test-time augmentation, channels-last, a whitened first layer, identity init and lookahead
  (train/airbench.py); epochs from a fixed budget of training images (``cifar_epochs``) sized so that
  2 processes x 1 thread on an idle 2-core machine train for about 27 minutes (docs/training.md,
  "CIFAR-10").
- ``cifar_gpu``: the same set on a GPU (``auto`` on CUDA): airbench94's recipe at twice its width,
  ``airnet`` width 128 (widths 128/512/512), batch 1024, 16 epochs, lr 1.0 at momentum 0.9 (airbench's
  1.5 at 0.85: the same lr / (1 - momentum)) with airbench's per-step weight decay (1.3e-3 here), BN
  biases at 64x the lr, flip and translate test-time augmentation, the same whitening, identity init,
  lookahead and alternating flip. Chosen on the val split of CIFAR-10 on one H200 (~8 s of training;
  docs/training.md, "On a GPU"; ``benchmarks/gpu.py``).
- ``photo``: inputs >= 96 px: torchvision ResNet-18 (standard stem), random-resized-crop, flip and
  colour jitter, cosine schedule.
"""

from __future__ import annotations

from sluice.config import AugmentParams, TrainParams
from train.model import STANDARD_STEM_MIN

NO_AUG = dict(crop_padding=0, flip=False, rotate_degrees=0.0, cutout=0, resized_crop_scale=0.0, jitter=0.0,
              alternate_flip=False, low_res=0, low_res_epochs=0)
CIFAR_MIN_TRAIN = 20_000
CIFAR_IMAGE_STEPS = 1_360_000
PLAIN = dict(weight_decay=5e-4, dirac=False, bn_momentum=0.1, bias_lr_scale=1.0, tta_translate=False, optimizer="sgd", muon_lr=0.05,
             muon_momentum=0.9)  # airbench's extras off


def _demo(num_classes: int, n_train: int) -> dict:
    return dict(arch="rescnn", width=8, depth=1, epochs=6, batch_size=64, lr=0.3, label_smoothing=0.1,
                warmup_epochs=1.0, schedule="cosine", bn_scale=True, tta_flip=False, whiten=False, lookahead=False, **PLAIN,
                augment={**NO_AUG, "crop_padding": 2, "rotate_degrees": 8.0})


def _cifar_fast(num_classes: int, n_train: int) -> dict:
    return dict(arch="rescnn", width=16 if num_classes <= 10 else 32, depth=1, epochs=cifar_epochs(n_train),
                batch_size=64, lr=0.4, label_smoothing=0.2, warmup_epochs=2.0, schedule="onecycle", bn_scale=False,
                tta_flip=True, whiten=True, lookahead=True, dirac=True, bn_momentum=0.4, bias_lr_scale=16.0,
                tta_translate=False, optimizer="sgd", muon_lr=0.05, muon_momentum=0.9, weight_decay=5e-4,
                augment={**NO_AUG, "crop_padding": 2, "flip": True, "alternate_flip": True})


def _cifar_gpu(num_classes: int, n_train: int) -> dict:
    return dict(arch="airnet", width=128, depth=1, epochs=16, batch_size=1024, lr=1.0, weight_decay=1.3e-3,
                label_smoothing=0.2,
                warmup_epochs=2.0, schedule="onecycle", bn_scale=False, tta_flip=True, whiten=True, lookahead=True,
                dirac=True, bn_momentum=0.4, bias_lr_scale=64.0, tta_translate=True, optimizer="sgd", muon_lr=0.05,
                muon_momentum=0.9, augment={**NO_AUG, "crop_padding": 2, "flip": True, "alternate_flip": True})


def _photo(num_classes: int, n_train: int) -> dict:
    return dict(arch="resnet18", width=16, depth=1, epochs=15, batch_size=32, lr=0.1, label_smoothing=0.1, warmup_epochs=1.0,
                schedule="cosine", bn_scale=True, tta_flip=False, whiten=False, lookahead=False, **PLAIN,
                augment={**NO_AUG, "flip": True, "resized_crop_scale": 0.35, "jitter": 0.3})


def cifar_epochs(n_train: int) -> int:
    """``cifar_fast``'s epochs: a fixed budget of ``CIFAR_IMAGE_STEPS`` training images (about 27 minutes
    for 2 processes on 2 idle cores at width 16), at least 2 epochs: CIFAR-10's 43.6k train images get 31
    epochs, train+val (``final_fit``, 48.4k) 28."""
    return max(2, round(CIFAR_IMAGE_STEPS / max(n_train, 1)))


PRESETS = {"demo": _demo, "cifar_fast": _cifar_fast, "cifar_gpu": _cifar_gpu, "photo": _photo}


def choose(image_shape: list[int], n_train: int, num_classes: int, device: str = "cpu") -> str:
    """``auto``'s choice: photos by resolution, then the fast CIFAR-style recipe for large small-image sets
    (its GPU-sized form on CUDA), else the demo's."""
    if min(image_shape[:2]) >= STANDARD_STEM_MIN:
        return "photo"
    if n_train < CIFAR_MIN_TRAIN:
        return "demo"
    return "cifar_gpu" if device == "cuda" else "cifar_fast"


def resolve(cfg: TrainParams, manifest: dict, device: str = "cpu") -> tuple[TrainParams, str]:
    """``cfg`` with the preset's values for every key it does not set; returns it and the preset's name.
    ``device`` (``cpu`` or ``cuda``) is where the model will train: ``auto`` sizes the recipe to it."""
    splits = manifest.get("splits", {})
    n_train = sum(splits.get(s, {}).get("rows", 0) for s in (("train", "val") if cfg.final_fit else ("train",)))
    num_classes = len(manifest.get("classes", []))
    name = choose(manifest["image_shape"], n_train, num_classes, device) if cfg.recipe == "auto" else cfg.recipe
    preset = PRESETS[name](num_classes, n_train)
    given = {k for k in cfg.model_fields_set if getattr(cfg, k) is not None}
    updates = {k: v for k, v in preset.items() if k not in given and k != "augment"}
    aug_given = {k for k in cfg.augment.model_fields_set if getattr(cfg.augment, k) is not None}
    updates["augment"] = AugmentParams(**{**preset["augment"],
                                          **{k: getattr(cfg.augment, k) for k in aug_given}})
    return cfg.model_copy(update=updates), name


def describe(cfg: TrainParams, name: str) -> dict:
    """The resolved recipe as printed at start and recorded in metrics."""
    keys = ("arch", "width", "depth", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
            "label_smoothing", "warmup_epochs", "schedule", "bn_scale", "tta_flip", "tta_translate", "whiten", "lookahead",
            "dirac", "bn_momentum", "bias_lr_scale", "optimizer", "muon_lr", "muon_momentum", "freeze_epochs", "final_fit")
    return {"recipe": name, **{k: getattr(cfg, k) for k in keys}, "augment": cfg.augment.model_dump()}
