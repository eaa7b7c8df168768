"""Labels in the file names: ``cat.12.jpg``, the Pets' ``Bengal_104.jpg`` (``label_from: name``).

A name's label is what ``name_pattern``'s one group takes from its stem (by default :data:`NAME_PATTERN`: the
name less its trailing number); ``sluice init`` picks this where the names of some folder carry a handful of
labels, never the prefixes cameras give every file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# the name less its trailing number and the separator before it: cat.12 -> cat, great_pyrenees_104 -> great_pyrenees
NAME_PATTERN = r"(.+?)[ ._-]*\d+"
# names cameras and tools give files: a prefix shared by every file, not a class
_DEVICE_PREFIXES = {"img", "image", "dsc", "dscn", "dscf", "dcim", "pxl", "photo", "pic", "picture", "frame", "screenshot",
                    "scan", "mvimg", "gopr", "dji", "sam", "p", "im", "file", "untitled"}


def name_label(stem: str, pattern: re.Pattern) -> str | None:
    """The label ``pattern``'s group takes from a file's stem, or None where it does not fit or holds no letter
    (``2024_001``: a date, not a class)."""
    found = pattern.fullmatch(stem)
    label = found.group(1).strip() if found and found.group(1) else ""
    return label if any(c.isalpha() for c in label) else None


def names_are_labels(folders: list[Path], extensions: set[str], sample: int = 5000) -> bool:
    """Whether the image files' names carry their class (``cat.12.jpg``, ``Bengal_104.jpg``): in some folder at
    least 90% of them fit NAME_PATTERN, with 2 or more labels of 2 or more images each on average, none of them
    a name a camera gives every file (``IMG_0001``, ``DSC_0001``)."""
    pattern = re.compile(NAME_PATTERN)
    for folder in folders:
        stems = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and Path(entry.name).suffix.lower() in extensions:
                    stems.append(Path(entry.name).stem)
                    if len(stems) >= sample:
                        break
        labels = [name_label(stem, pattern) for stem in stems]
        named = [label for label in labels if label is not None]
        distinct = {label.lower() for label in named}
        if (stems and len(named) >= 0.9 * len(stems) and 2 <= len(distinct) <= len(named) // 2
                and not distinct & _DEVICE_PREFIXES):
            return True
    return False
