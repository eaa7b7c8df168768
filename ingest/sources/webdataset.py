"""WebDataset shards: tar files of samples, each sample the files that share a key (``000123.jpg``, ``000123.cls``).

The layout large sets are published in for streaming: timm's ``imagenet-1k-wds`` (``imagenet1k-train-0000.tar``:
``<key>.jpg``, ``<key>.cls``, ``<key>.json``), LAION's and DataComp's ``img2dataset`` output (``00000.tar``: ``.jpg``,
``.txt`` caption, ``.json``), any Hugging Face ``webdataset`` repository. A shard is read as a stream, never
extracted (so a member's path, absolute or with ``..``, is only a name) and a sample at a time. The key is a
member's path up to the first dot of its name (``train/000123.seg.png``: ``train/000123``, extension ``seg.png``).

The image is the sample's member with an image extension (``jpg``, ``png``, ``webp``..., a plain one first); the
label its ``cls`` / ``label`` / ``class`` member (a class index named by ``class_names``, else by a ``class_name``
its ``json`` gives; or text), else a label field of its ``json`` (``label``, ``class``, ``category``...); a caption (``txt``) is not a label. ``item_id`` is the
key; a ``json`` field naming the patient or person (``patient_id``, found by ``sluice init``) the sample's subject; the split the shard's folder or a word of its name (``imagenet1k-validation-0003.tar``). A sample with no
image (``missing_image_bytes``), an image over ``ingest.max_file_bytes`` (``too_large``), a link or device member
(``unreadable``) or a class index past the names (``bad_label``) is quarantined with its shard and key; a shard
that ends early (a partial download) is quarantined there (``truncated``), its earlier samples landed.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from ingest.sources.base import Record, SourceConfig, safe_text, split_of, subject_of, word_split
from ingest.sources.labels_file import SUBJECT_NAMES
from sluice.connectors import Connector
from sluice.delimited import column_key
from sluice.errors import InputError

SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ppm", "pgm", "image", "img")
LABEL_EXTENSIONS = ("cls", "label", "class", "labels", "target", "cls.txt", "label.txt")
JSON_LABELS = ("label", "class", "category", "target", "class_name", "classname", "label_name")


class WebDatasetSource(SourceConfig):
    kind: Literal["webdataset"]
    class_names: list[str] | None = Field(default=None, min_length=1)  # class index (from 0) -> name
    subject_field: str | None = None  # the json field naming the patient / person a sample shows: one split each


def shards(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES)
                  and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))


def _split_name(name: str) -> tuple[str, str]:
    """(key, extension) of a member: its path up to the first dot of its last part."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


_IMAGE, _SIDECAR = 1 << 62, 1 << 20  # the bytes read of a member: an image up to max_bytes, a label or json 1 MiB


def _wanted(extension: str) -> int | None:
    """How many bytes of a member to read at most: images and label files only."""
    if extension.rpartition(".")[2] in IMAGE_EXTENSIONS:
        return _IMAGE
    return _SIDECAR if extension in LABEL_EXTENSIONS or extension == "json" else None


def samples(path: Path, max_bytes: int) -> Iterator[tuple[str, dict[str, bytes | str]]]:
    """(key, {extension: bytes, or why it was not read}) of each sample, in order; ("", {"truncated": why}) where
    the shard ends early."""
    key, members = None, {}
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name, extension = _split_name(member.name)
                if member.isdir() or not extension:
                    continue
                if name != key and key is not None:
                    yield key, members
                    members = {}
                key = name
                wanted = _wanted(extension)
                if not member.isfile():
                    members[extension] = "a link or device, not a file: not read"
                elif wanted is None or member.size > min(wanted, max_bytes):  # a caption, a 10 GB json: not held
                    members[extension] = f"too_large:{member.size} bytes > ingest.max_file_bytes {max_bytes}" \
                        if wanted == _IMAGE else "not read"
                else:
                    members[extension] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        if key is not None and members:
            yield key, members
        yield "", {"truncated": f"the shard ends early or is not a tar file ({type(err).__name__}: {err})"[:300]}
        return
    if key is not None:
        yield key, members


def _json(members: dict) -> dict:
    """A sample's json member as an object ({} where it has none or it is no JSON object)."""
    record = None
    if isinstance(members.get("json"), bytes):
        try:
            record = json.loads(members["json"])
        except (ValueError, RecursionError):
            pass
    return record if isinstance(record, dict) else {}


