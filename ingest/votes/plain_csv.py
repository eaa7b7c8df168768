"""A plain long CSV (or Parquet, or JSON records) of votes: one row per vote (item, worker, label, optional time
and task)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes import json_records
from ingest.votes.base import (
    Parsed,
    VoteExport,
    missing_field_rejects,
    parse_iso,
    row_rejects,
    times,
)
from sluice.connectors import Connector
from sluice.delimited import DELIMITERS, first_fields, header_line, read_delimited, read_headerless, require_file
from sluice.errors import InputError


class CsvVotesExport(VoteExport):
    """A plain long CSV: one vote per row."""

    kind: Literal["csv"]
    item_column: str = "item"
    worker_column: str = "worker"
    label_column: str = "label"
    time_column: str | None = None
    task_column: str | None = None
    status_column: str | None = None  # a row whose status is one of rejected_values lands as rejected
    rejected_values: list[str] = ["rejected"]  # compared trimmed and case-folded (Toloka: REJECTED)
    delimiter: str | None = None
    header: bool = True  # false: no header line; the columns are column_1, column_2, ... by position


PARQUET = (".parquet", ".pq")  # the same long layout as a Parquet file (as Hugging Face datasets ship votes)


def _parquet(path: Path, required: list[str]) -> pl.DataFrame:
    """The required columns of a long Parquet file of votes, as trimmed strings (empty = null)."""
    require_file(path, "vote file")
    try:
        schema = pl.read_parquet_schema(path)
        missing = [c for c in required if c not in schema]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))} in vote Parquet (it has "
                             f"{', '.join(map(repr, schema))}); set the column names in params.yaml")
        frame = pl.read_parquet(path, columns=list(dict.fromkeys(required)))
    except (pl.exceptions.PolarsError, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    text = [pl.col(c).cast(pl.String).str.strip_chars() for c in frame.columns]
    return frame.select([pl.when(t == "").then(None).otherwise(t).alias(c) for t, c in zip(text, frame.columns)])


def read(export: CsvVotesExport) -> Parsed:
    path = Path(export.path)
    needed = {export.item_column: "item", export.worker_column: "worker", export.label_column: "label"}
    required = list(needed) + [c for c in (export.time_column, export.task_column, export.status_column) if c]
    bad_records, ragged = [], []
    if json_records.is_json(path):
        frame, bad_records = json_records.read(path, required, f"vote file '{export.name}'")
    elif path.suffix.lower() in PARQUET:
        frame = _parquet(path, required)
    elif not export.header:
        frame = read_headerless(path, export.delimiter, f"vote file '{export.name}'")
        if missing := [c for c in required if c not in frame.columns]:
            raise InputError(f"{path}: no {', '.join(missing)} in vote file '{export.name}' (header: false; it has "
                             f"{frame.width} column(s), column_1 to column_{frame.width})")
    else:
        frame = read_delimited(path, required, export.delimiter, f"vote CSV '{export.name}'", ragged=ragged)
    frame, rejects = row_rejects(frame, path, needed, ragged) if export.header else \
        missing_field_rejects(frame, path, needed)
    rejects = bad_records + rejects
    texts = frame[export.time_column].to_list() if export.time_column else [None] * frame.height
    submitted, unparsed = times(texts, parse_iso)
    task = pl.col(export.task_column) if export.task_column else pl.lit(None, pl.String)
    status = pl.lit("submitted")
    if export.status_column:
        rejected = [v.strip().casefold() for v in export.rejected_values]
        status = pl.when(pl.col(export.status_column).str.strip_chars().str.to_lowercase().is_in(rejected)) \
            .then(pl.lit("rejected")).otherwise(status)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col(export.worker_column).alias("worker_id"),
        pl.col(export.label_column).alias("label"), task.alias("task_id"),
        task.fill_null("").alias("assignment"), status.alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


# header names each role goes by, most specific first (matched ignoring case, spaces, "-" and "_"):
# a crowd export keyed the user's way needs no renaming. A platform prefix is looked through when the
# whole name matches nothing (Toloka's INPUT:image, OUTPUT:result, ASSIGNMENT:worker_id); `task` and
# `object` (crowd-kit's and many research sets' item column) come last, after every image-ish name
COLUMN_NAMES = {
    "item": ("item", "image", "imageid", "imagefilename", "imagename", "filename", "file", "imagepath", "path",
             "imageurl", "url", "img", "photo", "photoid", "photofilename", "photopath", "photourl", "picture",
             "pictureid", "media", "mediaid", "asset", "assetid", "externalid", "sample", "sampleid", "itemid", "task",
             "taskid", "object", "objectid", "question", "questionid", "unitid", "instance", "instanceid"),
    "worker": ("worker", "workerid", "annotator", "annotatorid", "labeler", "labelerid", "labeller", "rater",
               "raterid", "user", "userid", "judge", "contributor", "contributorid", "performer", "performerid",
               "createdby", "labeledby", "annotatedby"),
    "label": ("label", "chosencategory", "chosenlabel", "answer", "class", "classname", "category", "choice", "response",
              "annotation", "tag", "result", "output", "labelname", "classlabel", "vote"),
}
_PREFIX = ("input", "output", "assignment", "answer")  # Toloka (INPUT:, OUTPUT:, ASSIGNMENT:), MTurk (Answer.)


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _unprefixed(name: str) -> str | None:
    """``INPUT:image`` -> ``image``: the part after a platform's prefix, or None without one."""
    for sep in (":", "."):
        head, found, tail = name.partition(sep)
        if found and _key(head) in _PREFIX and _key(tail):
            return tail
    return None


