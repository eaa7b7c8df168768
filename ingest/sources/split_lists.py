"""A data set's own split, given as lists of its files beside the images.

Food-101's ``meta/train.txt`` and ``meta/test.txt`` (``apple_pie/1005649``), the Oxford-IIIT Pets'
``annotations/trainval.txt`` and ``test.txt`` (``Abyssinian_100 1 1 1``), MIT Indoor's and DTD's lists
(``kitchen/int474.jpg``): one entry a line, its first word naming an image by its path under the
folder, with or without the extension, or by its file name or stem; blank and ``#`` lines are skipped.
A list's split is its file name (``train``, ``trainval``, ``val``, ``test``: ``base.split_of``). And
CUB-200-2011's (NABirds') table, ``train_test_split.txt``: ``<image id> <1: train, 0: test>`` a line, the
ids named by ``images.txt`` beside it (``<image id> <path>``). MATLAB lists too (``matlab.py``): Stanford
Dogs' ``train_list.mat`` / ``test_list.mat`` (a cell array of paths), and Flowers-102's ``setid.mat``
(``trnid``, ``valid``, ``tstid``: 1-based numbers of the folder's images in name order).

The image-folder connector gives each listed image that split as its ``split_hint``, so the dataset
stage keeps the source's test split as test (``dataset.keep_source_test``) and reports a test image
with a copy in train. An image on two lists is test if either is (it is never trained on), and counted.
A list whose lines also give a label after the name (Caffe's, PaddleClas' and MMPretrain's ``train.txt``:
``images/a.jpg 3``) labels its images with ``label_from: lists`` (``label_lists.py``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.sources import matlab
from ingest.sources.base import SPLIT_NAMES, Record, split_of
from sluice.errors import InputError
from sluice.imaging import image_extensions

# folders a data set keeps its lists in, beside or inside its images folder
LIST_FOLDERS = ("meta", "annotations", "annotation", "splits", "split", "lists", "labels", "imagesets")
IMAGE_EXTENSIONS = image_extensions()
_SAMPLE = 500  # entries of a candidate list that sluice init checks against the folder


FLAG_TABLE = "train_test_split.txt"  # CUB-200-2011's: image ids and is-training flags, ids in images.txt beside it


ID_TABLE = "setid.mat"  # Flowers-102's: image numbers (1-based, the folder's images in name order) per split
_ID_SPLITS = (("trn", "train"), ("train", "train"), ("val", "val"), ("tst", "test"), ("test", "test"))


PARTITION_TABLES = ("list_eval_partition.txt", "list_eval_partition.csv")  # CelebA's: <file> <0 train, 1 val, 2 test>
_PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def is_flag_table(path: str | Path) -> bool:
    """A list whose entries say their split themselves (CUB's flags, Flowers-102's set ids, CelebA's partition
    numbers), not its name."""
    return Path(path).name.lower() in (FLAG_TABLE, ID_TABLE, *PARTITION_TABLES)


def _partition_entries(path: Path):
    """(entry, split) of CelebA's ``list_eval_partition``: ``000001.jpg 0`` a line (Kaggle's CSV: ``image_id,partition``
    under a header), 0 train, 1 val, 2 test."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, 1):
            words = re.split(r"[\s,]+", line.strip())
            if len(words) >= 2 and words[1] in _PARTITIONS:
                yield words[0], _PARTITIONS[words[1]]
            elif words != [""] and number > 1:  # line 1 may be a header (image_id,partition)
                raise InputError(f"{path}:{number}: expected '<file> <0, 1 or 2>', got {line.strip()!r}")


def _id_entries(path: Path, root: Path):
    """(entry, split) of Flowers-102's ``setid.mat``: each variable's numbers, the images of the folder in name
    order counted from 1; a number past the last image is an entry that names none (counted, named)."""
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    for name, ids in matlab.numbers(path).items():
        split = next((s for prefix, s in _ID_SPLITS if name.lower().startswith(prefix)), None)
        if split is None:
            raise InputError(f"{path}: variable {name!r} names no split (expected trnid, valid, tstid)")
        for k in ids.astype(np.int64):
            yield (images[k - 1] if 1 <= k <= len(images) else f"#{k}"), split


