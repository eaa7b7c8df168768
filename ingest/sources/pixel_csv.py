"""Images as rows of pixel values in a CSV, as Kaggle ships many small sets.

Two shapes: a column a pixel (the Digit Recognizer's ``train.csv``: ``label,pixel0..pixel783``; Sign Language
MNIST, Fashion-MNIST's CSVs: ``pixel1..pixel784``; HAM10000's ``hmnist_28_28_RGB.csv``: ``pixel0000..pixel2351,label``,
RGB interleaved), or one column of space-separated values (FER2013's ``fer2013.csv``: ``emotion,pixels,Usage``).
The image's side comes from the count: a square number is a greyscale square (784: 28 x 28), three times one an
RGB square (2,352: 28 x 28 x 3); ``shape`` says otherwise. The label is the column named for it (``label``,
``emotion``, ``class``...; none in a test file: unlabelled), class indices named by ``class_names``; the split is
the row's split column (FER2013's ``Usage``: ``Training``, ``PublicTest`` as val, ``PrivateTest`` as test) or
the file's name (``sign_mnist_test.csv``). ``path`` is one CSV or a folder of them (those with pixel columns;
a sample submission has none). Each image lands as a PNG; ``item_id`` is ``<file>:<row>`` (0-based data row). A
row whose values are not that many numbers from 0 to 255 is quarantined; a file that is not such a CSV is one
line naming it.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from ingest.sources.base import Record, SourceConfig, png_bytes, word_split
from ingest.sources.folder_layout import any_image
from ingest.sources.idx import FASHION
from sluice import read_ahead
from sluice.connectors import Connector
from sluice.errors import InputError

LABELS = ("label", "labels", "emotion", "class", "classid", "target", "y", "digit", "category")
SPLITS = ("usage", "split", "subset", "set")
_PIXEL = re.compile(r"(?i)(pixel|px|p)?_?\d+")
_TEXT = ("pixels", "pixel", "image", "data")  # one column of space-separated values
FER = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
_FER_SPLITS = {"training": "train", "publictest": "val", "privatetest": "test"}


class PixelCsvSource(SourceConfig):
    kind: Literal["pixel_csv"]
    label_column: str | None = None  # null = found by name (label, emotion, class, ...); none: unlabelled
    class_names: list[str] | None = Field(default=None, min_length=1)  # class index (from 0) -> name
    shape: Annotated[list[int], Field(min_length=2, max_length=3)] | None = None  # height, width[, channels]


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        return [c.strip().strip('"') for c in f.readline().rstrip("\r\n").split(",")]


def _layout(path: Path, header: list[str]) -> tuple[list[str], str | None]:
    """The pixel columns (many) or the one text column of values, and which: ``("columns" | "text")``."""
    pixels = [c for c in header if _PIXEL.fullmatch(c)]
    if len(pixels) >= 64:
        return pixels, "columns"
    text = next((c for c in header if c.lower() in _TEXT), None)
    return ([text], "text") if text else ([], None)


def _files(root: Path) -> list[Path]:
    files = [root] if root.is_file() else sorted(p for p in root.glob("*.csv") if p.is_file()) if root.is_dir() else []
    return [p for p in files if _layout(p, _header(p))[1]]


def _shape(count: int, shape: list[int] | None, path: Path) -> tuple[int, ...]:
    if shape:
        if math.prod(shape) != count:
            raise InputError(f"{path}: shape {shape} holds {math.prod(shape)} values, its rows {count}")
        return tuple(shape)
    side = math.isqrt(count)
    if side * side == count:
        return side, side
    side = math.isqrt(count // 3)
    if count % 3 == 0 and side * side * 3 == count:
        return side, side, 3
    raise InputError(f"{path}: cannot tell the image shape from {count} values a row (not a square, grey or RGB); "
                     "set shape: [height, width, channels] on the source")


def _split(value: str | None, file_split: str | None) -> str | None:
    if value is None or not value.strip():
        return file_split
    key = value.strip().lower().replace("_", "").replace(" ", "")
    return _FER_SPLITS.get(key) or word_split(value) or file_split


def read_pixel_csv(src: PixelCsvSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: pixel CSV of source '{src.name}' not found")
    files = _files(root)
    if not files:
        raise InputError(f"{root}: no CSV of pixel values (pixel0, pixel1, ... columns, or a pixels column)")
    for path in files:
        header = _header(path)
        columns, kind = _layout(path, header)
        label = src.label_column or next((c for c in header if c.lower() in LABELS), None)
        if src.label_column and label not in header:
            raise InputError(f"{path}: no column {label!r} (label_column); it has {', '.join(header[:6])}, ...")
        split_column = next((c for c in header if c.lower() in SPLITS), None)
        shape = _shape(len(columns), src.shape, path) if kind == "columns" else None
        batches = _batches(path, columns, kind, label, split_column)
        yield from _records(path, batches, shape, src, word_split(path.stem))


def _batches(path: Path, columns: list[str], kind: str, label: str | None, split_column: str | None):
    """(first row, pixel values or texts, labels, splits) of each batch of the file, read as a stream."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = [c for c in (label, split_column, *(columns if kind == "text" else [])) if c]
    start = 0
    try:
        reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=[*columns, *(c for c in (label, split_column) if c)],
            column_types={c: pa.string() for c in text}))
        batches = iter(reader)
        while (batch := next(batches, None)) is not None:
            values = batch.column(columns[0]).to_pylist() if kind == "text" else \
                np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns])
            labels = batch.column(label).to_pylist() if label else [None] * batch.num_rows
            splits = batch.column(split_column).to_pylist() if split_column else [None] * batch.num_rows
            yield start, values, labels, splits
            start += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:  # a value that is no number, a ragged row: pyarrow names it
        raise InputError(f"{path}: not a CSV of pixel values ({str(err).splitlines()[0]})") from None


