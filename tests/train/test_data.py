"""The snapshot input pipeline: per-rank batches, batched augmentation, normalisation, balancing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sluice import snapshot
from sluice.config import AugmentParams
from sluice.errors import InputError
from train.data import LoaderSpec, augment, class_weights, load_data, normalize

NO_AUG = AugmentParams(crop_padding=0, flip=False, rotate_degrees=0, cutout=0)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_get_disjoint_equal_length_batches(small_snapshot, world):
    cfg = LoaderSpec(batch_size=32)
    loaders = [load_data(small_snapshot, cfg, rank=r, world_size=world, splits=("train",)).train for r in range(world)]
    idx = [ld.epoch_indices(4) for ld in loaders]
    assert len({len(i) for i in idx}) == 1 and len({len(ld) for ld in loaders}) == 1
    together = torch.cat(idx)
    assert set(together.tolist()) == set(range(300))  # every image is used ...
    assert len(together) - len(set(together.tolist())) == len(together) - 300  # ... and only padding repeats
    assert not torch.equal(loaders[0].epoch_indices(4), loaders[0].epoch_indices(5))  # reshuffled per epoch
    batches = [list(ld) for ld in loaders]
    assert len({len(b) for b in batches}) == 1
    assert all(x.shape == (32, 3, 32, 32) for b in batches for x, _, _ in b)


def test_train_batches_are_normalised_channels_last_float(small_snapshot):
    data = load_data(small_snapshot, LoaderSpec(batch_size=50, augment=NO_AUG))
    x, y, w = next(iter(data.train))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64 and torch.equal(w, torch.ones(50))
    everything = torch.cat([b[0] for b in data.train])
    assert everything.mean((0, 2, 3)).abs().max() < 0.2  # manifest mean/std normalise the train split
    assert (everything.std((0, 2, 3)) - 1).abs().max() < 0.2
    xs, ys = zip(*data.test)
    assert sum(len(v) for v in ys) == 100 and xs[0].is_contiguous(memory_format=torch.channels_last)


def test_eval_blocks_cover_the_split_once_in_order(small_snapshot):
    parts = [load_data(small_snapshot, LoaderSpec(eval_batch_size=7), rank=r, world_size=3, splits=("val",)).val
             for r in range(3)]
    labels = torch.cat([y for p in parts for _, y in p])
    assert torch.equal(labels, torch.from_numpy(snapshot.load_split(small_snapshot, "val").labels))


def _aug(images: torch.Tensor, seed: int, cfg: AugmentParams) -> torch.Tensor:
    """augment() as a float NCHW batch, to compare with the originals."""
    out = augment(images, torch.Generator().manual_seed(seed), cfg)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    return out.permute(0, 3, 1, 2).float()


def test_augmentation_is_batched_deterministic_and_does_what_it_says():
    images = torch.randint(1, 256, (16, 32, 32, 3), dtype=torch.uint8)
    nchw = images.permute(0, 3, 1, 2).float()
    assert augment(images, torch.Generator().manual_seed(0), NO_AUG) is images
    flipped = _aug(images, 0, AugmentParams(crop_padding=0, flip=True, rotate_degrees=0))
    mirrored = [torch.equal(flipped[i], nchw[i].flip(-1)) for i in range(16)]
    unchanged = [torch.equal(flipped[i], nchw[i]) for i in range(16)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)
    crop = _aug(images, 0, AugmentParams(crop_padding=4, flip=False, rotate_degrees=0))
    shifted = 0
    for i in range(16):  # each image is the original moved by (dy, dx) within +-4, zeros shifted in
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if torch.equal(crop[i], _shift(nchw[i], dy, dx))]
        assert matches, i
        shifted += matches[0] != (0, 0)
    assert shifted >= 12
    cut = _aug(images, 0, AugmentParams(crop_padding=0, rotate_degrees=0, cutout=6))
    zeros = (cut == 0).all(1).sum((1, 2))
    assert ((zeros >= 9) & (zeros <= 36)).all()  # a 6x6 square, clipped at the border
    rotated = _aug(images, 0, AugmentParams(crop_padding=0, rotate_degrees=20))
    assert not torch.allclose(rotated, nchw, atol=1.0)
    full = AugmentParams(crop_padding=2, flip=True, rotate_degrees=10, cutout=4)
    assert torch.equal(_aug(images, 3, full), _aug(images, 3, full))
    assert not torch.equal(_aug(images, 3, full), _aug(images, 4, full))


@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
def test_affine_gather_matches_nearest_grid_sample(shape):
    """The gather samples exactly what grid_sample(nearest, zeros) does for the same affine maps."""
    import math

    import torch.nn.functional as F

    h, w = shape
    images = torch.randint(1, 256, (64, h, w, 3), dtype=torch.uint8)
    cfg = AugmentParams(crop_padding=3, flip=True, rotate_degrees=30)
    ours = _aug(images, 11, cfg)
    # the same draws, turned into a grid_sample affine grid: input = R @ diag(mirror, 1) @ output + shift
    r_dy, r_dx, r_flip, r_rot, _, _ = torch.rand((6, 64), generator=torch.Generator().manual_seed(11))
    angle = (r_rot * 2 - 1) * math.radians(30)
    mirror = torch.where(r_flip < 0.5, -1.0, 1.0)
    tx = ((r_dx * 7).floor().clamp_max(6) - 3) * (2.0 / w)
    ty = ((r_dy * 7).floor().clamp_max(6) - 3) * (2.0 / h)
    theta = torch.stack([torch.stack([angle.cos() * mirror, -angle.sin(), tx], 1),
                         torch.stack([angle.sin() * mirror, angle.cos(), ty], 1)], 1)
    grid = F.affine_grid(theta, (64, 3, h, w), align_corners=False)
    ref = F.grid_sample(images.permute(0, 3, 1, 2).float(), grid, mode="nearest", align_corners=False)
    differ = (ours != ref).any(1).float().mean().item()
    assert differ < 1e-3, differ  # only float ties at exactly half a pixel may round the other way


def test_normalize_gives_channels_last_mean_std_scaled_floats():
    images = torch.randint(0, 256, (5, 8, 6, 3), dtype=torch.uint8)
    mean, std = torch.tensor([0.2, 0.5, 0.7]), torch.tensor([0.1, 0.3, 0.25])
    x = normalize(images, mean, std)
    assert x.shape == (5, 3, 8, 6) and x.is_contiguous(memory_format=torch.channels_last)
    expected = (images.permute(0, 3, 1, 2).float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) sampled at (y + dy, x + dx), zero outside: what a crop after zero padding gives."""
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = img[:, max(dy, 0):h - max(-dy, 0), max(dx, 0):w - max(-dx, 0)]
    return out


