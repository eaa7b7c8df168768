"""SVHN's cropped digits as published: ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat``.

Each file is a MATLAB (v5) file holding ``X``, the images as one array of 32 x 32 x 3 x N bytes, and ``y``,
their labels (N x 1), 1..10 where 10 is the digit 0 (as torchvision's ``SVHN`` reads it, the label lands as
the digit: ``"0"``..``"9"``). Each image lands as a PNG; ``train`` and ``extra`` (531,131 easier digits, which
papers train on beside train) as the train split, ``test`` as test. ``item_id`` is ``<file>:<index>`` and
``extra`` the image's position in its file (``train_index``, ``test_index``, ``extra_index``: torchvision's
order), so lists published by index resolve. A file that is not such a MATLAB file stops the source with
one line naming it; a label outside 1..10 and an image without a label are quarantined one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.sources.base import Record, SourceConfig, png_bytes, require_dir
from sluice.connectors import Connector
from sluice.errors import InputError

FILES = (("train", "train_32x32.mat"), ("extra", "extra_32x32.mat"), ("test", "test_32x32.mat"))
DIGITS = [str(d) for d in range(10)]


class SvhnSource(SourceConfig):
    kind: Literal["svhn"]


def _files(root: Path) -> list[tuple[str, Path]]:
    return [(part, root / name) for part, name in FILES if (root / name).is_file()]


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (N, 32, 32, 3) and ``y`` (N,) of one file; InputError when it is not SVHN's MATLAB file."""
    from scipy.io import loadmat, whosmat

    try:
        data = loadmat(path, variable_names=["X", "y"])
    except Exception as err:  # noqa: BLE001 - scipy raises what a broken file makes it (IndexError, v7.3's NotImplementedError)
        raise InputError(f"{path}: not a readable MATLAB v5 file ({str(err).splitlines()[0] or type(err).__name__})") \
            from None
    images, labels = data.get("X"), data.get("y")
    if images is None or labels is None:
        raise InputError(f"{path}: holds no X and y arrays (SVHN's images and labels; found "
                         f"{', '.join(name for name, _, _ in whosmat(path)) or 'none'})")
    if images.ndim != 4 or images.shape[2] != 3 or images.dtype != np.uint8:
        raise InputError(f"{path}: X is {images.dtype} {images.shape}; SVHN's is uint8 32 x 32 x 3 x N")
    return np.moveaxis(images, 3, 0), labels.reshape(-1)


def read_svhn(src: SvhnSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    require_dir(root, f"SVHN folder of source '{src.name}'")
    files = _files(root)
    if not files:
        raise InputError(f"{root}: no SVHN files ({', '.join(name for _, name in FILES)})")
    for part, path in files:
        images, labels = _arrays(path)
        split = "test" if part == "test" else "train"
        for i, pixels in enumerate(images):
            uri, item_id = f"{path.as_posix()}#{i}", f"{path.name}:{i}"
            if i >= len(labels):
                yield Record(uri, item_id=item_id, reject="missing_label",
                             details=f"image {i} has no label (y holds {len(labels)})")
            elif not 1 <= int(labels[i]) <= 10:
                yield Record(uri, item_id=item_id, reject="bad_label",
                             details=f"label {int(labels[i])} is outside 1..10 (10 is the digit 0)")
            else:
                yield Record(uri, png_bytes(np.ascontiguousarray(pixels)), label=DIGITS[int(labels[i]) % 10],
                             split_hint=split, item_id=item_id, extra=json.dumps({f"{part}_index": i}))
        for k in range(len(images), len(labels)):
            yield Record(f"{path.as_posix()}#{k}", item_id=f"{path.name}:{k}", reject="missing_image",
                         details=f"label {k} has no image (X holds {len(images)})")


def detect(path: str) -> dict:
    """InputError unless ``path`` holds SVHN's files."""
    if not Path(path).is_dir() or not _files(Path(path)):
        raise InputError(f"{path}: no SVHN files (train_32x32.mat...)")
    return {}


def class_names(src: SvhnSource) -> list[str]:
    return DIGITS


connector = Connector("source", "svhn", SvhnSource, read_svhn,
                      "SVHN's cropped digits (train_32x32.mat, test_32x32.mat, extra_32x32.mat)",
                      detect=detect, class_names=class_names)
