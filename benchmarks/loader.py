"""Input pipeline throughput: Sluice's snapshot loader vs torchvision ImageFolder + DataLoader.

Both sides produce the same thing from the same images — augmented (random crop with 2-pixel padding,
random rotation within 8 degrees), normalised float batches of 64 — on one core (one torch thread, no
worker processes). Baseline: PNG files in an ImageFolder tree read through DataLoader with the
equivalent torchvision transforms. Sluice: the memory-mapped uint8 snapshot through
``train.data.load_data`` (batched tensor augmentation). Also prints how many images/s training the
default model consumes on one core, to show the loader is not the bottleneck.

The 224 px row does the same for photos: random-resized-crop (area 0.35..1) + flip + colour jitter
(0.3) + normalise on 224x224 crops of scikit-learn's two sample photographs, Sluice's batched tensor
ops on the snapshot vs torchvision ``ImageFolder`` (JPEG files) + ``DataLoader`` with the
``transforms.v2`` equivalents (target >= 10x).

    python benchmarks/loader.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.generate import CLASSES, digit_images  # noqa: E402
from sluice.config import AugmentParams, TrainParams  # noqa: E402
from sluice.snapshot import SplitArrays, channel_stats, write_snapshot  # noqa: E402
from train.data import LoaderSpec, load_data  # noqa: E402
from train.engine import make_criterion, make_optimizer, train_one_epoch  # noqa: E402
from train.model import build_model  # noqa: E402


def build_inputs(root: Path, copies: int) -> tuple[Path, Path, int]:
    from PIL import Image

    images, labels = digit_images(0)
    images, labels = np.concatenate([images] * copies), np.concatenate([labels] * copies)
    folder = root / "folder"
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = folder / CLASSES[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:06d}.png")
    mean, std = channel_stats(images)
    split = SplitArrays(images, labels, np.ones(len(labels), np.float32), [str(i) for i in range(len(labels))])
    write_snapshot(root / "snap", {"train": split}, CLASSES, {"mean": mean, "std": std})
    return folder, root / "snap", len(labels)


def torchvision_ips(folder: Path, epochs: int, mean, std) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomCrop(32, padding=2), transforms.RandomRotation(8),
                             transforms.ToTensor(), transforms.Normalize(mean, std)])
    loader = DataLoader(datasets.ImageFolder(folder, tf), batch_size=64, shuffle=True, num_workers=0)
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            n += len(x)
    return n / (time.perf_counter() - start)


def sluice_ips(snap: Path, epochs: int) -> float:
    data = load_data(snap, LoaderSpec(batch_size=64), splits=("train",))
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        data.train.set_epoch(epoch)
        for x, _, _ in data.train:
            n += len(x)
    return n / (time.perf_counter() - start)


PHOTO_AUG = AugmentParams(crop_padding=0, flip=True, rotate_degrees=0, resized_crop_scale=0.35, jitter=0.3)


def build_photo_inputs(root: Path, n: int) -> tuple[Path, Path]:
    """``n`` 224x224 crops of the two real sample photos: JPEG files (ImageFolder) and a snapshot."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    images, labels = [], []
    for i in range(n):
        photo = photos[i % 2]
        side = int(rng.integers(224, 420))
        y, x = int(rng.integers(0, photo.shape[0] - side + 1)), int(rng.integers(0, photo.shape[1] - side + 1))
        img = Image.fromarray(photo[y:y + side, x:x + side]).resize((224, 224), Image.BILINEAR)
        d = root / "photos" / ("china", "flower")[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        img.save(d / f"{i:05d}.jpg", quality=90)
        images.append(np.asarray(img))
        labels.append(i % 2)
    images_np, labels_np = np.stack(images), np.array(labels)
    mean, std = channel_stats(images_np)
    split = SplitArrays(images_np, labels_np, np.ones(n, np.float32), [str(i) for i in range(n)])
    write_snapshot(root / "photo-snap", {"train": split}, ["china", "flower"], {"mean": mean, "std": std})
    return root / "photos", root / "photo-snap"


def torchvision_photo_ips(folder: Path, mean, std) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(224, scale=(0.35, 1.0), antialias=True),
                     v2.RandomHorizontalFlip(), v2.ColorJitter(0.3, 0.3, 0.3), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize(list(mean), list(std))])
    loader = DataLoader(datasets.ImageFolder(folder, tf), batch_size=64, shuffle=True, num_workers=0)
    n, start = 0, time.perf_counter()
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - start)


def sluice_photo_ips(snap: Path, epochs: int) -> float:
    data = load_data(snap, LoaderSpec(batch_size=64, augment=PHOTO_AUG), splits=("train",))
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        data.train.set_epoch(epoch)
        for x, _, _ in data.train:
            n += len(x)
    return n / (time.perf_counter() - start)


def training_ips(snap: Path) -> float:
    """Images/s the default model trains at on one core (loader included)."""
    cfg = TrainParams()
    data = load_data(snap, LoaderSpec.of(cfg), splits=("train",))
    model = build_model(cfg, data.num_classes).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg.lr)
    head = [b for _, b in zip(range(12), data.train)]
    train_one_epoch(model, head[:2], opt, criterion=make_criterion(0.1))  # warm-up
    stats = train_one_epoch(model, head[2:], opt, criterion=make_criterion(0.1))
    return stats.images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs (~30 s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-loader-") as tmp:
        folder, snap, n = build_inputs(Path(tmp), 1 if args.quick else 2)
        mean, std = channel_stats(np.load(next(snap.glob("train-*.images.npy"))))
        tv = torchvision_ips(folder, 1, mean, std)
        ours = sluice_ips(snap, 5 if args.quick else 20)
        train = training_ips(snap)
        photos, photo_snap = build_photo_inputs(Path(tmp), 128 if args.quick else 512)
        pmean, pstd = channel_stats(np.load(next(photo_snap.glob("train-*.images.npy"))))
        tv_photo = torchvision_photo_ips(photos, pmean, pstd)
        ours_photo = sluice_photo_ips(photo_snap, 2 if args.quick else 4)
    print(f"images: {n} (32x32 RGB demo digits), batch 64, crop(pad 2) + rotate(8 deg) + normalise, 1 thread")
    print(f"baseline torchvision ImageFolder + DataLoader: {tv:,.0f} images/s per core")
    print(f"sluice snapshot loader:                       {ours:,.0f} images/s per core")
    print(f"training consumes (default model, 1 core):    {train:,.0f} images/s")
    print(f"HEADLINE loader speedup vs torchvision ImageFolder+DataLoader: {ours / tv:.1f}x per core (target >= 20x)")
    print(f"         loader vs training consumption: {ours / train:.1f}x (target >= 10x)")
    print("224 px photos: random-resized-crop(0.35..1) + flip + colour jitter(0.3) + normalise, batch 64, 1 thread")
    print(f"baseline torchvision ImageFolder (JPEG) + DataLoader, transforms.v2: {tv_photo:,.0f} images/s per core")
    print(f"sluice snapshot loader:                                             {ours_photo:,.0f} images/s per core")
    print(f"HEADLINE 224 px loader speedup vs torchvision: {ours_photo / tv_photo:.1f}x per core (target >= 10x)")


if __name__ == "__main__":
    main()
