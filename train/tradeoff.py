"""The compress stage: prune and quantize the fp32 model, then measure every variant side by side.

``python -m train.tradeoff`` (DVC stage ``compress``) reads the ``compress`` params section and:

- fine-tunes a structurally pruned copy (``models/pruned/``) and an unstructured-sparse copy
  (``models/sparse/``) of ``models/fp32``,
- quantizes the fp32 and the pruned model to int8 with PT2E (``models/int8/``, ``models/pruned_int8/``),
  falling back to quantization-aware fine-tuning when the post-training drop exceeds ``qat_threshold``,
- saves every variant as an exported program (``model.pt2`` + ``config.json`` with the preprocessing),
- measures in the same process and on the same test split: accuracy, agreement with fp32, parameters,
  MACs, size on disk (raw and gzip), and CPU latency at batch 1 and 64 (median of ``repeats`` timed runs
  after ``warmup`` untimed runs) — eager for every variant, and Inductor-compiled for the int8 ones,
- writes ``reports/metrics/compress.json`` (DVC metrics) and ``reports/plots/tradeoff.csv`` (DVC plot).

Int8 speed is reported both ways on purpose: the exported int8 program run eagerly is slower than fp32
(it dequantizes around fp32 kernels); compiled with Inductor it runs oneDNN int8 kernels.
"""

from __future__ import annotations

import copy
import csv
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sluice import snapshot_store
from sluice.config import CompressParams, TrainParams
from sluice.errors import InputError
from train import prune, quantize
from train.data import Data, EvalLoader, LoaderSpec, load_data
from train.engine import evaluate
from train.model import Frozen, load_model
from train.presets import resolve
from train.recipe import Recipe, fit

STAGE = "compress"
BATCHES = (1, 64)


def log(msg: str) -> None:
    print(f"[{STAGE}] {msg}", file=sys.stderr, flush=True)


def fine_tuner(data: Data, epochs: int, lr: float, bn_batches: list[torch.Tensor] | None = None,
               recipe: Recipe | None = None) -> Callable[[nn.Module], None]:
    """A function that fine-tunes a model with the training recipe (``recipe.fine_tune``: ``epochs`` at
    peak ``lr``, cosine, no warm-up) on the train split, then (with ``bn_batches``) re-estimates its
    batch-norm statistics on those clean batches."""
    tuning = (recipe or Recipe(epochs, lr)).fine_tune(epochs, lr)

    def tune(model: nn.Module, tag: str = "finetune") -> None:
        if epochs <= 0:
            return
        fit(model, data.train, tuning, class_weights=data.class_weights, desc=tag,
            on_epoch=lambda e, stats: log(f"{tag} epoch {e + 1}/{epochs}: loss {stats.loss:.4f}, "
                                          f"train accuracy {stats.accuracy:.4f}"))
        if bn_batches:
            prune.recalibrate_batchnorm(model, bn_batches)
        model.eval()

    return tune