def test_restored_generator_state_reproduces_the_rest_of_an_epoch(small_snapshot):
    cfg = LoaderSpec(batch_size=32)
    first = load_data(small_snapshot, cfg, splits=("train",)).train
    first.set_epoch(2)
    it = iter(first)
    next(it), next(it)
    state = first.state_dict()
    rest = [x for x, _, _ in it]
    second = load_data(small_snapshot, cfg, splits=("train",)).train
    second.load_state_dict(state)
    second.set_epoch(2, start_step=2)
    again = [x for x, _, _ in second]
    assert len(again) == len(rest) == len(first) - 2
    assert all(torch.equal(a, b) for a, b in zip(rest, again))


def test_balancing_modes(tmp_path):
    images = np.zeros((40, 32, 32, 3), np.uint8)
    labels = np.array([0] * 36 + [1] * 4)
    weights = np.where(labels == 1, 9.0, 1.0).astype(np.float32)
    split = snapshot.SplitArrays(images, labels, weights, [str(i) for i in range(40)])
    snapshot.write_snapshot(tmp_path / "s", {"train": split}, ["a", "b"], {"mean": [0.5] * 3, "std": [0.2] * 3})
    assert torch.allclose(class_weights(torch.from_numpy(labels), 2), torch.tensor([40 / 72, 5.0]))

    plain = load_data(tmp_path / "s", LoaderSpec(balance="none"))
    assert plain.class_weights is None and bool((plain.train.split.weights == 1).all())
    by_class = load_data(tmp_path / "s", LoaderSpec(balance="class_weights"))
    assert by_class.class_weights[1] == pytest.approx(5.0)
    by_sample = load_data(tmp_path / "s", LoaderSpec(balance="sample_weights", batch_size=40))
    _, y, w = next(iter(by_sample.train))
    assert torch.equal(w, torch.where(y == 1, 9.0, 1.0))
    sampled = load_data(tmp_path / "s", LoaderSpec(balance="sampler"), world_size=2).train
    picks = torch.cat([sampled.epoch_indices(e) for e in range(20)])
    rare = (torch.from_numpy(labels)[picks] == 1).float().mean()
    assert 0.4 < rare < 0.6  # weighted sampling draws the rare class about half the time (4 of 40 without)


