"""GPU check (a few minutes on one GPU): training throughput and time to a target accuracy.

Uses the trainer's own pieces on one device: the snapshot resident in GPU memory, batched
augmentation on the GPU, channels-last, bf16 autocast and (optionally) ``torch.compile``. Data: the
largest snapshot available — ``train.snapshot`` (``data/dataset``) when it exists, else the demo
digits. Baseline measured in the same run: the same training step on the CPU (one process, all
cores). Prints the hardware so the figures can go in the README with it named.

    python benchmarks/gpu.py [--quick] [--compile] [--target 0.97] [--device cpu]   # cpu = dry run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sluice.config import TrainParams  # noqa: E402
from train.data import LoaderSpec, load_data  # noqa: E402
from train.engine import (evaluate, make_criterion, make_optimizer, make_scheduler,  # noqa: E402
                          train_one_epoch)
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
    data = load_data(snapshot, LoaderSpec.of(cfg), device=device, splits=("train",))
    model = build_model(cfg, data.num_classes).to(device, memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.compile else model
    opt = make_optimizer(model, cfg.lr)
    autocast = torch.bfloat16 if device.type == "cuda" and cfg.bf16 else None
    batches, epoch = [], 0
    while len(batches) < steps + 5:
        data.train.set_epoch(epoch)
        batches += list(data.train)
        epoch += 1
    train_one_epoch(net, batches[:5], opt, device=device, autocast_dtype=autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stats = train_one_epoch(net, batches[5:steps + 5], opt, device=device, autocast_dtype=autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats.count / (time.perf_counter() - start)


def time_to_accuracy(cfg: TrainParams, snapshot: Path, device: torch.device, target: float) -> tuple[float, int, float]:
    """Seconds (loading included) until test accuracy >= target, evaluated after every epoch."""
    start = time.perf_counter()
    data = load_data(snapshot, LoaderSpec.of(cfg), device=device)
    model = build_model(cfg, data.num_classes).to(device, memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.compile else model
    opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    steps = len(data.train)
    sched = make_scheduler(opt, cfg.epochs * steps, round(cfg.warmup_epochs * steps), cfg.schedule)
    crit = make_criterion(cfg.label_smoothing)
    autocast = torch.bfloat16 if device.type == "cuda" and cfg.bf16 else None
    acc = 0.0
    for epoch in range(cfg.epochs):
        data.train.set_epoch(epoch)
        train_one_epoch(net, data.train, opt, sched, criterion=crit, device=device, autocast_dtype=autocast)
        acc = evaluate(model, data.test, num_classes=data.num_classes, device=device, autocast_dtype=autocast).accuracy
        if acc >= target:
            return time.perf_counter() - start, epoch + 1, acc
    return float("nan"), cfg.epochs, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--target", type=float, default=0.97, help="test accuracy to reach (default 0.97)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--snapshot", help="snapshot folder (default: train.snapshot if present, else demo digits)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: no CUDA device here (use --device cpu for a dry run)")
    steps = 10 if args.quick else 50
    with tempfile.TemporaryDirectory(prefix="sluice-bench-gpu-") as tmp:
        snap = Path(args.snapshot or "data/dataset")
        if not (snap / "manifest.json").is_file():
            snap = demo_snapshot(Path(tmp) / "snap")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
        print(f"hardware: {name}; torch {torch.__version__}; data: {snap}")
        results = {}
        for arch, width in (("rescnn", 64), ("airnet", 64), ("resnet18", 64)):  # airnet 64: airbench94's net
            cfg = TrainParams(arch=arch, width=width, batch_size=512 if not args.quick else 128,
                              compile=args.compile, lr=0.4)
            gpu = throughput(cfg, snap, device, steps)
            torch.set_num_threads(os.cpu_count() or 1)
            cpu = throughput(cfg.model_copy(update={"compile": False}), snap, torch.device("cpu"), 3)
            results[arch] = (gpu, cpu)
            print(f"  {arch} (width {width}, batch {cfg.batch_size}): {gpu:,.0f} images/s on {args.device} vs "
                  f"{cpu:,.0f} on the CPU ({os.cpu_count()} cores) = {gpu / cpu:.1f}x")
        cfg = TrainParams(width=32, batch_size=256, lr=0.4, epochs=20, compile=args.compile)
        seconds, epochs, acc = time_to_accuracy(cfg, snap, device, args.target)
        print(f"  time to {args.target:.0%} test accuracy (rescnn width 32, batch 256): {seconds:.1f} s "
              f"in {epochs} epochs (reached {acc:.4f})")
    gpu, cpu = results["rescnn"]
    print(f"HEADLINE GPU training throughput vs baseline CPU ({os.cpu_count()} cores, same step): {gpu / cpu:.1f}x "
          f"({gpu:,.0f} images/s, rescnn width 64, {name})")


if __name__ == "__main__":
    main()
