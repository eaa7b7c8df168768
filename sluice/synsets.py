"""ImageNet's class folders are WordNet ids (``n01440764``): their names, from the mapping file published beside them.

ImageNet (Kaggle's ``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca``; the devkit's ``synset_words.txt``),
Tiny ImageNet (``words.txt``, tab-separated) and Imagenette / Imagewoof (folders only) name classes so. Without the
names, the labels, the model's classes and ``sluice predict``'s answers are ids; with them ``sluice init`` writes
``labels.synonyms`` (each id -> its name, so the labels the folders and the validation lists give resolve to it)
and ``labels.classes`` in the folders' order (the ids sorted, as torchvision's ImageFolder numbers them).
"""

from __future__ import annotations

import re
from pathlib import Path

WNID = re.compile(r"n\d{8}")
MAPPING_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt", "synsets.txt", "wnids_words.txt")
LEVELS = 4  # folders above a source searched: Kaggle's ILSVRC/Data/CLS-LOC/train/<wnid> has the file at the top


def names(classes: list[str], source: Path) -> tuple[dict[str, str], Path] | None:
    """({wnid: name}, the file) where every class is a WordNet id and a mapping file in the source folder or up to
    LEVELS above it names them all; None otherwise. A name is the id's first synonym (``tench``), with its second
    where two classes share it, else with its id (ImageNet's two ``crane``: ``crane (n02012849)``)."""
    if not classes or not all(WNID.fullmatch(c) for c in classes):
        return None
    for folder in [source, *list(source.parents)[:LEVELS]]:
        for name in MAPPING_FILES:
            path = folder / name
            if path.is_file() and (words := _read(path)) and all(c in words for c in classes):
                return _unique({c: words[c] for c in classes}), path
    return None


def _read(path: Path) -> dict[str, list[str]]:
    """Each id's synonyms: ``n01440764 tench, Tinca tinca`` or ``n01440764<TAB>tench, Tinca tinca`` lines."""
    out: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and WNID.fullmatch(parts[0]):
            out[parts[0]] = [w.strip() for w in parts[1].split(",") if w.strip()]
    return out


def _unique(words: dict[str, list[str]]) -> dict[str, str]:
    """One name an id, no two alike ignoring case (the labels fold case)."""
    first = {c: (w[0] if w else c) for c, w in words.items()}
    counts: dict[str, int] = {}
    for name in first.values():
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    named = {c: n if counts[n.casefold()] == 1 else (f"{n} ({words[c][1]})" if len(words[c]) > 1 else f"{n} ({c})")
             for c, n in first.items()}
    if len({n.casefold() for n in named.values()}) < len(named):  # still alike: the ids keep them apart
        named = {c: f"{n} ({c})" for c, n in named.items()}
    return named
