"""The exported training snapshot: the one format the export stage writes and the trainer reads.

Layout of a snapshot folder (``data/dataset/`` by default, a DVC output)::

    manifest.json                  classes, image shape, splits -> shards and counts, mean/std (train
                                   only, on 0..1 pixels), table versions, params, content_hash
    <split>-<k:05d>.images.npy     uint8 (n, H, W, 3), memory-mappable with np.load(mmap_mode="r")
    <split>-<k:05d>.labels.npy     int64 (n,) class indices into manifest["classes"]
    <split>-<k:05d>.weights.npy    float32 (n,) sample weights (1.0 when not balanced by weight)
    <split>-<k:05d>.ids.txt        image_id per row, one per line

Splits are ``train``, ``val``, ``test``. Shards let DDP ranks read disjoint files. ``content_hash``
is a sha256 over every shard file's name and bytes in sorted order (not over manifest.json), so it
can be checked independently of DVC.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.errors import InputError, SluiceError

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


@dataclass
class SplitArrays:
    images: np.ndarray  # uint8 (n, H, W, 3)
    labels: np.ndarray  # int64 (n,)
    weights: np.ndarray  # float32 (n,)
    ids: list[str]


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NHWC images on the 0..1 scale, in bounded memory."""
    total = np.zeros(3, np.float64)
    total_sq = np.zeros(3, np.float64)
    count = 0
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk], np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        total_sq += (block ** 2).sum(axis=(0, 1, 2))
        count += block.shape[0] * block.shape[1] * block.shape[2]
    if count == 0:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return mean.round(6).tolist(), std.round(6).tolist()


def content_hash(folder: Path | str) -> str:
    """sha256 over the snapshot's shard files (names and bytes), independent of DVC."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST):
        h.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def shard_bounds(rows: int, shard_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each shard of a split of ``rows`` rows (one empty shard for an empty split)."""
    return [(start, min(start + shard_rows, rows)) for start in range(0, max(rows, 1), shard_rows)]


def open_image_shards(folder: Path, split: str, rows: int, shape: tuple[int, ...], shard_rows: int) -> list[np.ndarray]:
    """Writable memory maps of a split's ``<split>-<k>.images.npy`` files in ``folder``, laid out as
    :func:`write_snapshot` lays them out, for a writer that fills rows in any order (the export stage
    reads pixels in the table's order, not the snapshot's) and then hands ``folder`` to it as
    ``images_in``: the pixels are written once, not staged and copied."""
    maps = []
    for k, (start, stop) in enumerate(shard_bounds(rows, shard_rows)):
        path = folder / f"{split}-{k:05d}.images.npy"
        if stop > start:
            maps.append(np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(stop - start, *shape)))
        else:  # an empty shard cannot be memory-mapped
            np.save(path, np.zeros((0, *shape), np.uint8))
            maps.append(np.zeros((0, *shape), np.uint8))
    return maps