def columns_of(header: list[str]) -> dict[str, str] | None:
    """The item, worker and label columns of a header (see COLUMN_NAMES), or None when one is missing."""
    found = _roles(header)
    return found if all(found.values()) and len(set(found.values())) == 3 else None  # type: ignore[return-value]


def _roles(header: list[str]) -> dict[str, str | None]:
    """Each role's column by COLUMN_NAMES (None where no column has one of its names)."""
    by_key: dict[str, str] = {}
    for name in header:
        by_key.setdefault(_key(name), name)
    for name in header:  # whole names first: a prefixed one only fills a key nothing else has
        tail = _unprefixed(name)
        if tail is not None:
            by_key.setdefault(_key(tail), name)
    for name in header:  # then a JSON record's nested field by its own name (meta.file: file)
        if "." in name.strip("."):
            by_key.setdefault(_key(name.rsplit(".", 1)[1]), name)
    found = {role: next((by_key[k] for k in names if k in by_key), None) for role, names in COLUMN_NAMES.items()}
    if found["label"] is None:  # Figure Eight names the answer column by its question, beside `<question>_gold`
        found["label"] = next((n for n in header if _key(n) and _key(n) + "gold" in by_key), None)
    return found


def detect(path: str) -> dict:
    """The ``*_column`` settings a vote CSV at ``path`` needs (none when it says item, worker, label)."""
    require_file(Path(path), "vote file")  # an empty file is said as such, not as a header of no columns
    if json_records.is_json(path):
        return _detect_json(path)
    if Path(path).suffix.lower() in PARQUET:
        header = list(pl.read_parquet_schema(path))
        line = ",".join(header)
    else:
        line = header_line(Path(path))
        header = max((next(csv.reader([line], delimiter=d), []) for d in DELIMITERS), key=len)
    return _settings(path, [c.strip() for c in header], line)


def _settings(path: str, header: list[str], line: str) -> dict:
    found = columns_of(header)
    if found is None and not any(_roles(header).values()) and (guessed := headerless_roles(Path(path))):
        return guessed
    if found is None:
        roles = _roles(header)
        known = ", ".join(f"{role} {name!r}" for role, name in roles.items() if name)
        missing = [role for role, name in roles.items() if not name] or list(roles)
        raise InputError(f"{path}: cannot tell which column of this vote CSV holds the {' or '.join(missing)} (header "
                         f"{line[:120]!r}{'; found ' + known if known and len(missing) < 3 else ''}); rename it, or set "
                         "item_column, worker_column and label_column on its labels.exports entry in params.yaml (one "
                         "row per item, a column per annotator: kind: wide with label_columns; no header line: "
                         "header: false with column_1, column_2, ...)")
    out = {f"{role}_column": name for role, name in found.items() if name != role}
    status = status_column(header)
    if status:
        return {**out, "status_column": status}
    check = next((n for n in header if _key(n) in ATTENTION_CHECK), None)
    return {**out, "status_column": check, "rejected_values": ["1", "true", "yes"]} if check else out


_IMAGE_NAME = r"(?i)(\.(jpe?g|png|gif|bmp|webp|tiff?|heic|dcm)$|/)"