def latencies(fns: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, warmup: int,
              repeats: int) -> dict[str, float]:
    """Median seconds of one call on ``x`` per function, after ``warmup`` untimed calls each.

    The timed runs are interleaved (every function once per round), so a change in machine load during
    the measurement hits every variant alike instead of biasing whichever ran at the wrong moment.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            for _ in range(warmup):
                fn(x)
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def file_sizes(path: Path) -> tuple[int, int]:
    """Bytes on disk, and bytes after gzip (level 6) — what sparsity saves in storage and transfer."""
    raw = path.read_bytes()
    return len(raw), len(gzip.compress(raw, 6, mtime=0))


def _accuracy(fn: Callable, loader, num_classes: int) -> tuple[float, torch.Tensor]:
    result = evaluate(Frozen(fn), loader, num_classes=num_classes, device="cpu")
    return result.accuracy, result.predictions


@dataclass
class Bench:
    """What the variant transforms share: settings, data, calibration batches, test loader, recipe."""

    cfg: CompressParams
    data: Data
    calibration: list[torch.Tensor]
    example: torch.Tensor
    test: object
    recipe: Recipe

    def accuracy(self, fn: Callable) -> float:
        return _accuracy(fn, self.test, self.data.num_classes)[0]


def make_pruned(fp32: nn.Module, b: Bench) -> tuple[nn.Module, dict]:
    """Structured pruning in ``prune_steps`` steps, fine-tuned after every step."""
    c = b.cfg
    tune = fine_tuner(b.data, c.prune_finetune_epochs, c.finetune_lr, b.calibration, b.recipe)
    pruned = copy.deepcopy(fp32)
    prune.structured_prune(pruned, b.example, ratio=c.prune_ratio, steps=c.prune_steps, round_to=c.prune_round_to,
                           fine_tune=lambda m, step: tune(m, f"prune step {step + 1}"), log=log)
    return pruned, {}


def make_sparse(fp32: nn.Module, b: Bench) -> tuple[nn.Module, dict]:
    """Unstructured (global magnitude) sparsity: a size win, not a speed win."""
    c = b.cfg
    tune = fine_tuner(b.data, c.sparse_finetune_epochs, c.finetune_lr / 5, b.calibration, b.recipe)
    return prune.unstructured_prune(copy.deepcopy(fp32), c.sparsity, fine_tune=tune), {}


def make_int8(base: nn.Module, b: Bench, name: str = "int8") -> tuple[nn.Module, dict]:
    """Post-training int8; quantization-aware fine-tuning when the drop exceeds ``qat_threshold``."""
    c = b.cfg
    converted = quantize.quantize_ptq(base, b.calibration, b.example)
    base_acc, acc = b.accuracy(base), b.accuracy(converted)
    method = "ptq"
    log(f"{name}: post-training int8 accuracy {acc:.4f} (its fp32 base {base_acc:.4f})")
    if (base_acc - acc) * 100 > c.qat_threshold and c.qat_epochs > 0:
        qat_tune = fine_tuner(b.data, c.qat_epochs, c.finetune_lr / 10, recipe=b.recipe)
        qat = quantize.quantize_qat(copy.deepcopy(base), b.example, lambda m: qat_tune(m, f"{name} qat"))
        qat_acc = b.accuracy(qat)
        log(f"{name}: drop {100 * (base_acc - acc):.2f} points > qat_threshold {c.qat_threshold}; "
            f"quantization-aware fine-tuning gives {qat_acc:.4f}")
        if qat_acc > acc:
            converted, method = qat, "qat"
    return converted, {"method": method}


# (variant, the variant it is made from, transform): the order is the build and report order.
VARIANTS: tuple[tuple[str, str, Callable[..., tuple[nn.Module, dict]]], ...] = (
    ("pruned", "fp32", make_pruned),
    ("sparse", "fp32", make_sparse),
    ("int8", "fp32", make_int8),
    ("pruned_int8", "pruned", lambda m, b: make_int8(m, b, "pruned_int8")),
)
NAMES = ("fp32", *(v[0] for v in VARIANTS))
INT8 = {name: base for name, base, make in VARIANTS if name.endswith("int8")}


def run(cfg: CompressParams, train_cfg: TrainParams | None = None) -> dict:
    """Build, save and measure every variant; ``train_cfg`` (train params) supplies the recipe and the
    augmentation fine-tuning uses, resolved against the snapshot as the trainer resolves them."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    fp32, config = load_model(cfg.model_dir)
    train_cfg, _ = resolve(train_cfg or TrainParams(), snapshot_store.read_manifest(cfg.snapshot))
    data = load_data(cfg.snapshot, LoaderSpec(batch_size=cfg.batch_size, eval_batch_size=256, seed=cfg.seed,
                                              augment=train_cfg.augment, balance=train_cfg.balance))
    if list(config.get("classes", data.classes)) != data.classes:
        raise InputError(f"{cfg.model_dir}: model classes {config.get('classes')} differ from the snapshot's "
                         f"{data.classes} ({cfg.snapshot}); retrain or point compress.snapshot at its snapshot")
    test = data.test or data.val
    if test is None or data.train is None:
        raise InputError(f"{cfg.snapshot}: compress needs a train split and a test (or val) split")
    shape = data.manifest["image_shape"]
    example = quantize.example_input(shape)
    preprocess = {"classes": data.classes, "image_shape": shape, "mean": data.mean.tolist(),
                  "std": data.std.tolist(), "dataset_hash": data.dataset_hash, "source_model": cfg.model_dir}
    calibration = quantize.calibration_batches(
        EvalLoader(data.train.split, data.mean, data.std, batch_size=cfg.batch_size), cfg.calibration_images)
    k = data.num_classes
    out = Path(cfg.out_dir)
    bench = Bench(cfg, data, calibration, example, test, Recipe.of(train_cfg))

    fp32_acc, fp32_pred = _accuracy(fp32, test, k)
    models: dict[str, nn.Module] = {"fp32": fp32}
    programs: dict[str, Callable] = {}
    extra: dict[str, dict] = {}
    for name, base, make in VARIANTS:
        models[name], extra[name] = make(models[base], bench)

    # -- save every variant as an exported program; the int8 ones are measured as loaded back from disk
    sizes: dict[str, dict] = {}
    for name in NAMES:
        program = quantize.export_program(models[name], example)
        with tempfile.TemporaryDirectory() as tmp:  # fp32 is measured in the same format, not written
            folder = Path(tmp) if name == "fp32" else out / name
            path = quantize.save_program(folder, program, {**preprocess, "variant": name, **extra.get(name, {})})
            raw, gz = file_sizes(path)
        sizes[name] = {"size_bytes": raw, "size_gzip_bytes": gz, "weights_bytes": quantize.weights_bytes(program)}
        if name in INT8:
            programs[name] = quantize.load_program(out / name / quantize.PROGRAM)

    # eager PyTorch for the float models; the int8 programs eagerly and (optionally) compiled
    runners: dict[str, Callable] = {f"{n}/eager": models[n] for n in NAMES if n not in INT8}
    runners |= {f"{n}/eager": programs[n] for n in programs}
    if cfg.compile:
        for name in programs:
            compiled = quantize.compile_program(programs[name])
            for b in BATCHES:
                start = time.perf_counter()
                with torch.inference_mode():
                    compiled(quantize.example_input(shape, b))
                log(f"{name}: compiled with Inductor for batch {b} in {time.perf_counter() - start:.1f} s")
            runners[f"{name}/compiled"] = compiled
    timings = {b: latencies(runners, quantize.example_input(shape, b), cfg.warmup, cfg.repeats) for b in BATCHES}

    rows = []
    for name in NAMES:
        acc, pred = _accuracy(runners[f"{name}/eager"], test, k)
        base = INT8.get(name, name)
        macs, n_params = prune.count_macs_params(models[base], example)
        row = {"variant": name, "accuracy": round(acc, 6), "accuracy_drop_points": round(100 * (fp32_acc - acc), 3),
               "agreement_with_fp32": round(float((pred == fp32_pred).float().mean()), 6),
               "params": n_params, "macs": macs, **sizes[name], **extra.get(name, {})}
        if name == "sparse":
            row["sparsity"] = round(prune.sparsity_of(models["sparse"]), 4)
        for mode in ("eager", "compiled"):
            for b in BATCHES:
                if f"{name}/{mode}" in runners:
                    row[f"{mode}_b{b}_ms"] = round(1000 * timings[b][f"{name}/{mode}"], 3)
        rows.append(row)
        log(f"{name}: accuracy {acc:.4f}, {macs / 1e6:.2f} M MACs, {row['weights_bytes'] / 1024:.0f} KiB weights, "
            + ", ".join(f"{key} {row[key]}" for key in row if key.endswith("_ms")))
    return summarize(rows, cfg)