def _flag_entries(path: Path):
    """(entry, split) of CUB's table: each id's path from ``images.txt`` beside it, 1 = train, 0 = test."""
    index = path.with_name("images.txt")
    if not index.is_file():
        raise InputError(f"{path}: {FLAG_TABLE} names images by id, but {index.name} (id, path) is not beside it")
    with index.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        paths = dict(line.split(None, 1) for line in fh if len(line.split()) >= 2)
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, 1):
            words = line.split()
            if len(words) >= 2 and words[0] in paths and words[1] in ("0", "1"):
                yield paths[words[0]].strip(), "train" if words[1] == "1" else "test"
            elif words:
                raise InputError(f"{path}:{number}: expected '<image id in {index.name}> <1 or 0>', got {line.strip()!r}")


def list_split(path: str | Path) -> str | None:
    """The split a list's file name gives (``trainval`` is train; ``test_list``, MIT Indoor's ``TestImages``;
    a last word naming it, FGVC-Aircraft's ``images_variant_trainval``), or None."""
    stem = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", Path(path).stem)  # TestImages -> Test_Images
    stem = re.sub(r"(?i)[-_ ]+(list|lists|ids|files)$", "", stem)
    last = re.split(r"[-_. ]+", stem.lower())[-1].rstrip("0123456789")
    return "train" if last == "trainval" or re.sub(r"[-_ ]", "", stem.lower()) == "trainval" else \
        split_of(stem) or SPLIT_NAMES.get(last)


def _set_key(path: Path) -> str:
    """A list's name less its split word (``images_variant_*``, DTD's ``*1``): the lists of one set share it."""
    words = re.split(r"([-_ ]+)", re.sub(r"(?<=[a-z])(?=[A-Z])", "_", path.stem))
    return "".join(re.sub(r"(?i)^(trainval|[a-z]+)(\d*)$", lambda m: f"*{m.group(2)}" if m.group(1).lower() in
                          (*SPLIT_NAMES, "trainval") else m.group(0), w) for w in words).lower() + path.suffix.lower()


def list_sets(folders: list[Path], suffixes: tuple[str, ...]) -> list[dict[str, Path]]:
    """The lists in ``folders`` named by a split, as sets of one list a split (``{split: list}``): lists named
    alike but for the split word form a set (FGVC-Aircraft's ``images_variant_{train,val,test}.txt`` beside
    ``images_family_*`` and ``images_*``; DTD's ten folds, ``train1`` ... ``test10``). A set's ``trainval`` list
    is left out where it has train and val lists too (their union); a set with two lists of a split is none."""
    sets: dict[str, dict[str, list[Path]]] = {}
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file()):
                if (split := list_split(path)) is not None:
                    sets.setdefault(_set_key(path), {}).setdefault(split, []).append(path)
    out = []
    for by_split in sets.values():
        if len(by_split.get("train", [])) > 1 and "val" in by_split:
            by_split["train"] = [p for p in by_split["train"] if "trainval" not in re.sub(r"[-_ ]", "", p.stem.lower())]
        if all(len(paths) == 1 for paths in by_split.values()):
            out.append({split: paths[0] for split, paths in by_split.items()})
    return out


def _entries_lines(path: Path):
    """The non-blank, non-comment lines of a list, stripped."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def fields(line: str) -> tuple[str, str]:
    """A list line's entry (its first field, as a path with forward slashes) and the rest (a label, or "")."""
    parts = line.split("\t", 1) if "\t" in line else re.split(r"[\s,;]+", line, maxsplit=1)
    rest = parts[1].strip(" \t,;") if len(parts) > 1 else ""
    return parts[0].strip().replace("\\", "/").removeprefix("./"), rest


def _entries(path: Path):
    """Each entry's first field, as a path with forward slashes, in file order."""
    yield from (entry for _, entry, _ in labelled_entries(path))


def labelled_entries(path: Path):
    """(line number, entry, label or "") of each entry of a list, in file order."""
    if path.suffix.lower() == ".mat":
        yield from ((0, name.replace("\\", "/"), "") for name in matlab.file_names(path))
        return
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield number, *fields(line)


