"""An image's subject read from its path: the patient, person or case a folder or a file name names.

Where no labels file names the subject (``subject_column``), data sets often put it in the path: Kaggle's chest
X-ray pneumonia set names its files ``person1_bacteria_1.jpeg`` (several X-rays a child), CheXpert keeps each
patient's studies in ``train/patient00001/study1/``, GTSRB the 30 frames of a sign's track as ``00000_00029.ppm``.
``subject_pattern`` is a regular expression searched in each
image's path relative to the source (``/`` separated); its one group is the subject, and an image it does not
fit has none (it splits alone). ``sluice init`` writes :data:`PATTERN` where it fits enough of the images and
names a subject more than once on average: the dataset stage then keeps each subject's images in one split
(sluice/split_units.py).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from ingest.sources.folders import metadata

# patient00001/, person1_..., subject-12_..., case_7/: a word for a person or case joined to its number, as a path part
PATTERN = r"(?i)(?:^|[/_. -])((?:patient|person|subject|participant|case|individual)[-_]?\d+)(?=$|[/_. -])"
# GTSRB's tracks: 30 frames of one physical sign, <track>_<frame>.ppm in a class folder (Kaggle's <class>_<track>_<frame>
# .png): the frames of a track split apart put near-copies of val images in train. The subject is the folder and track
TRACK_PATTERN = r"^((?:.*/)?\d{5}(?:_\d{5})?)_\d{5}\.(?:ppm|png|jpe?g)$"
_SAMPLE = 5000


def compiled(pattern: str) -> re.Pattern:
    """``pattern`` compiled, or ValueError saying why it cannot name a subject (a config error, with its key)."""
    try:
        rx = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"subject_pattern {pattern!r} is not a regular expression: {err}") from None
    if rx.groups != 1:
        raise ValueError(f"subject_pattern {pattern!r} needs exactly one group, the subject (has {rx.groups})")
    return rx


def of(rx: re.Pattern | None, relative: str) -> str | None:
    """The subject ``rx`` finds in an image's relative path, else None."""
    found = rx.search(relative) if rx is not None else None
    return found.group(1) if found else None


def find(root: Path, extensions: set[str]) -> dict:
    """``{"subject_pattern": ...}``: the first of :data:`PATTERN` and :data:`TRACK_PATTERN` that names a subject in
    30% or more of the first images under ``root`` and names each such subject 1.5 times or more on average (a
    name per file is no subject: Caltech's ``person_0001.jpg``), else {}."""
    paths = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not metadata(Path(d)))  # never __MACOSX's ._ files
        paths += [Path(folder, n).relative_to(root).as_posix() for n in sorted(files)
                  if os.path.splitext(n)[1].lower() in extensions][:_SAMPLE - len(paths)]
        if len(paths) >= _SAMPLE:
            break
    for pattern in (PATTERN, TRACK_PATTERN):
        rx = re.compile(pattern)
        subjects = Counter(s for p in paths if (s := of(rx, p)))
        named = sum(subjects.values())
        if paths and named >= 0.3 * len(paths) and named >= 1.5 * len(subjects):
            return {"subject_pattern": pattern}
    return {}
