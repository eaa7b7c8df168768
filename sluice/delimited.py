"""Reading user-made delimited files (vote exports, gold and ground-truth CSVs) as strings, with one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl

DELIMITERS = (",", "\t", ";", "|")


def column_key(name: str) -> str:
    """A column's name as headers are matched: lower case, letters and digits only (``Patient ID`` -> ``patientid``)."""
    return "".join(c for c in name.lower() if c.isalnum())


def require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if not path.is_file():
        raise InputError(f"{path}: {what} must be a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what} is empty (0 bytes); an export with no votes still has its header")


_CHECKED: dict[tuple[str, int, int], None] = {}  # files found UTF-8 (path, size, mtime): init reads a header often


def _utf16(data: bytes) -> str | None:
    """How ``data`` shows itself to be UTF-16 (a byte order mark, or a NUL in every other byte of ASCII text, as
    Excel's "Unicode text" and PowerShell's redirects write it), else None."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return f"byte order mark {data[0]:02X} {data[1]:02X}"
    head = data[:4096]
    half = len(head) // 2
    for start in (0, 1):
        nuls = head[1 - start::2].count(0)
        if half >= 2 and nuls >= 0.9 * half and head[start::2].count(0) < 0.1 * half:
            return "a NUL byte beside every character"
    return None


def check_text(path: Path) -> None:
    """A text file that is not UTF-8 is one line naming where (UTF-16 named as such), not a traceback, silently
    replaced text or column names full of NUL bytes."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return
    data = path.read_bytes()
    if how := _utf16(data):
        raise InputError(f"{path}: UTF-16 text ({how}), not UTF-8; save the file as UTF-8")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}: not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}, line {line}); "
                         f"save the file as UTF-8") from None
    _CHECKED[key] = None


def header_line(path: Path) -> str:
    """The first line of a delimited text file (without its BOM and line end), the file checked to be UTF-8 first:
    every reader of a vote, gold or truth file's header goes through here."""
    check_text(path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return fh.readline().rstrip("\r\n")


def read_delimited(path: Path, required: list[str], delimiter: str | None, what: str,
                   only: bool = False, ragged: list[tuple[int, int, int]] | None = None) -> pl.DataFrame:
    """Read a CSV as strings (trimmed, empty = null), choosing the delimiter that yields every required column
    (``only``: parse those columns alone, where the caller needs no other).

    A header that none of the candidates splits into the required columns is a user error naming the
    missing columns, or the delimiter when nothing splits the header at all. A file Polars cannot parse is
    read again with Python's csv module (:func:`_python_rows`) to find the line at fault: a row with more
    fields than the header is an error naming its line, or, given a ``ragged`` list, left out and listed
    there as (line, fields, header's fields), the frame then carrying each row's line in ``__line``.
    """
    import polars as pl  # here, not at the top: every params load imports this module (a connector's config)

    require_file(path, what)
    header = header_line(path)
    candidates = [delimiter] if delimiter else list(DELIMITERS)
    parsed = {d: next(csv.reader([header], delimiter=d)) for d in candidates}
    chosen = next((d for d, cols in parsed.items() if set(required) <= set(cols)), None)
    if chosen is not None:
        cols = [c.strip() for c in parsed[chosen]]
        repeated = sorted({c for c in cols if cols.count(c) > 1})
        if repeated:
            raise InputError(f"{path}: column(s) {', '.join(repr(c) for c in repeated)} appear more than once in "
                             f"the header of {what}; rename or remove the copies")
    if chosen is None:
        _, cols = max(parsed.items(), key=lambda kv: len(kv[1]))
        if len(cols) == 1 and delimiter is None:
            raise InputError(f"{path}: cannot split the header '{header[:80]}' on any of , ; tab | (unknown delimiter); "
                             f"set delimiter for {what}")
        missing = [c for c in required if c not in cols]
        raise InputError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} in {what} "
                         f"(header has {', '.join(repr(c) for c in cols)}); set the column names in params.yaml")
    try:
        frame = pl.read_csv(path, separator=chosen, infer_schema=False, encoding="utf8", raise_if_empty=False,
                            missing_columns="insert", columns=required if only else None)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError):
        frame = _python_frame(path, chosen, what, ragged)
        frame = frame.drop("__line") if ragged is None else frame
        frame = frame.select(*required, *(["__line"] if ragged is not None else [])) if only else frame
    stripped = [pl.col(c).str.strip_chars() for c in frame.columns if c != "__line"]
    return frame.with_columns(pl.when(c != "").then(c).otherwise(None).name.keep() for c in stripped)


