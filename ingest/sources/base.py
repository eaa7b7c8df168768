"""What every image-source connector shares: its config base, the ``Record`` it yields, small helpers.

A source connector is a module with a config model (subclass of ``SourceConfig`` whose ``kind`` is a
``Literal``), a reader ``read(config, max_bytes) -> Iterator[Record]`` and a module-level
``connector = Connector("source", kind, Config, read)`` registered as an entry point. The reader
never writes: it yields one ``Record`` per input item, either bytes to land or a rejection with a
reason, and ``ingest.landing`` batches them into ``raw_images`` and ``quarantine``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field

from sluice.config import Section
from sluice.errors import InputError


# split names as data sets spell them (a folder, a file name's first word, a split column) -> ours
SPLIT_NAMES = {"train": "train", "training": "train", "trainval": "train", "test": "test", "testing": "test",
               "val": "val", "valid": "val", "validation": "val", "dev": "val"}


_SPLIT_FILLER = {"set", "data", "dataset", "images", "imgs", "img", "photos", "split", "seg", "files", "final"}  # GTSRB: Final_Test


def split_of(name: str | None) -> str | None:
    """``name`` as train / val / test when it is one of SPLIT_NAMES (any case), alone or with filler words
    (Kaggle's ``training_set``, ``test_images``, ``seg_train``) or a number (``train2017``, ``test1``), else None.
    Train and val together (``train_val2019``, ``trainval``) are train: the dataset stage carves val from them."""
    if not name:
        return None
    # a trailing number is an edition, not a name: COCO's train2017, Kaggle's test1
    words = [w.rstrip("0123456789") for w in re.split(r"[-_. ]+", name.strip().lower()) if w]
    words = [w for w in words if w]
    splits = list(dict.fromkeys(SPLIT_NAMES[w] for w in words if w in SPLIT_NAMES))
    splits = ["train"] if splits == ["train", "val"] else splits  # iNaturalist's train_val2019: one pool to split
    return splits[0] if len(splits) == 1 and set(words) - set(SPLIT_NAMES) <= _SPLIT_FILLER else None


def word_split(name: str) -> str | None:
    """The one split the words of ``name`` name, whatever the other words (a data set's name: Stanford Cars'
    ``cars_train``), else None; :func:`split_of` for a name that says it alone."""
    words = {w.rstrip("0123456789") for w in re.split(r"[-_. ]+", name.strip().lower())}
    splits = {SPLIT_NAMES[w] for w in words if w in SPLIT_NAMES}
    return split_of(name) or (splits.pop() if len(splits) == 1 else None)


class SourceConfig(Section):
    """The keys every ``ingest.sources`` entry has."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    license: str | None = None


@dataclass
class Record:
    """One input item: either image bytes to land or a rejection to quarantine.

    ``item_id`` is the id the user's own data names the item by (a relative path, ``<batch>:<index>``,
    a Parquet id column); it lands in ``raw_images.item_id`` so votes and joins can use it.
    """

    uri: str
    content: bytes | None = None
    label: str | None = None
    split_hint: str | None = None
    extra: str | None = None
    item_id: str | None = None
    reject: str | None = None  # reason code when the item cannot be landed
    details: str | None = None
    image_id: str | None = None  # content_id(content), when the reader computed it already (on a reading thread)
    subject: str | None = None  # who or what the image shows (a patient, a lesion, a sequence): one split each


_NO_SUBJECT = {"", "nan", "na", "n/a", "none", "null", "-", "?", "unknown"}  # how exports write a missing value


def subject_of(value: object) -> str | None:
    """A subject as a source gives it (a patient id, a lesion id), or None where the cell says none: a missing
    value written as ``nan`` must not make one patient of every image that lacks one."""
    text = "" if value is None else str(value).strip()
    return None if text.casefold() in _NO_SUBJECT else safe_text(text)


def content_id(content: bytes) -> str:
    """An image's key in ``raw_images``: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(content).hexdigest()


def safe_text(value: str | os.PathLike) -> str:
    """``value`` as text that can be stored: a file name that is not valid UTF-8 (Linux allows any
    bytes) keeps its valid parts and shows each undecodable byte as ``\\xNN``."""
    text = value.as_posix() if isinstance(value, Path) else os.fspath(value)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise InputError(f"{path}: {what} must be a folder")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
