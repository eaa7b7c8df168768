"""The source's current labels win: a label fixed in the source, or a file gone from it, reaches ``raw_images``.

A ``raw_images`` row is keyed by (image id, source, URI), so a rerun lands nothing for a file it has seen,
and before this a label corrected where the data set keeps it (a line of its labels CSV or ``train.txt``
edited, as one does after `sluice labels`' or the insight stage's label issues) never reached the lake:
the ingest reported the file "already present" and the old label trained on. And a file moved to another
class folder landed a second row under its new path, its old row still labelled with the old class,
the two then a label conflict. So after each full read of a source its rows are reconciled with what the
read saw: a row whose label, split hint or subject the source now gives otherwise takes the source's, and a
labelled row whose file the source no longer holds has its label withdrawn (its image stays in
``raw_images``, unlabelled unless votes label it; ``sluice erase`` removes images). Both are one Delta
update of only those rows, counted in the ingest manifest and log; a rerun with nothing changed writes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sluice.catalog import spec
from sluice.lake import Lake
from sluice.schema_evolution import add_missing_columns

KEYS = ["image_id", "source_uri"]  # with the source's name, a raw_images row's key
RECONCILED = ["source_label", "split_hint", "subject"]  # what a source says of an image that a later read may change


@dataclass
class Reconciled:
    relabelled: int = 0  # rows whose label, split hint or subject the source now gives otherwise
    withdrawn: int = 0  # labelled rows whose file the source no longer holds


def reconcile(lake: Lake, source: str, seen: list[pa.Table], run_id: str) -> Reconciled:
    """Set ``source_label`` / ``split_hint`` / ``subject`` of ``source``'s rows to what this read saw (``seen``: the
    read's image_id, source_uri and those), and withdraw the labels of rows it did not see."""
    if not lake.exists("raw_images"):
        return Reconciled()
    if not all(c in lake.dataset("raw_images").schema.names for c in RECONCILED):  # a lake from before ``subject``
        add_missing_columns(lake, spec("raw_images"))
    columns = RECONCILED
    stored = pl.from_arrow(lake.read("raw_images", columns=[*KEYS, *columns], filter=ds.field("source") == source))
    if stored.is_empty():
        return Reconciled()
    now = (pl.concat([pl.from_arrow(t).select(*KEYS, *columns) for t in seen]) if seen else stored.clear()
           ).unique(KEYS, keep="last")
    both = stored.join(now, on=KEYS, how="inner", suffix="_now")
    changed = both.filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_now")) for c in columns))
    gone = stored.join(now, on=KEYS, how="anti").filter(pl.col("source_label").is_not_null())
    updates = pl.concat([
        changed.select(*KEYS, *(pl.col(f"{c}_now").alias(c) for c in columns)),
        gone.select(*KEYS, *(pl.lit(None, pl.String).alias(c) if c == "source_label" else pl.col(c) for c in columns)),
    ]).with_columns(source=pl.lit(source))
    if updates.height:
        lake.update_columns("raw_images", updates.to_arrow(), columns, run_id=run_id, operation="source labels")
    return Reconciled(changed.height, gone.height)
