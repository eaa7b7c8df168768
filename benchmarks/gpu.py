"""GPU check (a few minutes on one GPU): training throughput, and the trainer's time to a target accuracy.

Two parts, both on the trainer's own code:

1. Throughput: the same training step (snapshot resident in GPU memory, batched augmentation on the
   GPU, channels-last, bf16 autocast) for rescnn, airnet (width 64: airbench94's network) and resnet18,
   against the baseline measured in the same run: that step on the CPU (one process, all cores).
2. Time to accuracy: real single-process runs of the trainer (``train.ddp.train``: the code
   ``sluice train`` runs under torchrun) with the ``cifar_gpu`` recipe (or ``--recipe``), each variant
   a set of train-param overrides, with the val and test curves on. For each run: per-epoch training
   seconds, val and test accuracy, the training seconds until test accuracy first reaches ``--target``,
   the final (lookahead-averaged, test-time-augmented) accuracy, the wall time with loading and
   evaluation, and the GPU's peak memory. Variants after ``--budget`` seconds are skipped (said so).

Data: ``--snapshot`` (default ``train.snapshot``, ``data/dataset``) when it exists, else the demo digits.
Prints the hardware so the figures can go in the docs with it named.

    python benchmarks/gpu.py [--snapshot DIR] [--variant "lr=1.5,epochs=16"]... [--target 0.94]
                             [--budget S] [--quick] [--device cpu]   # cpu = a dry run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sluice.config import TrainParams  # noqa: E402
from train.data import LoaderSpec, load_data  # noqa: E402
from train.ddp import autocast_dtype  # noqa: E402
from train.engine import make_optimizer, train_one_epoch  # noqa: E402
from train.model import build_model  # noqa: E402


def demo_snapshot(folder: Path) -> Path:
    import numpy as np

    from demo.generate import CLASSES, digit_images
    from sluice.snapshot import SplitArrays, channel_stats, write_snapshot

    images, labels = digit_images(0)
    order = np.random.default_rng(0).permutation(len(images))
    cut = {"train": order[:1400], "val": order[1400:1550], "test": order[1550:]}
    mean, std = channel_stats(images[cut["train"]])
    write_snapshot(folder, {k: SplitArrays(images[v], labels[v], np.ones(len(v), np.float32), [str(i) for i in v])
                            for k, v in cut.items()}, CLASSES, {"mean": mean, "std": std})
    return folder


def throughput(cfg: TrainParams, snapshot: Path, device: torch.device, steps: int) -> float:
    """Training images per second of ``steps`` timed steps (after 5 warm-up steps)."""
    data = load_data(snapshot, LoaderSpec.of(cfg), device=device, splits=("train",))
    model = build_model(cfg, data.num_classes).to(device, memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.compile else model
    opt = make_optimizer(model, cfg.lr)
    autocast = autocast_dtype(cfg, device)
    batches, epoch = [], 0
    while len(batches) < steps + 5:
        data.train.set_epoch(epoch)
        batches += list(data.train)
        epoch += 1
    train_one_epoch(net, batches[:5], opt, device=device, autocast_dtype=autocast, progress_bar=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stats = train_one_epoch(net, batches[5:steps + 5], opt, device=device, autocast_dtype=autocast, progress_bar=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats.count / (time.perf_counter() - start)


def parse_variant(text: str) -> dict:
    """``"lr=1.5,epochs=16"`` -> ``{"lr": 1.5, "epochs": 16}`` (JSON values; bare words are strings)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def trainer_run(snapshot: Path, recipe: str, overrides: dict, device: str, work: Path, target: float) -> dict:
    """One run of the trainer; returns its curve, final accuracies and timings."""
    from train.ddp import train

    work.mkdir(parents=True)
    cfg = TrainParams(recipe=recipe, snapshot=str(snapshot), device=device, test_curve=True, processes=1,
                      out_dir=str(work / "model"), runs_dir=str(work / "runs"), checkpoint_dir=str(work / "ckpt"),
                      keep_checkpoints=1, **overrides)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = train(cfg, metrics_path=work / "metrics.json", curve_path=work / "curve.csv")
    wall = time.perf_counter() - start
    with (work / "curve.csv").open() as fh:
        curve = list(csv.DictReader(fh))
    seconds, reached = 0.0, None
    for row in curve:
        seconds += float(row["seconds"])
        if reached is None and row.get("test_accuracy") and float(row["test_accuracy"]) >= target:
            reached = (int(row["epoch"]), seconds)
    return {"curve": curve, "metrics": metrics, "wall": wall, "train_seconds": seconds, "reached": reached,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0}


