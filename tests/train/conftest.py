"""Real demo digits (scikit-learn's scans at 32x32) written as small snapshots for the trainer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.generate import CLASSES, digit_images
from sluice.snapshot import SplitArrays, channel_stats, write_snapshot


def build_snapshot(folder: Path, n_train: int = 1400, n_val: int = 150, n_test: int | None = None, *,
                   seed: int = 0, stats: bool = True, shard_rows: int = 8192) -> dict:
    images, labels = digit_images(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = len(images) - n_train - n_val if n_test is None else n_test
    cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
            "test": order[n_train + n_val:n_train + n_val + n_test]}

    def arrays(ix: np.ndarray) -> SplitArrays:
        return SplitArrays(images[ix], labels[ix], np.ones(len(ix), np.float32), [f"img{i:04d}" for i in ix])

    extra = {}
    if stats:
        mean, std = channel_stats(images[cuts["train"]])
        extra = {"mean": mean, "std": std, "table_versions": {"dataset": 3}}
    return write_snapshot(folder, {k: arrays(v) for k, v in cuts.items()}, CLASSES, extra, shard_rows=shard_rows)


@pytest.fixture(scope="session")
def small_snapshot(tmp_path_factory) -> Path:
    """300 train / 100 val / 100 test digits: enough to learn something in a few seconds."""
    folder = tmp_path_factory.mktemp("snap-small")
    build_snapshot(folder, 300, 100, 100, shard_rows=128)
    return folder


@pytest.fixture(scope="session")
def demo_snapshot(tmp_path_factory) -> Path:
    """The demo's size: 1,400 train, 150 val and the remaining 247 test digits."""
    folder = tmp_path_factory.mktemp("snap-demo")
    build_snapshot(folder)
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the machine's cores are shared, and OpenMP spin-waits collapse when oversubscribed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_fp32(small_snapshot: Path, tmp_path_factory) -> Path:
    """A width-8 ResCNN trained by the real trainer (in-process, one rank) on real digits, once per
    session, shared by the compression tests (prune, quantize, predict)."""
    import torch

    from sluice.config import TrainParams
    from train.ddp import train

    out = tmp_path_factory.mktemp("compress-fp32")
    torch.set_num_threads(1)
    cfg = TrainParams(snapshot=str(small_snapshot), out_dir=str(out / "model"), checkpoint_dir=str(out / "runs"),
                      runs_dir=str(out / "run-folders"),
                      processes=1, device="cpu", epochs=6, width=8, batch_size=16)
    train(cfg, metrics_path=out / "train.json", curve_path=out / "curve.csv")
    return out / "model"


@pytest.fixture(scope="session")
def exported_variants(small_snapshot: Path, trained_fp32: Path, tmp_path_factory) -> Path:
    """A compress-stage-like folder: ``sparse/`` (trained_fp32 exported as a float program: the same network)
    and ``int8/`` (its post-training int8 program), each with model.pt2 + config.json."""
    from train import quantize
    from train.data import EvalLoader, LoaderSpec, load_data
    from train.model import load_model

    out = tmp_path_factory.mktemp("variants")
    model, _ = load_model(trained_fp32)
    data = load_data(small_snapshot, LoaderSpec(batch_size=64, eval_batch_size=256))
    example = quantize.example_input(data.manifest["image_shape"])
    meta = {"classes": data.classes, "image_shape": data.manifest["image_shape"]}
    quantize.save_program(out / "sparse", quantize.export_program(model, example), meta)
    calibration = quantize.calibration_batches(EvalLoader(data.train.split, data.mean, data.std, batch_size=64), 128)
    int8 = quantize.quantize_ptq(model, calibration, example)
    quantize.save_program(out / "int8", quantize.export_program(int8, example), meta)
    return out


def build_photo_snapshot(folder: Path, size: int = 96, per_class: tuple[int, int, int] = (8, 2, 2)) -> dict:
    """Real photographs (scikit-learn's china.jpg and flower.jpg), two classes: random square crops of
    varied sizes resized to ``size`` px, ``per_class`` (train, val, test) crops of each photo."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    photos = load_sample_images().images  # two 427x640 RGB photos
    cuts: dict[str, tuple[list, list]] = {s: ([], []) for s in ("train", "val", "test")}
    for label, photo in enumerate(photos):
        for split, n in zip(cuts, per_class):
            for _ in range(n):
                side = int(rng.integers(140, 400))
                y, x = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
                crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
                cuts[split][0].append(np.asarray(crop))
                cuts[split][1].append(label)
    arrays = {s: SplitArrays(np.stack(x), np.array(y), np.ones(len(y), np.float32), [f"{s}{i}" for i in range(len(y))])
              for s, (x, y) in cuts.items()}
    mean, std = channel_stats(arrays["train"].images)
    return write_snapshot(folder, arrays, ["china", "flower"], {"mean": mean, "std": std})


@pytest.fixture(scope="session")
def photo_snapshot(tmp_path_factory) -> Path:
    """16 train / 4 val / 4 test 96x96 crops of two real photos."""
    folder = tmp_path_factory.mktemp("snap-photo")
    build_photo_snapshot(folder)
    return folder
