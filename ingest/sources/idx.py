"""IDX files: MNIST, Fashion-MNIST, KMNIST and EMNIST as they are published and as torchvision keeps them.

A folder (or its ``raw/`` subfolder, torchvision's ``MNIST/raw/``) holds pairs of files:
``<prefix>-images-idx3-ubyte`` with ``<prefix>-labels-idx1-ubyte`` (``.gz`` or not; Kaggle's copies write
``train-images.idx3-ubyte``). The prefix names the split (``train``; ``t10k`` or ``test``). Where a file is
there both compressed and not, it is read once. Each image lands as a greyscale PNG; its label is the
class index as text (``"7"``), or ``class_names[index]`` when the source lists them (``sluice init`` writes
Fashion-MNIST's ten names for a folder named for it). ``item_id`` is ``<images file>:<index>`` and
``extra`` the image's position in its split (``train_index`` / ``test_index``, the files' and torchvision's
order), so label-error lists published by index resolve as for CIFAR.

A file that is not IDX (wrong magic, not unsigned bytes, a header that does not fit) stops the source with
one line naming it. Rows that cannot land are quarantined one by one: more images than labels or the
reverse, a label outside ``class_names``, and the images a truncated file (or gzip stream) cut short.
The images file is read a block of images at a time, never whole, and never past what its header says.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

import numpy as np

from ingest.sources.base import Record, SourceConfig, png_bytes, require_dir, split_of
from sluice.connectors import Connector
from sluice.errors import InputError

# images file names: train-images-idx3-ubyte(.gz), t10k-images.idx3-ubyte, emnist-letters-train-images-idx3-ubyte
IMAGES = re.compile(r"(?P<prefix>.*?)[-_.]?images[-_.]idx3[-_.]ubyte(?P<gz>\.gz)?", re.IGNORECASE)
BLOCK = 4096  # images read and encoded at a time
READ_BYTES = 64 << 20  # at most this much read at once, whatever a header claims
MAX_PIXELS = 1 << 26  # an image larger than this (8192 x 8192) is a header that is not what it says
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class IdxSource(SourceConfig):
    kind: Literal["idx"]
    class_names: list[str] | None = None  # the class each label index names, in index order (null: the index)


def _folder(root: Path) -> Path:
    """``root``, or its ``raw/`` subfolder when only that holds IDX files (torchvision's layout)."""
    if not _images_files(root) and (root / "raw").is_dir() and _images_files(root / "raw"):
        return root / "raw"
    return root


def _images_files(folder: Path) -> list[Path]:
    """The images files of ``folder``, one per prefix (the uncompressed one where both are there), sorted
    train before test."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        m = IMAGES.fullmatch(path.name)
        if m and path.is_file() and (m["prefix"].lower() not in found or not m["gz"]):
            found[m["prefix"].lower()] = path
    order = {"train": 0, "val": 1, "test": 2, None: 3}
    return sorted(found.values(), key=lambda p: (order[_split(p)], p.name))


def _split(images: Path) -> str | None:
    prefix = IMAGES.fullmatch(images.name)["prefix"].lower()
    words = set(re.split(r"[-_.]+", prefix))
    return "test" if "t10k" in words else next((split_of(w) for w in words if split_of(w)), None)


def _labels_file(images: Path) -> Path | None:
    """The labels file beside ``images``: the same name with labels / idx1, compressed or not."""
    m = IMAGES.fullmatch(images.name)
    stem = images.name[:len(images.name) - len(m["gz"] or "")]
    cut = stem[len(m["prefix"]):]
    labels = m["prefix"] + re.sub("idx3", "idx1", re.sub("images", "labels", cut, flags=re.I), flags=re.I)
    return next((images.parent / n for n in (labels, labels + ".gz") if (images.parent / n).is_file()), None)


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _header(f: IO[bytes], path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions an IDX file of unsigned bytes and ``ndim`` dimensions declares; InputError otherwise."""
    try:
        head = f.read(4 + 4 * ndim)
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read it ({err})") from None
    if len(head) < 4 or head[:2] != b"\0\0":
        raise InputError(f"{path}: not an IDX file (its first bytes are {head[:4].hex()}, expected 0000 0803 for images)")
    if head[2] != 0x08:
        raise InputError(f"{path}: IDX data type 0x{head[2]:02x}, expected 0x08 (unsigned bytes)")
    if head[3] != ndim or len(head) < 4 + 4 * ndim:
        raise InputError(f"{path}: IDX file of {head[3]} dimensions, expected {ndim} "
                         f"({'images: count, rows, columns' if ndim == 3 else 'labels: count'})")
    return tuple(int(d) for d in np.frombuffer(head[4:], ">u4"))


def _labels(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    with _open(path) as f:
        (n,) = _header(f, path, 1)
        parts, left = [], n
        try:
            while left and (part := f.read(min(left, READ_BYTES))):  # never one read of what a header claims
                parts.append(part)
                left -= len(part)
        except (OSError, EOFError) as err:
            raise InputError(f"{path}: cannot read its labels ({err})") from None
        return np.frombuffer(b"".join(parts), np.uint8)


def _blocks(f: IO[bytes], n: int, shape: tuple[int, int], cut: list[str]) -> Iterator[np.ndarray]:
    """The images, BLOCK at a time, until the header's count or the end of a truncated file (a gzip stream
    cut short or corrupt ends it too: why is appended to ``cut``, and the images after it are the caller's
    to quarantine)."""
    size = shape[0] * shape[1]
    step = max(1, min(BLOCK, READ_BYTES // max(size, 1)))  # a read never asks for more than READ_BYTES
    for start in range(0, n, step):
        want = min(step, n - start)
        try:
            data = f.read(want * size)
        except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
            cut.append(f"the file cannot be read past image {start} ({err})")
            return
        whole = len(data) // size
        if whole:
            yield np.frombuffer(data[:whole * size], np.uint8).reshape(whole, *shape)
        if whole < want:
            return


def _label(value: int, names: list[str] | None) -> tuple[str | None, str | None]:
    if names is None:
        return str(value), None
    if value >= len(names):
        return None, f"label {value} is outside 0..{len(names) - 1} (class_names has {len(names)})"
    return names[value], None


def _records(images: Path, src: IdxSource) -> Iterator[Record]:
    split = _split(images)
    labels_path = _labels_file(images)
    labels = _labels(labels_path)
    with _open(images) as f:
        n, rows, cols = _header(f, images, 3)
        if rows * cols > MAX_PIXELS or rows * cols == 0:
            raise InputError(f"{images}: its header declares images of {rows} x {cols} pixels; not an IDX image file")
        i, cut = 0, []
        for block in _blocks(f, n, (rows, cols), cut):
            for pixels in block:
                uri, item_id = f"{images.as_posix()}#{i}", f"{images.name}:{i}"
                if labels is not None and i >= len(labels):
                    yield Record(uri, item_id=item_id, reject="missing_label",
                                 details=f"image {i} has no label ({labels_path.name} holds {len(labels)})")
                else:
                    label, problem = _label(int(labels[i]), src.class_names) if labels is not None else (None, None)
                    if problem:
                        yield Record(uri, item_id=item_id, reject="bad_label", details=problem)
                    else:
                        yield Record(uri, png_bytes(pixels), label=label, split_hint=split, item_id=item_id,
                                     extra=json.dumps({f"{split or 'file'}_index": i}))
                i += 1
    ended = cut[0] if cut else f"the file ends after {i} of the {n} images its header declares (truncated)"
    for k in range(i, len(labels) if labels is not None else 0):  # every label left without its image
        why = ended if k < n else f"label {k} has no image ({images.name} holds {n})"
        yield Record(f"{images.as_posix()}#{k}", item_id=f"{images.name}:{k}", reject="missing_image", details=why)
    start = max(i, len(labels) if labels is not None else 0)
    if start < n:  # declared, not there, no label either: one row for the range (a header may claim billions)
        yield Record(f"{images.as_posix()}#{start}-{n - 1}", item_id=f"{images.name}:{start}-{n - 1}",
                     reject="missing_image", details=f"images {start}..{n - 1} ({n - start}): {ended}")


def read_idx(src: IdxSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    require_dir(root, f"IDX folder of source '{src.name}'")
    files = _images_files(_folder(root))
    if not files:
        raise InputError(f"{root}: no IDX images files found (expected e.g. train-images-idx3-ubyte.gz beside "
                         "train-labels-idx1-ubyte.gz, here or in raw/)")
    for images in files:
        yield from _records(images, src)


def detect(path: str) -> dict:
    """InputError unless ``path`` (or its ``raw/``) holds IDX images files; Fashion-MNIST's class names where a
    the folder (or the one above its ``raw/``) is named for it (its files keep only indices, as torchvision's ``FashionMNIST.classes``)."""
    root = Path(path)
    if not root.is_dir() or not _images_files(_folder(root)):
        raise InputError(f"{path}: no IDX images files (train-images-idx3-ubyte...)")
    folder = root.absolute()
    named = "fashion" in (folder.parent.name if folder.name.lower() == "raw" else folder.name).lower()
    return {"class_names": FASHION} if named else {}


def class_names(src: IdxSource) -> list[str] | None:
    return src.class_names


connector = Connector("source", "idx", IdxSource, read_idx,
                      "MNIST-style IDX files (train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz])",
                      detect=detect, class_names=class_names)
