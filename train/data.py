"""The training input pipeline: snapshot shards -> augmented, normalised, channels-last batches.

No per-image Python and no image decoding: a batch is one fancy-index read from the memory-mapped
uint8 shard arrays (or from device memory when the snapshot is resident on a GPU), and augmentation
runs on the whole uint8 batch as tensor ops — random crop with zero padding (a whole-pixel shift),
random-resized-crop, horizontal flip and small rotation as one nearest-neighbour affine gather,
colour jitter as a few elementwise ops, cutout as one mask — followed by the manifest's mean/std
normalisation straight into a channels-last float batch. ``load_data`` takes a ``LoaderSpec`` (what
the loaders need), not the trainer's whole params.

Distributed training: every epoch all ranks draw the same global order from ``(seed, epoch)``, pad it
to a multiple of the world size and take every ``world_size``-th index, so the ranks' samples are
disjoint and every rank gets the same number of equal-sized batches. The augmentation generator is
per rank; its state and the position in the epoch are what a checkpoint needs to resume exactly.

With ``shuffle: shards`` (the default for a snapshot in object storage, :mod:`sluice.snapshot_store`)
the global order is shard-local instead: the shards in a random order, ``cache_shards`` at a time,
each group's rows shuffled together, and each rank takes a contiguous block of it, so a rank fetches
each of its shards once an epoch and holds at most ``cache_shards`` of them (WebDataset's shard
shuffling, but still a pure function of ``(seed, epoch)``: resume stays exact).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sluice import snapshot, snapshot_store
from sluice.config import AugmentParams, TrainParams
from sluice.errors import InputError


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC batch -> normalised float NCHW in channels-last memory layout (NHWC storage).

    One fused multiply-add over rows of ``W * C`` values: broadcasting a 3-value per-channel scale
    over a last dimension of 3 does not vectorise, a row of ``W * C`` does (about 4x faster on CPU).
    """
    n, h, w, c = x.shape
    scale = (1.0 / (255.0 * std)).repeat(w)
    shift = (-mean / std).repeat(w)
    out = torch.empty((n, c, h, w), dtype=torch.float32, device=x.device, memory_format=torch.channels_last)
    rows = out.permute(0, 2, 3, 1).view(n * h, w * c)  # the same storage, NHWC
    torch.addcmul(shift, x.reshape(n * h, w * c).float(), scale, out=rows)
    return out


def low_res(x: torch.Tensor, side: int) -> torch.Tensor:
    """Progressive resizing's early epochs: the batch scaled (bilinear, antialiased) so that its shorter
    side is ``side`` px; unchanged when ``side`` is 0 or not smaller. The model must accept any input
    size (every registered one ends in a global pool); a step costs about (side / full side)^2."""
    h, w = x.shape[-2:]
    if not 0 < side < min(h, w):
        return x
    size = (max(1, round(h * side / min(h, w))), max(1, round(w * side / min(h, w))))
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True).contiguous(
        memory_format=torch.channels_last)


@dataclass(frozen=True)
class LoaderSpec:
    """What ``load_data`` needs: batch sizes, seed, augmentation, balancing, residency, and whether the
    train loader covers train+val (``final_fit``: then there is no val loader)."""

    batch_size: int = 64
    eval_batch_size: int = 512
    seed: int = 0
    augment: AugmentParams = field(default_factory=AugmentParams)
    balance: str = "sample_weights"
    gpu_resident: bool = True
    final_fit: bool = False
    shuffle: str = "auto"
    cache_shards: int = 4

    @classmethod
    def of(cls, cfg: TrainParams) -> LoaderSpec:
        return cls(cfg.batch_size, cfg.eval_batch_size, cfg.seed, cfg.augment, cfg.balance, cfg.gpu_resident,
                   cfg.final_fit, cfg.shuffle, cfg.cache_shards)