def test_missing_stats_are_computed_from_train(tmp_path, small_snapshot):
    manifest = json.loads((small_snapshot / snapshot.MANIFEST).read_text())
    split = snapshot.load_split(small_snapshot, "train", mmap=False)
    snapshot.write_snapshot(tmp_path / "s", {"train": split}, manifest["classes"])
    data = load_data(tmp_path / "s")
    assert torch.allclose(data.mean, torch.tensor(manifest["mean"]), atol=1e-5)
    assert data.val is None and data.test is None


def test_bad_snapshots_are_user_errors(tmp_path):
    with pytest.raises(InputError, match="no snapshot manifest"):
        load_data(tmp_path / "nothing")
    one = snapshot.SplitArrays(np.zeros((1, 32, 32, 3), np.uint8), np.array([0]), np.ones(1, np.float32), ["x"])
    snapshot.write_snapshot(tmp_path / "tiny", {"train": one}, ["a"])
    with pytest.raises(InputError, match="train split has 1 images"):
        load_data(tmp_path / "tiny")
    bad = snapshot.SplitArrays(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 5]), np.ones(4, np.float32), list("abcd"))
    snapshot.write_snapshot(tmp_path / "bad", {"train": bad}, ["a", "b", "c"])
    with pytest.raises(InputError, match="train labels outside 0..2"):
        load_data(tmp_path / "bad")


def test_resized_crop_and_jitter_are_batched_deterministic_and_bounded():
    images = torch.randint(0, 256, (8, 96, 96, 3), dtype=torch.uint8)
    cfg = AugmentParams(crop_padding=0, flip=True, rotate_degrees=0, resized_crop_scale=0.35, jitter=0.3)
    a, b = (augment(images, torch.Generator().manual_seed(5), cfg) for _ in range(2))
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, images)
    # a constant image stays constant under crop and (saturation-free grey) brightness/contrast jitter
    flat = torch.full((4, 96, 96, 3), 100, dtype=torch.uint8)
    out = augment(flat, torch.Generator().manual_seed(1), AugmentParams(crop_padding=0, rotate_degrees=0,
                                                                         resized_crop_scale=0.2, jitter=0.4))
    per_image = out.view(4, -1)
    assert bool((per_image == per_image[:, :1]).all())
    assert 60 <= int(per_image.min()) and int(per_image.max()) <= 140  # brightness within 1 +- 0.4
    # the crop box stays inside the image: nothing from the zero border shows up
    bright = torch.randint(1, 256, (16, 96, 96, 3), dtype=torch.uint8)
    crops = augment(bright, torch.Generator().manual_seed(2), AugmentParams(crop_padding=0, rotate_degrees=0,
                                                                             resized_crop_scale=0.1))
    assert bool((crops > 0).all()) and not torch.equal(crops, bright)


