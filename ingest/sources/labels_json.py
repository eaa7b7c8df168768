"""A labels file in JSON (or CVAT's XML), read as the rows of a CSV labels file would be (``labels_file.py`` matches them).

Four shapes of JSON, as published, and one of XML:

- **COCO** (``images`` + ``annotations`` + ``categories``): every camera-trap set on LILA (Caltech Camera Traps,
  Snapshot Serengeti), iWildCam, iNaturalist 2017, most annotation tools' export. One row an annotated image:
  its ``file_name`` and its annotations' category name; an image annotated with several categories gets them
  all (``lion|zebra``: quarantined as ``multiple_labels`` by the matching), one annotated with none is no row
  (it lands unlabelled), and an annotation of a category the file does not list has no label (quarantined).
- **JSON Lines** (Hugging Face's ``metadata.jsonl``: ``{"file_name": "0001.png", "label": "cat"}`` a line).
- **An array of such objects.**
- **One object mapping each image file to its label** (``{"a.jpg": "cat"}``): only where its keys name image
  files, so that a class-names file (``{"0": "cat"}``, ``cat_to_name.json``) is never read as labels.
- **CVAT's "CVAT for images 1.1" export** (``annotations.xml``: ``<image name="a.jpg"><tag label="cat"/></image>``).

Values are read as text: a number as its digits (a class index), a list as its items joined by ``|`` (several
labels), an object as none. Each row keeps where it is in the file (``line``: a line number of JSON Lines, else
the element, ``annotations[12]``), for the quarantine.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl

SUFFIXES = (".json", ".jsonl", ".ndjson", ".xml")
COCO_FILE, COCO_LABEL = "file_name", "category"


def reads(path: Path) -> bool:
    """Whether this module reads ``path`` (JSON, JSON Lines, CVAT's XML), not the CSV reader."""
    return path.suffix.lower() in SUFFIXES


def header(path: Path) -> list[str]:
    """The fields its rows have (the first rows' keys, in order); [] for JSON that holds no labels' shape."""
    try:
        return [c for c in read(path).columns if c != "line"]
    except InputError:
        return []


def read(path: Path) -> pl.DataFrame:
    """Its rows as strings, one column a field, and ``line``; InputError naming the file (and line) otherwise."""
    stat = path.stat()
    return _read(path.absolute(), stat.st_mtime_ns, stat.st_size).clone()


@lru_cache(maxsize=2)  # sluice init reads a file for its columns, then for its labels: a COCO file is ~100 MB
def _read(path: Path, _mtime: int, _size: int) -> pl.DataFrame:
    import polars as pl

    rows, where = _rows(path)
    columns = list(dict.fromkeys(k for row in rows[:500] for k in row))
    if not columns:
        raise InputError(f"{path}: no labels in this file (expected COCO's images / annotations / categories, "
                         "objects with a file and a label field, an object mapping each image file to its label, "
                         "or CVAT's annotations.xml of tagged images)")
    frame = pl.DataFrame({c: [_text(row.get(c)) for row in rows] for c in columns}, schema={c: pl.String for c in columns})
    return frame.with_columns(pl.Series("line", where, dtype=pl.String))


def _rows(path: Path) -> tuple[list[dict], list[str]]:
    if path.suffix.lower() == ".xml":
        return _cvat(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix.lower() != ".json" or _lines(text):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (json.JSONDecodeError, RecursionError) as err:
                    raise InputError(f"{path}:{number}: not a JSON object ({getattr(err, 'msg', 'nested too deep')}); "
                                     "one object a line") from None
        bad = next((n for n, row in enumerate(rows) if not isinstance(row, dict)), None)
        if bad is not None:
            raise InputError(f"{path}: row {bad + 1} is not a JSON object; one object a line")
        return rows, [str(n) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deep to be a labels file") from None
    if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        return _coco(path, data)
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return data, [f"[{n}]" for n in range(len(data))]
    if isinstance(data, dict) and data and _names_files(list(data)):
        return [{"file": k, "label": v} for k, v in data.items()], [json.dumps(k) for k in data]
    return [], []


def _lines(text: str) -> bool:
    """Whether a ``.json`` file is JSON Lines after all (two or more lines, each one object)."""
    lines = [line for line in text.splitlines()[:3] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(json.loads(line), dict) for line in lines)
    except json.JSONDecodeError:
        return False


def _names_files(keys: list[str]) -> bool:
    from sluice.imaging import image_extensions

    extensions = image_extensions()
    return sum(Path(k).suffix.lower() in extensions for k in keys) >= 0.9 * len(keys)


def _coco(path: Path, data: dict) -> tuple[list[dict], list[str]]:
    names = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
    files = {i.get("id"): i.get("file_name") for i in data["images"] if isinstance(i, dict)}
    # an image's own fields beside its file: a camera trap's seq_id and location (a subject, labels_file.SUBJECT_NAMES)
    fields = {i.get("id"): {k: v for k, v in i.items() if k not in ("id", "file_name") and isinstance(v, (str, int))}
              for i in data["images"] if isinstance(i, dict)}
    labels: dict[object, list] = {}
    first: dict[object, int] = {}
    for n, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            raise InputError(f"{path}: annotations[{n}] is not a JSON object")
        image = annotation.get("image_id")
        first.setdefault(image, n)
        category = names.get(annotation.get("category_id"))
        if category not in labels.setdefault(image, []):
            labels[image].append(category)
    rows = [{**fields.get(image, {}), COCO_FILE: files.get(image), COCO_LABEL: None if None in found else "|".join(map(str, found))}
            for image, found in labels.items()]
    return rows, [f"annotations[{first[image]}]" for image in labels]


def _cvat(path: Path) -> tuple[list[dict], list[str]]:
    """CVAT's "CVAT for images" export (``annotations.xml``): each ``<image name=...>``'s ``<tag label=...>``s (its
    boxes and polygons are not image labels); an image with no tag is no row. Entity declarations are refused (an
    export has none; a hostile file's would expand)."""
    import xml.etree.ElementTree as ET

    with path.open("rb") as f:
        if b"<!ENTITY" in f.read(1 << 16):
            raise InputError(f"{path}: an XML file with entity declarations is not read")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise InputError(f"{path}: not valid XML ({err})") from None
    rows, where = [], []
    for image in root.iter("image") if root.tag == "annotations" else ():
        tags = list(dict.fromkeys(t.get("label") for t in image.iter("tag") if t.get("label")))
        if tags:
            rows.append({"name": image.get("name"), "label": "|".join(tags)})
            where.append(f"image {image.get('id', len(where))}")
    return rows, where


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict) or value == "":
        return None
    if isinstance(value, list):
        items = [str(v) for v in value if v is not None and not isinstance(v, (dict, list))]
        return "|".join(items) or None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None
