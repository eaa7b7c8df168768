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
                      processes=1, device="cpu", epochs=6, width=8, batch_size=16)
    train(cfg, metrics_path=out / "train.json", curve_path=out / "curve.csv")
    return out / "model"
