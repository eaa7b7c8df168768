"""Votes as a mapping of mappings, a JSON object or a YAML file: ``{worker: {item: label}}``, as Welinder et
al.'s bluebirds ``labels.yaml`` ships them (its ``gt.yaml`` of ``{item: label}`` is a truth file), or
``{item: {worker: label}}``.

``outer`` says which the outer keys are; ``sluice init`` tells it by the keys themselves (image names are
items, else the side with more distinct keys is). An outer value that is no mapping, or an answer that is itself
a mapping or a list of several, is a reject naming its keys; the rest land. Labels are read as JSON records
read theirs (``true`` / ``false``, ``1`` for ``1.0``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import polars as pl
import yaml

from ingest.votes.base import Parsed, Reject, VoteExport
from sluice.connectors import Connector
from sluice.delimited import require_file
from sluice.errors import InputError
from sluice.item_labels import as_text, load_yaml

YAML = (".yaml", ".yml")
_IMAGE_NAME = re.compile(r"(?i)(\.(jpe?g|png|gif|bmp|webp|tiff?|heic|dcm)$|/)")


class NestedVotesExport(VoteExport):
    """A JSON object or YAML mapping of mappings: one answer per (outer key, inner key)."""

    kind: Literal["nested"]
    outer: Literal["worker", "item"] = "worker"


def load(path: Path, what: str) -> dict:
    """The file's top-level mapping (YAML through the safe loader: plain data, never objects)."""
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = load_yaml(text, path) if path.suffix.lower() in YAML else json.loads(text)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 (byte offset {err.start}); save the file as UTF-8") from None
    except (ValueError, yaml.YAMLError, RecursionError) as err:
        raise InputError(f"{path}: not valid {'YAML' if path.suffix.lower() in YAML else 'JSON'} "
                         f"({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a mapping of mappings ({type(data).__name__} at the top; expected "
                         "{worker: {item: label}} or {item: {worker: label}})")
    return data


def _answers(data: dict, path: Path) -> tuple[list[tuple[str, str, str | None]], list[Reject]]:
    rows, rejects = [], []
    for outer, inner in data.items():
        if not isinstance(inner, dict):
            rejects.append(Reject(f"{path}:{outer}", "bad_record", f"a {type(inner).__name__}, not a mapping of answers"))
            continue
        for key, value in inner.items():
            if isinstance(value, dict) or (isinstance(value, list) and (len(value) > 1 or value and isinstance(value[0], (dict, list)))):
                rejects.append(Reject(f"{path}:{outer}/{key}", "bad_record", "not one answer"))
                continue
            if isinstance(value, list):  # one answer, or none chosen
                value = value[0] if value else None
            rows.append((str(outer), str(key), as_text(value)))
    return rows, rejects


def read(export: NestedVotesExport) -> Parsed:
    path = Path(export.path)
    rows, rejects = _answers(load(path, f"vote file '{export.name}'"), path)
    outer, inner = ("worker_id", "item_ref") if export.outer == "worker" else ("item_ref", "worker_id")
    frame = pl.DataFrame(rows, schema={outer: pl.String, inner: pl.String, "label": pl.String}, orient="row")
    empty = frame.filter(pl.col("label").is_null())
    rejects += [Reject(f"{path}:{row[outer]}/{row[inner]}", "missing_field", "empty label")
                for row in empty.iter_rows(named=True)]
    votes = frame.filter(pl.col("label").is_not_null()).select(
        "item_ref", "worker_id", "label", task_id=pl.lit(None, pl.String), assignment=pl.lit(""),
        status=pl.lit("submitted"), submitted_at=pl.lit(None, pl.Datetime("us", "UTC")))
    return Parsed(votes, rejects)


def detect(path: str) -> dict:
    """``outer``: which side the outer keys are, told by the keys (image names, else the more distinct side)."""
    rows, rejects = _answers(load(Path(path), "vote file"), Path(path))
    if not rows:
        first = f"; {rejects[0].where.rsplit(':', 1)[-1]}: {rejects[0].details}" if rejects else ""
        raise InputError(f"{path}: not a mapping of mappings (no outer key maps to one answer{first})")
    sides = {"outer": {r[0] for r in rows}, "inner": {r[1] for r in rows}}
    named = {side: sum(bool(_IMAGE_NAME.search(k)) for k in keys) / len(keys) for side, keys in sides.items()}
    if named["outer"] != named["inner"]:
        items = max(named, key=named.__getitem__)
    elif len(sides["outer"]) != len(sides["inner"]):
        items = max(sides, key=lambda side: len(sides[side]))
    else:
        raise InputError(f"{path}: cannot tell whether its outer keys are workers or items ({len(sides['outer'])} of "
                         "each, none an image name); set outer: worker or outer: item on its labels.exports entry")
    return {"outer": "item"} if items == "outer" else {}


CONNECTOR = Connector("votes", "nested", NestedVotesExport, read, "JSON / YAML mapping of mappings", detect=detect)
