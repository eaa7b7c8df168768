"""Snapshots in object storage: publish, read shards on demand checked against the manifest, train from S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sluice.errors import ConfigError, InputError
from sluice.snapshot import SnapshotCorrupt, SplitArrays, write_snapshot
from sluice.snapshot_store import RemoteSnapshot, filesystem, load_split, publish, read_manifest, verify_snapshot


@pytest.fixture
def local_snap(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)

    def split(n, tag):
        return SplitArrays(rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, n),
                           np.ones(n, np.float32), [f"{tag}{i}" for i in range(n)])
    write_snapshot(tmp_path / "snap", {"train": split(50, "t"), "val": split(12, "v")}, ["a", "b", "c"],
                   {"mean": [0.5] * 3, "std": [0.25] * 3}, shard_rows=16)
    return tmp_path / "snap"


def test_a_published_snapshot_reads_the_same_rows_fetching_shards_only_when_used(local_snap, tmp_path):
    url = (tmp_path / "remote" / "v1").as_uri()
    manifest = publish(local_snap, url)
    remote_dir = tmp_path / "remote" / "v1"
    assert sorted(p.name for p in remote_dir.iterdir()) == sorted(p.name for p in local_snap.iterdir())
    assert manifest["content_hash"] == read_manifest(local_snap)["content_hash"] == verify_snapshot(url)
    assert set(manifest["files"]) == {p.name for p in local_snap.iterdir() if p.name != "manifest.json"}

    remote = RemoteSnapshot(url, cache_shards=2)
    split, local = remote.load_split("train"), load_split(local_snap, "train")
    assert remote.cache.fetches == 0  # labels, weights and ids are read; no image shard yet
    np.testing.assert_array_equal(split.labels, local.labels)
    assert split.ids == local.ids and split.images.shape == local.images.shape
    np.testing.assert_array_equal(split.images.take([3, 40]), np.asarray(local.images)[[3, 40]])
    assert remote.cache.fetches == 2  # rows 3 and 40 live in shards 0 and 2
    np.testing.assert_array_equal(np.asarray(split.images), np.asarray(local.images))
    assert remote.cache.most_held <= 2  # 4 shards read through a cache of 2
    np.testing.assert_array_equal(load_split(url, "val").images[5], load_split(local_snap, "val").images[5])


def test_a_changed_shard_in_the_store_is_refused_when_read(local_snap, tmp_path):
    url = (tmp_path / "remote").as_uri()
    publish(local_snap, url)
    victim = tmp_path / "remote" / "train-00001.images.npy"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    split = RemoteSnapshot(url).load_split("train")
    split.images.take([0])  # shard 0 is intact
    with pytest.raises(SnapshotCorrupt, match=r"train-00001.images.npy: bytes hash to .* the manifest says"):
        split.images.take([16])


def test_a_folder_copied_by_hand_or_missing_is_a_one_line_error(local_snap, tmp_path):
    copy = tmp_path / "copied"
    copy.mkdir()
    for p in local_snap.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    with pytest.raises(InputError, match="lists no per-file hashes"):
        RemoteSnapshot(copy.as_uri())
    with pytest.raises(InputError, match="no readable snapshot manifest"):
        RemoteSnapshot((tmp_path / "nothing").as_uri())


def test_plain_http_object_storage_is_refused_unless_allowed(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    with pytest.raises(ConfigError, match="plain http"):
        filesystem("s3://bucket/snap")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    _, path = filesystem("s3://bucket/snap/")
    assert path == "bucket/snap"


def test_publish_to_s3_and_train_batches_from_it(local_snap, s3, tmp_path):
    from train.data import LoaderSpec, load_data

    out = subprocess.run([sys.executable, "-m", "sluice.cli", "dataset", "publish", "s3://snapshots/demo/v1",
                          "--snapshot", str(local_snap)], capture_output=True, text=True, env={**os.environ, **s3},
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "published" in out.stdout and "content_hash" in out.stdout
    url = "s3://snapshots/demo/v1"
    spec = LoaderSpec(batch_size=8, cache_shards=1)
    ranks = [load_data(url, spec, rank=r, world_size=2, splits=("train", "val")) for r in range(2)]
    assert ranks[0].dataset_hash == json.loads((local_snap / "manifest.json").read_text())["content_hash"]
    seen = []
    for data in ranks:  # shuffle auto -> shards: each rank reads its own shards, one at a time, each once
        idx = data.train.epoch_indices(0)
        seen += idx.tolist()
        assert sum(len(y) for _, y, _ in data.train) == len(data.train) * 8
        cache = data.train.split._np.parts[0].cache
        assert cache.most_held == 1 and cache.fetches == len(set(np.searchsorted([16, 32, 48], idx, 'right')))
    assert set(seen) == set(range(50))
    local = load_data(local_snap, LoaderSpec(batch_size=8, cache_shards=1, shuffle="shards"), splits=("train",))
    # the same order as one process on a local copy, cut into the ranks' contiguous blocks
    assert local.train.epoch_indices(3).tolist() == sum((d.train.epoch_indices(3).tolist() for d in ranks), [])


def test_a_url_stays_a_url_where_a_folder_becomes_a_path(tmp_path):
    from pathlib import Path

    from sluice.snapshot_store import location

    assert location("s3://bucket/snap") == "s3://bucket/snap"  # Path() would collapse it to s3:/bucket/snap
    assert location("data/dataset") == Path("data/dataset") and location(tmp_path) == tmp_path


def test_a_manifest_naming_files_outside_its_prefix_is_refused(local_snap, tmp_path):
    url = (tmp_path / "remote").as_uri()
    publish(local_snap, url)
    path = tmp_path / "remote" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["../../etc/passwd"] = {"bytes": 1, "sha256": "0" * 64}
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"file name '../../etc/passwd' is not a snapshot file name"):
        RemoteSnapshot(url)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(image_shape="32x32"), "image_shape must be"),
    (lambda m: m["splits"]["train"].update(shards=[{"stem": 3}]), "splits must map each split"),
    (lambda m: m.clear(), "lists no per-file hashes"),
])
def test_a_malformed_published_manifest_is_one_line_not_a_traceback(local_snap, tmp_path, change, message):
    url = (tmp_path / "remote").as_uri()
    publish(local_snap, url)
    path = tmp_path / "remote" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=message):
        RemoteSnapshot(url)
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="lists no per-file hashes"):
        RemoteSnapshot(url)