def report_run(name: str, run: dict, target: float) -> str:
    m = run["metrics"]
    for row in run["curve"]:
        print(f"    epoch {row['epoch']:>2}  {float(row['seconds']):6.2f} s  train acc {float(row['accuracy']):.4f}  "
              f"val {float(row['val_accuracy'] or 0):.4f}  test {float(row['test_accuracy'] or 0):.4f}")
    reached = (f"{target:.0%} test after epoch {run['reached'][0]}, {run['reached'][1]:.1f} s of training"
               if run["reached"] else f"{target:.0%} test not reached")
    val = f"val {m['val_accuracy']:.4f} " if "val_accuracy" in m else "(final fit: no val) "
    line = (f"  {name}: final {val}test {m['test_accuracy']:.4f} (lookahead average, TTA); "
            f"{reached}; {run['train_seconds']:.1f} s training, {run['wall']:.1f} s wall with loading and per-epoch "
            f"val+test evaluation; {m['images_per_s']:,.0f} images/s; GPU peak {run['peak_gib']:.2f} GiB")
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", help="snapshot folder (default train.snapshot if present, else demo digits)")
    parser.add_argument("--recipe", default="cifar_gpu", help="the trainer runs' recipe (default cifar_gpu)")
    parser.add_argument("--variant", action="append", metavar="K=V,...",
                        help="train-param overrides of one trainer run, repeatable ('' = the recipe as is; default: "
                             "the recipe, then --compile's run if given)")
    parser.add_argument("--target", type=float, default=0.94, help="test accuracy to reach (default 0.94)")
    parser.add_argument("--budget", type=float, default=600.0, help="start no trainer run after this many seconds")
    parser.add_argument("--compile", action="store_true", help="also a trainer run with torch.compile")
    parser.add_argument("--skip-throughput", action="store_true", help="trainer runs only")
    parser.add_argument("--quick", action="store_true", help="fewer throughput steps")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: no CUDA device here (use --device cpu for a dry run)")
    variants = args.variant if args.variant is not None else ["", *(["compile=true"] if args.compile else [])]
    steps = 10 if args.quick else 50
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-gpu-") as tmp:
        snap = Path(args.snapshot or "data/dataset")
        if not (snap / "manifest.json").is_file():
            snap = demo_snapshot(Path(tmp) / "snap")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
        print(f"hardware: {name}; {os.cpu_count()} CPU cores; torch {torch.__version__}; data: {snap}", flush=True)
        results = {}
        for arch, width in (() if args.skip_throughput else (("rescnn", 64), ("airnet", 64), ("resnet18", 64))):
            cfg = TrainParams(arch=arch, width=width, batch_size=512 if not args.quick else 128, lr=0.4)
            gpu = throughput(cfg, snap, device, steps)
            torch.set_num_threads(os.cpu_count() or 1)
            cpu = throughput(cfg, snap, torch.device("cpu"), 3)
            results[arch] = (gpu, cpu)
            print(f"  {arch} (width {width}, batch {cfg.batch_size}): {gpu:,.0f} images/s on {args.device} vs "
                  f"{cpu:,.0f} on the CPU ({os.cpu_count()} cores) = {gpu / cpu:.1f}x", flush=True)
        lines = []
        for i, text in enumerate(variants):
            label = f"{args.recipe}" + (f" + {text}" if text else "")
            if time.perf_counter() - started > args.budget:
                print(f"  {label}: skipped (past --budget {args.budget:.0f} s)")
                continue
            print(f"  trainer run: {label}", flush=True)
            try:
                run = trainer_run(snap, args.recipe, parse_variant(text), device.type, Path(tmp) / f"run{i}", args.target)
                lines.append(report_run(label, run, args.target))
            except Exception as exc:  # one failed variant must not lose the others' figures
                print(f"  {label}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                continue
                lines.append(report_run(label, run, args.target))
    if results:
        gpu, cpu = results["airnet"]
        print(f"HEADLINE GPU training throughput vs baseline CPU ({os.cpu_count()} cores, same step): {gpu / cpu:.1f}x "
              f"({gpu:,.0f} images/s, airnet width 64, {name})")
    for line in lines:
        print("RUN" + line)


if __name__ == "__main__":
    main()
