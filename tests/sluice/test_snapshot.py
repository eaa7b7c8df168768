"""Snapshot verification before training: the full check, the cached fast path, and corrupted shards."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sluice.snapshot import SnapshotCorrupt, SplitArrays, verify_snapshot, write_snapshot


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
