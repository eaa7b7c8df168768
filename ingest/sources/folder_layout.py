"""Where an image folder's splits are, as published sets and archives lay them out.

A folder is split-level when some of its folders are named as splits (``train``, ``test``, ``seg_train``...).
Beside them may lie a folder of images to predict (``seg_pred``: unlabelled), a wrapper holding the splits
again (Kaggle's ``New Plant Diseases Dataset(Augmented)/New Plant Diseases Dataset(Augmented)/train/`` beside
``test/``; ``chest_xray/chest_xray/train/`` beside ``chest_xray/train/``: its splits are read too), folders of
no images (``papers/``, ``annotations/``), the training pool under a pictures folder's name where no split folder is
train (Places365's ``data_256/<letter>/<class>/`` beside ``val_256/``), and folders of images that are no split (Fruits-360's
``test-multiple_fruits/``): their files are quarantined as outside any split, never read as a class nor
dropped. A class named like a split (``test/`` beside ``cat/`` and ``dog/``) is told apart by numbers: one
split-named folder beside folders of images is a class-level layout.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ingest.sources.base import split_of, word_split
from ingest.sources.folders import metadata
from sluice.imaging import image_extensions

IMAGE_EXTENSIONS = image_extensions()
# names of a folder that holds a data set's pictures, not a class of them (Food-101's images/<class>/, the
# Oxford-IIIT Pets' images/ beside annotations/, Pascal VOC's JPEGImages/)
CONTAINERS = {"images", "image", "imgs", "img", "jpg", "jpeg", "jpegimages", "png", "photos", "pictures", "pics", "data"}
# words beside a pictures folder's name that say its resolution or edition (Places365's data_256, data_large)
_POOL_WORDS = {"large", "small", "full", "resized", "standard", "challenge", "hr", "lr"}
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
    return inner[0] if pictures or word_split(inner[0].name) == word_split(folder.name) else folder


def split_name(folder: Path) -> str | None:
    """The split of a layout's split folder, as read (``Final_Training/Images`` is train; a pool named as pictures,
    Places365's ``data_256``, is train)."""
    return word_split(folder.name) or split_of(folder.parent.name) or ("train" if is_pool(folder.name) else None)


def is_pool(name: str) -> bool:
    """A folder named as a set's pictures, alone or with its resolution or edition (``images``, ``data_256``,
    ``data_large``): beside split folders none of which is train, the training pool."""
    words = [w for w in re.split(r"[-_. ]+", name.lower()) if w and not w.isdigit()]
    return bool(words) and words[0] in CONTAINERS and set(words[1:]) <= _POOL_WORDS


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
    named = [p for p in top if split_of(p.name)] or _alike(top)
    if not named:
        return None
    found = Layout(list(named))
    wrappers = 0
    pools = [f for f in top if f not in named and is_pool(f.name) and not holds_image_file(f) and any_image(f)]
    pool = len(pools) == 1 and "train" not in {split_of(f.name) for f in named}
    if pool:
        found.splits.append(pools[0])  # Places365's data_256/ beside val_256/ and test_256/
    for folder in top:
        if folder in found.splits:
            continue
        if is_unlabelled(folder.name):
            found.unlabelled.append(folder)
        elif (inner := _splits_within(folder)) is not None:  # the splits again, wrapped (chest_xray/chest_xray/)
            wrappers += 1
            found.splits += [d for d in subdirs(inner) if split_of(d.name)]
            found.unlabelled += [d for d in subdirs(inner) if not split_of(d.name) and is_unlabelled(d.name)]
        else:
            found.outside.append(folder)
    if len(named) + pool + wrappers < 2 and any(any_image(p) for p in found.outside):
        return None  # one folder named like a split beside folders of images: a class called test
    found.splits = [inner_split(s) for s in found.splits]
    return found


