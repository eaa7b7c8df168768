"""Images as NumPy arrays: ``.npz`` archives and ``.npy`` files, as Keras and MedMNIST ship them.

Keras' ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), MedMNIST's ``pathmnist.npz``
(``train_images``, ``train_labels``, ``val_*``, ``test_*``), or a folder of ``x_train.npy`` / ``y_train.npy``. An
array of images (its name says images: ``x``, ``images``, ``imgs``, ``data``, ``X``) pairs with the array of labels
named alike (``y``, ``labels``, ``targets``) and the split both names say. Images are N x H x W (greyscale),
N x H x W x C or N x C x H x W (C of 1 or 3); bytes, or floats from 0 to 1 (scaled by 255) or 0 to 255. Labels are N
class indices (or N x 1), named by ``class_names``; N x K labels (MedMNIST's multi-label ChestMNIST) are more than
one class an image: the images land unlabelled, and the log says so. Each image lands as a PNG; ``item_id`` is
``<file>:<array>:<index>``. An archive's images are decompressed as a stream and a ``.npy`` memory-mapped, a block at
a time, so an array larger than memory lands. An array of Python objects is refused, never unpickled. An image with a value outside the range is quarantined; arrays that do not pair (counts, shapes) are
one line naming them.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ingest.sources.base import Record, SourceConfig, png_bytes, word_split
from ingest.sources.folder_layout import any_image
from sluice import read_ahead
from sluice.connectors import Connector
from sluice.errors import InputError
from sluice.stage import stage_logger

BLOCK_BYTES, MAX_IMAGE_BYTES = 64 << 20, 256 << 20  # a block of images read at a time; one image at most
_IMAGES = {"x", "images", "image", "imgs", "img", "data", "inputs", "features"}
_LABELS = {"y", "labels", "label", "targets", "target", "classes", "ans"}  # ans: Galaxy10's


class NpzSource(SourceConfig):
    kind: Literal["npz"]
    class_names: list[str] | None = Field(default=None, min_length=1)  # class index (from 0) -> name


class Images:
    """An array of images read without holding it: a ``.npy`` memory-mapped, an archive's member decompressed
    as a stream, a block of images at a time (MedMNIST+'s 224-pixel archives hold gigabytes)."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        with self._open() as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            self.shape, self.fortran, self.dtype = read(f)
        if self.dtype.hasobject:
            raise InputError(f"{path}: {name!r} holds Python objects (pickled), not read")

    def _open(self):
        if self.path.suffix.lower() == ".npy":
            return self.path.open("rb")
        return zipfile.ZipFile(self.path).open(f"{self.name}.npy")

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def blocks(self, rows: int = 1024) -> Iterator[np.ndarray]:
        if self.fortran or self.path.suffix.lower() == ".npy":  # column-major: only whole; .npy: mapped
            whole = np.load(self.path, mmap_mode="r", allow_pickle=False) if self.path.suffix.lower() == ".npy" else \
                np.load(self.path, allow_pickle=False)[self.name]
            yield from (whole[k:k + rows] for k in range(0, len(whole), rows))
            return
        size = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with self._open() as f:
            version = np.lib.format.read_magic(f)
            (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
            for k in range(0, len(self), rows):
                count = min(rows, len(self) - k)
                data = f.read(size * count)
                if len(data) < size * count:
                    raise InputError(f"{self.path}: {self.name!r} ends early (a partial download?)")
                yield np.frombuffer(data, self.dtype).reshape(count, *self.shape[1:])


def _arrays(root: Path) -> dict[tuple[Path, str], Images]:
    """Every array of the archive or the folder's ``.npz`` / ``.npy`` files, by (file, name), unread."""
    files = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.suffix.lower() in (".npz", ".npy"))
    out = {}
    for path in files:
        try:
            names = [path.stem] if path.suffix.lower() == ".npy" else \
                [n.removesuffix(".npy") for n in zipfile.ZipFile(path).namelist() if n.endswith(".npy")]
            out.update(((path, name), Images(path, name)) for name in names)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: not a readable NumPy file ({str(err).splitlines()[0] or type(err).__name__})") from None
    return out


def _labels(array: Images) -> np.ndarray:
    return np.concatenate(list(array.blocks(1 << 20))) if len(array) else np.zeros(0)


def _role(name: str) -> tuple[str | None, str]:
    """``("images" | "labels" | None, the rest of the name)``: ``x_train`` -> images, ``train``."""
    words = [w for w in re.split(r"[-_. ]+", name.lower()) if w]
    role = next(("images" if w in _IMAGES else "labels" for w in words if w in _IMAGES | _LABELS), None)
    return role, "_".join(w for w in words if w not in _IMAGES | _LABELS)


def pairs(root: Path) -> list[tuple[Path, str, Images, np.ndarray | None]]:
    """(file, images array name, images, labels or None) of each array of images, labels paired by name."""
    arrays = _arrays(root)
    labels = {(p.parent if p.suffix == ".npy" else p, _role(n)[1]): a for (p, n), a in arrays.items()
              if _role(n)[0] == "labels"}
    out = []
    for (path, name), images in arrays.items():
        role, rest = _role(name)
        if role == "images" and len(images.shape) in (3, 4):
            found = labels.get((path.parent if path.suffix == ".npy" else path, rest))
            found = None if found is None else _labels(found)
            if found is not None and len(found) != len(images):
                raise InputError(f"{path}: {len(found)} labels for the {len(images)} images of {name!r}; they pair by "
                                 "position, so the counts must agree")
            out.append((path, name, images, found))
    return out


def _hwc(images: np.ndarray) -> np.ndarray:
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[3] not in (1, 3, 4):
        return images.transpose(0, 2, 3, 1)  # N x C x H x W (PyTorch's order)
    return images


def read_npz(src: NpzSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: NumPy file or folder of source '{src.name}' not found")
    found = pairs(root)
    if not found:
        raise InputError(f"{root}: no array of images (x_train, train_images, images, ...: N x H x W[ x C])")
    yield from array_records(src.name, src.class_names, [(*pair, word_split(_role(pair[1])[1])) for pair in found])


def label_at(labels: np.ndarray | None, i: int, class_names: list[str] | None) -> str | Record | None:
    """Image ``i``'s label: its class index, named by ``class_names``; a Record of the rejection past them."""
    label = None if labels is None else str(int(labels[i]))
    if label is not None and class_names:
        if int(label) >= len(class_names) or int(label) < 0:
            return Record("", reject="bad_label", details=f"label {label} is outside the {len(class_names)} class_names")
        label = class_names[int(label)]
    return label


def array_records(source: str, class_names: list[str] | None, found: list) -> Iterator[Record]:
    """The Records of arrays of images: ``found`` holds (file, array name, images, labels or None, split); images
    have ``shape`` and ``blocks()`` (a block of N x ... at a time); the HDF5 connector lands its arrays so too."""
    for path, name, images, labels, split in found:
        shape = _hwc(np.zeros((1, *images.shape[1:]), np.uint8)).shape[1:]
        if len(shape) == 3 and shape[2] not in (1, 3, 4):
            raise InputError(f"{path}:{name}: images of shape {images.shape[1:]}: not H x W, H x W x C or C x H x W")
        size = int(np.prod(images.shape[1:], dtype=np.int64)) * np.dtype(images.dtype).itemsize
        if size > MAX_IMAGE_BYTES:
            raise InputError(f"{path}:{name}: images of shape {images.shape[1:]} ({size:,} bytes each): more than "
                             f"{MAX_IMAGE_BYTES >> 20} MiB an image, not an array of images read here")
        if labels is not None and labels.reshape(len(labels), -1).shape[1] > 1:
            stage_logger("ingest").info(f"{source}: {path.name}:{name}: {labels.shape[1]} labels an image (multi-label) "
                                        "- its images land unlabelled")
            labels = None
        labels = None if labels is None else labels.reshape(-1)
        scale: list[float] = []  # floats from 0 to 1 are scaled: told by the first block

        def record(job, path=path, name=name, labels=labels, split=split) -> Record:
            i, image = job
            uri, item_id = f"{path.as_posix()}#{name}/{i}", f"{path.name}:{name}:{i}"
            pixels = np.asarray(image, dtype=np.float64) * scale[0]
            if not np.isfinite(pixels).all() or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
                return Record(uri, item_id=item_id, reject="pixel_out_of_range", details="a value outside 0..255")
            label = label_at(labels, i, class_names)
            if isinstance(label, Record):
                return Record(uri, item_id=item_id, reject=label.reject, details=label.details)
            image = np.rint(pixels).astype(np.uint8)
            return Record(uri, png_bytes(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image),
                          label=label, split_hint=split, item_id=item_id)
        def jobs(images=images, scale=scale, size=size):
            start = 0
            for block in images.blocks(max(1, min(1024, BLOCK_BYTES // max(size, 1)))):  # memory bounded
                block = _hwc(block)
                if not scale:
                    scale.append(255.0 if block.dtype.kind == "f" and float(np.nanmax(block, initial=0)) <= 1.0 else 1.0)
                yield from ((start + k, block[k]) for k in range(len(block)))
                start += len(block)
        yield from read_ahead.ordered(record, jobs(), os.cpu_count() or 1)


def detect(path: str) -> dict:
    """InputError unless ``path`` is a NumPy archive or file of images, or a folder of them holding no image files."""
    root = Path(path)
    try:
        usable = (root.is_file() and root.suffix.lower() in (".npz", ".npy") or root.is_dir() and not any_image(root)) \
            and bool(pairs(root))
    except InputError:
        usable = False
    if not usable:
        raise InputError(f"{path}: no NumPy array of images")
    return {}


def class_names(src: NpzSource) -> list[str] | None:
    """``class_names``, else the class indices the labels hold, in order."""
    return src.class_names or label_indices(labels for _, _, _, labels in pairs(Path(src.path)))


def label_indices(arrays) -> list[str] | None:
    """The class indices arrays of one label an image hold, in order (arrays of several labels an image left out)."""
    found = sorted({int(v) for labels in arrays if labels is not None
                    and labels.reshape(len(labels), -1).shape[1] == 1 for v in np.unique(labels)})
    return [str(v) for v in found] or None


connector = Connector("source", "npz", NpzSource, read_npz,
                      "images as NumPy arrays: .npz archives or .npy files (Keras' mnist.npz, MedMNIST's *.npz)",
                      detect=detect, class_names=class_names)
