"""Params sections of the model side: training (and its augmentation), compression, insight."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field


from sluice.params_base import Section


class AugmentParams(Section):
    """Batched tensor augmentation of training images (train/data.py). The recipe (train.recipe) picks
    these; a key set in params.yaml overrides the recipe's choice (null: the recipe decides)."""

    crop_padding: Annotated[int, Field(ge=0, le=16)] | None = 2
    flip: bool | None = False
    rotate_degrees: Annotated[float, Field(ge=0, le=45)] | None = 8.0
    cutout: Annotated[int, Field(ge=0, le=32)] | None = 0
    resized_crop_scale: Annotated[float, Field(ge=0, le=1)] | None = 0.0  # random-resized-crop min area (0 = off)
    jitter: Annotated[float, Field(ge=0, lt=1)] | None = 0.0  # colour jitter: brightness/contrast/saturation +-this
    alternate_flip: bool | None = False  # with flip: random in epoch 1, then each image flipped every other epoch
    low_res: Annotated[int, Field(ge=0)] | None = 0  # progressive resizing: train at this side (px) first (0 = off)
    low_res_epochs: Annotated[int, Field(ge=0)] | None = 0  # ... for this many epochs, then at full resolution


class TrainParams(Section):
    """The DDP trainer (train/ddp.py, `sluice train`) and its evaluation (train/evaluate.py).

    ``recipe`` picks model, width, epochs, augmentation, schedule and batch size from the snapshot
    (train/presets.py); every key set explicitly (in params.yaml or the constructor) overrides it, and a key
    that is absent or null is the recipe's choice.
    """

    recipe: Literal["auto", "demo", "cifar_fast", "cifar_gpu", "photo"] = "auto"
    snapshot: str = "data/dataset"
    out_dir: str = "models/fp32"
    runs_dir: str = "runs"
    checkpoint_dir: str = "runs/train"
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    processes: Annotated[int, Field(ge=1)] = 2
    threads_per_process: Annotated[int, Field(ge=1)] = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    epochs: Annotated[int, Field(ge=1)] | None = 6
    batch_size: Annotated[int, Field(ge=1)] | None = 64
    eval_batch_size: Annotated[int, Field(ge=1)] = 512
    lr: Annotated[float, Field(gt=0)] | None = 0.3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0)] | None = 5e-4  # kernels and weight matrices only
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] | None = 0.1
    warmup_epochs: Annotated[float, Field(ge=0)] | None = 1.0
    schedule: Literal["cosine", "onecycle", "constant"] | None = "cosine"
    arch: str | None = "rescnn"
    width: Annotated[int, Field(ge=4)] | None = 8
    depth: Annotated[int, Field(ge=0, le=8)] | None = 1
    bn_scale: bool | None = True
    tta_flip: bool | None = False
    whiten: bool | None = False  # rescnn: whitened first layer (2x2 patch-covariance eigenvectors, frozen)
    lookahead: bool | None = False  # airbench lookahead (EMA of weights, model pulled back every 5 steps)
    dirac: bool | None = False  # airbench identity init: each 3x3 conv starts as the identity on its first channels
    bn_momentum: Annotated[float, Field(gt=0, le=1)] | None = 0.1  # BatchNorm running-stat momentum (PyTorch's sense)
    bias_lr_scale: Annotated[float, Field(gt=0)] | None = 1.0  # BatchNorm parameters train at lr x this (airbench: 64)
    tta_translate: bool | None = False  # test-time augmentation adds 1-px shifted views (with tta_flip: 6 views)
    optimizer: Literal["sgd", "muon"] | None = "sgd"  # muon: conv filters take Muon steps (train/muon.py), the rest SGD
    muon_lr: Annotated[float, Field(gt=0)] | None = 0.05  # Muon's step: the filters' relative change per step
    muon_momentum: Annotated[float, Field(ge=0, lt=1)] | None = 0.9
    init_weights: str | None = None
    freeze_epochs: Annotated[int, Field(ge=0)] = 0
    balance: Literal["none", "class_weights", "sample_weights", "sampler"] = "sample_weights"
    augment: AugmentParams = AugmentParams()
    final_fit: bool = False
    test_curve: bool = False
    bf16: bool = True
    compile: bool = False
    gpu_resident: bool = True
    kfold: Annotated[int, Field(ge=0, le=20)] = 0
    # epoch order: one global permutation (local snapshots), or shard groups (a rank reads cache_shards
    # shards at a time: a snapshot in object storage, or one larger than memory); auto picks by location
    shuffle: Literal["auto", "global", "shards"] = "auto"
    cache_shards: Annotated[int, Field(ge=1)] = 4

    @classmethod
    def recipe_defaults(cls) -> dict:
        """The section as a new project's params.yaml holds it: every key the recipe chooses is null (a
        concrete default there would override the recipe, e.g. pin a CIFAR-sized set to the demo's width)."""
        body = cls().model_dump(mode="json")
        for key in RECIPE_KEYS:
            body[key] = None
        body["augment"] = {k: None for k in AugmentParams.model_fields}
        return body