def headerless_roles(path: Path) -> dict | None:
    """The settings of a vote file without a header line (research collections' ``worker item label`` lines:
    SQUARE's ``*.response.txt``), its three columns told apart by their values, or None where they cannot be.

    A worker answers an item once, so the (item, worker) pair is the one whose rows never repeat, while a label
    repeats within an item and within a worker; of those two the item is the column of image names, else the one
    with more distinct values. The first line must be data: its label recurs below it (a header's name would not).
    """
    delimiter, fields = first_fields(path)
    if len(fields) != 3:
        return None
    frame = read_headerless(path, delimiter, "vote file").head(200_000)
    if frame.width != 3 or frame.height < 3:
        return None
    cols = frame.columns
    repeats = {c: frame.height - frame.select([o for o in cols if o != c]).unique().height for c in cols}
    label = min(cols, key=repeats.__getitem__)
    if sorted(repeats.values())[1] <= repeats[label] or (frame[label] == frame[label][0]).sum() < 2:
        return None
    pair = [c for c in cols if c != label]
    named = {c: frame[c].drop_nulls().str.contains(_IMAGE_NAME).mean() or 0.0 for c in pair}
    distinct = {c: frame[c].n_unique() for c in pair}
    if named[pair[0]] != named[pair[1]]:
        item = max(pair, key=named.__getitem__)
    elif distinct[pair[0]] != distinct[pair[1]]:
        item = max(pair, key=distinct.__getitem__)
    else:
        return None
    worker = next(c for c in pair if c != item)
    print(f"[init] {path}: no header line; read as item {item} ({distinct[item]} distinct), worker {worker} "
          f"({distinct[worker]}), label {label} ({frame[label].n_unique()}) by their values: check them in params.yaml",
          file=sys.stderr)
    return {"header": False, "item_column": item, "worker_column": worker, "label_column": label}


# a column marking attention-check trials (CIFAR-10H's is_attn_check): their answers test the worker, not the
# image, and the published aggregates leave them out; they land as rejected, so they are kept but never aggregated.
# Figure Eight's _tainted marks the work of a contributor who failed its test questions, left out the same way
ATTENTION_CHECK = ("isattncheck", "attncheck", "attentioncheck", "isattentioncheck", "tainted")


def status_column(header: list[str]) -> str | None:
    """An assignment-status column (``status``, MTurk-style ``AssignmentStatus``, Toloka's
    ``ASSIGNMENT:status``), so rejected work is never aggregated."""
    for name in header:
        tail = _unprefixed(name) or name
        if _key(tail) in ("status", "assignmentstatus"):
            return name
    return None


# choice interfaces' JSON (Prodigy's): "accept" holds the options chosen, "answer" says whether the annotator
# accepted, rejected or skipped the task; only accepted answers are votes
_DECISIONS = {"accept", "reject", "ignore"}


def _detect_json(path: str) -> dict:
    """The settings of JSON vote records: their fields by the names a CSV header's are found by, passing over a
    field that holds the images themselves (``data:`` URIs) for one that names them (``path``, ``meta.file``),
    and a choice interface's ``accept`` (else ``label``) and ``answer`` read as the label and the status."""
    keys = json_records.keys(path)
    sample = json_records.read(Path(path), keys, "vote file")[0].head(200) if keys else pl.DataFrame()
    header = [k for k in keys if not sample[k].drop_nulls().str.starts_with("data:").any()]
    decisions = {v.lower() for v in sample["answer"].drop_nulls()} if "answer" in header else set()
    if not (decisions and decisions <= _DECISIONS):
        return _settings(path, header, ", ".join(header[:12]))
    label = next((k for k in ("accept", "label") if k in header), None)
    roles = _roles([k for k in header if k not in ("answer", "accept", "label")])
    if label is None or not roles["item"] or not roles["worker"]:
        raise InputError(f"{path}: accept / reject answers, but cannot tell which field holds the "
                         f"{'label' if label is None else 'item' if not roles['item'] else 'annotator'} (fields "
                         f"{', '.join(header[:12])}); set item_column, worker_column and label_column in params.yaml")
    found = {"item_column": roles["item"], "worker_column": roles["worker"], "label_column": label,
             "status_column": "answer", "rejected_values": ["reject", "ignore"]}
    return {k: v for k, v in found.items() if v != k.removesuffix("_column")}


CONNECTOR = Connector("votes", "csv", CsvVotesExport, read, "long CSV, one vote per row", detect=detect)
