"""Image folders: ``root/<class>/<file>`` or ``root/<split>/<class>/<file>``; any format Pillow reads.

With ``label_from: none`` the folders carry no labels (images waiting for crowd votes): every image
file under ``root`` (or under ``root/<split>/``) lands with no source label. With ``label_from: file``
a flat folder's labels come from a CSV or JSON naming each file (``labels_file``; see ``labels_file.py``). With
``label_from: path`` the label is the path of the folder holding each image under the class level (SUN397's
``a/abbey`` and ``b/bakery/shop``, iNaturalist 2019's ``Plants/644``). With
``label_from: name`` they come from each file's name (``name_pattern``'s group; by default the name less
its trailing number: Kaggle's Dogs vs Cats ``cat.12.jpg``, the Oxford-IIIT Pets' ``Bengal_104.jpg``); a
name the pattern does not fit lands unlabelled (a test folder of ``1.jpg, 2.jpg``), counted in the log.
With ``label_from: lists`` they come from the ``split_lists`` whose lines say ``<image> <label>`` (Caffe's,
PaddleClas' ``train.txt``; ``label_lists.py``), class indices named by ``class_names``. A flat split folder beside
class folders is labelled by its ``split_labels`` file (GTSRB's ``Test.csv``). ``item_id``: the path under ``root``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ingest.sources import split_annotations, split_labels, subjects
from ingest.sources.base import Record, SourceConfig, content_id, require_dir, safe_text, split_of, subject_of
from ingest.sources.folder_layout import (any_image, classes_nest, container, layout, nested_classes, split_name, subdirs,
                                          wrapped)
from ingest.sources.folders import keep_files, metadata
from ingest.sources.label_lists import find_labelled, folder_names, index_names, names_file
from ingest.sources.labels_beside import beside, read_beside, with_split_siblings
from ingest.sources.labels_file import find_columns, match, several_labels
from ingest.sources.name_labels import NAME_PATTERN, name_label, names_are_labels
from ingest.sources.split_lists import SplitLists, find, is_flag_table, list_split, named
from sluice import dicom, not_downloaded, read_ahead
from sluice.connectors import Connector
from sluice.errors import InputError
from sluice.imaging import image_extensions
from sluice.stage import stage_logger

IMAGE_EXTENSIONS = image_extensions()
log = stage_logger("ingest")


class ImageFolderSource(SourceConfig):
    kind: Literal["image_folder"]
    label_from: Literal["folder", "path", "none", "file", "name", "lists"] = "folder"  # none: unlabelled (e.g. for votes)
    labels_file: str | list[str] | None = None  # label_from: file: a CSV / TSV / JSON naming each image's file and
    # label, or several of one header (CheXpert's train.csv and valid.csv)
    name_pattern: str | None = None  # label_from: name: a regex whose one group is the label (null: NAME_PATTERN)
    file_column: str | None = None  # of labels_file; null = found by name (file, filename, image, id, ...)
    label_column: str | None = None  # null = found by name (label, class, category, target, ...)
    label_columns: list[str] = []  # of labels_file, instead: one column a class, 1 marking the image's (one-hot)
    split_column: str | None = None  # optional (train / val / test); null = found by name (split, subset, ...)
    subject_column: str | None = None  # of labels_file: the patient / lesion / sequence each image shows, one split each
    # (null: none; sluice init writes the one it finds by name: lesion_id, patient_id, seq_id, ...)
    subject_pattern: str | None = None  # or a regex whose one group, found in an image's path, is its subject (subjects.py)
    # a finding of -1 (uncertain) in a table of findings (CheXpert's; attribute_table.py): unlabelled (quarantined
    # as uncertain_label), or read as positive (U-Ones) or negative (U-Zeros)
    uncertain_label: Literal["ignore", "positive", "negative"] = "ignore"
    # a labels file whose cells give several labels (ChestX-ray14's Effusion|Infiltration): each image this label
    # or not_<it> (one versus the rest; null: such rows are quarantined as multiple_labels, their images unlabelled)
    positive_label: str | None = None
    read_threads: Annotated[int, Field(ge=1, le=64)] = 4  # files read at once, ahead of hashing and commits (1: one at a time)
    split_lists: list[str] = []  # the data set's own split: lists of its files named train / val / test (split_lists.py)
    class_names: list[str] | None = Field(default=None, min_length=1)  # label_from: lists / file: class index -> name
    class_index_base: Literal[0, 1] = 0  # the index of class_names' first name in the labels (0, or 1)
    split_labels: dict[str, str] = {}  # a flat split folder (GTSRB's Test) -> the file labelling it (split_labels.py)

    @model_validator(mode="after")
    def _labels_file_with_file(self):
        if (self.label_from == "file") != (self.labels_file is not None):
            raise ValueError("label_from: file and labels_file go together (a flat folder labelled by a CSV)")
        if isinstance(self.labels_file, list) and not self.labels_file:
            raise ValueError("labels_file: an empty list names no labels file")
        if self.subject_column and self.label_from != "file":
            raise ValueError("subject_column is a column of labels_file (label_from: file)")
        if self.subject_pattern is not None and self.subject_column:
            raise ValueError("subject_column and subject_pattern both name the subject: give one")
        if self.subject_pattern is not None:
            subjects.compiled(self.subject_pattern)
        if self.label_columns and (self.label_from != "file" or self.label_column):
            raise ValueError("label_columns (one column a class) goes with label_from: file, instead of label_column")
        if self.label_from == "lists" and not self.split_lists:
            raise ValueError("label_from: lists needs split_lists (train.txt, val.txt, ... whose lines say "
                             "'<image> <label>')")
        if self.split_labels and self.label_from not in ("folder", "path"):
            raise ValueError("split_labels goes with class folders (label_from: folder or path): it labels a flat split")
        if self.class_names is not None and self.label_from not in ("lists", "file", "folder", "path"):
            raise ValueError("class_names goes with label_from: lists, file, folder or path (labels given as class "
                             "indices)")
        if self.name_pattern is not None:
            if self.label_from != "name":
                raise ValueError("name_pattern goes with label_from: name (labels read from the file names)")
            try:
                groups = re.compile(self.name_pattern).groups
            except re.error as err:
                raise ValueError(f"name_pattern {self.name_pattern!r} is not a regular expression: {err}") from None
            if groups != 1:
                raise ValueError(f"name_pattern {self.name_pattern!r} needs exactly one group, the label (has {groups})")
        for path in self.split_lists:
            if list_split(path) is None and not is_flag_table(path):
                raise ValueError(f"split_lists: {path!r} does not say its split by its name (train, trainval, val "
                                 "or test; e.g. meta/test.txt)")
        return self


def _files(folder: Path, skipped: set[str]) -> Iterator[Path]:
    """Every file under ``folder``, sorted, metadata folders left out (their names added to ``skipped`` when
    they hold anything). Listed from the directory entries' types, without a stat of each file: with the
    files not in the page cache a stat reads each file's inode, one at a time before any read ahead."""
    found = []
    for parent, dirs, names in os.walk(folder):  # symlinked folders are not walked, as rglob did not
        for name in [d for d in dirs if metadata(Path(d))]:
            dirs.remove(name)
            try:
                with os.scandir(os.path.join(parent, name)) as inside:
                    if next(inside, None) is not None:
                        skipped.add(name)
            except OSError:  # unreadable: left out all the same, and named
                skipped.add(name)
        found.extend(Path(parent, name) for name in keep_files(names, skipped))
        found.extend(Path(parent, d) for d in dirs if os.path.islink(os.path.join(parent, d)))  # quarantined, not walked
    yield from sorted(found)


