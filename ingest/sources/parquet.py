"""Parquet files (one file or a folder) with an image column: raw bytes, or a Hugging Face ``{bytes, path}`` struct.

Hugging Face's own Arrow files too: a data set saved with ``save_to_disk`` (``beans/train/data-00000-of-00001.arrow``
beside ``dataset_info.json``; the split its folder) or the ``datasets`` cache, written in Arrow's stream format.

``item_id`` is the row's ``id_column`` value, else its path (``path_column`` or the struct's
``path``), else ``<file>:<row>``. Integer labels map through ``class_names`` or the Hugging Face
``ClassLabel`` metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from ingest.sources.base import Record, SourceConfig, safe_text, split_of, subject_of
from ingest.sources.labels_file import LABEL_NAMES as FILE_LABELS, SPLIT_NAMES, SUBJECT_NAMES
from sluice.connectors import Connector
from sluice.delimited import column_key
from sluice.errors import InputError

if TYPE_CHECKING:
    import pyarrow.dataset as ds

BATCH_ROWS = 1000  # rows decoded at a time; the landing batches are ingest.batch_rows


class ParquetSource(SourceConfig):
    kind: Literal["parquet"]
    image_column: str = "image"
    label_column: str | None = "label"
    path_column: str | None = None
    id_column: str | None = None
    split_column: str | None = None
    subject_column: str | None = None  # the patient / lesion each row shows: one split each (labels_file.SUBJECT_NAMES)
    class_names: list[str] | None = None


def _is_image_type(t: pa.DataType) -> bool:
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return True
    return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and _is_image_type(t.field("bytes").type)


PARQUET_SUFFIXES = (".parquet", ".pq", ".arrow")


def _files(root: Path, what: str) -> Path | list[str]:
    """A folder's Parquet files only (a Hugging Face snapshot also holds README.md, images, .gitattributes)."""
    if not root.is_dir():
        return root
    files = sorted(str(f) for f in root.rglob("*") if f.suffix.lower() in PARQUET_SUFFIXES and f.is_file()
                   and not any(part.startswith((".", "_")) for part in f.relative_to(root).parts))
    if not files:
        raise InputError(f"{root}: no .parquet (or Hugging Face .arrow) files in the folder ({what})")
    return files


class _Arrow:
    """Hugging Face's ``.arrow`` files (Arrow's stream format, or its file format) read as a dataset's fragments:
    memory-mapped, so the columns not asked for are never read."""

    def __init__(self, files: list[str]):
        self.files = files
        self.schema = self.reader(files[0]).schema

    @staticmethod
    def reader(path: str):
        try:
            return pa.ipc.open_stream(pa.memory_map(path))
        except pa.ArrowInvalid:
            return pa.ipc.open_file(pa.memory_map(path))

    def get_fragments(self) -> list:
        return [_Arrow.Fragment(path) for path in self.files]

    class Fragment:
        def __init__(self, path: str):
            self.path = path

        def to_batches(self, columns: list[str], batch_size: int):
            yield from _Arrow.reader(self.path).read_all().select(columns).to_batches(max_chunksize=batch_size)


def _dataset(files: Path | list[str]):
    """A Parquet dataset, or Hugging Face's Arrow files read as one; InputError for a folder of both."""
    import pyarrow.dataset as ds  # here: every params load imports this module (the connector's config)

    listed = [str(files)] if isinstance(files, Path) else files
    arrow = [f for f in listed if f.lower().endswith(".arrow")]
    if arrow and len(arrow) < len(listed):
        raise InputError(f"{Path(arrow[0]).parent}: both Parquet and Arrow files; give the folder of one kind")
    return _Arrow(arrow) if arrow else ds.dataset(files, format="parquet")


def _open(src: ParquetSource) -> ds.Dataset:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: Parquet path of source '{src.name}' does not exist")
    try:
        dataset = _dataset(_files(root, f"source '{src.name}'"))
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{root}: cannot read as Parquet or Arrow ({err})") from None
    for column in (src.image_column, src.label_column, src.path_column, src.id_column, src.split_column, src.subject_column):
        if column and column not in dataset.schema.names:
            raise InputError(f"{root}: Parquet has no column '{column}' (columns: {', '.join(dataset.schema.names)}); "
                             f"set ingest.sources[{src.name}] columns")
    image_type = dataset.schema.field(src.image_column).type
    if not _is_image_type(image_type):
        raise InputError(f"{root}: image column '{src.image_column}' has type {image_type}; expected binary image "
                         f"bytes or a {{bytes, path}} struct (source '{src.name}')")
    return dataset


