"""Amazon Mechanical Turk batch results CSV: one row per assignment.

The label is the ``label_column`` as is, or, for crowd-HTML-element forms whose answers MTurk writes as
JSON (``Answer.taskAnswers`` = ``[{"crowd-image-classifier": {"label": "Cat"}}]``), the first ``label``
value inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes.base import (
    Parsed,
    VoteExport,
    missing_field_rejects,
    parse_mturk_time,
    times,
)
from sluice.connectors import Connector
from sluice.delimited import read_delimited

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
    frame = read_delimited(path, list(needed), export.delimiter, f"MTurk export '{export.name}'")
    frame, rejects = missing_field_rejects(frame, path, needed)
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
    except ValueError:
        return text
    found = _find_label(value)
    return text if found is None else str(found).strip()


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


CONNECTOR = Connector("votes", "mturk", MTurkExport, read, "MTurk batch results CSV")
