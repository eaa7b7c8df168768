"""What every vote connector shares: the export config base, the reader's result, time parsing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import AfterValidator, Field

from sluice.config import Section
from sluice.items import check_key, check_pattern

# MTurk writes times like "Sun Nov 29 10:00:00 PST 2026"; these are the zones it uses.
TZ_HOURS = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5, "EST": -5, "EDT": -4}
VOTE_SCHEMA = {"item_ref": pl.String, "worker_id": pl.String, "label": pl.String, "task_id": pl.String,
               "assignment": pl.String, "status": pl.String, "submitted_at": pl.Datetime("us", "UTC")}


class VoteExport(Section):
    """Settings every vote export has: where it is and how its item names map to images (sluice.items)."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    item_key: Annotated[str, AfterValidator(check_key)] = "auto"
    item_pattern: Annotated[str | None, AfterValidator(check_pattern)] = None
    item_replace: str | None = None  # with item_pattern: a re.sub template (\1, \g<name>)
    # labels that are whole numbers are positions in this list (0 = its first), as in CIFAR-10N's arrays
    # or CIFAR-10H's chosen_label; other labels land as they are
    class_names: list[str] | None = Field(default=None, min_length=1)


@dataclass
class Reject:
    where: str  # file:line or file:task/annotation
    reason: str
    details: str


@dataclass
class Parsed:
    """What a reader made of one export: candidate votes and the rows that could not be votes."""

    votes: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    unparsed_times: int = 0
    no_answer: int = 0  # cells of a wide file that hold no answer (not votes, not rejects: reported apart)

    @property
    def rows(self) -> int:
        return self.votes.height + len(self.rejects)


def missing_field_rejects(frame: pl.DataFrame, path: Path, needed: dict[str, str]) -> tuple[pl.DataFrame, list[Reject]]:
    """Split off rows lacking a worker, item or label (line numbers count the header as line 1, or are the
    frame's own ``__line``: JSON records)."""
    frame = frame if "__line" in frame.columns else frame.with_row_index("__line", offset=2)
    bad = pl.any_horizontal([pl.col(c).is_null() for c in needed])
    rejects = [Reject(f"{path}:{row['__line']}", "missing_field",
                      "empty " + ", ".join(what for c, what in needed.items() if row[c] is None))
               for row in frame.filter(bad).iter_rows(named=True)]
    return frame.filter(~bad).drop("__line"), rejects


def row_rejects(frame: pl.DataFrame, path: Path, needed: dict[str, str],
                ragged: list[tuple[int, int, int]] = ()) -> tuple[pl.DataFrame, list[Reject]]:
    """Split off what a delimited vote file holds that is no vote, each with its line: a row of more fields than
    the header (``ragged``, from sluice.delimited.read_delimited: ``ragged_row``), the header line again (two
    exports joined end to end: ``repeated_header``, never a vote for a class named ``answer``), and rows lacking a
    worker, item or label (``missing_field``)."""
    rejects = [Reject(f"{path}:{line}", "ragged_row", f"{n} fields where the header has {width}")
               for line, n, width in ragged]
    frame = frame if "__line" in frame.columns else frame.with_row_index("__line", offset=2)
    header = pl.all_horizontal([pl.col(c) == c.strip() for c in needed])
    rejects += [Reject(f"{path}:{line}", "repeated_header", "the header line again (exports joined end to end?)")
                for line in frame.filter(header)["__line"]]
    frame, missing = missing_field_rejects(frame.filter(~header.fill_null(False)), path, needed)
    return frame, rejects + missing


def parse_mturk_time(text: str | None) -> datetime | None:
    parts = (text or "").split()
    if len(parts) != 6 or parts[4] not in TZ_HOURS:
        return None
    try:
        naive = datetime.strptime(" ".join(parts[:4] + parts[5:]), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(timedelta(hours=TZ_HOURS[parts[4]]))).astimezone(UTC)


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def times(texts: list[str | None], parse) -> tuple[pl.Series, int]:
    values = [parse(t) for t in texts]
    unparsed = sum(1 for t, v in zip(texts, values) if t and v is None)
    return pl.Series("submitted_at", values, dtype=pl.Datetime("us", "UTC")), unparsed


def named_labels(labels: pl.Series, class_names: list[str] | None) -> pl.Series:
    """Labels that are class indices (``"3"``, ``" 3 "``) as the class's name; anything else unchanged."""
    if not class_names:
        return labels
    text = labels.str.strip_chars()
    index = text.str.extract(r"^(\d{1,9})$").cast(pl.Int64)
    names = pl.Series(class_names, dtype=pl.String)
    valid = index.is_not_null() & (index < len(class_names))
    named = names.gather(index.fill_null(0).clip(0, len(class_names) - 1))
    return pl.select(pl.when(valid).then(named).otherwise(labels)).to_series().rename(labels.name)
