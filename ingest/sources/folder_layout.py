"""Where an image folder's splits are, as published sets and archives lay them out.

A folder is split-level when some of its folders are named as splits (``train``, ``test``, ``seg_train``...).
Beside them may lie a folder of images to predict (``seg_pred``: unlabelled), a wrapper holding the splits
again (Kaggle's ``New Plant Diseases Dataset(Augmented)/New Plant Diseases Dataset(Augmented)/train/`` beside
``test/``; ``chest_xray/chest_xray/train/`` beside ``chest_xray/train/``: its splits are read too), folders of
no images (``papers/``, ``annotations/``), and folders of images that are no split (Fruits-360's
``test-multiple_fruits/``): their files are quarantined as outside any split, never read as a class nor
dropped. A class named like a split (``test/`` beside ``cat/`` and ``dog/``) is told apart by numbers: one
split-named folder beside folders of images is a class-level layout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.sources.base import split_of
from ingest.sources.folders import metadata
from sluice.imaging import image_extensions

IMAGE_EXTENSIONS = image_extensions()
# names of a folder that holds a data set's pictures, not a class of them (Food-101's images/<class>/, the
# Oxford-IIIT Pets' images/ beside annotations/, Pascal VOC's JPEGImages/)
CONTAINERS = {"images", "image", "imgs", "img", "jpg", "jpeg", "jpegimages", "png", "photos", "pictures", "pics", "data"}
_UNLABELLED = {"pred", "predict", "prediction", "predictions", "unlabeled", "unlabelled", "inference", "holdout"}


def subdirs(folder: Path) -> list[Path]:
    """The folders in ``folder``, sorted, metadata folders left out; from the entries' types (no stat of each
    file: a class folder of 5,000 photos is listed, not 5,000 inodes read). A link to a folder elsewhere is
    one (a class folder kept on another disk); a link back to ``folder``, above it or into it is not
    (:func:`loops`): the image folder connector quarantines it."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and not metadata(Path(e.name)) and not loops(e, folder))


def loops(entry: os.DirEntry, folder: Path) -> bool:
    """Whether ``entry`` is a link to ``folder`` itself, a folder above it or one inside it: read through it,
    the set would land twice (a class named after the link) or without end."""
    if not entry.is_symlink():
        return False
    try:
        target, here = Path(entry.path).resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError):  # a broken or circular link
        return True
    return here.is_relative_to(target) or target.is_relative_to(here)


def holds_image_file(folder: Path) -> bool:
    """Whether an image file lies in ``folder`` itself (stops at the first)."""
    with os.scandir(folder) as entries:
        return any(e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS for e in entries)


def any_image(folder: Path) -> bool:
    """Whether any image file lies under ``folder`` (stops at the first; metadata folders left out)."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not metadata(Path(d))]
        if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in files):
            return True
    return False


def is_unlabelled(name: str) -> bool:
    """A folder of images to predict (Intel's ``seg_pred``, ``unlabelled/``)."""
    words = set(re.split(r"[-_. ]+", name.lower()))
    return bool(words & _UNLABELLED) and words - _UNLABELLED <= {"set", "seg", "data", "images", "imgs"}


def inner_split(folder: Path) -> Path:
    """``folder``, or its one subfolder when that names the same split (``training_set/training_set``) or holds
    the split's class folders under a pictures folder's name (GTSRB's ``Final_Training/Images/<class>/``)."""
    inner = subdirs(folder)
    if len(inner) != 1 or any(p.is_file() for p in folder.iterdir()):
        return folder
    pictures = inner[0].name.lower().replace("-", "").replace("_", "") in CONTAINERS and bool(subdirs(inner[0]))
    return inner[0] if pictures or split_of(inner[0].name) == split_of(folder.name) else folder


def split_name(folder: Path) -> str | None:
    """The split of a layout's split folder, as read (``Final_Training/Images`` is train)."""
    return split_of(folder.name) or split_of(folder.parent.name)


def container(split: Path, folder: Path) -> bool:
    """A split's only subfolder named as a set's pictures (Tiny ImageNet's ``val/images/``): its images are the
    split's, unlabelled, not a class called "images"."""
    return (folder.name.lower().replace("-", "").replace("_", "") in CONTAINERS and len(subdirs(split)) == 1
            and not subdirs(folder))


@dataclass
class Layout:
    splits: list[Path]  # the split folders, each as read (training_set/training_set unwrapped)
    unlabelled: list[Path] = field(default_factory=list)  # folders of images to predict
    outside: list[Path] = field(default_factory=list)  # beside the splits and none: their files are quarantined


def layout(root: Path) -> Layout | None:
    """``root``'s splits, or None when its folders are classes (no folder named as a split)."""
    top = subdirs(root)
    named = [p for p in top if split_of(p.name)]
    if not named:
        return None
    found = Layout(list(named))
    wrappers = 0
    for folder in top:
        if folder in named:
            continue
        if is_unlabelled(folder.name):
            found.unlabelled.append(folder)
        elif (inner := _splits_within(folder)) is not None:  # the splits again, wrapped (chest_xray/chest_xray/)
            wrappers += 1
            found.splits += [d for d in subdirs(inner) if split_of(d.name)]
            found.unlabelled += [d for d in subdirs(inner) if not split_of(d.name) and is_unlabelled(d.name)]
        else:
            found.outside.append(folder)
    if len(named) + wrappers < 2 and any(any_image(p) for p in found.outside):
        return None  # one folder named like a split beside folders of images: a class called test
    found.splits = [inner_split(s) for s in found.splits]
    return found


def _splits_within(folder: Path, depth: int = 2) -> Path | None:
    """The folder at or under ``folder`` (through wrappers of one image-holding folder, ``depth`` deep) whose
    image-holding folders are all splits or folders to predict, one of them a split; None where there is none."""
    if holds_image_file(folder):
        return None
    inside = [d for d in subdirs(folder) if any_image(d)]
    if any(split_of(d.name) for d in inside) and all(split_of(d.name) or is_unlabelled(d.name) for d in inside):
        return folder
    return _splits_within(inside[0], depth - 1) if depth and len(inside) == 1 else None
