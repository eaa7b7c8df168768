"""Looking for erased data in files: the checks behind ``sluice erase --verify`` and the snapshot purge.

An erasure is recorded as hashes only (:mod:`sluice.erasure`): sha256 of each erased image id, of each
erased image's ``pixel_hash`` and of each selector value. So a scan never needs the erased values: it
hashes what it finds and compares. In every file it looks at

- every 64-hex token (an image id or pixel hash, wherever it is written: a Parquet cell, a Delta log
  commit's column statistics, a snapshot's ``ids.txt``, a JSON report) and every ``w-`` pseudonym;
- every binary value of a Parquet file: its sha256 is the image id when it is an image's bytes, the
  pixel hash when it is its normalised pixels;
- every image of a ``.npy`` shard (uint8 N x H x W x 3): its sha256 is the pixel hash;
- the whole file: a stored image file (a DVC-tracked source folder) hashes to its image id;
- every image embedded as a ``data:image/...;base64`` URI (the dataset page's thumbnails): its bytes
  and its decoded pixels;
- every whole string cell of a Parquet file, and every URL in other files, against the selector values.

Compressed or encrypted containers other than Parquet and ``.npy`` (zip, pickle, a model checkpoint) are
not looked into; see docs/privacy.md.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TOKEN = re.compile(rb"[0-9a-f]{64}|w-[0-9a-f]{20}")
URL = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\\]+")
DATA_URI = re.compile(rb"data:image/[a-z+.-]+;base64,([A-Za-z0-9+/=]+)")
PARQUET_MAGIC = b"PAR1"
NPY_MAGIC = b"\x93NUMPY"


def sha(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


@dataclass
class Targets:
    """What to look for, as sha256 hashes (of image ids, of pixel hashes, of selector values)."""

    ids: set[str] = field(default_factory=set)
    pixels: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # the names votes give erased images (a path, a file's item_id)

    def __bool__(self) -> bool:
        return bool(self.ids or self.pixels or self.values or self.names)

    def update(self, other: Targets) -> None:
        self.ids |= other.ids
        self.pixels |= other.pixels
        self.values |= other.values
        self.names |= other.names

    def names_item(self, item: str) -> bool:
        """Whether a vote's item (normalised, sluice/items.py) names an erased image: itself, or the tail of
        its path that the item index would resolve it by (``https://host/photos/cat/001.jpg`` -> ``cat/001.jpg``)."""
        return bool(self.names) and any(sha(form) in self.names for form in item_forms(item))

    def token(self, text: str) -> str | None:
        """What an id-like string is, if it is erased: 'image id', 'pixel hash' or 'erased value'."""
        h = sha(text)
        if h in self.ids:
            return "image id"
        if h in self.pixels:
            return "pixel hash"
        if h in self.values:
            return "erased value"
        if h in self.names:
            return "erased item name"
        return None

    def blob(self, data: bytes) -> str | None:
        """What a byte string is, if it is erased: an image's bytes or its normalised pixels."""
        digest = sha(data)
        if sha(digest) in self.ids:
            return "image bytes"
        if sha(digest) in self.pixels:
            return "image pixels"
        return None


def item_forms(item: str, depth: int = 4) -> list[str]:
    """``item`` and the last 1..``depth`` components of its path (scheme, host and query dropped)."""
    path = re.sub(r"[?#].*$", "", re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", item)).strip("/")
    parts = path.split("/")
    return list(dict.fromkeys([item, *("/".join(parts[-n:]) for n in range(1, min(depth, len(parts)) + 1))]))


@dataclass(frozen=True)
class Hit:
    where: str  # a path, or a DVC object named by its path
    what: str  # "image id", "image bytes", ...

    def line(self) -> str:
        return f"{self.where}: {self.what}"


def scan_bytes(data: bytes, targets: Targets) -> set[str]:
    """The kinds of erased data in one file's bytes (empty: none)."""
    found: set[str] = set()
    whole = targets.blob(data)
    if whole:
        found.add(f"{whole} (whole file)")
    if data.startswith(PARQUET_MAGIC) and data.endswith(PARQUET_MAGIC):
        found |= _parquet(data, targets)
    elif data.startswith(NPY_MAGIC):
        found |= _npy(data, targets)
    for m in DATA_URI.finditer(data):
        found |= _embedded(m.group(1), targets)
    for m in TOKEN.finditer(data):
        kind = targets.token(m.group().decode())
        if kind:
            found.add(kind)
    if targets.values:
        for m in URL.finditer(data):
            if targets.token(m.group().decode(errors="replace")):
                found.add("erased value")
    return found


def _embedded(b64: bytes, targets: Targets) -> set[str]:
    """An image embedded as a data URI (the dataset page's thumbnails): its bytes, and its decoded pixels."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return set()
    found = {k for k in [targets.blob(raw)] if k}
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            kind = targets.blob(im.convert("RGB").tobytes())
    except Exception:  # noqa: BLE001 - not an image Pillow reads: the bytes were checked above
        kind = None
    return found | ({f"{kind} (embedded image)"} if kind else set())


def _parquet(data: bytes, targets: Targets) -> set[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - a damaged file is reported, not skipped silently
        return {f"unreadable Parquet ({type(err).__name__}), not checked"}
    found: set[str] = set()
    for column in table.columns:
        for chunk in column.chunks:
            found |= _array(chunk, targets)
    return found


def _array(arr, targets: Targets) -> set[str]:
    import pyarrow as pa

    t = arr.type
    found: set[str] = set()
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            found |= _array(arr.field(i), targets)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        found |= _array(arr.flatten(), targets)
    elif pa.types.is_map(t):
        found |= _array(arr.keys, targets) | _array(arr.items, targets)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        for value in set(arr.to_pylist()) - {None}:
            kind = targets.token(value)
            if kind:
                found.add(kind)
            for m in TOKEN.finditer(value.encode()):
                kind = targets.token(m.group().decode())
                if kind:
                    found.add(kind)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        for value in arr.to_pylist():
            kind = value is not None and targets.blob(value)
            if kind:
                found.add(kind)
    return found


def _npy(data: bytes, targets: Targets) -> set[str]:
    import numpy as np

    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        return {f"unreadable .npy ({type(err).__name__}), not checked"}
    if array.dtype != np.uint8 or array.ndim < 2:
        return set()
    found = set()
    for row in array.reshape(array.shape[0], -1):
        kind = targets.blob(np.ascontiguousarray(row).tobytes())
        if kind:
            found.add(kind)
    return found


def walk(folder: Path) -> Iterator[Path]:
    """Every regular file under ``folder`` (symlinks not followed)."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


# model weights and training checkpoints: containers the scan does not look into (docs/privacy.md)
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".onnx")


def scan_folder(folder: Path, targets: Targets, label: str | None = None) -> list[Hit]:
    """Hits in every file under ``folder`` (a single file: that file; model checkpoints are skipped);
    ``label`` names the folder in the hits (default its path)."""
    hits = []
    if folder.is_file() and targets:
        return [Hit(label or str(folder), kind) for kind in sorted(scan_bytes(folder.read_bytes(), targets))]
    if not folder.is_dir() or not targets:
        return hits
    for path in sorted(p for p in walk(folder) if not p.name.endswith(MODEL_SUFFIXES)):
        where = f"{label}/{path.relative_to(folder)}" if label else str(path)
        hits += [Hit(where, kind) for kind in sorted(scan_bytes(path.read_bytes(), targets))]
    return hits


def scan_items(items: Iterable[tuple[str, bytes]], targets: Targets) -> list[Hit]:
    return [Hit(where, kind) for where, data in items for kind in sorted(scan_bytes(data, targets))]
