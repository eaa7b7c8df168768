"""Amazon Mechanical Turk batch results CSV: one row per assignment."""

from __future__ import annotations

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
    submitted, unparsed = times(frame["SubmitTime"].to_list(), parse_mturk_time)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col("WorkerId").alias("worker_id"),
        pl.col(export.label_column).alias("label"), pl.col("HITId").alias("task_id"),
        pl.col("AssignmentId").alias("assignment"), status.alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


CONNECTOR = Connector("votes", "mturk", MTurkExport, read, "MTurk batch results CSV")
