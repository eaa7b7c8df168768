"""A plain long CSV of votes: one row per vote (item, worker, label, optional time and task)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes.base import (
    Parsed,
    VoteExport,
    missing_field_rejects,
    parse_iso,
    times,
)
from sluice.connectors import Connector
from sluice.delimited import read_delimited


class CsvVotesExport(VoteExport):
    """A plain long CSV: one vote per row."""

    kind: Literal["csv"]
    item_column: str = "item"
    worker_column: str = "worker"
    label_column: str = "label"
    time_column: str | None = None
    task_column: str | None = None
    delimiter: str | None = None


def read(export: CsvVotesExport) -> Parsed:
    path = Path(export.path)
    needed = {export.item_column: "item", export.worker_column: "worker", export.label_column: "label"}
    required = list(needed) + [c for c in (export.time_column, export.task_column) if c]
    frame = read_delimited(path, required, export.delimiter, f"vote CSV '{export.name}'")
    frame, rejects = missing_field_rejects(frame, path, needed)
    texts = frame[export.time_column].to_list() if export.time_column else [None] * frame.height
    submitted, unparsed = times(texts, parse_iso)
    task = pl.col(export.task_column) if export.task_column else pl.lit(None, pl.String)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col(export.worker_column).alias("worker_id"),
        pl.col(export.label_column).alias("label"), task.alias("task_id"),
        task.fill_null("").alias("assignment"), pl.lit("submitted").alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


CONNECTOR = Connector("votes", "csv", CsvVotesExport, read, "long CSV, one vote per row")