def _fastest(row: dict, batch: int) -> float:
    return min(v for k, v in row.items() if k.endswith(f"_b{batch}_ms"))


def summarize(rows: list[dict], cfg: CompressParams) -> dict:
    """The metrics file: one block per variant plus the headline ratios against fp32 eager."""
    by = {r["variant"]: r for r in rows}
    fp32 = by["fp32"]
    headline = {}
    for name in ("pruned", "int8", "pruned_int8"):
        r = by[name]
        headline[name] = {
            "speedup_b64": round(fp32["eager_b64_ms"] / _fastest(r, 64), 3),
            "speedup_b1": round(fp32["eager_b1_ms"] / _fastest(r, 1), 3),
            "eager_speedup_b64": round(fp32["eager_b64_ms"] / r["eager_b64_ms"], 3),
            "macs_reduction": round(fp32["macs"] / r["macs"], 3),
            "size_reduction": round(fp32["weights_bytes"] / r["weights_bytes"], 3),
            "file_size_reduction": round(fp32["size_bytes"] / r["size_bytes"], 3),
            "accuracy_drop_points": r["accuracy_drop_points"],
        }
    headline["sparse"] = {"gzip_size_reduction": round(fp32["size_gzip_bytes"] / by["sparse"]["size_gzip_bytes"], 3),
                          "accuracy_drop_points": by["sparse"]["accuracy_drop_points"]}
    targets = {
        "int8_speedup_b64_ge_2.5": headline["int8"]["speedup_b64"] >= 2.5,
        "int8_drop_le_1_point": headline["int8"]["accuracy_drop_points"] <= 1.0,
        "int8_size_reduction_ge_3.5": headline["int8"]["size_reduction"] >= 3.5,
        "pruned_macs_reduction_ge_2": headline["pruned"]["macs_reduction"] >= 2.0,
        "pruned_speedup_b64_ge_1.7": headline["pruned"]["speedup_b64"] >= 1.7,
        "pruned_drop_le_1_point": headline["pruned"]["accuracy_drop_points"] <= 1.0,
    }
    return {"variants": by, "vs_fp32_eager": headline, "targets_met": targets,
            "settings": {"threads": cfg.threads, "warmup": cfg.warmup, "repeats": cfg.repeats,
                         "batches": list(BATCHES), "torch": torch.__version__}}


def write_reports(metrics: dict, cfg: CompressParams) -> None:
    path = Path(cfg.metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    plot = Path(cfg.plot)
    plot.parent.mkdir(parents=True, exist_ok=True)
    rows = list(metrics["variants"].values())
    fields = ["variant", "accuracy", "params", "macs", "weights_bytes", "size_bytes", "size_gzip_bytes", "eager_b1_ms", "eager_b64_ms",
              "compiled_b1_ms", "compiled_b64_ms"]
    with plot.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def render_table(metrics: dict) -> str:
    cols = ["variant", "accuracy", "params", "macs", "weights_bytes", "size_bytes", "eager_b1_ms", "eager_b64_ms", "compiled_b1_ms",
            "compiled_b64_ms"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in metrics["variants"].values():
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    def go() -> int:
        params = load_params()
        cfg = params.compress
        metrics = run(cfg, params.train)
        write_reports(metrics, cfg)
        print(render_table(metrics))
        for name, ok in metrics["targets_met"].items():
            log(f"target {name}: {'met' if ok else 'NOT met'}")
        return 0

    stage_main(go)


if __name__ == "__main__":
    main()