def _alike(folders: list[Path]) -> list[Path]:
    """Folders named alike but for a split word, of two splits or more (Stanford Cars' ``cars_train`` and
    ``cars_test``: the data set's name and the split), each holding images; [] unless exactly one such set."""
    sets: dict[str, list[Path]] = {}
    for folder in folders:
        if word_split(folder.name):
            key = re.sub(r"(?i)(?<![a-z])(trainval|training|train|testing|test|validation|valid|val|dev)(?![a-z])", "*",
                         folder.name.lower())
            sets.setdefault(key, []).append(folder)
    found = [alike for alike in sets.values()
             if len({word_split(f.name) for f in alike}) == len(alike) >= 2 and all(map(any_image, alike))]
    return found[0] if len(found) == 1 else []


def _splits_within(folder: Path, depth: int = 2) -> Path | None:
    """The folder at or under ``folder`` (through wrappers of one image-holding folder, ``depth`` deep) whose
    image-holding folders are all splits or folders to predict, one of them a split; None where there is none."""
    if holds_image_file(folder):
        return None
    inside = [d for d in subdirs(folder) if any_image(d)]
    if any(split_of(d.name) for d in inside) and all(split_of(d.name) or is_unlabelled(d.name) for d in inside):
        return folder
    return _splits_within(inside[0], depth - 1) if depth and len(inside) == 1 else None


def wrapped(folder: Path) -> Path | None:
    """The one subfolder the layout starts in, when ``folder`` only wraps it: ``folder`` holds no image itself,
    exactly one of its subfolders holds images (the others: annotations, meta, lists), that one is not a split,
    and either it holds folders and is ``folder``'s only subfolder (``flowers/flowers/<class>/``), or its name
    says it holds a set's pictures (``images``, ``jpg``), or its images all lie in two or more folders of its own
    (Caltech-101's ``101_ObjectCategories/<class>/`` beside ``Annotations/``: read as one class, it would be a
    data set of one class)."""
    inside = subdirs(folder)
    if holds_image_file(folder):
        return None
    with_images = [d for d in inside if any_image(d)]
    if len(with_images) != 1 or split_of(with_images[0].name):
        return None
    inner = with_images[0]
    only = len(inside) == 1 and bool(subdirs(inner))
    classes = not holds_image_file(inner) and sum(any_image(d) for d in subdirs(inner)) >= 2
    return inner if only or classes or inner.name.lower().replace("-", "").replace("_", "") in CONTAINERS else None


def classes_nest(groups) -> bool:
    """Whether the class folders only group the classes below them (SUN397's ``a/abbey``, iNaturalist 2019's
    ``Plants/644``): in each split no image lies in a class folder itself, they hold two or more folders with
    images each on average, and those folders' names are their own (at most one in ten under two class folders:
    ``cat/2019`` beside ``dog/2019`` are not classes; nor is Tiny ImageNet's ``n01443537/images/``)."""
    by_split: dict[str | None, list[Path]] = {}
    for split, folder, label in groups:
        if label is not None:
            by_split.setdefault(split, []).append(folder)
    for folders in by_split.values():
        if any(holds_image_file(f) for f in folders):
            return False
        names = Counter(d.name.lower() for f in folders for d in subdirs(f) if any_image(d))
        if sum(names.values()) < 2 * len(folders) or sum(n > 1 for n in names.values()) > 0.1 * len(names):
            return False
    return bool(by_split)


def nested_classes(groups) -> list[str]:
    """The classes of a layout whose class folders nest (:func:`classes_nest`), as ``label_from: path`` names them:
    each folder holding images, from its class level down (``a/abbey``, ``b/bakery/shop``), sorted."""
    found = set()
    for _, folder, label in groups:
        if label is not None:
            for parent, dirs, files in os.walk(folder):
                dirs[:] = [d for d in dirs if not metadata(Path(d))]
                if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in files):
                    found.add(Path(parent).relative_to(folder.parent).as_posix())
    return sorted(found)
