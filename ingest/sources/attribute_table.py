"""Tables of yes / no attributes an image, read as one attribute's labels.

CelebA's ``list_attr_celeba`` gives each face forty attributes, each ``1`` or ``-1`` (Smiling, Male,
Eyeglasses, ...). Sluice trains one label an image, and the usual task on such a table is one attribute
(smiling or not), so a labels file whose columns beside the file column are all ``-1`` / ``1`` is
labelled by one of them (``label_column``: ``sluice init`` picks the most balanced one and names the
others), each image ``<attribute>`` or ``not_<attribute>``. CelebA's text form (a count line, a line of
the attribute names, then ``000001.jpg -1 1 ...`` whitespace-separated) is read as that table; its CSV
form (Kaggle's ``list_attr_celeba.csv``: ``image_id,5_o_Clock_Shadow,...``) is a CSV like any other.

**Findings with uncertainty** (CheXpert's ``train.csv``, MIMIC-CXR's labels: ``No Finding``, ``Cardiomegaly``, ...
each ``1.0`` positive, ``0.0`` negative, ``-1.0`` uncertain, blank not mentioned) are such a table too, told from
CelebA's by its zeros: there a blank is negative (the report does not mention it, as CheXpert's baselines read it)
and ``-1`` is uncertain, which ``uncertain_label`` decides: ``ignore`` (the default: the image lands unlabelled,
quarantined as ``uncertain_label`` with its line; CheXpert's U-Ignore), ``positive`` (U-Ones) or ``negative``
(U-Zeros).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl

YES, NO, ZERO = "1", "-1", "0"
UNCERTAIN = "\x00uncertain"  # an uncertain finding's label: never a class (labels_file.match quarantines it)
_NUMBERS = {"1": YES, "1.0": YES, "-1": NO, "-1.0": NO, "0": ZERO, "0.0": ZERO}
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


def _values(rows: pl.DataFrame, column: str) -> set[str] | None:
    """A column's values as ``1`` / ``-1`` / ``0`` (``1.0`` is ``1``), blanks left out; None where another is there."""
    found = {v.strip() for v in rows[column].drop_nulls().to_list()} - {""}
    return None if not found <= set(_NUMBERS) else {_NUMBERS[v] for v in found}


def findings(rows: pl.DataFrame, columns: list[str]) -> bool:
    """Whether ``columns`` are findings with uncertainty (CheXpert's): two or more of 1 / 0 / -1 and blanks, with
    zeros and minus ones both in them; CelebA's have no zeros, a one-hot table no minus ones."""
    values = [v for c in columns if c in rows.columns and (v := _values(rows, c)) is not None and YES in v]
    return len(values) >= 2 and any(ZERO in v for v in values) and any(NO in v for v in values)


def binary_columns(rows: pl.DataFrame, columns: list[str]) -> list[str]:
    """The columns of ``rows`` whose values are ``1`` and ``-1`` (both present, nothing else but blanks), or in a
    table of findings (:func:`findings`) those that hold a ``1``."""
    if findings(rows, columns):
        return [c for c in columns if (v := _values(rows, c)) is not None and YES in v]
    return [c for c in columns if _values(rows, c) == {YES, NO} and not rows[c].str.contains(r"\.").any()]


def most_balanced(rows: pl.DataFrame, columns: list[str]) -> str:
    """The attribute closest to half yes (CelebA: Attractive, Smiling...; a blank or a zero is no), the first of equals."""
    return min(columns, key=lambda c: abs(rows[c].str.strip_chars().replace_strict(
        _NUMBERS, default=None).fill_null(ZERO).eq(YES).mean() - 0.5))


def sample(path: Path, columns: list[str], read_rows) -> pl.DataFrame | None:
    """The first rows of ``columns`` of a labels file (``read_rows``: the labels file reader), None if unreadable."""
    try:
        return read_rows(path, columns).head(_SAMPLE)
    except (InputError, OSError, ValueError):
        return None


def as_labels(rows: pl.DataFrame, column: str, finding: bool = False, uncertain: str = "ignore") -> pl.DataFrame:
    """``rows`` with ``column``'s ``1`` / ``-1`` written ``<column>`` / ``not_<column>`` where that is all it holds;
    with ``finding`` (a table of :func:`findings`), ``1`` / ``0`` or blank / ``-1`` written ``<column>`` /
    ``not_<column>`` / as ``uncertain`` says (:data:`UNCERTAIN` for ``ignore``)."""
    import polars as pl

    cell = pl.col(column).fill_null("").str.strip_chars().replace_strict(_NUMBERS, default=None)
    yes, no = pl.lit(column), pl.lit(f"not_{column}")
    if finding:
        unsure = {"positive": yes, "negative": no}.get(uncertain, pl.lit(UNCERTAIN))
        other = pl.when(pl.col(column).fill_null("").str.strip_chars() == "").then(no).otherwise(pl.col(column))
        return rows.with_columns(pl.when(cell == YES).then(yes).when(cell == ZERO).then(no).when(cell == NO)
                                 .then(unsure).otherwise(other).alias(column))
    values = rows[column].drop_nulls().str.strip_chars()
    if values.is_empty() or not set(values.unique().to_list()) <= {YES, NO}:
        return rows
    return rows.with_columns(pl.when(cell == YES).then(yes).when(cell == NO).then(no)
                             .otherwise(pl.col(column)).alias(column))
