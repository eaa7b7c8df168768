"""A flat split folder labelled by a file: the labelled test or val split a set ships beside its class folders.

GTSRB as Kaggle ships it (``Train/<class>/`` beside a flat ``Test/`` and ``Test.csv`` of ``...,ClassId,Path``) and
as torchvision downloads it (``GTSRB/Training/<class>/`` beside ``GTSRB/Final_Test/Images/`` and, above them,
``GT-final_test.csv`` of ``Filename;...;ClassId``); ImageNet as Kaggle ships it (``ILSVRC/Data/CLS-LOC/train/<wnid>/``
beside a flat ``val/`` and, at the top, ``LOC_val_solution.csv`` of ``ImageId,PredictionString``: the wnid and
its boxes); Stanford Cars as torchvision downloads it (flat ``cars_train/`` and ``cars_test/``, labelled by the
MATLAB tables ``devkit/cars_train_annos.mat`` and ``cars_test_annos_withlabels.mat``: ``fname``, ``class`` 1..196,
named by ``devkit/cars_meta.mat``'s ``class_names``). Without the file such a split lands unlabelled: the set's
own test labels lost, and its test images thrown in with the images to predict.

``split_labels`` on the source maps each such folder (its path under the source) to its file; ``sluice init``
finds them (:func:`find`): a CSV, TSV or MATLAB table in the folder, beside it, in the source folder, a folder
of no images in it (``devkit/``) or above it up to the folder given, whose name says the folder's split (``Test``,
``GT-final_test``, ``LOC_val_solution``, ``cars_train_annos``), whose columns say file and label, and whose first
500 rows name the folder's images (80% of them). The rows are read as a labels file's (``labels_file.py``: an
image by path, name or stem; a row naming no image, or an image again with another label, quarantined with its
line). A label that is a number names the class folder that is the same number (``16`` is ``00016`` where the
train folders are numbered so), so the split's classes are the folders' classes; where there are no class
folders, class indices are named by the source's ``class_names`` (found beside the file: a names file, or a
MATLAB cell array of as many names, Stanford Cars' ``cars_meta.mat``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ingest.sources import matlab
from ingest.sources.base import SPLIT_NAMES, Record
from ingest.sources.folder_layout import any_image, subdirs
from ingest.sources.label_lists import class_names_beside
from ingest.sources.labels_file import LABEL_NAMES, FileLabels, find_columns, lookup, match
from ingest.sources.split_lists import named, unknown_index
from sluice.delimited import read_delimited
from sluice.errors import InputError
from sluice.imaging import image_extensions
from sluice.stage import stage_logger

_SUFFIXES = (".csv", ".tsv", ".txt", ".mat")
_SAMPLE = 500
_MAT_FILES = ("fname", "relativeimpath", "filename", "file", "path", "image", "imagename", "name")  # a table's fields


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


def jobs(source: str, files: list[Path], labels: Path, root: Path, split: str | None, classes: set[str],
         class_names: list[str] | None = None, base: int = 0) -> Iterator:
    """``files`` (one split folder) as the image folder's (path, label, split) jobs, labelled by ``labels`` (class
    indices named by ``class_names`` from ``base``), after the rejections of its rows."""
    extensions = image_extensions()
    images = [p for p in files if p.suffix.lower() in extensions]
    found = _table(labels, images, root, class_names, base) if labels.suffix.lower() == ".mat" else \
        match(labels, images, root, None, None, None, class_names, base)
    by_image = {path: numbered(label, classes) for path, (label, _) in found.by_image.items()}
    strange = sorted({label for label in by_image.values() if label not in classes})
    stage_logger("ingest").info(
        f"{source}: {len(by_image)} images in {files[0].parent if files else root} labelled by {labels.name}"
        + (f", {len(found.rejects)} of its rows quarantined" if found.rejects else "")
        + (f"; {len(strange)} of its labels name no class folder ({', '.join(strange[:5])})" if classes and strange else ""))
    yield from found.rejects
    yield from ((path, by_image.get(path), split) for path in files)


def _table(path: Path, images: list[Path], root: Path, class_names: list[str] | None, base: int) -> FileLabels:
    """A MATLAB table's records matched to ``images`` as a labels file's rows (a reject names the record)."""
    rows = matlab.records(path)
    file_field, label_field = _fields(path, rows)
    index: dict[str, list[Path]] = {}
    for image in images:
        for key in dict.fromkeys((image.relative_to(root).as_posix(), image.name, image.stem)):
            index.setdefault(key, []).append(image)
    out = FileLabels()
    for number, row in enumerate(rows, start=1):
        where, key = f"{path}:record {number}", str(row[file_field] or "").replace("\\", "/")
        label = None if row[label_field] is None else named(str(row[label_field]), class_names, base)
        hits = lookup(index, key)
        if label is None:
            out.rejects.append(unknown_index(where, key, str(row[label_field]), class_names or [], base))
        elif len(hits) != 1:
            out.rejects.append(Record(where, item_id=key, reject="ambiguous_file_name" if hits else "label_for_missing_file",
                                      details=f"{key!r} names {len(hits) or 'no'} images of {root}"))
        elif out.by_image.setdefault(hits[0], (label, None))[0] != label:
            out.rejects.append(Record(where, item_id=key, reject="conflicting_label", details=(
                f"{key!r} labelled {label!r} here and {out.by_image[hits[0]][0]!r} by an earlier record (the first kept)")))
    return out


def _fields(path: Path, rows: list[dict]) -> tuple[str, str]:
    """The file and label fields of a MATLAB table's records, by their usual names."""
    by_key = {"".join(c for c in name.lower() if c.isalnum()): name for name in rows[0]} if rows else {}
    file_field = next((by_key[k] for k in _MAT_FILES if k in by_key), None)
    label_field = next((by_key[k] for k in LABEL_NAMES if k in by_key), None)
    if file_field is None or label_field is None:
        raise InputError(f"{path}: its records have no file and label fields (fields: {', '.join(by_key.values()) or 'none'})")
    return file_field, label_field