def _records(path: Path, batches, shape, src: PixelCsvSource, file_split: str | None) -> Iterator[Record]:
    def record(job) -> Record:
        row, values, label, split = job
        uri, item_id = f"{path.as_posix()}#{row}", f"{path.name}:{row}"
        try:
            pixels = np.asarray(values.split() if isinstance(values, str) else values, dtype=np.float64)
        except ValueError:
            return Record(uri, item_id=item_id, reject="pixel_out_of_range", details="a pixel value is not a number")
        want = shape or found[0]
        if want is None or pixels.size != math.prod(want):
            return Record(uri, item_id=item_id, reject="bad_pixel_count",
                          details=f"{pixels.size} values, not the {math.prod(want or (0,))} of its file's images")
        if np.isnan(pixels).any() or pixels.min() < 0 or pixels.max() > 255:
            return Record(uri, item_id=item_id, reject="pixel_out_of_range", details="a value outside 0..255 (or empty)")
        name = None if label is None or not str(label).strip() else str(label).strip()
        if name is not None and src.class_names and name.isdigit():
            if int(name) >= len(src.class_names):
                return Record(uri, item_id=item_id, reject="bad_label",
                              details=f"label {name} is past the {len(src.class_names)} class_names")
            name = src.class_names[int(name)]
        return Record(uri, png_bytes(pixels.astype(np.uint8).reshape(want)), label=name, split_hint=_split(split, file_split),
                      item_id=item_id)

    found: list[tuple[int, ...] | None] = [None]  # a text column's shape: its first batch's most common count

    def jobs():
        for start, values, labels, splits in batches:
            if shape is None and found[0] is None and len(labels):
                found[0] = _text_shape(Counter(len(str(v).split()) for v in values).most_common(1)[0][0])
            for k in range(len(labels)):
                yield start + k, values[k], labels[k], splits[k]
    yield from read_ahead.ordered(record, jobs(), os.cpu_count() or 1)


def _text_shape(count: int) -> tuple[int, ...] | None:
    try:
        return _shape(count, None, Path())
    except InputError:
        return None


def detect(path: str) -> dict:
    """InputError unless ``path`` is a CSV of pixel values or a folder of them holding no image files; the class
    names of a set known by its file (FER2013's emotions, Fashion-MNIST's garments)."""
    root = Path(path)
    files = [] if root.is_dir() and any_image(root) else _files(root)
    if not files:
        raise InputError(f"{path}: no CSV of pixel values")
    headers = [[c.lower() for c in _header(p)] for p in files]
    if any(h[:3] == ["emotion", "pixels", "usage"] for h in headers):
        return {"class_names": FER}
    return {"class_names": FASHION} if any("fashion" in p.name.lower() for p in files) else {}


def class_names(src: PixelCsvSource) -> list[str] | None:
    """``class_names``, else the labels the files give (read from their label columns alone), numbers in
    numeric order."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if src.class_names:
        return src.class_names
    found: set[str] = set()
    for path in _files(Path(src.path)):
        label = src.label_column or next((c for c in _header(path) if c.lower() in LABELS), None)
        if label:
            try:
                table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=[label],
                                                                                 column_types={label: pa.string()}))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                continue
            found.update(v.strip() for v in table.column(label).to_pylist() if v and v.strip())
    return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)) or None


connector = Connector("source", "pixel_csv", PixelCsvSource, read_pixel_csv,
                      "images as rows of pixel values in a CSV (label,pixel0..pixel783; FER2013's emotion,pixels,Usage)",
                      detect=detect, class_names=class_names)