def read_parquet(src: ParquetSource, max_bytes: int) -> Iterator[Record]:
    dataset = _open(src)
    root = Path(src.path)
    wanted = list(dict.fromkeys(c for c in (src.image_column, src.label_column, src.path_column, src.id_column,
                                            src.split_column, src.subject_column) if c))
    names = src.class_names or _hf_class_names(dataset.schema, src.label_column)
    home = (root if root.is_dir() else root.parent).resolve()
    for fragment in dataset.get_fragments():
        offset = 0
        file_id = Path(fragment.path).relative_to(root).as_posix() if root.is_dir() else Path(fragment.path).name
        file_split = None if src.split_column else file_split_of(file_id)
        for batch in fragment.to_batches(columns=wanted, batch_size=BATCH_ROWS):
            cols = {c: batch.column(c).to_pylist() for c in wanted}
            for i, image in enumerate(cols[src.image_column]):
                if isinstance(image, dict) and not image.get("bytes") and image.get("path"):
                    image = {**image, "bytes": _beside(image["path"], Path(fragment.path).parent, home, max_bytes)}
                yield _record(src, cols, i, image, f"{Path(fragment.path).as_posix()}#{offset + i}",
                              f"{file_id}:{offset + i}", names, max_bytes, file_split)
            offset += batch.num_rows


def _beside(path: str, folder: Path, home: Path, max_bytes: int) -> bytes | None:
    """The bytes of an image a Hugging Face struct names by path only (``Dataset.to_parquet`` keeps local
    images as paths): relative to its Parquet file's folder, and only inside the source's own folder, so a
    hostile file cannot land ``/etc/passwd`` in the lake. None (quarantined as missing bytes) otherwise."""
    candidate = Path(path) if Path(path).is_absolute() else folder / path
    try:
        full = candidate.resolve()
        if not full.is_relative_to(home) or not full.is_file() or full.stat().st_size > max_bytes:
            return None
        return full.read_bytes()
    except OSError:
        return None


def file_split_of(file_id: str) -> str | None:
    """The split a file's own path names, as Hugging Face lays datasets out: ``data/test-00000-of-00001.parquet``,
    ``train/0000.parquet``, ``validation.parquet`` (a folder, else the file name's first word)."""
    path = Path(file_id)
    for folder in reversed(path.parts[:-1]):
        if split_of(folder):
            return split_of(folder)
    return split_of(re.split(r"[-_.]", path.name)[0])


def _record(src: ParquetSource, cols: dict, i: int, image, uri: str, row_id: str, names, max_bytes: int,
            file_split: str | None = None) -> Record:
    path_in_row = None
    if isinstance(image, dict):  # Hugging Face Image feature
        path_in_row = image.get("path")
        image = image.get("bytes")
    if src.path_column:
        path_in_row = cols[src.path_column][i]
    item = cols[src.id_column][i] if src.id_column else path_in_row
    item_id = safe_text(str(item)) if item is not None else row_id
    label = cols[src.label_column][i] if src.label_column else None
    if label == -1 and names is not None and not isinstance(label, bool):
        label = None  # Hugging Face's ClassLabel for "no label" (a competition's test split): lands unlabelled
    if isinstance(label, int) and not isinstance(label, bool) and names is not None:
        if not 0 <= label < len(names):
            return Record(uri, item_id=item_id, reject="bad_label",
                          details=f"label {label} is outside 0..{len(names) - 1} of the class names")
        label = names[label]
    split = cols[src.split_column][i] if src.split_column else file_split
    split = None if split is None else split_of(str(split)) or str(split)
    extra = json.dumps({"path": path_in_row}) if path_in_row else None
    if not image:
        named = f" (its path {path_in_row!r} is no readable file under the source's folder)" if path_in_row else ""
        return Record(uri, item_id=item_id, reject="missing_image_bytes",
                      details=f"column '{src.image_column}' is empty{named}")
    if len(image) > max_bytes:
        return Record(uri, item_id=item_id, reject="too_large", details=f"{len(image)} bytes > ingest.max_file_bytes {max_bytes}")
    subject = cols[src.subject_column][i] if src.subject_column else None
    return Record(uri, bytes(image), label=None if label is None else str(label), split_hint=split, extra=extra,
                  item_id=item_id, subject=subject_of(subject))