def write_snapshot(folder: Path | str, splits: dict[str, SplitArrays], classes: list[str],
                   manifest_extra: dict | None = None, shard_rows: int = 8192, images_in: Path | None = None) -> dict:
    """Write a snapshot folder from scratch and return its manifest.

    ``images_in``: a folder already holding every shard's ``.images.npy`` (:func:`open_image_shards`),
    moved into the snapshot instead of written from ``splits``' images (the same bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    manifest: dict = {"format": "sluice-snapshot/1", "classes": list(classes), "splits": {}}
    shape = None
    for split in SPLITS:
        arrays = splits.get(split)
        if arrays is None:
            continue
        n = len(arrays.labels)
        if not (len(arrays.images) == n == len(arrays.weights) == len(arrays.ids)):
            raise ValueError(f"split {split}: images, labels, weights and ids differ in length")
        if arrays.images.dtype != np.uint8 or arrays.images.ndim != 4 or arrays.images.shape[-1] != 3:
            raise ValueError(f"split {split}: images must be uint8 (n, H, W, 3), got {arrays.images.dtype} {arrays.images.shape}")
        shape = list(arrays.images.shape[1:])
        shards = []
        for k, (start, stop) in enumerate(shard_bounds(n, shard_rows)):
            stem = f"{split}-{k:05d}"
            if images_in is not None:
                os.replace(Path(images_in) / f"{stem}.images.npy", folder / f"{stem}.images.npy")
            else:
                np.save(folder / f"{stem}.images.npy", np.ascontiguousarray(arrays.images[start:stop]))
            np.save(folder / f"{stem}.labels.npy", np.asarray(arrays.labels[start:stop], np.int64))
            np.save(folder / f"{stem}.weights.npy", np.asarray(arrays.weights[start:stop], np.float32))
            (folder / f"{stem}.ids.txt").write_text("".join(f"{i}\n" for i in arrays.ids[start:stop]))
            shards.append({"stem": stem, "rows": stop - start})
        counts = np.bincount(np.asarray(arrays.labels, np.int64), minlength=len(classes)).tolist() if n else [0] * len(classes)
        manifest["splits"][split] = {"rows": n, "shards": shards, "class_counts": dict(zip(classes, counts))}
    manifest["image_shape"] = shape
    manifest.update(manifest_extra or {})
    manifest["content_hash"] = content_hash(folder)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / MANIFEST)
    return manifest


def read_manifest(folder: Path | str) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: no snapshot manifest (run the export stage, or `sluice dataset checkout`)")
    return json.loads(path.read_text())


class ShardedImages:
    """A split's image shards as one read-only uint8 (n, H, W, 3) array-like, never concatenated.

    Each shard is an array (memory-mapped: opening a split costs no memory whatever its size; 1M
    images are 3 GB at 32 px, 150 GB at 224 px) or a :class:`LazyShard` fetched on first use (a
    snapshot in object storage, :mod:`sluice.snapshot_store`). Rows are gathered only when asked for,
    by :meth:`take` (an index array: one ``np.take`` per shard it touches), slicing or ``images[i]``;
    ``np.asarray`` copies every row into one array (what callers that need the whole split still get).
    """

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, parts: list, shape: tuple[int, ...]):
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0, *(len(p) for p in self.parts)]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), *shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def _held(self, k: int) -> bool:
        part = self.parts[k]
        return not isinstance(part, LazyShard) or part.key in part.cache.held

    def _part(self, k: int) -> np.ndarray:
        part = self.parts[k]
        return part.get() if isinstance(part, LazyShard) else part

    def take(self, rows) -> np.ndarray:
        """A new array of ``images[rows]`` (rows in any order, repeats allowed)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} images")
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        # sorted rows (a training batch is) give each shard a contiguous run of ``out``: gathered in place
        ordered = bool(np.all(shard[1:] >= shard[:-1]))
        # shards already in a fetch cache first: a batch that spans two shard groups then never evicts a
        # shard it still needs (each shard is fetched once an epoch by a rank that reads group by group)
        for k in sorted(np.unique(shard), key=lambda k: not self._held(int(k))):
            part = self._part(int(k))
            if ordered:
                lo, hi = np.searchsorted(shard, [k, k + 1])
                np.take(part, rows[lo:hi] - self.offsets[k], axis=0, out=out[lo:hi], mode="clip")  # checked above
            else:
                hit = np.flatnonzero(shard == k)
                out[hit] = np.take(part, rows[hit] - self.offsets[k], axis=0)
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            return self.take([i])[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(key)

    def __array__(self, dtype=None, copy=None):
        whole = self.take(np.arange(len(self)))
        return whole.astype(dtype, copy=False) if dtype is not None else whole


class LazyShard:
    """One shard's images, fetched by ``fetch()`` when first read and kept in ``cache`` (shared by the
    shards of a snapshot: at most its capacity of them in memory, least recently used dropped)."""

    def __init__(self, rows: int, key: str, fetch, cache: ShardCache):
        self.rows, self.key, self.fetch, self.cache = rows, key, fetch, cache

    def __len__(self) -> int:
        return self.rows

    def get(self) -> np.ndarray:
        return self.cache.get(self.key, self.fetch)


class ShardCache:
    """Least-recently-used shard arrays, at most ``capacity`` of them; counts fetches (for tests and logs)."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self.held: dict[str, np.ndarray] = {}
        self.fetches = 0
        self.most_held = 0

    def get(self, key: str, fetch) -> np.ndarray:
        if key in self.held:
            self.held[key] = self.held.pop(key)  # most recently used last
            return self.held[key]
        while len(self.held) >= self.capacity:
            self.held.pop(next(iter(self.held)))
        array = fetch()
        self.fetches += 1
        self.held[key] = array
        self.most_held = max(self.most_held, len(self.held))
        return array


def take_rows(images, rows) -> np.ndarray:
    """``images[rows]`` along the first axis for an ndarray (memory-mapped or not) or :class:`ShardedImages`."""
    if isinstance(images, ShardedImages):
        return images.take(rows)
    return np.take(images, np.asarray(rows), axis=0)


def concat_splits(a: SplitArrays, b: SplitArrays) -> SplitArrays:
    """Rows of ``a`` then ``b`` (e.g. train + val for a final fit); memory-mapped shards stay mapped."""
    def parts(images):
        return images.parts if isinstance(images, ShardedImages) else [images]
    if isinstance(a.images, np.memmap | ShardedImages) or isinstance(b.images, np.memmap | ShardedImages):
        images = ShardedImages([*parts(a.images), *parts(b.images)], a.images.shape[1:])
    else:
        images = np.concatenate([a.images, b.images])
    return SplitArrays(images, np.concatenate([a.labels, b.labels]), np.concatenate([a.weights, b.weights]),
                       [*a.ids, *b.ids])


def load_split(folder: Path | str, split: str, shards: list[int] | None = None, mmap: bool = True) -> SplitArrays:
    """Load one split (optionally only some shard indices, e.g. one DDP rank's) as arrays.

    With ``mmap`` the images stay memory-mapped: one shard as its ``np.memmap``, several as one
    :class:`ShardedImages` (no copy); without, they are read into one array. A published snapshot
    (a ``scheme://`` URL) is read by :func:`sluice.snapshot_store.load_split`.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if split not in manifest["splits"]:
        raise InputError(f"{folder}: snapshot has no '{split}' split (has: {', '.join(manifest['splits'])})")
    entries = manifest["splits"][split]["shards"]
    chosen = [entries[i] for i in shards] if shards is not None else entries
    mode = "r" if mmap else None
    parts = [(np.load(folder / f"{e['stem']}.images.npy", mmap_mode=mode),
              np.load(folder / f"{e['stem']}.labels.npy"),
              np.load(folder / f"{e['stem']}.weights.npy"),
              (folder / f"{e['stem']}.ids.txt").read_text().split()) for e in chosen]
    if len(parts) == 1:
        images, labels, weights, ids = parts[0]
    elif not parts:
        images = np.zeros((0, *manifest["image_shape"]), np.uint8)
        labels, weights, ids = np.zeros(0, np.int64), np.zeros(0, np.float32), []
    else:
        shape = tuple(manifest["image_shape"])
        images = ShardedImages([p[0] for p in parts], shape) if mmap else np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        weights = np.concatenate([p[2] for p in parts])
        ids = [i for p in parts for i in p[3]]
    return SplitArrays(images, labels, weights, ids)


def verify(folder: Path | str) -> tuple[bool, str, str]:
    """Recompute the content hash: (matches, expected, actual)."""
    manifest = read_manifest(folder)
    actual = content_hash(folder)
    return actual == manifest.get("content_hash"), manifest.get("content_hash", ""), actual


class SnapshotCorrupt(SluiceError):
    """A snapshot's shard files do not hash to its manifest's content_hash (exit 4, like a corrupt DVC cache)."""

    exit_code = 4


def verify_snapshot(folder: Path | str) -> str:
    """Check the snapshot against its manifest's ``content_hash`` before anything trains on it; return the hash.

    A full check reads every shard (:func:`content_hash`, about a second per GB here). When it passes,
    each file's (size, mtime, inode) is recorded outside the folder (``$XDG_CACHE_HOME/sluice/verified``;
    inside, it would change the DVC-tracked folder), and a later call that finds every file unchanged
    by those attributes skips the reading. Anything that rewrites a file (``dvc checkout``, a copy, a
    re-export) changes its mtime and forces a full check; a byte changed in place with the mtime
    forged back would pass the fast path. On a mismatch the record names the files that changed since
    the last good check.
    """
    folder = Path(folder).absolute()
    expected = read_manifest(folder).get("content_hash", "")
    stats = {p.name: [s.st_size, s.st_mtime_ns, s.st_ino]
             for p in folder.iterdir() if p.is_file() and p.name != MANIFEST for s in [p.stat()]}
    record = _verified_record(folder)
    if record.get("content_hash") == expected and record.get("files") == stats:
        return expected
    actual = content_hash(folder)
    if actual != expected:
        before = record.get("files") or {}
        changed = sorted(n for n in set(stats) | set(before) if before.get(n) != stats.get(n))
        hint = f" (changed since the last good check: {', '.join(changed)})" if before and changed else ""
        raise SnapshotCorrupt(f"{folder}: shard files hash to {actual[:16]}, but the manifest says {expected[:16]}{hint}; "
                              f"restore the snapshot (`sluice dataset checkout VERSION` or `dvc checkout`) or rebuild "
                              f"it (`dvc repro export`)")
    _write_verified_record(folder, {"content_hash": actual, "files": stats})
    return actual


def _verified_path(folder: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sluice" / "verified"
    return base / (hashlib.sha256(str(folder).encode()).hexdigest()[:32] + ".json")


def _verified_record(folder: Path) -> dict:
    try:
        return json.loads(_verified_path(folder).read_text())
    except (OSError, ValueError):
        return {}


def _write_verified_record(folder: Path, record: dict) -> None:
    """Atomically (DDP ranks verify at the same time); a cache that cannot be written only costs speed."""
    path = _verified_path(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        pass
