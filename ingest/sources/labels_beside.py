"""Where a folder's labels file is: inside it or beside it, by name or by its columns, and whether it relabels
class folders (the labels file itself is read by ``labels_file.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ingest.sources import attribute_table, labels_json
from ingest.sources.base import split_of, word_split
from ingest.sources.labels_file import (SAMPLE_ROWS, ONE_HOT, find_columns, folded_index, lookup, read_rows,
                                        with_one_hot_label)
from sluice.delimited import column_key
from sluice.errors import InputError

PREFERRED = ("labels", "trainlabels", "train", "annotations", "metadata")  # metadata.jsonl: Hugging Face's ImageFolder  # over e.g. a sample submission
_FEW_JSON = 8


def beside(root: Path) -> Path | None:
    """The labels file of a flat image folder: inside it, ``labels.csv`` / ``trainLabels.csv`` / ``train.csv`` /
    ``metadata.jsonl``... or the one table whose columns say file and label; else next to it, ``<folder>.csv``
    (Kaggle's ``train/`` + ``train.csv``), ``<folder>_labels.csv``, ``labels.csv`` or Flowers-102's
    ``imagelabels.mat``, else the one table there (or in an ``annotations/`` or ``metadata/`` folder there) whose
    columns say file and label (ChestX-ray14's ``Data_Entry_2017.csv`` beside ``images/``, a camera-trap set's COCO
    JSON beside ``images/``); of several, the one whose name has the folder's (iWildCam's
    ``metadata/iwildcam2021_train_annotations.json`` for ``train/``)."""
    inside = _tables(root)
    by_stem = {column_key(p.stem): p for p in inside}
    preferred = next((by_stem[k] for k in PREFERRED if k in by_stem
                      and not (labels_json.reads(by_stem[k]) and not _has_columns(by_stem[k]))), None)
    if preferred:
        return preferred
    readable = [p for p in inside if "submission" not in p.stem.lower() and _has_columns(p)]  # no labels in one
    if len(readable) == 1:
        return readable[0]
    for name in (f"{root.name}.csv", f"{root.name}_labels.csv", f"{root.name}.tsv", "labels.csv", "imagelabels.mat"):
        if (root.parent / name).is_file():
            return root.parent / name
    if root.parent != root:  # the one table beside the folder whose columns say file and label (Data_Entry_2017.csv)
        near = [root.parent, *(d for d in sorted(root.parent.iterdir()) if d.is_dir() and d != root  # ISIC's _GroundTruth/
                               and re.search(r"annotation|metadata|ground.?truth|labels", d.name, re.IGNORECASE))]
        outside = [p for folder in near for p in _tables(folder) if "submission" not in p.stem.lower() and _has_columns(p)]
        named = [p for p in outside if column_key(root.name) in column_key(p.stem)]
        if len(outside) == 1 or len(named) == 1:
            return outside[0] if len(outside) == 1 else named[0]
        split_tables = [p for p in outside if with_split_siblings(p)[1:] and set(with_split_siblings(p)) == set(outside)]
        if len(split_tables) >= 1:  # train.csv and valid.csv of one header beside images/: the first, its siblings
            return split_tables[0]
    return None


def with_split_siblings(labels: Path) -> list[Path]:
    """``labels`` and the tables beside it of the same header whose names say other splits, where its own name says
    one (CheXpert's ``train.csv`` and ``valid.csv``, each naming its split folder's images); else ``[labels]``."""
    own = word_split(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", labels.stem))
    if own is None or labels.suffix.lower() not in (".csv", ".tsv"):
        return [labels]
    header = _first_line(labels)
    return [labels, *(p for p in _tables(labels.parent) if p != labels and p.suffix.lower() == labels.suffix.lower()
                      and split_of(p.stem) not in (None, own) and _first_line(p) == header)]


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        return f.readline().rstrip("\r\n")


def _tables(folder: Path) -> list[Path]:
    """The CSV / TSV / JSON files in a folder, sorted; JSON only where there are a few (not one beside each image,
    as a photo export's sidecars)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix.lower() in (".csv", ".tsv", *labels_json.SUFFIXES)
                                                                  or attribute_table.reads(p)))  # CelebA's .txt
    jsons = [p for p in files if labels_json.reads(p)]
    return [p for p in files if not labels_json.reads(p)] + (jsons if len(jsons) <= _FEW_JSON else [])


def read_beside(labels: Path, groups) -> bool:
    """Whether class folders' labels file is read (``label_from: file``) rather than the folders: it labels their
    images otherwise, or it names their subjects."""
    return relabels_folders(labels, groups) or names_subjects(labels, groups)


def relabels_folders(labels: Path, groups) -> bool:
    """Whether a labels file labels the images of class folders (``groups``: (split, folder, label)) otherwise than
    those folders do: the folders are parts or batches, not classes (HAM10000's ``HAM10000_metadata.csv`` over
    ``HAM10000_images_part_1/`` and ``_part_2/``; a user's ``photos/2023-01/`` + ``labels.csv``): 80% of its first
    rows name an image in a class folder, and half of those by another label than the folder's."""
    try:
        columns = find_columns(labels)
        hot = columns.get("label_columns", [])
        rows = read_rows(labels, [columns["file_column"], *(hot or [columns["label_column"]])]).head(SAMPLE_ROWS)
        rows = with_one_hot_label(rows, hot, ONE_HOT) if hot else rows
        columns["label_column"] = columns.get("label_column", ONE_HOT)
    except (InputError, OSError, ValueError):
        return False
    index = _folder_index(groups)
    folded = folded_index(index)
    named = [(hits[0][1], (label or "").strip()) for name, label in zip(rows[columns["file_column"]], rows[columns["label_column"]])
             if (hits := lookup(index, (name or "").strip().replace("\\", "/"), folded))]
    return bool(named) and len(named) >= 0.8 * rows.height and sum(a != b for a, b in named) >= 0.5 * len(named)


def names_subjects(labels: Path, groups) -> bool:
    """Whether a labels file that agrees with the class folders also names each image's subject (a ``patient_id``
    column: labels_file.SUBJECT_NAMES) for nearly all of their images (95%): then it is read (``label_from: file``),
    or the subjects would be lost and one patient's images split between train and test."""
    try:
        columns = find_columns(labels)
        if not columns.get("subject_column") or not columns.get("file_column"):
            return False
        names = read_rows(labels, [columns["file_column"]])[columns["file_column"]]
    except (InputError, OSError, ValueError):
        return False
    index = _folder_index(groups)
    folded = folded_index(index)
    images = {path for hits in index.values() for path, _ in hits}
    named = {hits[0][0] for name in names if (hits := lookup(index, (name or "").strip().replace("\\", "/"), folded))}
    return bool(images) and len(named) >= 0.95 * len(images)


def _folder_index(groups) -> dict[str, list[tuple[Path, str]]]:
    """Every image of the class folders by its path below the folders' parent, its name and its stem."""
    from sluice.imaging import image_extensions

    index: dict[str, list[tuple[Path, str]]] = {}
    extensions = image_extensions()
    for _, folder, label in groups:
        for parent, _, names in os.walk(folder) if label is not None else ():
            for name in (n for n in names if Path(n).suffix.lower() in extensions):
                path = Path(parent, name)
                for key in dict.fromkeys((path.relative_to(folder.parent).as_posix(), name, path.stem)):
                    index.setdefault(key, []).append((path, label))
    return index


def _has_columns(path: Path) -> bool:
    try:
        find_columns(path)
    except (InputError, OSError):
        return False
    return True
