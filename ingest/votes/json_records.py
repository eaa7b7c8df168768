"""Votes as JSON records: JSON Lines (``.jsonl``, ``.ndjson``) or a JSON array of objects, one vote each.

Many tools export one vote a record rather than a CSV row: annotation tools' JSON Lines, a Hugging Face
dataset's ``to_json``, a team's own scripts. Nested objects are read by their dotted path
(``{"worker": {"id": "w1"}}`` is column ``worker.id``), a list holding one answer is that answer
(``{"accept": ["cat"]}``, as choice interfaces write it), and a list of several is kept as JSON text, which
the label check rejects as no class. A line that is not a JSON object is a reject naming its line; the
others land, so one bad line loses nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ingest.votes.base import Reject
from sluice.delimited import require_file
from sluice.errors import InputError
from sluice.item_labels import as_text

SUFFIXES = (".jsonl", ".ndjson", ".json")
_SAMPLE = 200  # records whose keys sluice init reads to find the columns


def is_json(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def flat(record: dict, prefix: str = "") -> dict[str, str | None]:
    """A record's scalar fields by their dotted paths, as text (null and "" as None)."""
    out: dict[str, str | None] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
            continue
        if isinstance(value, list) and len(value) <= 1 and not (value and isinstance(value[0], (dict, list))):
            value = value[0] if value else None  # one answer, or none chosen
        out[name] = as_text(value)
    return out


def _records(path: Path, what: str):
    """(line, record or None, error) of each record of a JSON Lines file or a JSON array."""
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 (byte offset {err.start}); save the file as UTF-8") from None
    if text.lstrip().startswith("["):
        try:
            array = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise InputError(f"{path}: not valid JSON ({err}); expected an array of vote objects or JSON Lines") from None
        yield from ((n, r, None) if isinstance(r, dict) else (n, None, f"element {n} is a {type(r).__name__}, not an object")
                    for n, r in enumerate(array, 1))
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            yield n, None, f"not valid JSON ({err})"
            continue
        yield (n, record, None) if isinstance(record, dict) else (n, None, f"a JSON {type(record).__name__}, not an object")


def read(path: Path, required: list[str], what: str) -> tuple[pl.DataFrame, list[Reject]]:
    """The ``required`` fields of every record as trimmed strings (missing = null), with a ``__line`` column
    (the line of JSON Lines, the element of an array), and a reject for each record that is not an object.
    A field no record has is a user error naming the fields they do have."""
    columns = list(dict.fromkeys(required))
    data: dict[str, list] = {c: [] for c in [*columns, "__line"]}
    rejects = []
    for n, record, error in _records(path, what):
        if record is None:
            rejects.append(Reject(f"{path}:{n}", "bad_record", str(error)))
            continue
        fields = flat(record)
        for c in columns:
            data[c].append(fields.get(c))
        data["__line"].append(n)
    frame = pl.DataFrame(data, schema={**{c: pl.String for c in columns}, "__line": pl.Int64})
    absent = [c for c in columns if frame.height and frame[c].null_count() == frame.height]
    if absent:
        raise InputError(f"{path}: no record of {what} has the field(s) {', '.join(map(repr, absent))} (its records "
                         f"have {', '.join(map(repr, keys(path)[:12]))}); set the field names in params.yaml")
    return frame, rejects


def keys(path: str | Path) -> list[str]:
    """The dotted field names of the first records, in the order first seen (what ``sluice init`` matches)."""
    found: dict[str, None] = {}
    for n, (_, record, _) in enumerate(_records(Path(path), "vote file")):
        if n >= _SAMPLE:
            break
        if record is not None:
            found.update(dict.fromkeys(flat(record)))
    return list(found)
