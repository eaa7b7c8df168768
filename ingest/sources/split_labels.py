"""A flat split folder labelled by a file: the labelled test or val split a set ships beside its class folders.

GTSRB as Kaggle ships it (``Train/<class>/`` beside a flat ``Test/`` and ``Test.csv`` of ``...,ClassId,Path``) and
as torchvision downloads it (``GTSRB/Training/<class>/`` beside ``GTSRB/Final_Test/Images/`` and, above them,
``GT-final_test.csv`` of ``Filename;...;ClassId``); ImageNet as Kaggle ships it (``ILSVRC/Data/CLS-LOC/train/<wnid>/``
beside a flat ``val/`` and, at the top, ``LOC_val_solution.csv`` of ``ImageId,PredictionString``: the wnid and
its boxes). Without the file such a split lands unlabelled: the set's own test labels lost, and its test images
thrown in with the images to predict.

``split_labels`` on the source maps each such folder (its path under the source) to its file; ``sluice init``
finds them (:func:`find`): a CSV or TSV in the folder, beside it, in the source folder or above it up to the
folder given, whose name says the folder's split (``Test``, ``GT-final_test``, ``LOC_val_solution``), whose
columns say file and label, and whose first 500 rows name the folder's images (80% of them). The rows are read
as a labels file's (``labels_file.py``: an image by path, name or stem; a row naming no image, or an image again
with another label, quarantined with its line). A label that is a number names the class folder that is the
same number (``16`` is ``00016`` where the train folders are numbered so), so the split's classes are the
folders' classes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ingest.sources.base import SPLIT_NAMES
from ingest.sources.labels_file import lookup, find_columns, match
from sluice.delimited import read_delimited
from sluice.errors import InputError
from sluice.imaging import image_extensions
from sluice.stage import stage_logger

_SUFFIXES = (".csv", ".tsv", ".txt")
_SAMPLE = 500


def folders(split_labels: dict[str, str], root: Path, groups) -> dict[Path, Path]:
    """The folders ``split_labels`` labels, each with its file; InputError naming a key that is no flat split
    folder of the source (with the ones that are)."""
    flat = {folder.relative_to(root).as_posix(): folder for split, folder, label in groups
            if label is None and split is not None}
    for key in split_labels:
        if key.strip("/") not in flat:
            raise InputError(f"{root}: split_labels names {key!r}, which is no split folder of unlabelled images in it "
                             f"(those are: {', '.join(sorted(flat)) or 'none'})")
    return {flat[key.strip("/")]: Path(path) for key, path in split_labels.items()}


def numbered(label: str, classes: set[str]) -> str:
    """``label``, or the one class folder that is the same number (``16`` -> ``00016``)."""
    if label in classes or not label.isdigit():
        return label
    same = [c for c in classes if c.isdigit() and int(c) == int(label)]
    return same[0] if len(same) == 1 else label


def jobs(source: str, files: list[Path], labels: Path, root: Path, split: str | None, classes: set[str]) -> Iterator:
    """``files`` (one split folder) as the image folder's (path, label, split) jobs, labelled by ``labels``, after
    the rejections of its rows."""
    extensions = image_extensions()
    found = match(labels, [p for p in files if p.suffix.lower() in extensions], root, None, None, None)
    by_image = {path: numbered(label, classes) for path, (label, _) in found.by_image.items()}
    strange = sorted({label for label in by_image.values() if label not in classes})
    stage_logger("ingest").info(
        f"{source}: {len(by_image)} images in {files[0].parent if files else root} labelled by {labels.name}"
        + (f", {len(found.rejects)} of its rows quarantined" if found.rejects else "")
        + (f"; {len(strange)} of its labels name no class folder ({', '.join(strange[:5])})" if classes and strange else ""))
    yield from found.rejects
    yield from ((path, by_image.get(path), split) for path in files)


def find(given: Path, root: Path, groups) -> dict[str, str]:
    """``split_labels`` for the flat split folders of ``root`` (the layout's folder, ``given`` or inside it) that
    a file labels, as ``sluice init`` writes them."""
    out = {}
    for split, folder, label in groups:
        if label is not None or split is None:
            continue
        names = _image_names(folder)
        places = dict.fromkeys([folder, folder.parent, root, *[p for p in root.parents if p.is_relative_to(given)]])
        hit = next((f for place in places if place.is_relative_to(given) for f in _named_for(place, split)
                    if _labels(f, names)), None)
        if hit is not None:
            out[folder.relative_to(root).as_posix()] = hit.absolute().as_posix()
    return out


def _image_names(folder: Path) -> dict[str, list[str]]:
    extensions = image_extensions()
    index: dict[str, list[str]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and Path(entry.name).suffix.lower() in extensions:
                for key in dict.fromkeys((f"{folder.name}/{entry.name}", entry.name, Path(entry.name).stem)):
                    index.setdefault(key, []).append(entry.name)
    return index


def _named_for(place: Path, split: str) -> list[Path]:
    """The delimited files in ``place`` whose name says ``split`` and no other (a sample submission is no labels)."""
    def says(stem: str) -> bool:
        words = {w.rstrip("0123456789") for w in re.split(r"[-_. ]+", stem.lower())}
        return {SPLIT_NAMES[w] for w in words if w in SPLIT_NAMES} == {split} and "submission" not in stem.lower()
    return sorted(p for p in place.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES and says(p.stem))


def _labels(path: Path, names: dict[str, list[str]]) -> bool:
    """Whether ``path`` has file and label columns and 80% of its first rows name an image of the folder."""
    try:
        columns = find_columns(path)
        rows = read_delimited(path, [columns["file_column"], columns["label_column"]], None, "labels").head(_SAMPLE)
    except (InputError, OSError, ValueError):
        return False
    keys = [(name or "").strip().replace("\\", "/").removeprefix("./") for name in rows[columns["file_column"]]]
    return bool(keys) and sum(bool(lookup(names, key)) for key in keys) >= 0.8 * len(keys)
