"""Tables of yes / no attributes an image, read as one attribute's labels.

CelebA's ``list_attr_celeba`` gives each face forty attributes, each ``1`` or ``-1`` (Smiling, Male,
Eyeglasses, ...). Sluice trains one label an image, and the usual task on such a table is one attribute
(smiling or not), so a labels file whose columns beside the file column are all ``-1`` / ``1`` is
labelled by one of them (``label_column``: ``sluice init`` picks the most balanced one and names the
others), each image ``<attribute>`` or ``not_<attribute>``. CelebA's text form (a count line, a line of
the attribute names, then ``000001.jpg -1 1 ...`` whitespace-separated) is read as that table; its CSV
form (Kaggle's ``list_attr_celeba.csv``: ``image_id,5_o_Clock_Shadow,...``) is a CSV like any other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl

YES, NO = "1", "-1"
FILE_COLUMN = "image_id"  # the file column of the text form, which names none
_SAMPLE = 500


def _head(path: Path, lines: int = 3) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            return [f.readline().strip() for _ in range(lines)]
    except OSError:
        return []


def reads(path: Path) -> bool:
    """A text file in CelebA's attribute form: a count, the attribute names, then a file and one value a name."""
    head = _head(path)
    return (path.suffix.lower() == ".txt" and len(head) == 3 and head[0].isdigit() and len(head[1].split()) >= 2
            and len(head[2].split()) == len(head[1].split()) + 1)


def header(path: Path) -> list[str]:
    """The text form's columns: ``image_id`` and the attribute names."""
    return [FILE_COLUMN, *_head(path, 2)[1].split()]


def read(path: Path, required: list[str]) -> pl.DataFrame:
    """The text form as a table of strings: ``image_id``, one column an attribute, and ``line`` (where the row is)."""
    import polars as pl

    names = header(path)[1:]
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as f:
        lines = f.read().splitlines()[2:]
    rows = [re.split(r"\s+", line.strip()) for line in lines if line.strip()]
    if bad := next((k for k, r in enumerate(rows) if len(r) != len(names) + 1), None):
        raise InputError(f"{path}:{bad + 3}: {len(rows[bad])} fields where the attribute names line gives "
                         f"{len(names)} names and a file")
    frame = pl.DataFrame(rows, schema=[FILE_COLUMN, *names], orient="row") if rows else \
        pl.DataFrame(schema={c: pl.String for c in (FILE_COLUMN, *names)})
    if missing := [c for c in required if c not in frame.columns]:
        raise InputError(f"{path}: no attribute {', '.join(map(repr, missing))} (attributes: {', '.join(names)})")
    return frame.with_row_index("line", offset=3)


def binary_columns(rows: pl.DataFrame, columns: list[str]) -> list[str]:
    """The columns of ``rows`` whose values are ``1`` and ``-1`` (both present, nothing else but blanks)."""
    out = []
    for c in columns:
        values = set(rows[c].drop_nulls().str.strip_chars().to_list())
        if values == {YES, NO}:
            out.append(c)
    return out


def most_balanced(rows: pl.DataFrame, columns: list[str]) -> str:
    """The attribute closest to half yes (CelebA: Attractive, Smiling...), the first of equals."""
    return min(columns, key=lambda c: abs((rows[c].str.strip_chars() == YES).mean() - 0.5))


def sample(path: Path, columns: list[str], read_rows) -> pl.DataFrame | None:
    """The first rows of ``columns`` of a labels file (``read_rows``: the labels file reader), None if unreadable."""
    try:
        return read_rows(path, columns).head(_SAMPLE)
    except (InputError, OSError, ValueError):
        return None


def as_labels(rows: pl.DataFrame, column: str) -> pl.DataFrame:
    """``rows`` with ``column``'s ``1`` / ``-1`` written ``<column>`` / ``not_<column>`` where that is all it holds."""
    import polars as pl

    values = rows[column].drop_nulls().str.strip_chars()
    if values.is_empty() or not set(values.unique().to_list()) <= {YES, NO}:
        return rows
    cell = pl.col(column).str.strip_chars()
    return rows.with_columns(pl.when(cell == YES).then(pl.lit(column)).when(cell == NO).then(pl.lit(f"not_{column}"))
                             .otherwise(pl.col(column)).alias(column))