def _label(members: dict, record: dict, names: list[str] | None) -> tuple[str | None, str | None]:
    """(label, why it is bad) of a sample: a class index is named by ``names``, else by the class name its json
    (``record``) gives beside it (``{"label": 3, "class_name": "tench"}``)."""
    found = next((members[e] for e in LABEL_EXTENSIONS if isinstance(members.get(e), bytes)), None)
    if found is None:
        found = next((record[k] for k in JSON_LABELS if k in record), None)
        found = None if isinstance(found, (dict, list)) else found
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace").strip() or None
    if found is None:
        return None, None
    text = str(found).strip()
    named = next((record[k] for k in ("class_name", "classname", "label_name") if isinstance(record.get(k), str)), None)
    if not names and named and named.strip() and re.fullmatch(r"\d+", text):
        return named.strip(), None
    if names and re.fullmatch(r"\d+", text):
        if int(text) >= len(names):
            return None, f"label {text} is outside 0..{len(names) - 1} of the class names"
        return names[int(text)], None
    return text or None, None


def read_webdataset(src: WebDatasetSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: WebDataset shard or folder of source '{src.name}' not found")
    found = shards(root)
    if not found:
        raise InputError(f"{root}: no WebDataset shards (.tar, .tar.gz, .tgz)")
    for shard in found:
        split = shard_split(shard, root)
        for key, members in samples(shard, max_bytes):
            uri, item_id = f"{shard.as_posix()}#{safe_text(key)}", safe_text(key) or f"{shard.name}:end"
            if "truncated" in members and not key:
                yield Record(uri, item_id=item_id, reject="truncated", details=members["truncated"])
                continue
            image = next((e for e in sorted(members, key=lambda e: ("." in e, e not in IMAGE_EXTENSIONS))
                          if e.rpartition(".")[2] in IMAGE_EXTENSIONS), None)
            if image is None:
                yield Record(uri, item_id=item_id, reject="missing_image_bytes",
                             details=f"no image among its files ({', '.join(sorted(members))})")
                continue
            content = members[image]
            if isinstance(content, str):
                reason, _, details = content.partition(":") if content.startswith("too_large:") else \
                    ("unreadable", "", content)
                yield Record(uri, item_id=item_id, reject=reason, details=details)
                continue
            record = _json(members)
            label, bad = _label(members, record, src.class_names)
            if bad:
                yield Record(uri, item_id=item_id, reject="bad_label", details=bad)
                continue
            subject = record.get(src.subject_field) if src.subject_field else None
            yield Record(uri, content, label=None if label is None else safe_text(label), split_hint=split,
                         item_id=item_id, subject=None if isinstance(subject, (dict, list)) else subject_of(subject))


def shard_split(path: Path, root: Path) -> str | None:
    for folder in reversed(path.relative_to(root).parts[:-1] if root.is_dir() else ()):
        if split_of(folder):
            return split_of(folder)
    return word_split(re.sub(r"\.(tar|tgz).*$", "", path.name.lower()))


def detect(path: str) -> dict:
    """What a shard or a folder of them needs named (``subject_field``: a json field of its first sample named as a
    patient or person is), where its first sample holds an image; else InputError."""
    root = Path(path)
    if not (root.is_file() and root.name.lower().endswith(SUFFIXES) or root.is_dir() and shards(root)):
        raise InputError(f"{path}: no WebDataset shards (.tar)")
    first = []
    for key, members in samples(shards(root)[0], 1 << 30):
        first.append((key, members))
        if len(first) == 20:
            break
    if not first or not any(e.rpartition(".")[2] in IMAGE_EXTENSIONS for e in first[0][1]):
        raise InputError(f"{path}: its first sample holds no image file")
    if all("/" in key and len(members) == 1 for key, members in first):  # images in folders, nothing beside them
        raise InputError(f"{path}: a tar of folders of images, not WebDataset shards: extract it and give the folder")
    subject = next((k for k, v in _json(first[0][1]).items() if column_key(k) in SUBJECT_NAMES
                    and not isinstance(v, (dict, list))), None)
    return {"subject_field": subject} if subject else {}


def class_names(src: WebDatasetSource) -> list[str] | None:
    return src.class_names


connector = Connector("source", "webdataset", WebDatasetSource, read_webdataset,
                      "WebDataset tar shards (<key>.jpg beside <key>.cls / <key>.json)", detect=detect,
                      class_names=class_names)