@dataclass
class SplitLists:
    """The entries of a source's lists and the split each gives; what matched is counted as files land."""

    root: Path
    split: dict[str, str] = field(default_factory=dict)  # entry -> split
    origin: dict[str, str] = field(default_factory=dict)  # entry -> the list it came from (its name)
    label: dict[str, str] = field(default_factory=dict)  # entry -> the label its line gives (labelled lists)
    where: dict[str, str] = field(default_factory=dict)  # labelled entry -> its list and line
    rejects: list[Record] = field(default_factory=list)  # labelled lines that cannot label their image
    on_two: int = 0  # entries on lists of two splits (test kept)
    labelled: int = 0  # images given a label by their line
    used: set[str] = field(default_factory=set)
    given: Counter = field(default_factory=Counter)  # split -> images given it

    @classmethod
    def read(cls, paths: list[str], root: Path, labelled: bool = False, class_names: list[str] | None = None,
             base: int = 0) -> SplitLists:
        """The lists at ``paths``; ``labelled``: with the label each line gives after its entry, a class index
        named by ``class_names`` (counted from ``base``); one past them, or one contradicting an earlier
        line's, is a reject naming its line."""
        lists = cls(root)
        for name in paths:
            path = Path(name)
            if not path.is_file():
                raise InputError(f"{path}: split list of image folder {root} does not exist (split_lists)")
            rows = ((0, e, s, "") for e, s in _flag_entries(path)) if path.name.lower() == FLAG_TABLE else \
                ((0, e, s, "") for e, s in _partition_entries(path)) if path.name.lower() in PARTITION_TABLES else \
                ((0, e, s, "") for e, s in _id_entries(path, root)) if path.name.lower() == ID_TABLE else \
                ((n, e, list_split(path), label) for n, e, label in labelled_entries(path))
            for number, entry, split, label in rows:
                entry = _bare(under(entry, root))
                before, kept = lists.split.get(entry), split
                if before is not None and before != split:
                    lists.on_two += 1
                    kept = "test" if "test" in (before, split) else split
                lists.split[entry], lists.origin[entry] = kept, path.name
                if label and labelled:
                    lists._labelled(f"{path}:{number}", entry, label, class_names, base)
        return lists

    def _labelled(self, where: str, entry: str, label: str, class_names: list[str] | None, base: int) -> None:
        name = named(label, class_names, base)
        if name is None:
            self.rejects.append(unknown_index(where, entry, label, class_names or [], base))
            return
        label = name
        self.where.setdefault(entry, where)
        if self.label.setdefault(entry, label) != label:
            self.rejects.append(Record(where, item_id=entry, reject="conflicting_label", details=(
                f"{entry!r} labelled {label!r} here and {self.label[entry]!r} on an earlier line (the first kept)")))

    def _entry(self, path: Path) -> str | None:
        """The entry naming the image at ``path`` (under ``root``): its path, then shorter tails down to its stem."""
        parts = _bare(path.relative_to(self.root).as_posix()).split("/")
        return next((key for i in range(len(parts)) if (key := "/".join(parts[i:])) in self.split), None)

    def of(self, path: Path) -> str | None:
        """The split the lists give the image at ``path`` (under ``root``), or None when it is on none."""
        key = self._entry(path)
        if key is None:
            return None
        self.used.add(key)
        self.given[self.split[key]] += 1
        return self.split[key]

    def label_of(self, path: Path) -> str | None:
        """The label a labelled list gives the image at ``path``, or None."""
        label = None if (key := self._entry(path)) is None else self.label.get(key)
        self.labelled += label is not None
        return label

    def unmatched_labels(self) -> list[Record]:
        """A reject for each labelled line naming no image of the folder (read once every image was matched)."""
        return [Record(self.where[e], item_id=e, reject="label_for_missing_file",
                       details=f"no image in {self.root} is named {e!r}") for e in self.label if e not in self.used]

    def summary(self) -> str:
        """One line: images given each split, entries on two lists, entries that named no image."""
        unused = [e for e in self.split if e not in self.used]
        given = ", ".join(f"{s} {n}" for s, n in sorted(self.given.items())) or "none"
        line = f"split lists: images given a split: {given}" + (f"; labelled: {self.labelled}" if self.label else "")
        if self.on_two:
            line += f"; {self.on_two} entries on two lists (test kept)"
        if unused:
            line += (f"; {len(unused)} entries name no image in the folder (first: {unused[0]!r} in "
                     f"{self.origin[unused[0]]})")
        return line