def _python_rows(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (line, fields) of every record, read by Python's csv module, which names the line where
    Polars names none. A quote never closed is an error naming the line it opens on: every line after it would
    be one field, so no row past it can be trusted."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        records, start = [], 1
        try:
            for fields in reader:
                records.append((start, fields))
                start = reader.line_num + 1
        except csv.Error as err:
            raise InputError(f"{path}:{start}: malformed CSV ({err}): a quote opened on this line is never closed, or "
                             "is stray; fix it and run again") from None
    return (records[0][1] if records else []), records[1:]


def _python_frame(path: Path, delimiter: str, what: str, ragged: list | None) -> pl.DataFrame:
    """The file as Polars would read it, from :func:`_python_rows`, with each row's line (``__line``); a row with
    more fields than the header goes to ``ragged`` where given, else it is an error naming the line."""
    import polars as pl

    header, records = _python_rows(path, delimiter)
    width, rows, lines = len(header), [], []
    for line, fields in records:
        if len(fields) > width:
            if ragged is None:
                raise InputError(f"{path}:{line}: {len(fields)} fields where the header has {width} (malformed CSV: "
                                 f"an unquoted {delimiter!r} in a value?) in {what}; quote the value or fix the row")
            ragged.append((line, len(fields), width))
            continue
        rows.append(fields + [None] * (width - len(fields)))  # a short row: its missing fields are empty, as Polars reads
        lines.append(line)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    return pl.DataFrame({**columns, "__line": lines}, schema={**dict.fromkeys(header, pl.String), "__line": pl.Int64})


def first_fields(path: Path, delimiter: str | None = None) -> tuple[str, list[str]]:
    """The delimiter that splits the file's first line into the most fields (of , tab ; | and a space, which
    research sets' headerless files use: ``w1 q1 1``) and those fields, trimmed."""
    line = header_line(path)
    candidates = [delimiter] if delimiter else [*DELIMITERS, " "]
    splits = {d: (line.split() if d == " " else next(csv.reader([line], delimiter=d), [])) for d in candidates}
    chosen = max(candidates, key=lambda d: len(splits[d]))
    return chosen, [f.strip() for f in splits[chosen]]


def read_headerless(path: Path, delimiter: str | None, what: str) -> pl.DataFrame:
    """A delimited file without a header as strings (trimmed, empty = null), its columns named ``column_1``,
    ``column_2``, ... by position; on a space any run of blanks separates fields."""
    import polars as pl

    require_file(path, what)
    chosen, fields = first_fields(path, delimiter)
    if chosen == " ":  # each line whole (no byte of a text file is \x1f), split on runs of blanks
        try:
            lines = pl.read_csv(path, separator="\x1f", has_header=False, quote_char=None, infer_schema=False,
                                encoding="utf8", raise_if_empty=False, new_columns=["line"])
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
            raise InputError(f"{path}: malformed text ({str(err).splitlines()[0]})") from None
        fields = lines.filter(pl.col("line").str.strip_chars() != "").select(
            pl.col("line").str.strip_chars().str.replace_all(r"\s+", " ").str.split(" ").alias("f"))
        width = int(fields["f"].list.len().max() or 0)
        frame = fields.select(pl.col("f").list.get(i, null_on_oob=True).alias(f"column_{i + 1}") for i in range(width))
    else:
        try:
            frame = pl.read_csv(path, separator=chosen, has_header=False, infer_schema=False, encoding="utf8",
                                raise_if_empty=False, truncate_ragged_lines=True)
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
            raise InputError(f"{path}: malformed CSV ({str(err).splitlines()[0]})") from None
        frame = frame.rename({c: f"column_{i + 1}" for i, c in enumerate(frame.columns)})
    stripped = [pl.col(c).str.strip_chars() for c in frame.columns]
    return frame.with_columns(pl.when(c != "").then(c).otherwise(None).name.keep() for c in stripped)