def _groups(root: Path, src: ImageFolderSource) -> list[tuple[str | None, Path, str | None]]:
    """(split, folder, label) for each folder whose files are images; raises when there are none. The folders
    beside the splits that are none are ``folder_layout.layout(root).outside``'s."""
    found = layout(root)
    # beside split folders, a folder of images to predict (Intel's seg_pred, an unlabelled/ set): unlabelled
    extra = [(None, u, None) for u in found.unlabelled] if found else []
    if src.label_from not in ("folder", "path"):
        return [(split_name(s), s, None) for s in found.splits] + extra if found else [(None, root, None)]
    def label(c: Path) -> str:  # a class folder named by a number, named by class_names (cat_to_name.json's)
        return (named(c.name, src.class_names, src.class_index_base) or c.name) if src.class_names and \
            src.label_from == "folder" and c.name.isdigit() else c.name
    if found:  # a split folder of no class folders (Kaggle's test/ of unlabelled images): that split's, unlabelled
        groups = [group for s in found.splits for group in ([(split_name(s), c, None if container(s, c) else label(c))
                                                              for c in subdirs(s)] or [(split_name(s), s, None)])]
    else:
        groups = [(None, c, label(c)) for c in subdirs(root)]
    groups = groups + extra if any(label for _, _, label in groups) or src.split_labels else []
    if not groups:
        raise InputError(f"{root}: no class folders found (expected {root}/<class>/<image> or "
                         f"{root}/train/<class>/<image>; set label_from: file with a labels_file naming each image's "
                         "label, or label_from: none for unlabelled images)")
    return groups