def jitter(x: torch.Tensor, r: torch.Tensor, amount: float) -> torch.Tensor:
    """Colour jitter of a uint8 NHWC batch: per-image saturation, brightness and contrast factors in
    ``1 +- amount`` from the uniform draws ``r`` (3, n); returns uint8.

    The three are one affine map per image: saturation mixes each pixel with its grey value (which it
    keeps, so contrast can pivot on the original image's mean grey), i.e. ``k1 * pixel + k2 * grey + o``.
    The grey values come from one matmul (a reduction over a last dimension of 3 would not vectorise)."""
    n = x.shape[0]
    s, b, c = 1 + (r * 2 - 1) * amount
    f = x.reshape(n, -1, 3).float()
    grey = f @ torch.tensor([[0.299], [0.587], [0.114]], device=x.device)  # (n, H*W, 1)
    offset = ((1 - c) * b * grey.mean((1, 2)))[:, None, None]
    out = torch.addcmul(torch.addcmul(offset, (c * b * (1 - s))[:, None, None], grey), (c * b * s)[:, None, None], f)
    return out.clamp_(0, 255).round_().to(torch.uint8).view_as(x)


def augment(images: torch.Tensor, gen: torch.Generator, cfg: AugmentParams,
            flips: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a uint8 NHWC batch; returns a new uint8 NHWC batch (or ``images`` when nothing is on).

    Crop (a whole-pixel shift within the zero padding), flip and rotation are one affine map per
    image, sampled nearest-neighbour like torchvision's RandomRotation default (so exact for the
    crop's whole-pixel shifts) and applied as one gather: every output pixel's source index is
    computed from the map and the whole batch is read with a single ``index_select`` from a copy
    with a 1-pixel zero border (out-of-image sources land on the border). The result is pixel for
    pixel what ``F.grid_sample(mode="nearest")`` gives with the same affine grid, at a fraction of
    the cost, and stays uint8 until ``normalize``. Random-resized-crop (area ``resized_crop_scale``..1,
    aspect 3/4..4/3, resized back to HxW) scales the same map, so it costs nothing extra; at reduced
    scales nearest-neighbour resampling aliases a little, which augmentation tolerates. Cutout is one
    mask. All random draws come from ``gen`` in a fixed order, so a restored generator state reproduces
    the same augmentations. ``flips`` (bool per image), when given, decides the flips instead of the
    random draw (alternating flip; the draw is still made, so the generator advances the same).
    """
    n, h, w, c = images.shape
    dev = images.device
    rrc = cfg.resized_crop_scale
    if not (cfg.crop_padding or cfg.flip or cfg.rotate_degrees or cfg.cutout or rrc or cfg.jitter):
        return images
    r_dy, r_dx, r_flip, r_rot, r_cy, r_cx = torch.rand((6, n), generator=gen, device=gen.device).to(dev)
    kx = ky = torch.ones(n, device=dev)
    ox = oy = torch.zeros(n, device=dev)
    if rrc:  # crop box (fractions kx, ky of the image, centre offset ox, oy in pixels)
        r_area, r_aspect, r_x, r_y = torch.rand((4, n), generator=gen, device=gen.device).to(dev)
        area = rrc + (1 - rrc) * r_area
        aspect = torch.exp((r_aspect * 2 - 1) * math.log(4 / 3))
        kx, ky = (area * aspect).sqrt().clamp_max(1), (area / aspect).sqrt().clamp_max(1)
        ox, oy = (r_x - 0.5) * (1 - kx) * w, (r_y - 0.5) * (1 - ky) * h
    x = images
    p = cfg.crop_padding
    if p or cfg.flip or cfg.rotate_degrees or rrc:
        angle = (r_rot * 2 - 1) * math.radians(cfg.rotate_degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        flip = flips.to(dev) if flips is not None else r_flip < 0.5
        mirror = torch.where(flip & cfg.flip, -1.0, 1.0)
        dx = (r_dx * (2 * p + 1)).floor().clamp_max(2 * p) - p + ox  # whole pixels in [-p, p] (+ crop offset)
        dy = (r_dy * (2 * p + 1)).floor().clamp_max(2 * p) - p + oy
        # source = centre + M @ (output - centre) + shift, pixel centres; M = R(angle) @ diag(mirror, 1)
        # in the normalised [-1, 1] axes grid_sample uses (hence the w/h factors for non-square images)
        u = torch.arange(w, device=dev) + (0.5 - w / 2)
        v = torch.arange(h, device=dev) + (0.5 - h / 2)
        first = torch.arange(n, device=dev, dtype=torch.int32) * ((h + 2) * (w + 2))
        if cfg.rotate_degrees:
            sx = ((cos * mirror * kx)[:, None] * u)[:, None, :] + ((-sin * (w / h) * ky)[:, None] * v + (dx + (w - 1) / 2)[:, None])[:, :, None]
            sy = ((sin * mirror * (h / w) * kx)[:, None] * u)[:, None, :] + ((cos * ky)[:, None] * v + (dy + (h - 1) / 2)[:, None])[:, :, None]
        else:  # no rotation: the map is separable, so round columns (n, w) and rows (n, h) before one broadcast add
            sx = (mirror * kx)[:, None] * u + (dx + (w - 1) / 2)[:, None]
            sy = ky[:, None] * v + (dy + (h - 1) / 2)[:, None]
        # nearest source pixel in the bordered copy; anything outside the image maps onto the zero border
        col = sx.round_().clamp_(-1, w).add_(1).to(torch.int32)
        row = sy.round_().clamp_(-1, h).add_(1).to(torch.int32)
        if cfg.rotate_degrees:
            src = row.mul_(w + 2).add_(col).add_(first[:, None, None])
        else:
            src = (row * (w + 2) + first[:, None])[:, :, None] + col[:, None, :]
        bordered = images.new_zeros(n, h + 2, w + 2, c)
        bordered[:, 1:-1, 1:-1] = images
        x = bordered.view(-1, c).index_select(0, src.view(-1)).view(n, h, w, c)
    if cfg.cutout:
        k = cfg.cutout
        cy, cx = (r_cy * h).long(), (r_cx * w).long()
        ys = torch.arange(h, device=dev)[None, :] - cy[:, None]
        xs = torch.arange(w, device=dev)[None, :] - cx[:, None]
        inside = ((ys >= -(k // 2)) & (ys < k - k // 2))[:, :, None] & ((xs >= -(k // 2)) & (xs < k - k // 2))[:, None, :]
        x = x.masked_fill(inside[..., None], 0)
    if cfg.jitter:
        x = jitter(x, torch.rand((3, n), generator=gen, device=gen.device).to(dev), cfg.jitter)
    return x


class _Split:
    """One split's arrays: numpy (memory-mapped when possible) on CPU, or one tensor on a device."""

    def __init__(self, arrays: snapshot.SplitArrays, device: torch.device, resident: bool):
        self.labels = torch.from_numpy(np.asarray(arrays.labels, np.int64))
        self.weights = torch.from_numpy(np.asarray(arrays.weights, np.float32))
        self.ids = arrays.ids
        self.device = device
        self._np = arrays.images
        # row offsets of the split's shards (one block for a single array): shard-group shuffling reads them
        self.bounds = (arrays.images.offsets if isinstance(arrays.images, snapshot.ShardedImages)
                       else np.array([0, len(self.labels)], np.int64))
        # a copy (torch.tensor), as from_numpy warns that a read-only memory map is not writable
        self._dev = torch.tensor(np.ascontiguousarray(arrays.images), device=device) if resident else None

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        if self._dev is not None:
            return self._dev[idx.to(self.device)]
        return torch.from_numpy(snapshot.take_rows(self._np, idx.numpy())).to(self.device, non_blocking=True)


class TrainLoader:
    """Shuffled, augmented training batches of one rank: yields ``(x, y, w)`` on ``device``."""

    def __init__(self, split: _Split, mean: torch.Tensor, std: torch.Tensor, *, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, augment_cfg: AugmentParams | None = None,
                 sampling_weights: torch.Tensor | None = None, shard_group: int = 0):
        self.split, self.mean, self.std = split, mean.to(split.device), std.to(split.device)
        self.shard_group = shard_group
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.augment_cfg = augment_cfg or AugmentParams()
        self.sampling_weights = sampling_weights
        self.per_rank = math.ceil(len(split) / world_size)
        self.epoch, self.start_step = 0, 0
        gen_device = split.device if split._dev is not None else torch.device("cpu")
        self.generator = torch.Generator(device=gen_device)
        self.generator.manual_seed(seed * 1_000_003 + 7919 * (rank + 1))
        # alternating flip (airbench): a fixed random half of the images is flipped in even epochs, the other
        # half in odd ones, so every image is seen both ways every two epochs; the same on every rank
        self.flip_parity = None
        if self.augment_cfg.flip and self.augment_cfg.alternate_flip:
            self.flip_parity = torch.randint(0, 2, (len(split),), generator=torch.Generator().manual_seed(seed + 4242),
                                             dtype=torch.bool)

    def __len__(self) -> int:
        """Batches per epoch (every rank the same); a partial last batch is dropped if a full one exists."""
        return max(self.per_rank // self.batch_size, 1 if self.per_rank >= 2 else 0)

    @property
    def images_per_step(self) -> int:
        """Images one optimiser step consumes across all ranks."""
        return min(self.batch_size, self.per_rank) * self.world_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch's global order; ``start_step`` skips batches already trained (resume)."""
        self.epoch, self.start_step = epoch, start_step

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch``: disjoint from other ranks, same length on each."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.split)
        if self.shard_group:
            order = self.shard_order(g)
            pad = self.per_rank * self.world_size - n
            order = torch.cat([order, order[:pad]]) if pad else order
            return order[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
        if self.sampling_weights is not None:
            order = torch.multinomial(self.sampling_weights, n, replacement=True, generator=g)
        else:
            order = torch.randperm(n, generator=g)
        pad = self.per_rank * self.world_size - n
        if pad:
            order = torch.cat([order, order[:pad]])
        return order[self.rank::self.world_size]

    def shard_order(self, g: torch.Generator) -> torch.Tensor:
        """Every row once, shard-local: the shards in a random order, taken ``shard_group`` at a time, each
        group's rows shuffled together. Ranks take contiguous blocks of it, so a rank reads its share of the
        shards, a group at a time (each shard once an epoch with a cache of ``shard_group`` shards)."""
        bounds = torch.from_numpy(np.asarray(self.split.bounds, np.int64))
        shards = torch.randperm(len(bounds) - 1, generator=g)
        parts = []
        for i in range(0, len(shards), self.shard_group):
            rows = torch.cat([torch.arange(int(bounds[k]), int(bounds[k + 1])) for k in shards[i:i + self.shard_group]])
            parts.append(rows[torch.randperm(len(rows), generator=g)])
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu() if self.generator.device.type == "cpu" else state["generator"])

    def __iter__(self):
        idx = self.epoch_indices(self.epoch)
        bs = min(self.batch_size, self.per_rank)
        for step in range(self.start_step, len(self)):
            batch = idx[step * bs:(step + 1) * bs].sort().values
            flips = self.flip_parity[batch] ^ bool(self.epoch % 2) if self.flip_parity is not None else None
            x = normalize(augment(self.split.images(batch), self.generator, self.augment_cfg, flips),
                          self.mean, self.std)
            if self.epoch < (self.augment_cfg.low_res_epochs or 0):
                x = low_res(x, self.augment_cfg.low_res or 0)
            yield x, self.split.labels[batch].to(self.split.device), self.split.weights[batch].to(self.split.device)
        self.start_step = 0


class EvalLoader:
    """Un-augmented batches ``(x, y)`` of one rank's contiguous block of a split, in order."""

    def __init__(self, split: _Split, mean: torch.Tensor, std: torch.Tensor, *, batch_size: int,
                 rank: int = 0, world_size: int = 1):
        self.split, self.mean, self.std = split, mean.to(split.device), std.to(split.device)
        self.batch_size = batch_size
        n = len(split)
        self.start, self.stop = rank * n // world_size, (rank + 1) * n // world_size

    def __len__(self) -> int:
        return math.ceil((self.stop - self.start) / self.batch_size)

    def __iter__(self):
        for lo in range(self.start, self.stop, self.batch_size):
            idx = torch.arange(lo, min(lo + self.batch_size, self.stop))
            x = normalize(self.split.images(idx), self.mean, self.std)
            yield x, self.split.labels[idx].to(self.split.device)


@dataclass
class Data:
    folder: Path
    manifest: dict
    classes: list[str]
    dataset_hash: str
    mean: torch.Tensor
    std: torch.Tensor
    train: TrainLoader | None
    val: EvalLoader | None
    test: EvalLoader | None
    class_weights: torch.Tensor | None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``n / (k * count_c)`` (1.0 for a balanced set, 0 for absent classes)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    return torch.where(counts > 0, len(labels) / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))


def memory_bytes() -> int:
    """Physical memory of this machine (bytes)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def auto_shuffle(folder: Path | str, manifest: dict, final_fit: bool = False) -> str:
    """``shuffle: auto``: shard groups for a published snapshot (fetched shard by shard) and for a train
    split larger than half this machine's memory (a global shuffle would read it at random from disk,
    a page per image); one global permutation otherwise."""
    if snapshot_store.is_url(folder):
        return "shards"
    splits = manifest.get("splits", {})
    rows = sum(splits.get(s, {}).get("rows", 0) for s in (("train", "val") if final_fit else ("train",)))
    return "shards" if rows * math.prod(manifest.get("image_shape") or [0]) > memory_bytes() // 2 else "global"


def load_data(folder: Path | str, spec: LoaderSpec | None = None, *, rank: int = 0, world_size: int = 1,
              device: torch.device | str = "cpu", splits: tuple[str, ...] = snapshot.SPLITS) -> Data:
    """Open a snapshot folder and build this rank's loaders for the ``splits`` it has."""
    spec = spec or LoaderSpec()
    if snapshot_store.is_url(folder):  # published: files checked against the manifest as they are fetched
        remote = snapshot_store.RemoteSnapshot(folder, spec.cache_shards)
        manifest, load_split = remote.manifest, remote.load_split
    else:
        folder = Path(folder)
        manifest = snapshot.read_manifest(folder)
        snapshot.verify_snapshot(folder)  # train on the bytes the manifest's content_hash names, nothing else
        load_split = functools.partial(snapshot.load_split, folder)
    shuffle = spec.shuffle if spec.shuffle != "auto" else auto_shuffle(folder, manifest, spec.final_fit)
    classes = list(manifest["classes"])
    shape = manifest.get("image_shape")
    if not shape or len(shape) != 3 or shape[2] != 3:
        raise InputError(f"{folder}/{snapshot.MANIFEST}: image_shape must be [H, W, 3], got {shape}")
    device = torch.device(device)
    resident = device.type != "cpu" and spec.gpu_resident
    arrays = {s: load_split(s) for s in splits if s in manifest["splits"]}
    if spec.final_fit and "train" in arrays and "val" in manifest["splits"]:
        val = arrays.pop("val", None) or load_split("val")
        arrays["train"] = snapshot.concat_splits(arrays["train"], val)
    stats = (manifest.get("mean"), manifest.get("std"))
    if not all(stats):  # an older manifest without stats: compute them from the train split
        stats = snapshot.channel_stats(load_split("train").images)
    mean = torch.tensor(stats[0], dtype=torch.float32)
    std = torch.tensor(stats[1], dtype=torch.float32).clamp_min(1e-6)
    loaded = {s: _Split(a, device, resident) for s, a in arrays.items()}
    train_loader = weights = None
    if "train" in loaded:
        tr = loaded["train"]
        if len(tr) < 2:
            raise InputError(f"{folder}: the train split has {len(tr)} images; training needs at least 2")
        if int(tr.labels.max()) >= len(classes) or int(tr.labels.min()) < 0:
            raise InputError(f"{folder}: train labels outside 0..{len(classes) - 1} (manifest has {len(classes)} classes)")
        weights = class_weights(tr.labels, len(classes))
        sampling = None
        if spec.balance == "sampler" and shuffle == "shards":
            raise InputError("train.balance: sampler draws from the whole train split at once; with train.shuffle: "
                             "shards (a snapshot in object storage) use balance: sample_weights or class_weights")
        if spec.balance == "sampler":
            sampling = tr.weights if bool((tr.weights != 1).any()) else weights[tr.labels]
            if not bool((sampling > 0).any()):
                raise InputError(f"{folder}: every train sample weight is 0; cannot sample")
        if spec.balance != "sample_weights":
            tr.weights = torch.ones_like(tr.weights)
        train_loader = TrainLoader(tr, mean, std, batch_size=spec.batch_size, seed=spec.seed, rank=rank,
                                   world_size=world_size, augment_cfg=spec.augment, sampling_weights=sampling,
                                   shard_group=spec.cache_shards if shuffle == "shards" else 0)
    evals = {s: EvalLoader(loaded[s], mean, std, batch_size=spec.eval_batch_size, rank=rank, world_size=world_size)
             for s in ("val", "test") if s in loaded}
    return Data(folder, manifest, classes, manifest.get("content_hash", ""), mean, std, train_loader,
                evals.get("val"), evals.get("test"), weights if spec.balance == "class_weights" else None)
