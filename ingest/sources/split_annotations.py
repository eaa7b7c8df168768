"""A split's pictures folder labelled by the list beside it: Tiny ImageNet's ``val/images/`` with
``val/val_annotations.txt``, one headerless line an image (``val_0.JPEG<TAB>n03444034<TAB>0<TAB>32<TAB>44<TAB>62``:
file, class, then a box that is not read).

Without it such a split lands unlabelled (the images folder is a container, not a class), and the set's
labelled validation images would be thrown in with its unlabelled test images. A line is split on tabs, else
commas, else spaces; its first field names an image of the folder by file name or by a path ending in one
(``images/val_0.JPEG``), its second is the label. A first line whose first field is no image's name is a
header. A line naming no image, or an image a second time with another label, is quarantined with the
file and line; an image no line names lands unlabelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.sources.base import Record
from sluice.imaging import image_extensions
from sluice.stage import stage_logger

_SUFFIXES = (".txt", ".tsv", ".csv")


def beside(split: Path) -> Path | None:
    """The one file in ``split`` itself named for annotations or labels (``val_annotations.txt``), else None."""
    found = [p for p in split.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES
             and re.search(r"annotation|label", p.stem, re.IGNORECASE)]
    return found[0] if len(found) == 1 else None


@dataclass
class SplitLabels:
    by_image: dict[Path, str] = field(default_factory=dict)
    rejects: list[Record] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path, images: list[Path]) -> SplitLabels:
        by_name: dict[str, list[Path]] = {}
        for image in images:
            by_name.setdefault(image.name, []).append(image)
        out = cls()
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = [f.strip() for f in (line.split("\t") if "\t" in line else
                                          line.split(",") if "," in line else line.split())]
            name = fields[0].replace("\\", "/").rsplit("/", 1)[-1]
            hits = by_name.get(name, [])
            where = f"{path}:{line_no}"
            if line_no == 1 and not hits and "." not in name:  # a header: file,label
                continue
            label = fields[1] if len(fields) > 1 else ""
            if not label:
                out.rejects.append(Record(where, item_id=fields[0] or None, reject="missing_field", details="empty label"))
            elif len(hits) != 1:
                out.rejects.append(Record(where, item_id=fields[0], reject="label_for_missing_file" if not hits else
                                          "ambiguous_file_name",
                                          details=f"{len(hits) or 'no'} images in {path.parent} are named {name!r}"))
            elif out.by_image.setdefault(hits[0], label) != label:
                out.rejects.append(Record(where, item_id=fields[0], reject="conflicting_label",
                                          details=f"{name!r} labelled {label!r} here and {out.by_image[hits[0]]!r} on an "
                                                  "earlier line (the first kept)"))
        return out


def jobs(source: str, files: list[Path], annotations: Path, split: str | None):
    """``files`` (a split's pictures folder) as the image folder's (path, label, split) jobs, labelled by
    ``annotations``, after the rejections of its lines."""
    extensions = image_extensions()
    labels = SplitLabels.read(annotations, [p for p in files if p.suffix.lower() in extensions])
    stage_logger("ingest").info(f"{source}: {len(labels.by_image)} images in {annotations.parent} labelled by "
                                f"{annotations.name}"
                                + (f", {len(labels.rejects)} of its lines quarantined" if labels.rejects else ""))
    yield from labels.rejects
    yield from ((path, labels.by_image.get(path), split) for path in files)