def find(given: Path, root: Path, groups) -> dict:
    """``split_labels`` for the flat split folders of ``root`` (the layout's folder, ``given`` or inside it) that
    a file labels, as ``sluice init`` writes them, with ``class_names`` (and ``class_index_base``) where the
    labels are class indices, no class folder is a number, and names are found beside the files."""
    out: dict[str, str] = {}
    indices: Counter = Counter()
    for split, folder, label in groups:
        if label is not None or split is None:
            continue
        names = _image_names(folder)
        places = dict.fromkeys([folder, folder.parent, root, *(d for d in subdirs(root) if not any_image(d)),
                                *[p for p in root.parents if p.is_relative_to(given)]])
        hit = next(((f, labels) for place in places if place.is_relative_to(given) for f in _named_for(place, split)
                    if (labels := _labels(f, names))), None)
        if hit is not None:
            out[folder.relative_to(root).as_posix()] = hit[0].absolute().as_posix()
            indices.update({int(k): n for k, n in hit[1].items() if k.isdigit()})
    if not out:
        return {}
    numbered_folders = any(label.isdigit() for _, _, label in groups if label is not None)
    folders = list(dict.fromkeys(Path(p).parent for p in out.values()))
    names = None if numbered_folders or not indices else _mat_names(folders, indices) or class_names_beside(folders, indices)
    return {"split_labels": out, **({"class_names": names[0]} if names else {}),
            **({"class_index_base": 1} if names and names[1] == 1 else {})}


def _mat_names(folders: list[Path], indices: Counter) -> tuple[list[str], int] | None:
    """Class names from a MATLAB cell array beside the tables naming the indices of 99% of the rows
    (``cars_meta.mat``)."""
    for path in sorted({p for folder in folders for p in folder.glob("*.mat")}):
        try:
            names = matlab.file_names(path)
        except InputError:
            continue
        base = 1 if 0 not in indices and len(names) in indices else 0
        if sum(n for k, n in indices.items() if base <= k < base + len(names)) >= 0.99 * sum(indices.values()):
            return names, base  # a stray index is the ingest's to quarantine
    return None


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


def _labels(path: Path, names: dict[str, list[str]]) -> Counter:
    """The labels of ``path`` (label -> rows) where it has file and label columns (or fields) and 80% of its first
    rows name an image of the folder; else none."""
    try:
        if path.suffix.lower() == ".mat":
            records = matlab.records(path)
            file_field, label_field = _fields(path, records)
            pairs = [(str(r[file_field] or ""), str(r[label_field])) for r in records if r[label_field] is not None]
        else:
            columns = find_columns(path)
            rows = read_delimited(path, [columns["file_column"], columns["label_column"]], None, "labels")
            pairs = list(zip(rows[columns["file_column"]].fill_null(""), rows[columns["label_column"]].fill_null("")))
    except (InputError, OSError, ValueError):
        return Counter()
    keys = [name.strip().replace("\\", "/").removeprefix("./") for name, _ in pairs[:_SAMPLE]]
    if not keys or sum(bool(lookup(names, key)) for key in keys) < 0.8 * len(keys):
        return Counter()
    return Counter(label.strip() for _, label in pairs if label.strip())
