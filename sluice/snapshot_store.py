"""Snapshots in object storage: publish a snapshot folder to a URL, and train from it shard by shard.

A snapshot is a set of immutable shard files plus ``manifest.json`` (:mod:`sluice.snapshot`).
``sluice dataset publish URL`` copies it to any location ``pyarrow.fs`` opens (``s3://bucket/prefix``,
``file:///abs/path``): the shards first, the manifest last with a ``files`` map (name -> bytes and
sha256), so a reader that finds a manifest finds every shard, and checks each file it reads against
it. Pointing ``train.snapshot`` (or ``--snapshot``) at the URL trains from there: each rank reads the
labels, weights and ids of a split whole (a few bytes a row) and the image shards only when a batch
needs them, keeping at most ``train.cache_shards`` in memory (``train.shuffle: shards`` orders every
epoch so that a rank works through a few shards at a time), so no node needs the snapshot on disk.

S3 credentials, region and endpoint come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``), as for any AWS tool; an endpoint
over plain ``http://`` is refused unless ``AWS_ALLOW_HTTP=true`` (object_store's name, which the
lake's deltalake client reads too).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow.fs as pafs

from sluice.errors import ConfigError, InputError
from sluice import snapshot
from sluice.snapshot import MANIFEST, LazyShard, ShardCache, ShardedImages, SnapshotCorrupt, SplitArrays

DEFAULT_CACHE_SHARDS = 4
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a file of the snapshot's own folder (no "/", no "..")


def is_url(location) -> bool:
    """A snapshot location given as ``scheme://...`` (read through pyarrow.fs), not a local folder."""
    return isinstance(location, str) and "://" in location


def location(value: Path | str) -> Path | str:
    """A snapshot location as given: a URL stays a string, anything else is a local folder
    (``Path("s3://b/k")`` would collapse the ``//``)."""
    return value if is_url(value) else Path(value)


# Location-aware reading: a local folder through sluice.snapshot, a URL through RemoteSnapshot.
def read_manifest(where: Path | str) -> dict:
    return RemoteSnapshot(where).manifest if is_url(where) else snapshot.read_manifest(where)


def load_split(where: Path | str, split: str, shards: list[int] | None = None, mmap: bool = True) -> SplitArrays:
    return RemoteSnapshot(where).load_split(split, shards) if is_url(where) else \
        snapshot.load_split(where, split, shards, mmap)


def verify_snapshot(where: Path | str) -> str:
    """The content hash, checked: a local folder in full (:func:`sluice.snapshot.verify_snapshot`); a
    published snapshot file by file as it is read, against its manifest's sha256s (here only the manifest)."""
    return RemoteSnapshot(where).manifest.get("content_hash", "") if is_url(where) else snapshot.verify_snapshot(where)


def filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and base path of a snapshot URL."""
    scheme = urlparse(url).scheme
    if scheme in ("s3", "s3a"):
        kwargs = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            parsed = urlparse(endpoint)
            if parsed.scheme == "http" and os.environ.get("AWS_ALLOW_HTTP", "").strip().lower() != "true":
                raise ConfigError(f"snapshot storage endpoint {endpoint} is plain http:// (data and credentials "
                                  "unencrypted in transit); use https://, or set AWS_ALLOW_HTTP=true for a trusted local server")
            kwargs = {"endpoint_override": parsed.netloc, "scheme": parsed.scheme}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return pafs.S3FileSystem(region=region, **kwargs), url.split("://", 1)[1].rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(url)
    except (ValueError, OSError) as exc:
        raise InputError(f"{url}: not a location a snapshot can be read from or published to ({exc})") from None
    return fs, path.rstrip("/")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_manifest(url: str, manifest) -> None:
    """What a reader relies on, checked before anything is fetched: one line naming the problem."""
    where = f"{url}/{MANIFEST}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise InputError(f"{where}: lists no per-file hashes (a folder copied by hand?); publish it "
                         "with `sluice dataset publish URL`")
    bad = [n for n in manifest["files"] if not SAFE_NAME.fullmatch(str(n))]
    if bad:  # a manifest names files inside its own prefix only, never ../ or another folder
        raise InputError(f"{where}: file name {bad[0]!r} is not a snapshot file name")
    shape = manifest.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise InputError(f"{where}: image_shape must be [H, W, 3], got {shape!r}")
    splits = manifest.get("splits")
    shards_ok = isinstance(splits, dict) and all(
        isinstance(v, dict) and isinstance(v.get("shards"), list) and all(
            isinstance(e, dict) and isinstance(e.get("stem"), str) and isinstance(e.get("rows"), int) and e["rows"] >= 0
            for e in v["shards"]) for v in splits.values())
    if not shards_ok:
        raise InputError(f"{where}: splits must map each split to its shards ({{stem, rows}} each)")


class RemoteSnapshot:
    """A published snapshot read through pyarrow.fs: its manifest, and splits whose shards are fetched on use."""

    def __init__(self, url: str, cache_shards: int = DEFAULT_CACHE_SHARDS):
        self.url = url
        self.fs, self.base = filesystem(url)
        try:
            self.manifest = json.loads(self._read(MANIFEST))
        except (OSError, ValueError) as exc:
            raise InputError(f"{url}: no readable snapshot manifest ({str(exc).splitlines()[0]}); publish one "
                             "with `sluice dataset publish URL`") from None
        _check_manifest(url, self.manifest)
        self.cache = ShardCache(cache_shards)

    def _read(self, name: str) -> bytes:
        with self.fs.open_input_stream(f"{self.base}/{name}") as fh:
            return fh.read()

    def read_verified(self, name: str) -> bytes:
        """A file's bytes, checked against the manifest's sha256 (SnapshotCorrupt, exit 4, if they differ)."""
        expected = (self.manifest["files"].get(name) or {}).get("sha256")
        if expected is None:
            raise SnapshotCorrupt(f"{self.url}: {name} is not listed in the manifest's files")
        try:
            data = self._read(name)
        except OSError as exc:
            raise SnapshotCorrupt(f"{self.url}/{name}: cannot be read ({str(exc).splitlines()[0]})") from None
        if _sha256(data) != expected:
            raise SnapshotCorrupt(f"{self.url}/{name}: bytes hash to {_sha256(data)[:16]}, the manifest says "
                                  f"{expected[:16]}; publish the snapshot again")
        return data

    def _array(self, name: str) -> np.ndarray:
        """A ``.npy`` file as a read-only array over the fetched bytes (no second copy of a shard)."""
        data = self.read_verified(name)
        head = io.BytesIO(data)
        version = np.lib.format.read_magic(head)
        if version not in ((1, 0), (2, 0)):  # 3.0 (utf-8 field names) never holds pixels: plain load
            return np.load(io.BytesIO(data))
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(head)
        if fortran or dtype.hasobject:
            raise SnapshotCorrupt(f"{self.url}/{name}: not a plain C-ordered array")
        return np.frombuffer(data, dtype, count=int(np.prod(shape)), offset=head.tell()).reshape(shape)

    def load_split(self, split: str, shards: list[int] | None = None) -> SplitArrays:
        if split not in self.manifest["splits"]:
            raise InputError(f"{self.url}: snapshot has no '{split}' split (has: {', '.join(self.manifest['splits'])})")
        entries = self.manifest["splits"][split]["shards"]
        chosen = [entries[i] for i in shards] if shards is not None else entries
        shape = tuple(self.manifest["image_shape"])
        parts = [LazyShard(e["rows"], e["stem"], lambda name=f"{e['stem']}.images.npy": self._array(name), self.cache)
                 for e in chosen]
        labels = [self._array(f"{e['stem']}.labels.npy") for e in chosen]
        weights = [self._array(f"{e['stem']}.weights.npy") for e in chosen]
        ids = [i for e in chosen for i in self.read_verified(f"{e['stem']}.ids.txt").decode().split()]
        return SplitArrays(ShardedImages(parts, shape),
                           np.concatenate(labels) if labels else np.zeros(0, np.int64),
                           np.concatenate(weights) if weights else np.zeros(0, np.float32), ids)


def publish(folder: Path | str, url: str, progress=None) -> dict:
    """Copy a local snapshot folder to ``url`` (checked against its content_hash first); returns the
    published manifest. Shards go first and the manifest last, so readers never see a partial snapshot
    under a manifest; publishing again over an older snapshot replaces its manifest last too."""
    folder = Path(folder)
    snapshot.verify_snapshot(folder)
    manifest = snapshot.read_manifest(folder)
    fs, base = filesystem(url)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    files = {}
    try:
        fs.create_dir(base, recursive=True)
        for i, name in enumerate(names):
            digest, size = hashlib.sha256(), 0
            with (folder / name).open("rb") as src, fs.open_output_stream(f"{base}/{name}") as out:
                while block := src.read(8 << 20):  # a shard can be gigabytes: streamed, hashed on the way
                    digest.update(block)
                    size += len(block)
                    out.write(block)
            files[name] = {"bytes": size, "sha256": digest.hexdigest()}
            if progress:
                progress(i + 1, len(names))
        with fs.open_output_stream(f"{base}/{MANIFEST}") as out:
            out.write((json.dumps({**manifest, "files": files}, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise InputError(f"{url}: cannot publish there ({str(exc).splitlines()[0]})") from None
    return {**manifest, "files": files}