def test_final_fit_trains_on_train_and_val(small_snapshot):
    data = load_data(small_snapshot, LoaderSpec(final_fit=True))
    assert len(data.train.split) == 400 and data.val is None and data.test is not None


def test_low_res_epochs_train_on_smaller_batches_then_full_resolution(small_snapshot):
    aug = NO_AUG.model_copy(update={"low_res": 20, "low_res_epochs": 2})
    loader = load_data(small_snapshot, LoaderSpec(batch_size=50, augment=aug), splits=("train",)).train
    full = load_data(small_snapshot, LoaderSpec(batch_size=50, augment=NO_AUG), splits=("train",)).train
    for epoch, side in [(0, 20), (1, 20), (2, 32)]:
        loader.set_epoch(epoch)
        full.set_epoch(epoch)
        (x, y, _), (xf, yf, _) = next(iter(loader)), next(iter(full))
        assert x.shape[-2:] == (side, side) and x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(y, yf)  # the same images, only smaller
        if side < 32:  # an antialiased downscale: each low-res pixel is a local average of the full batch
            expected = torch.nn.functional.interpolate(xf, size=side, mode="bilinear", antialias=True)
            assert torch.allclose(x, expected, atol=1e-5)
        else:
            assert torch.equal(x, xf)


def test_low_res_keeps_the_aspect_ratio_and_never_upscales():
    from train.data import low_res

    x = torch.randn(2, 3, 40, 80)
    assert low_res(x, 20).shape[-2:] == (20, 40)
    assert low_res(x, 0) is x and low_res(x, 40) is x and low_res(x, 64) is x


def test_shard_shuffle_gives_each_rank_its_own_shards_a_group_at_a_time(small_snapshot):
    """300 rows in shards of 128/128/44: every row once an epoch, and each rank's order visits a shard in one run."""
    spec = LoaderSpec(batch_size=16, shuffle="shards", cache_shards=1)
    loaders = [load_data(small_snapshot, spec, rank=r, world_size=2, splits=("train",)).train for r in range(2)]
    bounds = loaders[0].split.bounds
    assert bounds.tolist() == [0, 128, 256, 300]
    for epoch in (0, 1):
        orders = [ld.epoch_indices(epoch).numpy() for ld in loaders]
        assert sorted(np.concatenate(orders).tolist()) == list(range(300))  # 150 each, no padding needed
        for order in orders:
            shard = np.searchsorted(bounds, order, side="right") - 1
            runs = shard[np.r_[True, shard[1:] != shard[:-1]]]
            assert len(runs) == len(set(runs.tolist()))  # a shard's rows come together, never revisited
    assert not np.array_equal(loaders[0].epoch_indices(0), loaders[0].epoch_indices(1))
    again = load_data(small_snapshot, spec, rank=0, world_size=2, splits=("train",)).train
    assert torch.equal(again.epoch_indices(5), loaders[0].epoch_indices(5))  # a pure function of (seed, epoch)
    with pytest.raises(InputError, match="balance: sampler"):
        load_data(small_snapshot, LoaderSpec(shuffle="shards", balance="sampler"), splits=("train",))


def test_auto_shuffle_reads_by_shard_groups_when_the_split_outgrows_memory(small_snapshot, monkeypatch):
    import train.data as data_module

    manifest = snapshot.read_manifest(small_snapshot)
    assert data_module.auto_shuffle(small_snapshot, manifest) == "global"
    assert data_module.auto_shuffle("s3://bucket/snap", manifest) == "shards"
    monkeypatch.setattr(data_module, "memory_bytes", lambda: 2 * 300 * 32 * 32 * 3 - 2)  # 300 train images > half
    assert data_module.auto_shuffle(small_snapshot, manifest) == "shards"
    loader = load_data(small_snapshot, LoaderSpec(batch_size=16, cache_shards=1), splits=("train",)).train
    assert loader.shard_group == 1