RECIPE_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "warmup_epochs", "schedule", "arch", "width", "depth",
               "bn_scale", "tta_flip", "whiten", "lookahead", "dirac", "bn_momentum", "bias_lr_scale", "tta_translate",
               "optimizer", "muon_lr", "muon_momentum")


class CompressParams(Section):
    """Pruning, int8 quantization and the trade-off report (train/tradeoff.py); docs/compression.md."""

    model_dir: str = "models/fp32"
    snapshot: str = "data/dataset"
    out_dir: str = "models"
    metrics: str = "reports/metrics/compress.json"
    plot: str = "reports/plots/tradeoff.csv"
    seed: int = 0
    threads: Annotated[int, Field(ge=1)] = 1
    batch_size: Annotated[int, Field(ge=1)] = 64
    finetune_lr: Annotated[float, Field(gt=0)] = 0.05
    prune_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    prune_steps: Annotated[int, Field(ge=1, le=20)] = 3
    prune_finetune_epochs: Annotated[int, Field(ge=0)] = 2
    prune_round_to: Annotated[int, Field(ge=1)] = 4
    sparsity: Annotated[float, Field(ge=0, lt=1)] = 0.5
    sparse_finetune_epochs: Annotated[int, Field(ge=0)] = 1
    calibration_images: Annotated[int, Field(ge=1)] = 512
    qat_threshold: Annotated[float, Field(ge=0)] = 1.0
    qat_epochs: Annotated[int, Field(ge=0)] = 1
    compile: bool = True
    warmup: Annotated[int, Field(ge=0)] = 3
    repeats: Annotated[int, Field(ge=1)] = 15


CORRUPTION_NAMES = Literal["gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast", "pixelate"]


class RobustnessParams(Section):
    """Accuracy under corruptions and attacks, fp32 and compressed models (train/insight.py, train/robustness.py)."""

    images: Annotated[int, Field(ge=1)] = 256  # the first N test images (val without a test split)
    corruptions: list[CORRUPTION_NAMES] = ["gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast",
                                           "pixelate"]
    severities: list[Annotated[int, Field(ge=1, le=5)]] = [1, 2, 3, 4, 5]
    attacks: list[Literal["fgsm", "pgd"]] = ["fgsm", "pgd"]
    eps: list[Annotated[float, Field(gt=0, le=1)]] = [0.01, 0.03, 0.1]  # L-inf budgets in [0, 1] pixel space
    pgd_steps: Annotated[int, Field(ge=1)] = 7
    summary_eps: Annotated[float, Field(gt=0, le=1)] | None = None  # eps of the summary columns (null: middle)
    variants: list[str] = ["fp32", "pruned", "sparse", "int8", "pruned_int8"]  # those found on disk are measured
    batch_size: Annotated[int, Field(ge=1)] = 128
    threads: Annotated[int, Field(ge=1)] = 1
    seed: int = 0


class InsightParams(Section):
    """Out-of-fold predictions, label issues and per-group metrics (train/oof.py); saliency and robustness
    (train/insight.py, the ``insight`` stage: the ``saliency_*``, ``robustness*`` and ``out_dir`` keys);
    docs/insight.md."""

    folds: Annotated[int, Field(ge=2, le=20)] = 3
    epochs: Annotated[int, Field(ge=1)] = 3
    rank_by: Literal["self_confidence", "normalized_margin"] = "self_confidence"
    method: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"] = "prune_by_noise_rate"
    noise_warn_rate: Annotated[float, Field(ge=0, le=1)] = 0.1
    test_issues: bool = True  # also look for wrong test labels (trained model or fold mean; for review only)
    # the test list is a review queue: recall first (prune_by_class recalled 0.968 vs 0.777 of planted
    # wrong CIFAR-10 test labels, at precision 0.216 vs 0.175: docs/insight.md)
    test_method: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"] = "prune_by_class"
    max_group_gap: Annotated[float, Field(ge=0, le=1)] = 0.2
    metrics: str = "reports/metrics/label_issues.json"
    groups_metrics: str = "reports/metrics/groups.json"
    out_dir: str = "reports/insight"  # saliency.json + saliency/*.png, robustness.json
    saliency_per_class: Annotated[int, Field(ge=0)] = 2  # Grad-CAM overlays of test images per class
    saliency_mistakes: Annotated[int, Field(ge=0)] = 8  # ... and of the most confident test mistakes
    robustness: RobustnessParams = RobustnessParams()
    robustness_metrics: str = "reports/metrics/robustness.json"  # per variant summary (DVC metrics)
    robustness_plot: str = "reports/plots/robustness.csv"  # the trade-off table with robustness columns




class ReportParams(Section):
    """The offline run report (train/run_report.py, ``sluice report``); docs/insight.md."""

    out: str = "reports/run.html"       # also copied to <train.runs_dir>/<run_id>/report.html
    insight_dir: str = "reports/insight"  # saliency.json (+ its PNGs) and robustness.json, when written
    max_label_issues: Annotated[int, Field(ge=0)] = 40  # label issues shown with thumbnails
    max_saliency: Annotated[int, Field(ge=0)] = 60      # saliency overlays shown