def _stray_files(root: Path, groups, outside: list[Path], skipped: set[str]) -> Iterator[Path]:
    """Files above the folders that are read (no class, or no split folder): never silently skipped (system files aside)."""
    folders, above = {folder for _, folder, _ in groups}, {root}
    for folder in folders:
        above.update(a for a in folder.parents if root in a.parents)
    for parent in sorted(above - folders - set(outside)):
        files = (parent / n for n in keep_files(sorted(p.name for p in parent.iterdir()), skipped))
        yield from (p for p in files if not p.is_dir() or p.is_symlink() and p not in folders | above)


def _read(path: Path, uri: str, item_id: str, max_bytes: int, label: str | None, split: str | None,
          subject: str | None = None) -> Record:
    """One file as a Record (its bytes and their key) or a rejection: the work of a reading thread."""
    if not path.is_file():  # broken symlink, socket, fifo, a link to a folder: never silently skipped
        if note := not_downloaded.link_note(path):
            return Record(uri, item_id=item_id, reject=not_downloaded.REASON, details=note)
        return Record(uri, item_id=item_id, reject="unreadable", details=(
            "a link to a folder, not followed (links can loop): give its target as a source of its own"
            if path.is_dir() else "not a regular file (broken link or special file)"))
    if path.suffix.lower() not in IMAGE_EXTENSIONS and not (not path.suffix and dicom.file_is_dicom(path)):
        return Record(uri, item_id=item_id, reject="not_an_image_extension",
                      details=f"extension '{safe_text(path.suffix)}' is not an image format" if path.suffix else
                      "no extension, and not a DICOM file (the one format read by its content)")
    if path.name.upper() == "DICOMDIR":
        return Record(uri, item_id=item_id, reject="not_an_image", details="the index of a DICOM export (DICOMDIR)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Record(uri, item_id=item_id, reject="too_large", details=f"{size} bytes > ingest.max_file_bytes {max_bytes}")
        content = path.read_bytes()
    except OSError as err:
        return Record(uri, item_id=item_id, reject="unreadable", details=f"{err.__class__.__name__}: {err.strerror or err}")
    if not content:
        return Record(uri, item_id=item_id, reject="empty_file", details="0 bytes")
    if note := not_downloaded.pointer_note(content):  # a clone without its LFS content
        return Record(uri, item_id=item_id, reject=not_downloaded.REASON, details=note)
    if dicom.is_dicom(content):  # lands without the names in its header; its patient is its subject
        try:
            content, patient = dicom.deidentify(content)
        except Exception as err:  # noqa: BLE001 - a hostile header raises anything; the file is kept in quarantine
            return Record(uri, item_id=item_id, reject="unreadable", details=f"DICOM header unreadable: "
                                                                              f"{err.__class__.__name__}: {err}")
        subject = subject or patient
    return Record(uri, content, label=None if label is None else safe_text(label), split_hint=split, item_id=item_id,
                  image_id=content_id(content),  # hashed here: on the reading thread, beside the other reads
                  subject=subject_of(subject))


def read_image_folder(src: ImageFolderSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    require_dir(root, f"image folder of source '{src.name}'")
    groups = _groups(root, src)
    outside = split_layout.outside if (split_layout := layout(root)) else []
    labels_files = [Path(p).absolute() for p in ([src.labels_file] if isinstance(src.labels_file, str)
                                                  else src.labels_file or [])]
    labelled = split_labels.folders(src.split_labels, root, groups)  # GTSRB's Test/ + Test.csv
    own = {*labels_files, *(Path(p).absolute() for p in [*src.split_lists, *labelled.values()])}  # lists: not landed
    pattern = re.compile(src.name_pattern or NAME_PATTERN) if src.label_from == "name" else None
    nameless, found = [0], [False]
    skipped: set[str] = set()
    lists = SplitLists.read(src.split_lists, root, src.label_from == "lists", src.class_names, src.class_index_base) \
        if src.split_lists else None
    annotated = {folder: beside_it for _, folder, label in groups  # Tiny ImageNet's val/images/ + val/val_annotations.txt
                 if label is None and src.label_from in ("folder", "path") and folder.parent != root
                 and container(folder.parent, folder) and (beside_it := split_annotations.beside(folder.parent))}

    def split_of_file(path: Path, split: str | None) -> str | None:  # lists name images (the Pets' .mat files share stems)
        return (lists.of(path) if lists and path.suffix.lower() in IMAGE_EXTENSIONS else None) or split

    def of_name(path: Path, label: str | None, folder: Path) -> str | None:
        if src.label_from == "path" and label is not None:  # the folders from the class level down: a/abbey
            return path.parent.relative_to(folder.parent).as_posix()
        if lists and src.label_from == "lists":
            return lists.label_of(path) if path.suffix.lower() in IMAGE_EXTENSIONS else None
        if pattern is None or path.suffix.lower() not in IMAGE_EXTENSIONS:
            return label
        label = name_label(path.stem, pattern)
        nameless[0] += label is None
        return label

    def jobs() -> Iterator[Record | tuple[Path, str | None, str | None]]:
        """Each file as (path, label, split) to read, or a rejection already made, in the order they land."""
        splits = ", ".join(sorted({f"{s.name}/" for s in split_layout.splits})) if split_layout else ""
        yield from lists.rejects if lists else ()
        for folder in outside:  # beside the splits and none of them (Fruits-360's test-multiple_fruits/)
            for path in (p for p in _files(folder, skipped) if p.absolute() not in own):  # devkit/'s labels: read
                found[0] = True
                yield Record(safe_text(path), item_id=safe_text(path.relative_to(root)), reject="outside_split_folder",
                             details=f"{safe_text(folder.name)}/ lies beside the split folders ({splits}) and is none "
                                     "of them: name it as a split, or give it as a source of its own")
        for path in _stray_files(root, groups, outside, skipped):
            found[0] = True
            if path.absolute() in own or path in annotated.values() or src.label_from == "lists" and names_file(path):
                continue
            # a file beside the split folders is an image all the same; a link to a folder not read through
            # (back to the set: folder_layout.loops) is quarantined as such by _read
            if src.label_from not in ("folder", "path") or path.is_dir():
                yield path, of_name(path, None, root), split_of_file(path, None)
            else:
                yield Record(safe_text(path), item_id=safe_text(path.relative_to(root)), reject="outside_class_folder",
                             details="file is not inside a class folder, so it has no label")
        skipped.update(p.name for d in [root, *subdirs(root)] for p in d.iterdir() if p.is_dir() and metadata(p))
        if not labels_files:  # streamed: a million files are never listed at once
            for split, folder, label in groups:
                if folder in labelled or folder in annotated:
                    files = [p for p in _files(folder, skipped) if p.absolute() not in own]  # its own metadata.jsonl
                    found[0] = found[0] or bool(files)
                    yield from split_labels.jobs(src.name, files, labelled[folder], root, split, {g[2] for g in groups}
                                                 - {None}, src.class_names, src.class_index_base) if folder in labelled \
                        else split_annotations.jobs(src.name, files, annotated[folder], split)
                    continue
                for path in _files(folder, skipped):
                    found[0] = True
                    if path.absolute() not in own and not (src.label_from == "lists" and names_file(path)):
                        yield path, of_name(path, label, folder), split_of_file(path, split)
        else:
            files = [(split, path) for split, folder, _ in groups
                     for path in _files(folder, skipped) if path.absolute() not in labels_files]
            named = match(labels_files, [p for _, p in files if p.suffix.lower() in IMAGE_EXTENSIONS], root,
                          src.file_column, src.label_column, src.split_column, src.class_names, src.class_index_base,
                          src.label_columns, src.subject_column, src.uncertain_label, src.positive_label)
            yield from named.rejects
            for split, path in files:
                found[0] = True
                label, listed_split, subject = named.by_image.get(path, (None, None, None))
                yield path, label, split_of_file(path, split or split_of(listed_split)), subject
        yield from lists.unmatched_labels() if lists else ()

    subject_rx = subjects.compiled(src.subject_pattern) if src.subject_pattern else None

    def named(jobs):  # the names in this thread: the reading threads hold the GIL as little as they can
        for job in jobs:
            if isinstance(job, Record):
                yield job
                continue
            item_id = safe_text(job[0].relative_to(root))
            yield (job[0], safe_text(job[0]), item_id, *job[1:3], job[3] if len(job) > 3 and job[3] is not None else subjects.of(subject_rx, item_id))

    def read(job) -> Record:
        return job if isinstance(job, Record) else _read(job[0], job[1], job[2], max_bytes, *job[3:])
    yield from read_ahead.ordered(read, named(jobs()), src.read_threads, size=lambda record: len(record.content or b""))
    if nameless[0]:
        log.info(f"{src.name}: {nameless[0]} images whose names name_pattern does not fit landed unlabelled")
    if lists:
        log.info(f"{src.name}: {lists.summary()}")
    if skipped:
        log.info(f"{src.name}: left out the metadata folders and system files {', '.join(sorted(skipped))} (hidden, "
                 "macOS's __MACOSX and .DS_Store, Windows' Thumbs.db: no images of anyone's)")
    if not found[0]:
        raise InputError(f"{root}: image folder of source '{src.name}' contains no files")


def detect(path: str) -> dict:
    """:func:`_detect`'s entry, with the subject its images' paths name (``subjects.find``) where no labels file names one."""
    found = _detect(path)
    if "subject_column" in found:
        return found
    return {**found, **subjects.find(Path(found.get("path", path)), IMAGE_EXTENSIONS)}


def _detect(path: str) -> dict:
    """The folder the layout starts in (``path``) when ``path`` only wraps it (see ``folder_layout.wrapped``); for a flat
    folder (no class folders) its labels file (see ``labels_beside.beside``) and columns, else labels in the file
    names (:func:`_names_are_labels`), else lists that label its images (``label_lists.find_labelled``), else
    ``label_from: none`` (images land unlabelled, e.g. for crowd votes).
    A class-folder layout needs nothing, or ``label_from: path`` where its classes nest (``folder_layout.classes_nest``)."""
    root = inner = Path(path)
    if not root.is_dir():
        archive = root.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar"))
        raise InputError(f"{path}: " + ("an archive: extract it first and give the folder (`sluice init --images` extracts a zip, tar or 7z)"
                                        if archive else "not a folder (--images takes a folder of images, a CSV of "
                                        "pixel values or a NumPy file of images)"))
    while (within := wrapped(inner)) is not None:
        inner = within
    moved = {"path": inner.absolute().as_posix()} if inner != root else {}
    given, root, path = root, inner, str(inner)
    if not any_image(root):
        idx = next((f for _, _, files in os.walk(root) for f in files if "ubyte" in f.lower()), None)
        if not idx and dicom.without_extension(root):  # a DICOMDIR export: DICOM/PA0/ST0/SE0/IM0, read by content
            return {**moved, "label_from": "none"}
        raise InputError(f"{root}: no image files in it or below" + (
            f" ({idx} is an IDX file: give the folder that holds it to --idx)" if idx else
            f" (extensions read: {', '.join(sorted(IMAGE_EXTENSIONS)[:8])}, ...)"))
    lists = find(root.absolute(), tuple(sorted({e for x in IMAGE_EXTENSIONS for e in (x, x.upper())})))
    moved = {**moved, **({"split_lists": lists} if lists else {})}
    try:
        groups = _groups(root, ImageFolderSource(name="detect", kind="image_folder", path=path))
        if (labels := beside(root)) is None or labels.suffix.lower() == ".mat" or not read_beside(labels, groups):
            nest = classes_nest(groups)
            return {**moved, **({"label_from": "path"} if nest else {}),
                    **split_labels.find(given, root, groups, nested_classes(groups) if nest else None),
                    **folder_names({c for _, _, c in groups if c}, [root, root.parent, given])}
    except InputError:
        pass
    labels = beside(root)  # a flat folder's labels file, or one that labels the folders' images otherwise
    if labels is not None:
        columns = find_columns(labels) if labels.suffix.lower() != ".mat" else {}
        files = [p.absolute().as_posix() for p in with_split_siblings(labels)]  # CheXpert's train.csv, valid.csv
        if "label_column" in columns and "file_column" in columns:  # ChestX-ray14: one finding versus the rest
            columns = {**columns, **several_labels(labels, columns["file_column"], columns["label_column"])}
        return {**moved, "label_from": "file", "labels_file": files if len(files) > 1 else files[0], **columns,
                **(index_names(labels, columns["label_column"], [root, root.parent]) if "label_column" in columns else {})}
    flat = _groups(root, ImageFolderSource(name="detect", kind="image_folder", path=path, label_from="none"))
    if names_are_labels([folder for _, folder, _ in flat], IMAGE_EXTENSIONS):
        return {**moved, "label_from": "name"}
    # lists that label, else flat split folders each labelled by a file (Stanford Cars'), else unlabelled
    return {**moved, **(find_labelled(root.absolute(), tuple(IMAGE_EXTENSIONS)) or split_labels.find(given, root, flat)
                        or {"label_from": "none"})}


def class_names(src: ImageFolderSource) -> list[str] | None:
    """The class folders that hold images, sorted (torchvision's ``ImageFolder`` numbers them in this order), or
    the labels the folder paths (``label_from: path``: ``a/abbey``) or file names give, sorted, or a one-hot labels
    file's columns; else None."""
    if src.label_from in ("name", "path"):
        return sorted({label for _, label in file_labels(src)}) or None
    if src.label_from == "lists":
        return src.class_names or sorted(set(SplitLists.read(src.split_lists, Path(src.path), True).label.values())) or None
    if src.label_from == "file" and src.label_columns:  # one column a class, in the file's order
        return list(src.label_columns)
    if src.label_from != "folder":
        return None
    return sorted({label for _, folder, label in _groups(Path(src.path), src)  # and the names split_labels' indices take
                   if label is not None and _holds_image(folder)} | set(src.split_labels and src.class_names or [])) or None


def file_labels(src: ImageFolderSource) -> Iterator[tuple[str, str]]:
    """(path under the folder, label) of each image its path labels (class folders, nested folders, file names),
    from the names alone: ``sluice init`` reads what class indices in votes mean from them (sluice/class_order.py)."""
    if src.label_from not in ("folder", "path", "name"):
        return
    root = Path(src.path)
    pattern = re.compile(src.name_pattern or NAME_PATTERN) if src.label_from == "name" else None
    for _, folder, label in _groups(root, src):
        for p in _files(folder, set()):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                found = name_label(p.stem, pattern) if pattern else \
                    p.parent.relative_to(folder.parent).as_posix() if src.label_from == "path" and label else label
                if found:
                    yield p.relative_to(root).as_posix(), found


def _holds_image(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in _files(folder, set()))


connector = Connector("source", "image_folder", ImageFolderSource, read_image_folder,
                      "root/<class>/<file> or root/<split>/<class>/<file>; label_from: folder | path | none | file | name",
                      detect=detect, class_names=class_names, file_labels=file_labels)
