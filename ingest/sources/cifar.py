"""CIFAR-10/100 in the python-pickle or the binary layout.

Pickles are read with the restricted unpickler of ``ingest.safe_pickle``. A batch that is not CIFAR
at all (wrong keys, pixel data of the wrong shape or type, label names that are not a list) is a
one-line error naming the file and the field; a batch that is CIFAR but has bad rows (pixel values
outside 0-255, a label that is not a class index, more images than labels or the reverse) lands its
good rows and quarantines each bad one. ``item_id`` is ``<batch file>:<index>``; ``extra`` has the
image's original file name where the pickle keeps it (``path``: ``dump_truck_s_000114.png``, what
CIFAR-10H's ``image_filename`` names) and its position in the whole split in the usual order
(``test_index`` or ``train_index``: data_batch_1..5 in turn, as torchvision numbers them; what CIFAR-10H's
``cifar10_test_test_idx`` and published label-error lists name), so votes and lists keyed either way
resolve (``item_key: auto`` for the file name, ``column:test_index`` for the index).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.safe_pickle import load_untrusted
from ingest.sources.base import Record, SourceConfig, png_bytes, require_dir
from sluice.connectors import Connector
from sluice.errors import InputError

_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta"},
}


class CifarSource(SourceConfig):
    kind: Literal["cifar"]
    layout: Literal["python", "binary"] = "python"
    variant: Literal["cifar10", "cifar100"] = "cifar10"
    label_level: Literal["fine", "coarse"] = "fine"


def _batches(root: Path, variant: str, suffix: str) -> list[tuple[str, Path]]:
    files = _FILES[variant]
    found = [(split, root / f"{name}{suffix}") for split in ("train", "test") for name in files[split]
             if (root / f"{name}{suffix}").is_file()]
    if not found:
        expected = ", ".join(f"{n}{suffix}" for s in ("train", "test") for n in files[s])
        raise InputError(f"{root}: no {variant} batch files found (expected some of: {expected})")
    return found


def _label_names(root: Path, src: CifarSource) -> list[str] | None:
    if src.layout == "binary":
        path = root / ("batches.meta.txt" if src.variant == "cifar10" else f"{src.label_level}_label_names.txt")
        if not path.is_file():
            return None
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: label names are not UTF-8 text ({err.reason} at byte {err.start})") from None
    path = root / _FILES[src.variant]["meta"]
    if not path.is_file():
        return None
    meta = load_untrusted(path)
    key = "label_names" if src.variant == "cifar10" else f"{src.label_level}_label_names"
    if not isinstance(meta, dict):
        raise InputError(f"{path}: not a CIFAR meta file (a {type(meta).__name__}, expected a dict with '{key}')")
    names = meta.get(key.encode())
    if names is None:
        return None
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise InputError(f"{path}: '{key}' must be a list of class names, got {_describe(names)}")
    return [n.decode("utf-8", "backslashreplace") if isinstance(n, bytes) else n for n in names]


def _describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _file_names(batch: dict) -> list[str] | None:
    names = batch.get(b"filenames")
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)):
        return None
    return [n.decode("utf-8", "backslashreplace") if isinstance(n, bytes) else str(n) for n in names]


def _read_pickle(path: Path, src: CifarSource) -> tuple[np.ndarray, list, list[str] | None]:
    """(pixel rows (N, 3072) as integers, labels as stored, original file names where kept)."""
    batch = load_untrusted(path)
    label_key = "labels" if src.variant == "cifar10" else f"{src.label_level}_labels"
    if not isinstance(batch, dict) or b"data" not in batch or label_key.encode() not in batch:
        raise InputError(f"{path}: not a {src.variant} batch (needs keys 'data' and '{label_key}')")
    try:
        data = np.asarray(batch[b"data"])
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: 'data' is not an array of pixel rows ({err})") from None
    if data.dtype.kind not in "iu":
        raise InputError(f"{path}: 'data' has dtype {data.dtype}, expected integers 0-255")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise InputError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
    labels = batch[label_key.encode()]
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)):
        raise InputError(f"{path}: '{label_key}' must be a list of class indices, got {_describe(labels)}")
    return data, list(labels), _file_names(batch)


def _read_binary(path: Path, src: CifarSource) -> tuple[np.ndarray, list, None]:
    label_bytes = 1 if src.variant == "cifar10" else 2
    rec = label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % rec:
        raise InputError(f"{path}: size {raw.size} is not a multiple of the {rec}-byte {src.variant} record")
    raw = raw.reshape(-1, rec)
    label_col = 0 if src.variant == "cifar10" or src.label_level == "coarse" else 1
    return raw[:, label_bytes:], raw[:, label_col].tolist(), None


def _label(value, names: list[str] | None) -> tuple[str | None, str | None]:
    """(label, None) or (None, why the value is not a class index)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None, f"label {_describe(value)} is not an integer class index"
    if value < 0 or (names is not None and value >= len(names)):
        return None, f"label {value} is outside 0..{len(names) - 1 if names else 'n'}"
    return (names[value] if names is not None else str(int(value))), None


