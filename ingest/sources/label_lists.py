"""Lists that label as well as split: ``train.txt`` / ``val.txt`` whose lines say ``<image> <label>``.

The list format of Caffe's ImageData layer, PaddleClas and MMPretrain's ``CustomDataset`` (and of many sets
published for them, ImageNet's ``train.txt`` / ``val.txt`` among them): one image a line, its path (or file
name) and its label, the label usually a class index. ``sluice init`` finds such lists for a folder whose
images carry no label of their own (no class folders, no labels CSV, no class in the file names) and writes
``label_from: lists`` with them as the source's ``split_lists``. Class indices are named by the class-names
file published beside the lists when there is one (``classes.txt``, ``label_list.txt``, ``synset_words.txt``,
``labels.txt``: a name a line, or ``<index> <name>`` lines), counted from 0 or, where the lists start at 1
and the names end at their largest, from 1; else they land as the numbers they are.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ingest.sources.base import split_of
from ingest.sources.folder_layout import subdirs
from ingest.sources.labels_file import read_rows
from ingest.sources.split_lists import LIST_FOLDERS, labelled_entries, list_sets, list_split, resolves
from sluice.delimited import column_key

# stems of class-names files (matched ignoring case, "-" and "_"): mmpretrain's classes.txt, PaddleClas'
# label_list.txt, Caffe's synset_words.txt, TensorFlow's labels.txt, darknet's *.names
NAME_FILES = ("classes", "classnames", "classlist", "classindex", "labels", "labellist", "labelmap", "labelnames",
              "synsetwords", "synsets", "categories", "names")
_SAMPLE = 500



def find_labelled(root: Path, extensions: tuple[str, ...]) -> dict:
    """``label_from: lists`` settings for the image folder ``root``: a set of its lists named by a split (one per
    split; a test list is not needed) in ``root``, its parent or their list folders, at least 80% of whose first
    entries name an image of the folder and 90% carry a label, with two labels or more; of several such sets
    (FGVC-Aircraft's variant, family and manufacturer lists) the one with the most labels, the finest, unless
    another has as many (DTD's folds: the user picks one); ``class_names`` (and ``class_index_base`` when 1)
    where the labels are indices that a class-names file beside them names. {} when there are no such lists."""
    folders = [d for d in dict.fromkeys([root, root.parent, *(d / n for d in (root, root.parent) for n in LIST_FOLDERS)])
               if d.is_dir()]
    bases = [root, *(d for d in subdirs(root) if split_of(d.name))]  # train/a.jpg named a.jpg by train.txt
    labelling = [(labels, lists) for lists in list_sets(folders, (".txt",))
                 if len(labels := _labels(list(lists.values()), bases, extensions)) >= 2]
    labelling.sort(key=lambda found: -len(found[0]))
    if not labelling or len(labelling) > 1 and len(labelling[1][0]) == len(labelling[0][0]):
        return {}
    labels, lists = labelling[0]
    found = {"label_from": "lists", "split_lists": [p.absolute().as_posix() for p in lists.values()]}
    if all(label.isdigit() for label in labels):
        named = class_names_beside(folders, Counter({int(label): n for label, n in labels.items()}))
        if named:
            found["class_names"], base = named
            found.update({"class_index_base": 1} if base == 1 else {})
    return found


def _labels(lists: list[Path], bases: list[Path], extensions: tuple[str, ...]) -> Counter:
    """The labels ``lists`` give (label -> lines) where 80% of each one's first entries name an image under one of
    ``bases`` and 90% carry a label; else none."""
    labels: Counter = Counter()
    for path in lists:
        rows = [(entry, label) for _, entry, label in labelled_entries(path)]
        sample = rows[:_SAMPLE]
        if (not sample or sum(any(resolves(e, d, extensions) for d in bases) for e, _ in sample) < 0.8 * len(sample)
                or sum(bool(label) for _, label in sample) < 0.9 * len(sample)):
            return Counter()
        labels.update(label for _, label in rows if label)
    return labels


def names_file(path: Path) -> bool:
    """Whether ``path`` is named as a class-names file (not landed from a folder its lists label)."""
    return path.suffix.lower() in (".txt", ".names") and column_key(path.stem) in NAME_FILES and list_split(path) is None


def index_names(labels_file: Path, label_column: str, folders: list[Path]) -> dict:
    """``class_names`` (and ``class_index_base`` when 1) for a labels file whose labels are class indices, from
    a class-names file beside it (``classes.txt``, Kaggle's ``label_num_to_disease_map.json``); else {}."""
    labels = read_rows(labels_file, [label_column])[label_column]
    counts = Counter(labels.drop_nulls().to_list())
    if not counts or not all(label.isdigit() for label in counts):
        return {}
    found = class_names_beside(list(dict.fromkeys(d for d in folders if d.is_dir())),
                               Counter({int(label): n for label, n in counts.items()}))
    return {} if found is None else {"class_names": found[0], **({"class_index_base": 1} if found[1] == 1 else {})}


def folder_names(labels: set[str], folders: list[Path]) -> dict:
    """``class_names`` (and ``class_index_base`` when 1) for class folders named by numbers, from a class-names
    file beside them that names them all (Udacity's flowers: ``train/1`` ... ``train/102`` beside
    ``cat_to_name.json``); {} where a folder is no number or no such file is there."""
    if not labels or not all(label.isdigit() for label in labels):
        return {}
    found = class_names_beside([d for d in dict.fromkeys(folders) if d.is_dir()], Counter(int(label) for label in labels))
    return {} if found is None else {"class_names": found[0], **({"class_index_base": 1} if found[1] == 1 else {})}


def class_names_beside(folders: list[Path], indices: Counter) -> tuple[list[str], int] | None:
    """The class names of the first class-names file in ``folders`` that names the indices of 99% of the lines
    (``indices``: index -> lines; a stray index is the ingest's to quarantine), and the index its first name
    has (0, or 1 where no line says 0 and some say the number of names)."""
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and (names_file(p) or p.suffix.lower() == ".json")):
            names = _read_names(path)
            if not names:
                continue
            numbered, ordered = names
            if numbered is not None:  # "<index> <name>" lines: the indices they give, counted from their smallest
                base = min(numbered)
                if sorted(numbered) == list(range(base, base + len(numbered))) and base in (0, 1) \
                        and _covers(indices, base, len(numbered)):
                    return [numbered[k] for k in sorted(numbered)], base
                continue
            base = 1 if 0 not in indices and len(ordered) in indices else 0
            if _covers(indices, base, len(ordered)):
                return ordered, base
    return None


def _covers(indices: Counter, base: int, names: int) -> bool:
    return sum(n for k, n in indices.items() if base <= k < base + names) >= 0.99 * sum(indices.values())


def _read_names(path: Path) -> tuple[dict[int, str] | None, list[str]] | None:
    """A class-names file as ``({index: name}, [])`` when every line is ``<index> <name>`` (or ``<name> <index>``,
    ``0: cat``), else ``(None, [a name a line])``; None when empty or unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    if path.suffix.lower() == ".json":  # {"0": "cat", ...} (Kaggle's label_num_to_disease_map.json) or ["cat", ...]
        return _json_names(text)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return None
    for pattern, index, name in ((r"(\d+)[\s,:;]+(.+)", 1, 2), (r"(.+?)[\s,:;]+(\d+)", 2, 1)):
        found = [re.fullmatch(pattern, line) for line in lines]
        if all(found):
            numbered = {int(m.group(index)): m.group(name).strip() for m in found}  # type: ignore[union-attr]
            if len(numbered) == len(lines):
                return numbered, []
    return None, lines


def _json_names(text: str) -> tuple[dict[int, str] | None, list[str]] | None:
    import json

    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(found, list) and found and all(isinstance(n, str) for n in found):
        return None, found
    if isinstance(found, dict) and found and all(str(k).strip().isdigit() and isinstance(v, str) for k, v in found.items()):
        return {int(k): v.strip() for k, v in found.items()}, []
    return None
