"""Files of one label an item (``labels.gold_file``, ``labels.ground_truth``): the answers a crowd is checked
against, keyed like its votes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sluice.delimited import first_fields, read_delimited, read_headerless
from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl


def load_yaml(text: str, path: Path) -> object:
    """A YAML document as plain data (the safe loader: no objects). Aliases (``*name``) are refused before anything
    is built: a file of labels needs none, and nested aliases expand without bound (a "billion laughs" file)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if "*" in text and any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=loader)):
        raise InputError(f"{path}: uses YAML aliases (*name); a file of labels needs none, and they are not read")
    return yaml.load(text, Loader=loader)


def as_text(value) -> str | None:
    """A parsed JSON / YAML scalar as the text a CSV would hold: ``true`` / ``false``, ``1`` for ``1.0``, null and
    "" as None; anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return (value or "").strip() or None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return json.dumps(value, ensure_ascii=False)


def read_item_labels(path: str, what: str) -> pl.DataFrame:
    """``item, label`` from a CSV (header ``item,label``; any two columns, ``question,truth``; or two without a
    header, SQUARE's ``q1 1`` lines, split on , tab ; | or blanks) or a JSON or YAML object ``{item: label}`` (the
    bluebirds' ``gt.yaml``) / ``{"true_labels": {...}}``."""
    import polars as pl  # here, not at the top: `sluice --help` imports this module through init

    p = Path(path)
    if p.suffix.lower() in (".json", ".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"{p}: {what} does not exist")
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        try:
            text = p.read_text(encoding="utf-8-sig")
            data = json.loads(text) if kind == "JSON" else load_yaml(text, p)
        except (ValueError, yaml.YAMLError, RecursionError) as err:
            raise InputError(f"{p}: {what} is not valid {kind} ({str(err).splitlines()[0]})") from None
        mapping = data.get("true_labels", data) if isinstance(data, dict) else None
        if not isinstance(mapping, dict):
            raise InputError(f"{p}: {what} must be a {kind} object item -> label (or {{'true_labels': {{...}}}})")
        return pl.DataFrame({"item": [str(k) for k in mapping], "label": [as_text(v) for v in mapping.values()]},
                            schema={"item": pl.String, "label": pl.String})
    try:
        return read_delimited(p, ["item", "label"], None, what).select("item", "label")
    except InputError:  # two columns under other names (question,truth) or none (SQUARE's `q1 1` lines): by position
        if len(first_fields(p)[1]) != 2:
            raise
        frame = read_headerless(p, None, what).rename({"column_1": "item", "column_2": "label"})
        if frame.width != 2:
            raise
        first = frame["label"][0]
        return frame.slice(1) if first is None or not (frame["label"].slice(1) == first).any() else frame
