"""Compression benchmark: int8 and structured pruning speed-ups against fp32 eager, measured in one run.

Builds a snapshot from the real demo digits (optionally enlarged to a synthetic set of ``--images`` train
images by random shifts and tints), trains an fp32 ResCNN with the project trainer, runs the compress
stage's ``train.tradeoff.run`` on it and prints the headline ratios:

    int8 (Inductor) vs fp32 eager, batch 64     target >= 2.5x
    pruned vs fp32 eager, batch 64              target >= 1.7x, with >= 2x fewer MACs
    pruned+int8 vs fp32 eager, batch 64

Baseline: the same fp32 model run eagerly (PyTorch CPU, ``--threads`` threads), timed interleaved with the
variants (median of ``--repeats`` after warm-up), so machine load hits every variant alike.

    python benchmarks/compress.py            # demo size, about 5-10 minutes on 2 shared cores
    python benchmarks/compress.py --quick    # fewer epochs and repeats
    python benchmarks/compress.py --images 20000 --width 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.generate import CLASSES, digit_images  # noqa: E402
from sluice.config import CompressParams, TrainParams  # noqa: E402
from sluice.snapshot import SplitArrays, channel_stats, write_snapshot  # noqa: E402


def build_snapshot(folder: Path, n_train: int | None, seed: int) -> None:
    images, labels = digit_images(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    test, val, train = order[:250], order[250:400], order[400:]
    tr_img, tr_lab = images[train], labels[train]
    if n_train and n_train > len(train):  # synthetic enlargement: shifted, re-tinted copies of the train digits
        pick = rng.integers(0, len(train), n_train)
        shifts = rng.integers(-3, 4, (n_train, 2))
        tints = rng.uniform(0.8, 1.0, (n_train, 1, 1, 3))
        tr_img = np.stack([np.roll(tr_img[i], tuple(s), axis=(0, 1)) for i, s in zip(pick, shifts)])
        tr_img = (tr_img * tints).astype(np.uint8)
        tr_lab = tr_lab[pick]

    def split(img, lab, tag):
        return SplitArrays(img, lab, np.ones(len(lab), np.float32), [f"{tag}{i}" for i in range(len(lab))])

    mean, std = channel_stats(tr_img)
    write_snapshot(folder, {"train": split(tr_img, tr_lab, "t"), "val": split(images[val], labels[val], "v"),
                            "test": split(images[test], labels[test], "x")}, CLASSES, {"mean": mean, "std": std})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer training epochs and timing repeats")
    ap.add_argument("--images", type=int, default=0, help="synthetic train images (default: the demo's ~1,400)")
    ap.add_argument("--width", type=int, default=8, help="ResCNN width (the trainer's default is 8)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-compile", action="store_true", help="skip the Inductor-compiled int8 measurements")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from train.ddp import train
    from train.tradeoff import render_table, run

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_snapshot(tmp / "snap", args.images, args.seed)
        epochs = 3 if args.quick else 6
        train(TrainParams(snapshot=str(tmp / "snap"), out_dir=str(tmp / "fp32"), checkpoint_dir=str(tmp / "runs"),
                          runs_dir=str(tmp / "run-folders"),
                          processes=1, threads_per_process=args.threads, device="cpu", epochs=epochs,
                          width=args.width, seed=args.seed),
              metrics_path=tmp / "train.json", curve_path=tmp / "curve.csv")
        cfg = CompressParams(model_dir=str(tmp / "fp32"), snapshot=str(tmp / "snap"), out_dir=str(tmp / "models"),
                             metrics=str(tmp / "compress.json"), plot=str(tmp / "tradeoff.csv"), seed=args.seed,
                             threads=args.threads, prune_steps=2 if args.quick else 3,
                             prune_finetune_epochs=1 if args.quick else 2, compile=not args.no_compile,
                             repeats=args.repeats or (7 if args.quick else 15))
        metrics = run(cfg)
    print(render_table(metrics))
    head = metrics["vs_fp32_eager"]
    print(json.dumps({"targets_met": metrics["targets_met"]}, indent=1))
    print(f"\nbaseline: fp32 eager, batch 64, {args.threads} thread(s); width {args.width}; "
          f"total {time.perf_counter() - start:.0f} s")
    for name, target in (("int8", 2.5), ("pruned", 1.7), ("pruned_int8", None)):
        h = head[name]
        print(f"{name:>12}: {h['speedup_b64']:.2f}x faster at batch 64 (batch 1: {h['speedup_b1']:.2f}x)"
              + (f" [target >= {target}x]" if target else "")
              + f", {h['macs_reduction']:.2f}x fewer MACs, {h['size_reduction']:.2f}x smaller weights, "
              f"accuracy drop {h['accuracy_drop_points']:.2f} points")
    print(f"{'sparse':>12}: {head['sparse']['gzip_size_reduction']:.2f}x smaller gzip'd file "
          f"(size only; dense kernels do not skip zeros)")


if __name__ == "__main__":
    main()
