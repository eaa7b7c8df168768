"""Amazon Mechanical Turk batch results CSV: one row per assignment.

The label is the ``label_column`` as is, or, for crowd-HTML-element forms whose answers MTurk writes as
JSON (``Answer.taskAnswers`` = ``[{"crowd-image-classifier": {"label": "Cat"}}]``), the first ``label``
value inside it, else the name of the option checked (radio buttons and checkboxes write
``[{"cat": {"on": true}, "dog": {"on": false}}]``: the label is ``cat``).

The input column is what the requester's input CSV called it (``Input.image_url`` in Amazon's templates,
``Input.img``, ``Input.url``...): ``sluice init`` finds it, and the answer column, by their names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes.base import (
    Parsed,
    VoteExport,
    parse_mturk_time,
    row_rejects,
    times,
)
from sluice.connectors import Connector
from sluice.delimited import read_delimited
from sluice.errors import InputError

STATUS = {"approved": "approved", "rejected": "rejected", "submitted": "submitted"}


class MTurkExport(VoteExport):
    """Amazon Mechanical Turk batch results CSV (one row per assignment)."""

    kind: Literal["mturk"]
    item_column: str = "Input.image_url"
    label_column: str = "Answer.label"
    delimiter: str | None = None  # null = detect among , ; tab |


def read(export: MTurkExport) -> Parsed:
    """Every assignment as a vote; a rejected one (status or a filled ``Reject``) lands as ``rejected``."""
    path = Path(export.path)
    needed = {"AssignmentId": "AssignmentId", "WorkerId": "WorkerId", export.item_column: "item", export.label_column: "label"}
    ragged: list[tuple[int, int, int]] = []
    frame = read_delimited(path, list(needed), export.delimiter, f"MTurk export '{export.name}'", ragged=ragged)
    frame, rejects = row_rejects(frame, path, needed, ragged)
    for optional in ("HITId", "AssignmentStatus", "SubmitTime", "Reject"):
        if optional not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(optional))
    status = (pl.when(pl.col("Reject").is_not_null()).then(pl.lit("rejected"))
              .otherwise(pl.col("AssignmentStatus").str.to_lowercase().replace_strict(STATUS, default="submitted"))
              .fill_null("submitted"))
    frame = frame.with_columns(pl.col(export.label_column).map_elements(_answer, return_dtype=pl.String))
    submitted, unparsed = times(frame["SubmitTime"].to_list(), parse_mturk_time)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col("WorkerId").alias("worker_id"),
        pl.col(export.label_column).alias("label"), pl.col("HITId").alias("task_id"),
        pl.col("AssignmentId").alias("assignment"), status.alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


def _answer(text: str) -> str:
    """The label of a JSON answer (``taskAnswers``), else the text itself."""
    if text[:1] not in ("[", "{"):
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    found = _find_label(value)
    found = _checked(value) if found is None else found
    return text if found is None else str(found).strip()


def _checked(value, name: str | None = None):
    """The option a radio button or checkbox answer marks: the key holding ``true`` (its parent's, when the
    key is ``on``), the first found."""
    if isinstance(value, dict):
        for key, v in value.items():
            if v is True:
                return name if key == "on" and name else key
            found = _checked(v, key) if isinstance(v, (dict, list)) else None
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _checked(v, name)
            if found is not None:
                return found
    return None


def _find_label(value):
    if isinstance(value, dict):
        if "label" in value and not isinstance(value["label"], (dict, list)):
            return value["label"]
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            found = _find_label(v)
            if found is not None:
                return found
    return None


def detect(path: str) -> dict:
    """The input column naming the image and the answer column, where they are not the defaults: the
    ``Input.`` column named as images are (``image_url``, ``img``, ``url``...: plain_csv's names) or the only one;
    ``Answer.taskAnswers`` (crowd-HTML forms' JSON), an ``Answer.<name>.label`` column, or the only answer."""
    from ingest.votes.plain_csv import COLUMN_NAMES, _key
    from sluice.delimited import DELIMITERS, header_line

    line = header_line(Path(path))
    header = [c.strip() for c in max((next(csv.reader([line], delimiter=d), []) for d in DELIMITERS), key=len)]
    found: dict = {}
    inputs = {_key(c[len("Input."):]): c for c in header if c.startswith("Input.")}
    if MTurkExport.model_fields["item_column"].default not in header:
        item = next((inputs[k] for k in COLUMN_NAMES["item"] if k in inputs), None) or \
            (next(iter(inputs.values())) if len(inputs) == 1 else None)
        if item is None:
            raise InputError(f"{path}: cannot tell which Input. column names the image (found "
                             f"{', '.join(inputs.values()) or 'none'}); set item_column on its labels.exports entry")
        found["item_column"] = item
    answers = [c for c in header if c.startswith("Answer.")]
    if MTurkExport.model_fields["label_column"].default not in header:
        labelled = [c for c in answers if c.lower().endswith(".label")]
        label = "Answer.taskAnswers" if "Answer.taskAnswers" in answers else labelled[0] if len(labelled) == 1 else \
            answers[0] if len(answers) == 1 else None
        if label is None:
            raise InputError(f"{path}: cannot tell which Answer. column holds the label (found "
                             f"{', '.join(answers) or 'none'}); set label_column on its labels.exports entry")
        found["label_column"] = label
    return found


CONNECTOR = Connector("votes", "mturk", MTurkExport, read, "MTurk batch results CSV", detect=detect)
