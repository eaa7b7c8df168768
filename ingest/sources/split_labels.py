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
finds them (:func:`find`): a CSV, TSV, JSON, list or MATLAB table in the folder, beside it, in the source folder, a
folder of no images in it (``devkit/``) or above it up to the folder given, whose name says the folder's split
(``Test``, ``GT-final_test``, ``LOC_val_solution``, ``cars_train_annos``, Places365's ``places365_val.txt``; in the
folder itself, also one named as its own: Hugging Face's ``train/metadata.jsonl``), whose
columns say file and label (a list: ``<image> <label>`` lines, no header, as Caffe's ``val.txt``), and whose first
500 rows name the folder's images (80% of them). The rows are read as a labels file's (``labels_file.py``: an
image by path, name or stem, each copy of it where its name names copies; a row naming no image or differing
images, or an image again with another label, quarantined with its line). A label that is a number names the
class folder that is the same number (``16`` is ``00016`` where the train folders are numbered so); class indices
are named by the source's ``class_names``: where class folders are names, the folders in sorted order (Caffe's
ImageNet ``val.txt`` and Places365 number their classes so, as torchvision's ``ImageFolder`` does), else the
names found beside the file (a names file, or a MATLAB cell array of as many names, Stanford Cars'
``cars_meta.mat``).

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
from ingest.sources.labels_json import SUFFIXES
from ingest.sources.labels_file import (LABEL_NAMES, ONE_HOT, before_boxes, copies, find_columns, lookup, read_rows,
                                       with_one_hot_label)
from ingest.sources.split_lists import labelled_entries, named, unknown_index
from sluice.errors import InputError
from sluice.imaging import image_extensions
from sluice.stage import stage_logger

_SUFFIXES = (".csv", ".tsv", ".txt", ".mat", *SUFFIXES)
_OWN = ("metadata", "labels", "annotations")  # a split folder's own labels file: Hugging Face's train/metadata.jsonl
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


def numbered(classes: set[str]):
    """A label as itself, or as the one class folder that is the same number (``16`` -> ``00016``)."""
    numbers: dict[int, list[str]] = {}
    for name in (c for c in classes if c.isdigit()):
        numbers.setdefault(int(name), []).append(name)
    return lambda label: label if label in classes or not label.isdigit() or len(numbers.get(int(label), ())) != 1 \
        else numbers[int(label)][0]


def jobs(source: str, files: list[Path], labels: Path, root: Path, split: str | None, classes: set[str],
         class_names: list[str] | None = None, base: int = 0) -> Iterator:
    """``files`` (one split folder) as the image folder's (path, label, split) jobs, labelled by ``labels`` (class
    indices named by ``class_names`` from ``base``), after the rejections of its rows."""
    extensions = image_extensions()
    index: dict[str, list[Path]] = {}
    for image in (p for p in files if p.suffix.lower() in extensions):
        for key in dict.fromkeys((image.relative_to(root).as_posix(), image.name, image.stem)):
            index.setdefault(key, []).append(image)
    by_image: dict[Path, str] = {}
    rejects = []
    as_class = numbered(classes)
    for where, key, given in rows(labels):
        label = named(given, class_names, base) if given else None
        hits = lookup(index, key)
        if not key or not given:
            rejects.append(Record(where, item_id=key or None, reject="missing_field",
                                  details=f"empty {'file name' if not key else 'label'}"))
        elif label is None:
            rejects.append(unknown_index(where, key, given, class_names or [], base))
        elif not hits or len(hits) > 1 and not copies(hits):
            rejects.append(Record(where, item_id=key, reject="ambiguous_file_name" if hits else "label_for_missing_file",
                                  details=f"{key!r} names {len(hits) or 'no'} {'differing ' if hits else ''}images of {root}"))
        elif by_image.setdefault(hits[0], as_class(label)) != as_class(label):
            rejects.append(Record(where, item_id=key, reject="conflicting_label", details=(
                f"{key!r} labelled {label!r} here and {by_image[hits[0]]!r} before (the first kept)")))
        else:
            by_image.update((hit, by_image[hits[0]]) for hit in hits[1:])
    strange = sorted({label for label in by_image.values() if label not in classes})
    stage_logger("ingest").info(
        f"{source}: {len(by_image)} images in {files[0].parent if files else root} labelled by {labels.name}"
        + (f", {len(rejects)} of its rows quarantined" if rejects else "")
        + (f"; {len(strange)} of its labels name no class folder ({', '.join(strange[:5])})" if classes and strange else ""))
    yield from rejects
    yield from ((path, by_image.get(path), split) for path in files)


def rows(path: Path) -> list[tuple[str, str, str]]:
    """(where, file, label) of each row of a labels file: a CSV / TSV with a header whose columns say file and
    label, a MATLAB table (fields), or a list of ``<image> <label>`` lines; a label before its box is the label."""
    if path.suffix.lower() == ".mat":
        records = matlab.records(path)
        file_field, label_field = _fields(path, records)
        return [(f"{path}:record {n}", str(r[file_field] or "").replace("\\", "/"),
                 "" if r[label_field] is None else str(r[label_field])) for n, r in enumerate(records, start=1)]
    try:
        columns = find_columns(path)
    except InputError:  # no header: a list
        return [(f"{path}:{n}", entry, before_boxes(label) or "") for n, entry, label in labelled_entries(path)]
    hot = columns.get("label_columns", [])
    table = read_rows(path, [columns["file_column"], *(hot or [columns["label_column"]])])
    table = with_one_hot_label(table, hot, ONE_HOT) if hot else table
    return [(f"{path}:{n}", (name or "").strip().replace("\\", "/").removeprefix("./"), before_boxes((label or "").strip()))
            for n, name, label in zip(table["line"], table[columns["file_column"]], table[columns.get("label_column", ONE_HOT)])]


def _fields(path: Path, records: list[dict]) -> tuple[str, str]:
    """The file and label fields of a MATLAB table's records, by their usual names."""
    by_key = {"".join(c for c in name.lower() if c.isalnum()): name for name in records[0]} if records else {}
    file_field = next((by_key[k] for k in _MAT_FILES if k in by_key), None)
    label_field = next((by_key[k] for k in LABEL_NAMES if k in by_key), None)
    if file_field is None or label_field is None:
        raise InputError(f"{path}: its records have no file and label fields (fields: {', '.join(by_key.values()) or 'none'})")
    return file_field, label_field


def find(given: Path, root: Path, groups, classes: list[str] | None = None) -> dict:
    """``split_labels`` for the flat split folders of ``root`` (the layout's folder, ``given`` or inside it) that
    a file labels, as ``sluice init`` writes them, with ``class_names`` (and ``class_index_base``) where the
    labels are class indices and no class folder is a number: ``classes`` (nested classes' paths, Places365's
    ``a/abbey``), else the class folders, sorted; else names beside."""
    out: dict[str, str] = {}
    indices: Counter = Counter()
    for split, folder, label in groups:
        if label is not None or split is None:
            continue
        names = _image_names(folder)
        places = dict.fromkeys([folder, folder.parent, root, *(d for d in subdirs(root) if not any_image(d)),
                                *[p for p in root.parents if p.is_relative_to(given)]])
        hit = next(((f, labels) for place in places if place.is_relative_to(given)
                    for f in _named_for(place, split) + (_own(folder) if place == folder else [])
                    if (labels := _labels(f, names))), None)
        if hit is not None:
            out[folder.relative_to(root).as_posix()] = hit[0].absolute().as_posix()
            indices.update({int(k): n for k, n in hit[1].items() if k.isdigit()})
    if not out:
        return {}
    classes = sorted(classes or {label for _, _, label in groups if label is not None})
    folders = list(dict.fromkeys(Path(p).parent for p in out.values()))
    names = None if not indices or any(c.isdigit() for c in classes) else \
        _covering(classes, indices) if classes else _mat_names(folders, indices) or class_names_beside(folders, indices)
    return {"split_labels": out, **({"class_names": names[0]} if names else {}),
            **({"class_index_base": 1} if names and names[1] == 1 else {})}


def _covering(names: list[str], indices: Counter) -> tuple[list[str], int] | None:
    """``names`` counted from 0 (or 1 where no row says 0 and some say their number) where they name the indices
    of 99% of the rows (a stray index is the ingest's to quarantine)."""
    base = 1 if 0 not in indices and len(names) in indices else 0
    covered = sum(n for k, n in indices.items() if base <= k < base + len(names)) >= 0.99 * sum(indices.values())
    return (names, base) if covered else None


def _mat_names(folders: list[Path], indices: Counter) -> tuple[list[str], int] | None:
    """Class names from a MATLAB cell array beside the tables (``cars_meta.mat``) that covers the indices."""
    for path in sorted({p for folder in folders for p in folder.glob("*.mat")}):
        try:
            found = _covering(matlab.file_names(path), indices)
        except InputError:
            continue
        if found:
            return found
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
    """The labels files in ``place`` whose name says ``split`` and no other (a sample submission is no labels)."""
    def says(stem: str) -> bool:
        words = {w.rstrip("0123456789") for w in re.split(r"[-_. ]+", stem.lower())}
        return {SPLIT_NAMES[w] for w in words if w in SPLIT_NAMES} == {split} and "submission" not in stem.lower()
    return sorted(p for p in place.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES and says(p.stem))


def _own(folder: Path) -> list[Path]:
    """The labels files in a split folder named as its own (``metadata.jsonl``, ``labels.csv``)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES
                  and p.stem.lower() in _OWN)


def _labels(path: Path, names: dict[str, list[str]]) -> Counter:
    """The labels of ``path`` (label -> rows) where 80% of its first rows name an image of the folder and 90%
    give a label; else none."""
    try:
        found = rows(path)
    except (InputError, OSError, ValueError, UnicodeDecodeError):
        return Counter()
    sample = found[:_SAMPLE]
    if (not sample or sum(bool(lookup(names, key)) for _, key, _ in sample) < 0.8 * len(sample)
            or sum(bool(label) for _, _, label in sample) < 0.9 * len(sample)):
        return Counter()
    return Counter(label for _, _, label in found if label)
