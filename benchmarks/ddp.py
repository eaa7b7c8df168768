"""DDP scaling: training images/s with 2 processes x 1 thread vs 1 process x 1 thread (and vs 1 x 2).

Each configuration is a real ``torchrun --standalone`` launch of this script in worker mode: the
trainer's own Context (gloo on CPU), loader, model (default ``rescnn``), DDP wrapper and
``train_one_epoch`` on demo digits, 64 images per process per step (weak scaling). Throughput is timed
after warm-up steps, over the slowest rank. Scaling efficiency = ips(2x1) / (2 x ips(1x1)).

    python benchmarks/ddp.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def worker(snapshot: str, steps: int, warmup: int, threads: int) -> None:
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from sluice.config import TrainParams
    from train.data import load_data
    from train.ddp import Context
    from train.engine import make_criterion, make_optimizer, train_one_epoch
    from train.model import build_model

    cfg = TrainParams(threads_per_process=threads, batch_size=64, device="cpu")
    ctx = Context(cfg)
    data = load_data(snapshot, cfg, rank=ctx.rank, world_size=ctx.world_size)
    model = build_model(cfg, data.num_classes).to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model) if ctx.distributed else model
    opt = make_optimizer(model, cfg.lr)
    batches = []
    epoch = 0
    while len(batches) < warmup + steps:  # pre-built batches: this measures training, not loading
        data.train.set_epoch(epoch)
        batches += list(data.train)
        epoch += 1
    crit = make_criterion(0.1)
    train_one_epoch(net, batches[:warmup], opt, criterion=crit)
    ctx.barrier()
    start = time.perf_counter()
    stats = train_one_epoch(net, batches[warmup:warmup + steps], opt, criterion=crit)
    ctx.barrier()
    elapsed = ctx.all_sum([time.perf_counter() - start])[0] / ctx.world_size
    images = ctx.all_sum([stats.count])[0]
    if ctx.rank == 0:
        print("RESULT " + json.dumps({"world_size": ctx.world_size, "threads": threads, "images": images,
                                      "seconds": elapsed, "images_per_s": images / elapsed}), flush=True)
    ctx.close()


def launch(snapshot: Path, processes: int, threads: int, steps: int, warmup: int) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           __file__, "--worker", "--snapshot", str(snapshot), "--steps", str(steps), "--warmup", str(warmup),
           "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"benchmark run {processes}x{threads} failed:\n{res.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"  {processes} process(es) x {threads} thread(s): {result['images_per_s']:,.0f} images/s "
          f"({result['images']:.0f} images in {result['seconds']:.1f} s)", flush=True)
    return result["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps (~1 min)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.snapshot, args.steps, args.warmup, args.threads)
        return

    import numpy as np

    from ingest.demo import CLASSES, digit_images
    from sluice.snapshot import SplitArrays, channel_stats, write_snapshot

    steps = 10 if args.quick else 30
    with tempfile.TemporaryDirectory(prefix="sluice-bench-ddp-") as tmp:
        images, labels = digit_images(0)
        mean, std = channel_stats(images)
        split = SplitArrays(images, labels, np.ones(len(labels), np.float32), [str(i) for i in range(len(labels))])
        write_snapshot(Path(tmp), {"train": split}, CLASSES, {"mean": mean, "std": std})
        print(f"training rescnn (default params) on 32x32 demo digits, 64 images per process per step, {steps} timed steps")
        one = launch(Path(tmp), 1, 1, steps, 3)
        two = launch(Path(tmp), 2, 1, steps, 3)
        threads = launch(Path(tmp), 1, 2, steps, 3)
    print(f"HEADLINE DDP scaling efficiency, 2 processes x 1 thread vs baseline 1 process x 1 thread: "
          f"{two / (2 * one):.0%} ({two / one:.2f}x; target >= 90%)")
    print(f"         2 processes x 1 thread vs 1 process x 2 threads: {two / threads:.2f}x")


if __name__ == "__main__":
    main()
