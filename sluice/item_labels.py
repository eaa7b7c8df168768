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

    from sluice.params_labels import LabelColumns


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


def item_key(source: str | LabelColumns) -> str:
    """How the items a labels value names resolve to images: its columns' ``item_key`` (its vote export's), else auto."""
    return getattr(source, "item_key", "auto")


def read_label_columns(spec: LabelColumns, what: str) -> pl.DataFrame:
    """``item, label`` from two columns of a CSV / TSV or Parquet table holding a row per vote: the rows with a label,
    one an item (the same label on every row of an item; two labels for one item are an error naming them); whole
    numbers name ``class_names`` by position."""
    import polars as pl

    p, columns = Path(spec.path), [spec.item_column, spec.label_column]
    if p.suffix.lower() == ".parquet":
        if not p.is_file():
            raise InputError(f"{p}: {what} does not exist")
        try:
            schema = pl.read_parquet_schema(p)
        except (pl.exceptions.ComputeError, OSError) as err:
            raise InputError(f"{p}: {what} is not a readable Parquet file ({str(err).splitlines()[0]})") from None
        missing = [c for c in columns if c not in schema]
        if missing:
            raise InputError(f"{p}: missing column(s) {', '.join(repr(c) for c in missing)} named by {what}")
        nested = [c for c in columns if schema[c].is_nested()]
        if nested:  # a list of labels an item is no one label
            raise InputError(f"{p}: column {nested[0]!r} named by {what} holds {schema[nested[0]]}, not one label a row")
        frame = pl.read_parquet(p, columns=columns).select(pl.all().cast(pl.String).str.strip_chars())
        frame = frame.select(pl.all().replace("", None))
    else:
        frame = read_delimited(p, columns, spec.delimiter, what, only=True).select(columns)
    frame = frame.rename({spec.item_column: "item", spec.label_column: "label"})
    frame = frame.filter(pl.col("item").is_not_null() & pl.col("label").is_not_null()).unique(maintain_order=True)
    if frame.is_empty():
        raise InputError(f"{p}: column '{spec.label_column}' named by {what} holds no label")
    if spec.class_names:
        position = frame["label"].str.to_integer(strict=False)
        bad = frame.filter(position.is_not_null() & ((position < 0) | (position >= len(spec.class_names))))
        if bad.height:
            raise InputError(f"{p}: {what} label {bad['label'][0]} (item '{bad['item'][0]}') is no position in "
                             f"class_names (0..{len(spec.class_names) - 1})")
        names = pl.Series(spec.class_names, dtype=pl.String)
        frame = frame.with_columns(pl.when(position.is_not_null()).then(names.gather(position.fill_null(0)))
                                   .otherwise(pl.col("label")).alias("label"))
    twice = frame.filter(pl.col("item").is_duplicated())
    if twice.height:
        item = twice["item"][0]
        labels = twice.filter(pl.col("item") == item)["label"].to_list()
        raise InputError(f"{p}: item '{item}' has two labels in column '{spec.label_column}' ({labels[0]!r} and "
                         f"{labels[1]!r}) named by {what}: it must hold one label an item")
    return frame


def read_item_labels(source: str | LabelColumns, what: str) -> pl.DataFrame:
    """``item, label`` from a CSV (header ``item,label``; any two columns, ``question,truth``; or two without a
    header, SQUARE's ``q1 1`` lines, split on , tab ; | or blanks) or a JSON or YAML object ``{item: label}`` (the
    bluebirds' ``gt.yaml``) / ``{"true_labels": {...}}``."""
    import polars as pl  # here, not at the top: `sluice --help` imports this module through init

    if not isinstance(source, str):
        return read_label_columns(source, what)
    p = Path(source)
    if p.suffix.lower() in (".json", ".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"{p}: {what} does not exist")
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        try:
            text = p.read_text(encoding="utf-8-sig")
            data = json.loads(text) if kind == "JSON" else load_yaml(text, p)
        except UnicodeDecodeError as err:
            raise InputError(f"{p}: {what} is not UTF-8 (byte offset {err.start}); save the file as UTF-8") from None
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
