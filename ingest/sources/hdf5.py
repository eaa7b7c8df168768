"""Images as HDF5 datasets: ``.h5`` / ``.hdf5`` files, as PatchCamelyon and Galaxy10 ship them.

PatchCamelyon (torchvision's ``PCAM``): ``camelyon_patchlevel2_split_train_x.h5`` (dataset ``x``: N x 96 x 96 x 3)
beside ``camelyon_patchlevel2_split_train_y.h5`` (``y``: N x 1 x 1 x 1), and ``_valid_`` / ``_test_`` alike;
Galaxy10 DECals: ``Galaxy10_DECals.h5`` (``images`` N x 256 x 256 x 3, ``ans`` N). A dataset of images (its file's
or its own name says images: ``x``, ``images``...) pairs with the dataset of as many labels named alike but for the
role word (``y``, ``labels``, ``ans``...), in the same file or a file named alike in the same folder; the split is a
word of the name (``train``, ``valid``, ``test``). Arrays are read a block of images at a time (never whole), and
land as the NumPy connector lands its arrays (``npz.py``: a PNG an image, shapes, value ranges, class names,
multi-label labels unlabelled). A dataset of encoded images (an N-long dataset of variable-length uint8 or bytes: a
JPEG file's bytes an item, as scripts that pack a folder into one file store it) lands each item's bytes as they are. ``item_id`` is ``<file>:<dataset>:<index>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ingest.sources.base import Record, SourceConfig, word_split
from ingest.sources.npz import _IMAGES, _LABELS, BLOCK_BYTES, array_records, label_at, label_indices
from sluice.connectors import Connector
from sluice.errors import InputError

SUFFIXES = (".h5", ".hdf5", ".he5")


class Hdf5Source(SourceConfig):
    kind: Literal["hdf5"]
    class_names: list[str] | None = Field(default=None, min_length=1)  # class index (from 0) -> name


class Images:
    """One HDF5 dataset, opened only while a block of it is read."""

    def __init__(self, path: Path, name: str, shape: tuple, dtype):
        self.path, self.name, self.shape, self.dtype = path, name, shape, dtype

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def blocks(self, rows: int = 1024) -> Iterator[np.ndarray]:
        import h5py

        with h5py.File(self.path, "r") as f:
            data = f[self.name]
            for k in range(0, len(self), rows):
                yield data[k:k + rows]


def files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _datasets(path: Path) -> list[Images]:
    import h5py

    found: list[Images] = []

    def visit(name: str, item) -> None:
        if not isinstance(item, h5py.Dataset) or not (item.dtype.kind in "uif" or encoded(item.dtype)) or not item.shape:
            return
        if item.external or item.is_virtual:  # its bytes live in another file, any file: /etc/shadow as pixels
            raise InputError(f"{path}: dataset {name!r} keeps its data in other files (external or virtual storage): "
                             "not read; copy the data into the file")
        found.append(Images(path, name, item.shape, item.dtype))
    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({str(err).splitlines()[0]})") from None
    return found


def encoded(dtype) -> bool:
    """Whether a dataset's items are image files' bytes (variable-length uint8 or bytes, as h5py stores a JPEG),
    not pixels."""
    import h5py

    return h5py.check_vlen_dtype(dtype) in (np.dtype("uint8"), bytes) or dtype.kind in "SV" and dtype.itemsize > 16


def encoded_records(source: str, class_names: list[str] | None, found: list, max_bytes: int) -> Iterator[Record]:
    """The Records of datasets of encoded images (a JPEG's bytes an item), landed as they are, a few at a time."""
    for path, name, images, labels, split in found:
        labels = None if labels is None or labels.reshape(len(labels), -1).shape[1] > 1 else labels.reshape(-1)
        fixed = np.dtype(images.dtype).itemsize if np.dtype(images.dtype).kind in "SV" else 0
        if fixed > max_bytes:  # a compressed dataset of 1 GB items is a small file that would fill memory
            raise InputError(f"{path}:{name}: items of {fixed:,} bytes each, over ingest.max_file_bytes ({max_bytes:,})")
        i = 0
        for block in images.blocks(max(1, min(64, BLOCK_BYTES // max(fixed, 1)))):  # 64 at a time, at most 64 MiB
            for item in block:
                uri, item_id = f"{path.as_posix()}#{name}/{i}", f"{path.name}:{name}:{i}"
                raw = item.tobytes() if isinstance(item, np.ndarray) else bytes(item)
                label = label_at(labels, i, class_names)
                i += 1
                if isinstance(label, Record) or not raw or len(raw) > max_bytes:
                    reason = (label.reject, label.details) if isinstance(label, Record) else (
                        ("missing_image_bytes", "an empty item") if not raw
                        else ("too_large", f"{len(raw)} bytes > ingest.max_file_bytes {max_bytes}"))
                    yield Record(uri, item_id=item_id, reject=reason[0], details=reason[1])
                else:
                    yield Record(uri, raw, label=label, split_hint=split, item_id=item_id)


def _role(path: Path, name: str) -> tuple[str | None, str]:
    """("images" | "labels" | None, the words left): the dataset's own name first, else its file's."""
    def words(text: str) -> list[str]:
        return [w for w in re.split(r"[-_. /]+", text.lower()) if w]
    own, stem = words(name), words(path.stem)
    role = next(("images" if w in _IMAGES else "labels" for w in own + stem if w in _IMAGES | _LABELS), None)
    return role, "_".join(w for w in stem + own if w not in _IMAGES | _LABELS)


def pairs(root: Path) -> list[tuple[Path, str, Images, np.ndarray | None, str | None]]:
    """(file, dataset, images, labels or None, split) of each dataset of images, labels paired by name."""
    arrays = [a for path in files(root) for a in _datasets(path)]
    labels = {(a.path.parent, _role(a.path, a.name)[1]): a for a in arrays
              if _role(a.path, a.name)[0] == "labels" and len(a.shape) in (1, 2, 4) and a.dtype.kind in "uif"}
    out = []
    for images in arrays:
        role, rest = _role(images.path, images.name)
        if role != "images" or len(images.shape) not in ((1,) if encoded(images.dtype) else (3, 4)):
            continue
        found = labels.get((images.path.parent, rest))
        found = None if found is None else np.concatenate(list(found.blocks(1 << 20)))
        if found is not None and len(found) != len(images):
            raise InputError(f"{images.path}: {len(found)} labels for the {len(images)} images of {images.name!r}; "
                             "they pair by position, so the counts must agree")
        out.append((images.path, images.name, images, found, word_split(rest)))
    return out


def read_hdf5(src: Hdf5Source, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: HDF5 file or folder of source '{src.name}' not found")
    found = pairs(root)
    if not found:
        raise InputError(f"{root}: no HDF5 dataset of images (x, images, ...: N x H x W[ x C])")
    packed = [f for f in found if encoded(f[2].dtype)]
    yield from array_records(src.name, src.class_names, [f for f in found if not encoded(f[2].dtype)])
    yield from encoded_records(src.name, src.class_names, packed, max_bytes)


def detect(path: str) -> dict:
    """{} where ``path`` is an HDF5 file of images or a folder of them; else InputError."""
    root = Path(path)
    if not (root.is_file() and root.suffix.lower() in SUFFIXES or root.is_dir() and files(root)) or not pairs(root):
        raise InputError(f"{path}: no HDF5 dataset of images")
    return {}


def class_names(src: Hdf5Source) -> list[str] | None:
    """``class_names``, else the class indices the labels hold, in order."""
    return src.class_names or label_indices(labels for _, _, _, labels, _ in pairs(Path(src.path)))


connector = Connector("source", "hdf5", Hdf5Source, read_hdf5,
                      "images as HDF5 datasets (.h5: PatchCamelyon's x / y files, Galaxy10's images / ans)",
                      detect=detect, class_names=class_names)