def _extra(split: str, index: int, file_names: list[str] | None, i: int) -> str:
    kept = {"path": file_names[i]} if file_names is not None and i < len(file_names) else {}
    return json.dumps({**kept, f"{split}_index": index})


def _rows(path: Path, split: str, data: np.ndarray, labels: list, names: list[str] | None,
          file_names: list[str] | None = None, offset: int = 0) -> Iterator[Record]:
    ok_pixels = (data.min(axis=1) >= 0) & (data.max(axis=1) <= 255) if len(data) else np.zeros(0, bool)
    images = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    n_images, n_labels = len(data), len(labels)
    for i in range(max(n_images, n_labels)):
        uri, item_id = f"{path.as_posix()}#{i}", f"{path.name}:{i}"
        if i >= n_labels:
            yield Record(uri, item_id=item_id, reject="missing_label",
                         details=f"image {i} has no label ({n_images} images, {n_labels} labels)")
            continue
        if i >= n_images:
            yield Record(uri, item_id=item_id, reject="missing_image",
                         details=f"label {i} has no image ({n_images} images, {n_labels} labels)")
            continue
        if not ok_pixels[i]:
            yield Record(uri, item_id=item_id, reject="pixel_out_of_range",
                         details=f"pixel values {data[i].min()}..{data[i].max()} outside 0..255")
            continue
        label, problem = _label(labels[i], names)
        if problem:
            yield Record(uri, item_id=item_id, reject="bad_label", details=problem)
            continue
        yield Record(uri, png_bytes(images[i]), label=label, split_hint=split, item_id=item_id,
                     extra=_extra(split, offset + i, file_names, i))


def read_cifar(src: CifarSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    require_dir(root, f"CIFAR folder of source '{src.name}'")
    names = _label_names(root, src)
    suffix = ".bin" if src.layout == "binary" else ""
    offsets = {"train": 0, "test": 0}
    for split, path in _batches(root, src.variant, suffix):
        data, labels, file_names = _read_binary(path, src) if src.layout == "binary" else _read_pickle(path, src)
        yield from _rows(path, split, data, labels, names, file_names, offsets[split])
        offsets[split] += max(len(data), len(labels))


def detect(path: str) -> dict:
    """The variant and layout of the CIFAR folder at ``path`` (CIFAR-100 keeps ``train``/``test``/``meta``,
    the binary layout ``*.bin``), so ``sluice init --cifar`` needs no flag for either."""
    root = Path(path)
    found = {}
    for layout, suffix in (("python", ""), ("binary", ".bin")):
        for variant in ("cifar10", "cifar100"):
            if any((root / f"{n}{suffix}").is_file() for split in ("train", "test") for n in _FILES[variant][split]):
                found = {"layout": layout, "variant": variant}
                break
        if found:
            break
    return {k: v for k, v in found.items() if v != CifarSource.model_fields[k].default}


def class_names(src: CifarSource) -> list[str] | None:
    """The class names CIFAR's integer labels index, in index order (from its meta file)."""
    return _label_names(Path(src.path), src)


connector = Connector("source", "cifar", CifarSource, read_cifar,
                      "CIFAR-10/100 batches, python-pickle or binary layout", detect=detect, class_names=class_names)
