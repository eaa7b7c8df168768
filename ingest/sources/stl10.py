"""STL-10's binary files as published (and as torchvision's ``STL10`` downloads them, in ``stl10_binary/``).

``train_X.bin`` / ``test_X.bin`` / ``unlabeled_X.bin`` hold the images as raw bytes, 96 x 96 x 3 an image,
each channel stored column by column (MATLAB's order: torchvision transposes the last two axes); ``train_y.bin``
/ ``test_y.bin`` one byte a label, 1..10, named by ``class_names.txt`` (airplane ... truck). Each image lands as
a PNG, labelled, in its split; ``item_id`` is ``<file>:<index>`` and ``extra`` keeps ``train_index`` /
``test_index`` (the files' and torchvision's order; STL-10's ``fold_indices.txt`` numbers train images so).
The 100,000 ``unlabeled`` images (for unsupervised learning; some of other classes than the ten) land only
with ``unlabeled: true``, unlabelled and in no split; without it the ingest log says they were left.
A file whose size is not whole images, or a label file that does not pair with its images, is one line
naming it; a label outside 1..10 is quarantined.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.sources.base import Record, SourceConfig, png_bytes, require_dir
from sluice import read_ahead
from sluice.connectors import Connector
from sluice.errors import InputError
from sluice.stage import stage_logger

SIDE = 96
IMAGE_BYTES = SIDE * SIDE * 3
NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
PARTS = ("train", "test", "unlabeled")


class Stl10Source(SourceConfig):
    kind: Literal["stl10"]
    unlabeled: bool = False  # land unlabeled_X.bin's 100,000 images too (unlabelled, in no split)


def _folder(path: Path) -> Path | None:
    """``path`` or its ``stl10_binary/`` where the image files are, else None."""
    return next((p for p in (path, path / "stl10_binary") if (p / "train_X.bin").is_file() or (p / "test_X.bin").is_file()),
                None)


def names(root: Path) -> list[str]:
    """``class_names.txt``'s ten names, else STL-10's."""
    listed = root / "class_names.txt"
    found = [line.strip() for line in listed.read_text(errors="replace").splitlines() if line.strip()] \
        if listed.is_file() else []
    return found if len(found) == len(NAMES) else NAMES


def _images(path: Path) -> np.ndarray:
    """The file's images (N, 96, 96, 3), memory-mapped; InputError when its size is not whole images."""
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise InputError(f"{path}: {size} bytes is not a whole number of STL-10 images ({IMAGE_BYTES} bytes each: "
                         "96 x 96 x 3); a partial download?")
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, 3, SIDE, SIDE))
    return raw.transpose(0, 3, 2, 1)  # channel-major, columns first -> (row, column, channel)


def read_stl10(src: Stl10Source, max_bytes: int) -> Iterator[Record]:
    given = Path(src.path)
    require_dir(given, f"STL-10 folder of source '{src.name}'")
    root = _folder(given)
    if root is None:
        raise InputError(f"{given}: no STL-10 files (train_X.bin, test_X.bin; or a stl10_binary/ holding them)")
    classes = names(root)
    for part in PARTS:
        path = root / f"{part}_X.bin"
        if not path.is_file():
            continue
        if part == "unlabeled" and not src.unlabeled:
            stage_logger("ingest").info(f"{src.name}: {path.stat().st_size // IMAGE_BYTES} unlabeled images in "
                                        f"{path.name} not landed (set unlabeled: true on the source to land them)")
            continue
        images = _images(path)
        labels = None if part == "unlabeled" else _labels(root / f"{part}_y.bin", len(images))

        def record(i: int, path=path, part=part, images=images, labels=labels) -> Record:
            uri, item_id = f"{path.as_posix()}#{i}", f"{path.name}:{i}"
            label = None if labels is None else int(labels[i])
            if label is not None and not 1 <= label <= len(classes):
                return Record(uri, item_id=item_id, reject="bad_label", details=f"label {label} is outside 1..{len(classes)}")
            return Record(uri, png_bytes(np.ascontiguousarray(images[i])), label=None if label is None else classes[label - 1],
                          split_hint=None if labels is None else part, item_id=item_id,
                          extra=json.dumps({f"{part}_index": i}))
        # a 96 x 96 PNG takes ~2 ms to encode, and zlib lets go of the interpreter's lock: one thread a core
        yield from read_ahead.ordered(record, range(len(images)), os.cpu_count() or 1)


def _labels(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: missing; it holds the labels of the {count} images of {path.name.replace('_y', '_X')}")
    labels = np.fromfile(path, dtype=np.uint8)
    if len(labels) != count:
        raise InputError(f"{path}: {len(labels)} labels for the {count} images of {path.name.replace('_y', '_X')}; "
                         "they pair by position, so the counts must agree")
    return labels


def detect(path: str) -> dict:
    """``path`` (or the ``stl10_binary/`` in it, then said) when it holds STL-10's files; InputError otherwise."""
    root = _folder(Path(path)) if Path(path).is_dir() else None
    if root is None:
        raise InputError(f"{path}: no STL-10 files (train_X.bin, test_X.bin)")
    return {} if root == Path(path) else {"path": root.absolute().as_posix()}


def class_names(src: Stl10Source) -> list[str]:
    root = _folder(Path(src.path))
    return names(root) if root else NAMES


connector = Connector("source", "stl10", Stl10Source, read_stl10,
                      "STL-10's binary files (train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin)",
                      detect=detect, class_names=class_names)
