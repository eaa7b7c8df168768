"""Snapshot verification before training, the cached fast path, corrupted shards, and reading split shards mapped."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sluice.snapshot import (ShardedImages, SnapshotCorrupt, SplitArrays, concat_splits, load_split, take_rows,
                            verify_snapshot, write_snapshot)


@pytest.fixture
def snap(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    n = 40
    split = SplitArrays(rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, n),
                        np.ones(n, np.float32), [f"id{i}" for i in range(n)])
    manifest = write_snapshot(tmp_path / "snap", {"train": split}, ["a", "b"], shard_rows=16)
    return tmp_path / "snap", manifest


def _flip(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_good_snapshot_verifies_and_is_cached(snap, tmp_path):
    folder, manifest = snap
    files = sorted(p.name for p in folder.iterdir())
    assert verify_snapshot(folder) == manifest["content_hash"]
    assert len(list((tmp_path / "cache/sluice/verified").glob("*.json"))) == 1
    assert verify_snapshot(folder) == manifest["content_hash"]  # fast path: nothing changed
    assert sorted(p.name for p in folder.iterdir()) == files  # the cache lives outside the DVC-tracked folder


def test_a_flipped_bit_is_refused_naming_the_shard(snap):
    folder, _ = snap
    verify_snapshot(folder)
    victim = folder / "train-00001.images.npy"
    _flip(victim)
    with pytest.raises(SnapshotCorrupt, match=r"changed since the last good check: train-00001.images.npy\); restore"):
        verify_snapshot(folder)


def test_a_flipped_bit_is_refused_without_a_cache(snap):
    folder, _ = snap
    _flip(folder / "train-00000.labels.npy", 140)
    with pytest.raises(SnapshotCorrupt, match="hash to .* but the manifest says"):
        verify_snapshot(folder)


def test_a_restored_file_with_the_same_size_is_rechecked(snap):
    """`dvc checkout` writes a new file: same size, new mtime -> the fast path does not apply."""
    folder, _ = snap
    verify_snapshot(folder)
    victim = folder / "train-00002.weights.npy"
    stat = victim.stat()
    _flip(victim, 130)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(SnapshotCorrupt):
        verify_snapshot(folder)


def test_training_refuses_a_corrupted_snapshot(snap):
    from train.data import load_data

    folder, _ = snap
    _flip(folder / "train-00000.images.npy")
    with pytest.raises(SnapshotCorrupt):
        load_data(folder, splits=("train",))


def test_a_split_of_several_shards_stays_mapped_and_reads_the_same_rows(snap):
    folder, _ = snap
    whole = load_split(folder, "train", mmap=False)
    mapped = load_split(folder, "train")
    assert isinstance(mapped.images, ShardedImages)  # 40 rows in shards of 16: three maps, no concatenation
    assert all(isinstance(p, np.memmap) for p in mapped.images.parts)
    assert mapped.images.shape == whole.images.shape and len(mapped.images) == 40
    rows = np.array([39, 0, 16, 15, 17, 31, 32, 5, 5])  # across every shard boundary, unordered, repeated
    np.testing.assert_array_equal(take_rows(mapped.images, rows), whole.images[rows])
    np.testing.assert_array_equal(mapped.images[10:35:3], whole.images[10:35:3])
    np.testing.assert_array_equal(mapped.images[-1], whole.images[-1])
    np.testing.assert_array_equal(np.asarray(mapped.images), whole.images)
    with pytest.raises(IndexError):
        take_rows(mapped.images, [40])


def test_a_final_fit_joins_train_and_val_without_copying_the_pixels(tmp_path):
    rng = np.random.default_rng(1)

    def split(n, tag):
        return SplitArrays(rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8), rng.integers(0, 2, n),
                           np.ones(n, np.float32), [f"{tag}{i}" for i in range(n)])
    write_snapshot(tmp_path / "s", {"train": split(20, "t"), "val": split(7, "v")}, ["a", "b"], shard_rows=8)
    tr, va = load_split(tmp_path / "s", "train"), load_split(tmp_path / "s", "val")
    both = concat_splits(tr, va)
    assert isinstance(both.images, ShardedImages) and len(both.images.parts) == 3 + 1
    assert both.ids == tr.ids + va.ids
    np.testing.assert_array_equal(np.asarray(both.images), np.concatenate([np.asarray(tr.images), np.asarray(va.images)]))
    np.testing.assert_array_equal(both.labels, np.concatenate([tr.labels, va.labels]))
