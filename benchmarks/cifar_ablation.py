"""Ablation of the airbench techniques in the ``cifar_fast`` recipe, on the VALIDATION split (never test).

Each variant is a real single-process run of the trainer (``train.ddp.train``: 1 process x 1 thread)
with the ``cifar_fast`` recipe and some techniques switched off or on, on the same fixed, stratified
subset of the snapshot's train split, for the same epochs; the val split is the whole val split.
Before every variant the same reference step (the baseline model, pre-built batches) is timed, so
each variant's training speed is reported as a ratio to the reference measured next to it: on a
shared, drifting machine only ratios compare across runs. The table is printed as Markdown.

    python benchmarks/cifar_ablation.py SNAPSHOT [--train N] [--epochs E] [--width W] [--variants a,b]

Variants: ``base`` (cifar_fast without whitening, lookahead, alternating flip, identity init, BN
momentum 0.4 and the BN bias learning rate), ``+whiten``, ``+lookahead``, ``+altflip``, ``all`` (the
recipe), ``all-whiten``, ``all-lookahead``, ``all-altflip``, ``all-tta``, ``all-ls`` (no label
smoothing), ``all-bnscale`` (learnable BN scale), ``all-dirac``, ``all-bnmomentum`` (PyTorch's 0.1),
``all-biaslr`` (BN biases at the kernels' lr), ``all+translate`` (translate TTA too), ``all+muon`` (Muon
for the conv filters, train/muon.py). ``--set key=value`` (repeatable, JSON values) changes a train
param in every variant, e.g. ``--set muon_lr=0.03``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OFF = {"whiten": False, "lookahead": False, "alternate_flip": False, "dirac": False, "bn_momentum": 0.1,
       "bias_lr_scale": 1.0}
VARIANTS = {
    "base": OFF,
    "+whiten": {**OFF, "whiten": True},
    "+lookahead": {**OFF, "lookahead": True},
    "+altflip": {**OFF, "alternate_flip": True},
    "all": {},
    "all-whiten": {"whiten": False},
    "all-lookahead": {"lookahead": False},
    "all-altflip": {"alternate_flip": False},
    "all-tta": {"tta_flip": False},
    "all-ls": {"label_smoothing": 0.0},
    "all-bnscale": {"bn_scale": True},
    "all-dirac": {"dirac": False},
    "all-bnmomentum": {"bn_momentum": 0.1},
    "all-biaslr": {"bias_lr_scale": 1.0},
    "all+translate": {"tta_translate": True},
    "all+muon": {"optimizer": "muon"},
}


def subset(snapshot_dir: Path, out: Path, n_train: int, seed: int = 0) -> Path:
    """A snapshot with a stratified ``n_train`` subset of train and the whole val split (no test)."""
    from sluice import snapshot

    manifest = snapshot.read_manifest(snapshot_dir)
    train, val = snapshot.load_split(snapshot_dir, "train"), snapshot.load_split(snapshot_dir, "val")
    labels = np.asarray(train.labels)
    rng = np.random.default_rng(seed)
    k = len(manifest["classes"])
    per = n_train // k
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in range(k)]))
    arrays = {"train": snapshot.SplitArrays(np.asarray(train.images)[keep], labels[keep], np.ones(len(keep), np.float32),
                                            [train.ids[i] for i in keep]),
              "val": snapshot.SplitArrays(np.asarray(val.images), np.asarray(val.labels),
                                          np.ones(len(val.labels), np.float32), list(val.ids))}
    snapshot.write_snapshot(out, arrays, manifest["classes"], {"mean": manifest.get("mean"), "std": manifest.get("std")})
    return out


def reference_ips(snapshot_dir: Path, width: int, steps: int = 15) -> float:
    """Images/s of the baseline model's training step on pre-built batches (1 thread)."""
    import torch

    from sluice.config import TrainParams
    from train.data import LoaderSpec, load_data
    from train.engine import make_criterion, make_optimizer, train_one_epoch
    from train.model import build_model

    torch.set_num_threads(1)
    cfg = TrainParams(batch_size=64, width=width)
    data = load_data(snapshot_dir, LoaderSpec.of(cfg), splits=("train",))
    batches = list(data.train)[:steps + 3]
    if len(batches) < 4:
        raise SystemExit(f"{snapshot_dir}: {len(batches)} batches of 64 train images; the reference step needs 4 or more "
                         "(give --train 256 or more)")
    model = build_model(cfg, data.num_classes).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, 0.1)
    train_one_epoch(model, batches[:3], opt, criterion=make_criterion(), progress_bar=False)
    stats = train_one_epoch(model, batches[3:], opt, criterion=make_criterion(), progress_bar=False)
    return stats.images_per_s


def run_variant(snapshot_dir: Path, work: Path, name: str, over: dict, epochs: int, width: int, seed: int,
                warmup: float, extra: dict) -> dict:
    from sluice.config import TrainParams
    from train.ddp import train

    aug = {"alternate_flip": over["alternate_flip"]} if "alternate_flip" in over else {}
    keys = {**{k: v for k, v in over.items() if k != "alternate_flip"}, **extra}
    folder = work / name.replace("+", "plus_")
    cfg = TrainParams(recipe="cifar_fast", snapshot=str(snapshot_dir), out_dir=str(folder / "model"),
                      runs_dir=str(folder / "runs"), checkpoint_dir=str(folder / "ckpt"), processes=1,
                      threads_per_process=1, device="cpu", epochs=epochs, width=width, seed=seed, warmup_epochs=warmup, augment=aug,
                      **keys)
    started = time.perf_counter()
    metrics = train(cfg, metrics_path=folder / "train.json", curve_path=folder / "curve.csv")
    return {"variant": name, "val_accuracy": metrics["val_accuracy"], "train_accuracy": metrics["train_accuracy"],
            "images_per_s": metrics["images_per_s"], "wall_s": round(time.perf_counter() - started, 1)}


def _value(text: str):
    """A ``--set`` value: JSON (numbers, true/false, null), else the plain string (``arch=airnet``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("--train", type=int, default=10_000, help="train subset size (stratified)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs (the recipe's 2 are for longer runs)")
    parser.add_argument("--variants", default="base,+whiten,+lookahead,+altflip,all")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a train param for every variant (a JSON value or a string), repeatable")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON lines here")
    args = parser.parse_args()
    extra = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        snap = subset(args.snapshot, Path(tmp) / "snap", args.train, args.seed)
        for name in args.variants.split(","):
            ref = reference_ips(snap, args.width)
            row = {**run_variant(snap, Path(tmp), name, VARIANTS[name], args.epochs, args.width, args.seed,
                               args.warmup, extra),
                   "reference_ips": round(ref, 1)}
            row["variant"] += "".join(f" {k}={v}" for k, v in extra.items())
            row["speed_vs_reference"] = round(row["images_per_s"] / ref, 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print(f"\n{args.train} train images (stratified subset), {args.epochs} epochs ({args.warmup} warm-up), width "
          f"{args.width}, 1 process x 1 thread; val = the whole val split\n")
    print("| variant | val acc | train acc | img/s | reference img/s | speed vs reference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['val_accuracy']:.4f} | {r['train_accuracy']:.4f} | {r['images_per_s']:.0f} | "
              f"{r['reference_ips']:.0f} | {r['speed_vs_reference']:.2f} |")


if __name__ == "__main__":
    main()
