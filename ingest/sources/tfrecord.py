"""TFRecord files of ``tf.train.Example`` records, as TensorFlow Datasets prepares them and Kaggle's TPU competitions ship them.

TFDS's ``cifar10/3.0.2/cifar10-train.tfrecord-00000-of-00001`` (features ``image``: PNG bytes, ``label``: int64,
``id``) beside its ``label.labels.txt``; Kaggle's Petals to the Metal ``tfrecords-jpeg-224x224/train/*.tfrec``
(``image``: JPEG bytes, ``class``: int64, ``id``); the Object Detection API's ``image/encoded``,
``image/class/label``, ``image/class/text``, ``image/filename``. Read without TensorFlow: the record framing (length,
its masked CRC-32C, the data, its CRC) and the Example protobuf are decoded here, a record at a time (GZIP-compressed
files too), so a file larger than memory lands.

The image is the bytes feature named as one (``image``, ``image/encoded``, ``image_raw``...), else the first bytes
feature whose value starts as an image file does; raw pixels (``image_raw`` beside ``height``, ``width`` and
``depth`` / ``channels`` that multiply to its length) land as a PNG. The label is the feature named as one
(``label``, ``class``, ``image/class/text``, ``image/class/label``, ``target``...): text as it is, a class index
named by ``class_names`` (``sluice init`` reads TFDS's ``<feature>.labels.txt``); several labels an image land the
image unlabelled (counted in the log). The id (``id``, ``image/filename``...) lands as ``item_id``, else
``<file>:<index>``; a feature naming the patient or person (``patient_id``: SIIM-ISIC Melanoma's records, found by
``sluice init`` as a labels file's subject column is) is the image's subject, kept in one split; the split is the file's (its folder, else a word of its name: ``cifar10-test.tfrecord-...``).
A record with no image bytes, or a class index past the names, or whose data fails its CRC (a damaged byte may be
a label's: no decoder would notice), is quarantined with its file and index; a file that ends inside a record (a
partial download) or whose framing does not check is quarantined there, its earlier records landed.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ingest.sources.base import Record, SourceConfig, png_bytes, safe_text, split_of, subject_of, word_split
from ingest.sources.labels_file import SUBJECT_NAMES
from sluice.delimited import column_key
from sluice.connectors import Connector
from sluice.errors import InputError
from sluice.stage import stage_logger

IMAGE_NAMES = ("image", "image/encoded", "image_raw", "image_bytes", "img", "encoded", "jpeg", "jpg", "png")
LABEL_NAMES = ("label", "class", "image/class/text", "image/class/label", "target", "category", "labels", "class_name",
               "label_text")
ID_NAMES = ("id", "image/filename", "filename", "image/source_id", "image_id", "image_name", "key", "name")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


class TFRecordSource(SourceConfig):
    kind: Literal["tfrecord"]
    image_feature: str | None = None  # null: found by name, else by its bytes
    label_feature: str | None = None  # null: found by name (label, class, ...); none found: unlabelled
    class_names: list[str] | None = Field(default=None, min_length=1)  # class index (from 0) -> name
    # the patient / person each record shows (SIIM-ISIC Melanoma's TFRecords: patient_id): one split each
    subject_feature: str | None = None


def is_tfrecord(path: Path) -> bool:
    return ".tfrec" in path.name.lower()  # .tfrecord(s), .tfrec, name.tfrecord-00000-of-00001, .tfrecord.gz


def files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and is_tfrecord(p)
                  and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))


# ---------------------------------------------------------------------------------------------- record framing
def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of ``data``: checked on each record's 8-byte length (its framing) and on
    its data (a damaged byte in a label is no decoding error: only the checksum sees it). google-crc32c's C code with
    the CPU's CRC instruction: ~0.1 ms a 224 px JPEG record."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path: Path, max_bytes: int) -> Iterator[tuple[int, bytes | None, str | None, str | None]]:
    """(index, the record's bytes, None, None), or (index, None, reason, details) where a record cannot be read (too
    large: skipped, the file read on; a broken frame or GZIP stream: the file ends there)."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    index = 0
    with (gzip.open(path, "rb") if gzipped else path.open("rb")) as f:
        try:
            while head := f.read(12):
                if len(head) < 12:
                    yield index, None, "truncated", "the file ends inside a record's header (a partial download?)"
                    return
                length, crc = struct.unpack("<QI", head)
                if masked_crc(head[:8]) != crc:
                    yield index, None, "truncated", "a record's length fails its checksum: not TFRecord from here on"
                    return
                if length > max_bytes + (1 << 20):
                    f.seek(length + 4, 1)
                    yield index, None, "too_large", f"a record of {length} bytes > ingest.max_file_bytes {max_bytes}"
                else:
                    data = f.read(length)
                    tail = f.read(4)
                    if len(data) < length or len(tail) < 4:
                        yield index, None, "truncated", "the file ends inside a record (a partial download?)"
                        return
                    if masked_crc(data) != struct.unpack("<I", tail)[0]:  # the frame holds: the next record is read
                        yield index, None, "corrupt", "the record's data fails its checksum (a damaged file)"
                    else:
                        yield index, data, None, None
                index += 1
        except (OSError, EOFError, zlib.error) as err:  # a GZIP stream cut short or corrupt
            yield index, None, "truncated", f"the file cannot be read on ({type(err).__name__}: {err})"[:300]