def _hf_features(schema: pa.Schema) -> dict | None:
    """The ``features`` of Hugging Face's schema metadata (each column's type: ``Image``, ``ClassLabel``), or None."""
    meta = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(meta)["info"]["features"] if meta else None
    except (KeyError, TypeError, ValueError):
        return None
    return features if isinstance(features, dict) else None


def _hf_class_names(schema: pa.Schema, label_column: str | None) -> list[str] | None:
    feature = (_hf_features(schema) or {}).get(label_column) if label_column else None
    try:
        return list(feature["names"]) if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError):
        return None


LABEL_NAMES = ("label", "labels", "fine_label", "class", "class_label", "category", "target", "coarse_label")
# a labels file's names of one label a row (HAM10000's dx, the Pets' breed), not its columns of several (tags)
FILE_LABEL_NAMES = tuple(n for n in FILE_LABELS if n not in ("tags", "tag", "findinglabels", "predictionstring"))


def detect(path: str) -> dict:
    """The column settings the Parquet at ``path`` needs: the image column when it is not ``image`` (the
    first column of image bytes or ``{bytes, path}`` structs, one named like an image first), the
    label column when it is not ``label`` (the first of LABEL_NAMES, else of a labels file's, else none:
    unlabelled images), a subject column (a patient, a lesion: ``labels_file.SUBJECT_NAMES``) and a column of split
    names (``split``, ``subset``...: without it a file's own test rows were split by hash, most into train)."""
    try:
        schema = _dataset(_files(Path(path), path)).schema
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: cannot read as Parquet or Arrow ({err})") from None
    found: dict = {}
    if "image" not in schema.names or not _is_image_type(schema.field("image").type):
        images = sorted((f.name for f in schema if _is_image_type(f.type)), key=lambda n: _image_rank(schema, n))
        if not images:
            raise InputError(f"{path}: no column of image bytes or {{bytes, path}} structs (columns: "
                             f"{', '.join(schema.names)}); set image_column on its ingest.sources entry")
        found["image_column"] = images[0]
    by_key = {column_key(n): n for n in reversed(schema.names)}  # the first of names alike
    if "label" not in schema.names:  # Hugging Face's names, then a labels file's (HAM10000's dx)
        found["label_column"] = next((by_key[k] for k in dict.fromkeys([*map(column_key, LABEL_NAMES), *FILE_LABEL_NAMES])
                                      if k in by_key), None)
    if subject := next((by_key[k] for k in SUBJECT_NAMES if k in by_key), None):
        found["subject_column"] = subject
    # a column of split names (a whole-number `fold` is a cross-validation index, not a split)
    if split := next((by_key[k] for k in SPLIT_NAMES if k in by_key and _is_text(schema.field(by_key[k]).type)), None):
        found["split_column"] = split
    return found


def _image_rank(schema: pa.Schema, name: str) -> tuple:
    """Which of several columns of bytes holds the images: the one Hugging Face's metadata types ``Image``, then a
    ``{bytes, path}`` struct, then one named like an image (``img``, ``photo``, ``picture``), then the first (an
    ``embedding`` of raw bytes comes last but one that is named like nothing)."""
    feature = (_hf_features(schema) or {}).get(name)
    typed = isinstance(feature, dict) and feature.get("_type") == "Image"
    named = re.search(r"im(a?ge?)?|photo|picture|pic|jpe?g|png", name.lower()) is not None
    return (not typed, not pa.types.is_struct(schema.field(name).type), not named, schema.names.index(name))


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def class_names(src: ParquetSource) -> list[str] | None:
    """``class_names``, else the Hugging Face ClassLabel names of the label column."""
    return src.class_names or _hf_class_names(_open(src).schema, src.label_column)


connector = Connector("source", "parquet", ParquetSource, read_parquet,
                      "Parquet with an image column (bytes or a Hugging Face {bytes, path} struct)", detect=detect,
                      class_names=class_names)