def named(label: str, class_names: list[str] | None, base: int) -> str | None:
    """``label`` named by ``class_names`` where it is a class index (counted from ``base``); None for an index
    past them; any other label as it is."""
    if not class_names or not label.isdigit():
        return label
    return class_names[int(label) - base] if base <= int(label) < base + len(class_names) else None


def unknown_index(where: str, entry: str, label: str, class_names: list[str], base: int) -> Record:
    return Record(where, item_id=entry, reject="unknown_class_index", details=(
        f"class index {label} is not among the {len(class_names)} class_names (counted from {base})"))


def _bare(name: str) -> str:
    """A path less its image extension, so that ``apple_pie/1.jpg`` and ``apple_pie/1`` are one entry."""
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in IMAGE_EXTENSIONS else name


def under(entry: str, root: Path) -> str:
    """An entry as a path under the folder: named from the folder above (``images/apple_pie/1.jpg``) or with a
    path from the machine the list was written on (``/home/ann/food-101/images/apple_pie/1.jpg``), the part
    after the folder's name."""
    marker = f"/{root.name}/"
    return f"/{entry}".rsplit(marker, 1)[1] if marker in f"/{entry}" else entry


def resolves(entry: str, root: Path, extensions: tuple[str, ...]) -> bool:
    """Whether an entry names an image of the folder as :meth:`SplitLists.of` matches it: its path under the
    folder (with or without the extension), or a file in the folder itself by name or stem."""
    path = root / _bare(under(entry, root))
    return any(os.path.isfile(f"{path}{ext}") for ext in ("", *extensions))


def find(root: Path, extensions: tuple[str, ...]) -> list[str]:
    """The split lists of the image folder ``root`` for ``sluice init``: files named by a split (one per
    split, one of them test) in ``root``, its parent or their list folders (``meta``, ``annotations``, ...),
    at least 80% of whose first entries name an image of the folder. [] when there are none, or when a
    split has several (DTD's ten folds: the user picks one)."""
    folders = [root, root.parent, *(d / n for d in (root, root.parent) for n in LIST_FOLDERS)]
    for folder in dict.fromkeys(folders):
        table = folder / FLAG_TABLE
        if table.is_file() and (folder / "images.txt").is_file():
            sample = [e.split(None, 1)[-1].strip() for _, e in zip(range(_SAMPLE), _entries_lines(folder / "images.txt"))]
            if sample and sum(resolves(e, root, extensions) for e in sample) >= 0.8 * len(sample):
                return [table.absolute().as_posix()]
        if (folder / ID_TABLE).is_file() and _ids_fit(folder / ID_TABLE, root, extensions):
            return [(folder / ID_TABLE).absolute().as_posix()]
        for name in PARTITION_TABLES:
            if (folder / name).is_file():
                try:
                    sample = [e for _, (e, _) in zip(range(_SAMPLE), _partition_entries(folder / name))]
                except InputError:
                    continue
                names = {_bare(f) for _, _, files in os.walk(root) for f in files if Path(f).suffix in extensions}
                if sample and sum(_bare(e.rsplit("/", 1)[-1]) in names for e in sample) >= 0.8 * len(sample):
                    return [(folder / name).absolute().as_posix()]  # entries name files, wherever they lie

    def fits(path: Path) -> bool:
        sample = [e for _, e in zip(range(_SAMPLE), _entries(path))]
        return bool(sample) and sum(resolves(e, root, extensions) for e in sample) >= 0.8 * len(sample)
    found = [lists for lists in list_sets(folders, (".txt", ".mat")) if "test" in lists and all(map(fits, lists.values()))]
    return [path.absolute().as_posix() for path in found[0].values()] if len(found) == 1 else []


def _ids_fit(path: Path, root: Path, extensions: tuple[str, ...]) -> bool:
    """Whether a ``setid.mat``'s numbers all fall within the folder's images (Flowers-102: 8,189 of them)."""
    try:
        found = matlab.numbers(path)
    except InputError:
        return False
    count = sum(1 for p in root.rglob("*") if p.suffix in extensions)
    return bool(found) and all(len(v) and 1 <= v.min() and v.max() <= count for v in found.values())