# ---------------------------------------------------------------------------------------------- tf.train.Example
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("a truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire)
            if size is None:
                size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("a field runs past its message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature(buf: bytes) -> list:
    """A Feature's values: bytes, floats or ints."""
    for kind, _, values in _fields(buf):
        found: list = []
        for number, wire, value in _fields(values):  # BytesList / FloatList / Int64List: field 1, packed or not
            if number != 1:
                continue
            if kind == 1:
                found.append(value)
            elif kind == 2:
                found.extend(np.frombuffer(value, "<f4").tolist() if wire == 2 else struct.unpack("<f", value))
            elif kind == 3 and wire == 2:
                pos = 0
                while pos < len(value):
                    number_, pos = _varint(value, pos)
                    found.append(_signed(number_))
            elif kind == 3:
                found.append(_signed(value))
        return found
    return []


def example(data: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as {feature name: values}; ValueError when it is not one."""
    features: dict[str, list] = {}
    for number, _, value in _fields(data):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(value):
            if entry_number != 1:
                continue
            parts = {n: v for n, _, v in _fields(entry)}
            features[bytes(parts.get(1, b"")).decode("utf-8", "replace")] = _feature(parts.get(2, b""))
    return features


# ---------------------------------------------------------------------------------------------- roles and reading
def _image_feature(features: dict[str, list]) -> str | None:
    named = next((n for n in IMAGE_NAMES if features.get(n) and isinstance(features[n][0], bytes)), None)
    return named or next((n for n, v in features.items() if v and isinstance(v[0], bytes) and v[0].startswith(_MAGIC)),
                         None)


def _label_feature(features: dict[str, list]) -> str | None:
    return next((n for n in LABEL_NAMES if n in features), None)


def _raw_pixels(features: dict[str, list], data: bytes) -> bytes | None:
    """A PNG of raw pixels (``image_raw`` beside height, width and depth that multiply to its length), else None."""
    size = [features.get(n, [None])[0] for n in ("height", "width")]
    depth = next((features[n][0] for n in ("depth", "channels") if features.get(n)), 1)
    if not all(isinstance(v, int) and v > 0 for v in (*size, depth)) or size[0] * size[1] * depth != len(data) \
            or depth not in (1, 3, 4):
        return None
    pixels = np.frombuffer(data, np.uint8).reshape(size[0], size[1], depth)
    return png_bytes(pixels[..., 0] if depth == 1 else pixels)


def file_split(path: Path, root: Path) -> str | None:
    for folder in reversed(path.relative_to(root).parts[:-1] if root.is_dir() else ()):
        if split_of(folder):
            return split_of(folder)
    return word_split(re.split(r"\.tfrec", path.name.lower())[0])


def read_tfrecord(src: TFRecordSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: TFRecord file or folder of source '{src.name}' not found")
    found = files(root)
    if not found:
        raise InputError(f"{root}: no TFRecord files (*.tfrecord, *.tfrec, name.tfrecord-00000-of-00001)")
    several: Counter = Counter()
    for path in found:
        split = file_split(path, root)
        for index, data, reason, details in records(path, max_bytes):
            uri, row_id = f"{path.as_posix()}#{index}", f"{path.name}:{index}"
            if data is None:
                yield Record(uri, item_id=row_id, reject=reason, details=details)
                continue
            yield _record(src, data, uri, row_id, split, max_bytes, several)
    if several:
        stage_logger("ingest").info(f"{src.name}: {sum(several.values())} records give several labels (multi-label: "
                                    "landed unlabelled)")


def _record(src: TFRecordSource, data: bytes, uri: str, row_id: str, split: str | None, max_bytes: int,
            several: Counter) -> Record:
    try:
        features = example(data)
    except ValueError as err:
        return Record(uri, item_id=row_id, reject="not_an_example", details=f"not a tf.train.Example ({err})")
    ident = next((features[n][0] for n in ID_NAMES if features.get(n)), None)
    item_id = safe_text(ident.decode("utf-8", "replace") if isinstance(ident, bytes) else str(ident)) \
        if ident is not None else row_id
    name = src.image_feature or _image_feature(features)
    image = features.get(name or "", [None])[0]
    if not isinstance(image, bytes) or not image:
        return Record(uri, item_id=item_id, reject="missing_image_bytes", details=(
            f"no bytes in feature {name!r}" if name else f"no image feature (features: {', '.join(features) or 'none'})"))
    if not image.startswith(_MAGIC):
        image = _raw_pixels(features, image) or image
    if len(image) > max_bytes:
        return Record(uri, item_id=item_id, reject="too_large", details=f"{len(image)} bytes > ingest.max_file_bytes {max_bytes}")
    values = list(dict.fromkeys(features.get(src.label_feature or _label_feature(features) or "", [])))
    several["records"] += len(values) > 1
    label = values[0] if len(values) == 1 else None
    if isinstance(label, bytes):
        label = label.decode("utf-8", "replace").strip() or None
    elif isinstance(label, int) and src.class_names:
        if not 0 <= label < len(src.class_names):
            return Record(uri, item_id=item_id, reject="bad_label",
                          details=f"label {label} is outside 0..{len(src.class_names) - 1} of the class names")
        label = src.class_names[label]
    subject = features.get(src.subject_feature, [None])[0] if src.subject_feature else None
    if isinstance(subject, bytes):
        subject = subject.decode("utf-8", "replace")
    return Record(uri, image, label=None if label is None else safe_text(str(label)), split_hint=split, item_id=item_id,
                  subject=subject_of(subject))


def _first(root: Path) -> dict[str, list]:
    """The first readable record's features (InputError when there is none)."""
    for path in files(root)[:3] if root.exists() else []:
        try:
            for _, data, _, _ in records(path, 1 << 30):
                if data is None:
                    break
                return example(data)
        except (OSError, ValueError, EOFError):
            continue
    raise InputError(f"{root}: no TFRecord of tf.train.Example records")


def detect(path: str) -> dict:
    """The features the records need named (none when found by name) and ``class_names`` from TFDS's
    ``<label>.labels.txt`` beside the files; InputError unless ``path`` holds TFRecord files of images."""
    root = Path(path)
    if not (root.is_file() and is_tfrecord(root) or root.is_dir() and files(root)):
        raise InputError(f"{path}: no TFRecord files")
    features = _first(root)
    if _image_feature(features) is None:
        raise InputError(f"{path}: no feature of image bytes in its records (features: {', '.join(features)}); set "
                         "image_feature on its ingest.sources entry")
    label = _label_feature(features)
    names = _labels_txt(root, label) if label and features[label] and isinstance(features[label][0], int) else None
    subject = next((n for n in features if column_key(n.rsplit("/", 1)[-1]) in SUBJECT_NAMES and features[n]), None)
    return {**({"class_names": names} if names else {}), **({"subject_feature": subject} if subject else {})}


def _labels_txt(root: Path, label: str) -> list[str] | None:
    folder = root if root.is_dir() else root.parent
    found = folder / f"{label.replace('/', '_')}.labels.txt"
    if not found.is_file():
        return None
    names = [line.strip() for line in found.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return names or None


def class_names(src: TFRecordSource) -> list[str] | None:
    return src.class_names


connector = Connector("source", "tfrecord", TFRecordSource, read_tfrecord,
                      "TFRecord files of tf.train.Example records (TensorFlow Datasets, Kaggle's TPU sets)",
                      detect=detect, class_names=class_names)
