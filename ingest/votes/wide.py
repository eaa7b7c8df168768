"""A wide vote table: one row per item, one column per answer (an annotator, or an answer slot).

Research label sets often ship this way rather than as one vote a row: CIFAR-10N's ``random_label1..3``
(three Mechanical Turk answers for each CIFAR-10 training image, a PyTorch ``.pt`` dict of arrays in
the training set's order), a spreadsheet with ``rater_1, rater_2, ...``, a NumPy array of shape
(items, annotators). Every non-empty cell of a label column is one vote; an empty cell, NaN or a
``no_answer`` value (default -1) is no answer, not an error (wide tables are sparse by nature): such
cells are counted and reported with the export, never dropped unsaid.

Files: CSV / TSV (any delimiter ``sluice.delimited`` knows), a text matrix of numbers with no header
(LabelMe's ``answers.txt``: split on spaces, tabs or commas; columns ``0, 1, ...``), Parquet, ``.npy`` (1-D:
one column ``0``; 2-D: columns ``0, 1, ...``), ``.npz`` and ``.pt`` (named 1-D arrays). A ``.pt`` is a zip holding a
pickle: it is read with the same allow-list as CIFAR's pickles (numpy arrays, plain containers); one
holding torch tensors goes through ``torch.load(weights_only=True)``. Nothing in it can run code.

The worker of a vote is the column's name unless ``worker_columns`` names, for each label column, the
column holding who gave that answer. The item is ``item_column``'s value, or with none the row's
position (``0, 1, ...``): then ``item_key`` says which landed images those positions are (the CIFAR
connector records ``train_index`` and ``test_index`` in torchvision's order), or ``items_file`` names them,
one a line in the rows' order (LabelMe's ``filenames_train.txt`` beside its ``answers.txt``).
"""

from __future__ import annotations

import csv
import io
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from ingest.votes.base import Parsed, Reject, VoteExport
from sluice.connectors import Connector
from sluice.delimited import DELIMITERS, header_line, read_delimited
from sluice.errors import InputError

ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
MAX_UNPACKED = 2 * 2**30  # bytes a .npz / .pt may unpack to
TABLE_SUFFIXES = (".parquet", ".pq")
# column names that hold a reference or a derived answer, never one person's vote (CIFAR-10N's
# clean_label / aggre_label / worse_label, CIFAR-10H's true_label, "majority", "gold", ...)
_NOT_VOTES = ("clean", "true", "truth", "gold", "golden", "reference", "aggre", "aggregate", "majority",
              "consensus", "worse", "worst", "given", "original", "target", "expected")


class WideVotesExport(VoteExport):
    """One row per item, one column per answer."""

    kind: Literal["wide"]
    label_columns: list[str] = Field(min_length=1)  # each holds one answer per item (npy: "0", "1", ...)
    item_column: str | None = None  # null: the row's position (0, 1, ...) names the item; set item_key
    items_file: str | None = None  # a text file naming the item of row i on its line i (LabelMe's filenames_train.txt)
    worker_columns: list[str] | None = None  # one per label column: who gave that answer; null: the column's name
    delimiter: str | None = None  # CSV only; null = detected
    # counts: each label column is a class and each cell how many people chose it (CIFAR-10H's
    # cifar10h-counts.npy); such votes carry no worker: an item's k-th lands as worker anonymous-k
    layout: Literal["answers", "counts"] = "answers"
    # answers that mean "this annotator gave none", besides empty cells and NaN (arrays mark them -1); set []
    # when -1 is a class (a -1/+1 task). Counted and reported, never a silent drop
    no_answer: list[str] = ["-1"]


def columns(path: Path, wanted: list[str] | None = None, delimiter: str | None = None) -> dict[str, pl.Series]:
    """The file's columns as string Series (all of them, or ``wanted``), empty answers null."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        found = _arrays(path)
    elif suffix in TABLE_SUFFIXES:
        found = _parquet(path, wanted)
    elif headerless(path):
        found = _matrix(path)
    else:
        if wanted is None and delimiter is None:  # every column wanted: the delimiter that splits the header most
            header = header_line(path)
            delimiter = max(DELIMITERS, key=lambda d: len(next(csv.reader([header], delimiter=d), [])))
        frame = read_delimited(path, wanted or [], delimiter, f"wide vote file {path.name}")
        found = {c.strip(): frame[c] for c in frame.columns}
    if wanted is not None:
        missing = [c for c in wanted if c not in found]
        if missing:
            raise InputError(f"{path}: no column {', '.join(repr(c) for c in missing)} (it has "
                             f"{', '.join(repr(c) for c in found) or 'none'}); fix label_columns / item_column / "
                             "worker_columns of its labels.exports entry")
        found = {c: found[c] for c in wanted}
    lengths = {len(s) for s in found.values()}
    if len(lengths) > 1:
        raise InputError(f"{path}: its columns differ in length ({', '.join(f'{c} {len(s)}' for c, s in found.items())}); "
                         "a wide vote file holds one answer per item in each")
    return {name: _as_text(s) for name, s in found.items()}


def _as_text(s: pl.Series) -> pl.Series:
    """Cells as text: whole numbers without ``.0``; empty cells and NaN null."""
    v = pl.col("v")
    frame = pl.DataFrame({"v": s})
    if s.dtype.is_float():
        frame = frame.select(pl.when(v.is_nan()).then(None).otherwise(v).alias("v"))
        known = frame["v"].drop_nulls()
        if (known == known.round()).all():
            frame = frame.select(v.cast(pl.Int64))
    elif s.dtype == pl.Boolean:
        frame = frame.select(v.cast(pl.Int8))
    text = frame.select(v.cast(pl.String).str.strip_chars())["v"]
    blank = (text == "") | text.str.contains(r"^(?i:nan|none|null)$")  # as arrays written out as text say it
    return pl.select(pl.when(blank).then(None).otherwise(text)).to_series().rename(s.name)


_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|(?i:nan)")
_CELLS = re.compile(r"[\s,;]+")


def headerless(path: Path) -> bool:
    """Whether a text file's first line is all numbers: a matrix with no header (LabelMe's answers.txt). A file that
    is not UTF-8 is one line saying so (sluice.delimited.header_line), never read with its bytes replaced."""
    try:
        first = header_line(path).strip()
    except OSError:
        return False
    cells = _CELLS.split(first)
    numbered = len(cells) >= 3 and cells in ([str(j) for j in range(len(cells))], [str(j + 1) for j in range(len(cells))])
    return bool(first) and not numbered and all(_NUMBER.fullmatch(c) for c in cells)  # 0,1,2...: pandas' header


def _matrix(path: Path) -> dict[str, pl.Series]:
    """A headerless text matrix as columns ``0, 1, ...``; a row of another width is an error naming its line."""
    rows = []
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                rows.append(_CELLS.split(line.strip()))
                if len(rows[-1]) != len(rows[0]):
                    raise InputError(f"{path}:{number}: {len(rows[-1])} answers where line 1 has {len(rows[0])}; "
                                     "a vote matrix holds one column per annotator on every line")
    return {str(j): pl.Series(str(j), [r[j] for r in rows], dtype=pl.String) for j in range(len(rows[0]) if rows else 0)}


def _items(path: Path, n: int, votes: Path) -> pl.Series:
    """The item names of ``items_file``, one a line, as many as the vote file's rows."""
    if not path.is_file():
        raise InputError(f"{path}: items_file not found (a text file naming the item of each row of {votes.name})")
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()]
    while names and not names[-1]:
        names.pop()
    if len(names) != n:
        raise InputError(f"{path}: {len(names)} lines for the {n} rows of {votes.name}; items_file names the item of "
                         "each row, one a line, in the rows' order")
    return pl.Series("item", names, dtype=pl.String).replace("", None)


def _parquet(path: Path, wanted: list[str] | None) -> dict[str, pl.Series]:
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise InputError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    return {c: frame[c] for c in frame.columns if frame[c].dtype.is_numeric() or frame[c].dtype in (pl.String, pl.Boolean)
            or (wanted is not None and c in wanted)}


def _arrays(path: Path) -> dict[str, pl.Series]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
            if data.ndim == 1:
                data = data[:, None]
            if data.ndim != 2:
                raise InputError(f"{path}: a {data.ndim}-D array; a wide vote array is (items,) or (items, answers)")
            if data.dtype.kind == "f" and data.shape[1] > 1 and np.allclose(np.nansum(data, axis=1), 1, atol=1e-3):
                raise InputError(f"{path}: each row sums to 1: class probabilities are not votes; give the votes, "
                                 "or their counts per class with layout: counts")
            return {str(j): pl.Series(data[:, j]) for j in range(data.shape[1])}
        _check_unpacked_size(path)
        named = dict(np.load(path, allow_pickle=False)) if suffix == ".npz" else _torch_dict(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable {suffix} file ({err})") from None
    arrays = {str(k): np.asarray(v) for k, v in named.items() if np.asarray(v).ndim == 1 and np.asarray(v).size > 1}
    if not arrays:
        raise InputError(f"{path}: holds no 1-D arrays of answers (found {', '.join(map(str, named)) or 'nothing'})")
    return {k: pl.Series(v) for k, v in arrays.items()}


def _check_unpacked_size(path: Path) -> None:
    """A ``.npz`` / ``.pt`` is a zip: refuse one that would unpack past MAX_UNPACKED (a zip bomb) before reading."""
    with zipfile.ZipFile(path) as z:
        unpacked = sum(info.file_size for info in z.infolist())
    if unpacked > MAX_UNPACKED:
        raise InputError(f"{path}: would unpack to {unpacked / 2**30:.1f} GiB (> {MAX_UNPACKED / 2**30:.0f} GiB); "
                         "a vote file that large is not read into memory: split it, or give it as CSV / Parquet")


def _torch_dict(path: Path) -> dict:
    """A ``torch.save``d dict of arrays, read without running the pickle's code (see module doc)."""
    from ingest.safe_pickle import ForbiddenGlobal, RestrictedUnpickler

    with zipfile.ZipFile(path) as z:
        inner = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
        if inner is None:
            raise InputError(f"{path}: not a torch.save file (no data.pkl inside)")
        data = z.read(inner)
    try:
        loaded = RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:  # ForbiddenGlobal included
        if "torch" not in str(err) and "persistent" not in str(err):
            kind = "refused to unpickle" if isinstance(err, ForbiddenGlobal) else "not a readable torch.save file"
            raise InputError(f"{path}: {kind}: {err} (only arrays and plain containers)") from None
        import torch  # tensors: torch's own allow-listed loader

        loaded = torch.load(path, map_location="cpu", weights_only=True)
        loaded = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in loaded.items()} \
            if isinstance(loaded, dict) else loaded
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: holds a {type(loaded).__name__}, not a dict of named label arrays")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in loaded.items()}


def read(export: WideVotesExport) -> Parsed:
    path = Path(export.path)
    if export.worker_columns is not None and len(export.worker_columns) != len(export.label_columns):
        raise InputError(f"vote export '{export.name}': worker_columns names {len(export.worker_columns)} columns for "
                         f"{len(export.label_columns)} label_columns; give one worker column per label column")
    wanted = list(dict.fromkeys([*export.label_columns, *(export.worker_columns or []),
                                 *([export.item_column] if export.item_column else [])]))
    if export.item_column and export.items_file:
        raise InputError(f"vote export '{export.name}': item_column and items_file both name the items; keep one")
    cols = columns(path, wanted, export.delimiter)
    n = len(cols[export.label_columns[0]])
    item = cols[export.item_column] if export.item_column else \
        _items(Path(export.items_file), n, path) if export.items_file else pl.Series(range(n)).cast(pl.String)
    line = 0 if path.suffix.lower() in ARRAY_SUFFIXES + TABLE_SUFFIXES else 1 if headerless(path) else 2  # CSV: header

    def where(row: int) -> str:
        return f"{path}:{row + line}" if line else f"{path}:row {row}"

    parts, rejects, blank = [], [], 0
    for j, label_col in enumerate(export.label_columns):
        if export.layout == "counts":
            worker = pl.repeat(ANONYMOUS, n, eager=True)
        else:
            worker = cols[export.worker_columns[j]] if export.worker_columns else pl.repeat(label_col, n, eager=True)
        label = cols[label_col]
        if export.layout == "answers":
            label = pl.select(pl.when(label.is_in(export.no_answer)).then(None).otherwise(label)).to_series()
        frame = pl.DataFrame({"item_ref": item, "worker_id": worker, "label": label}).with_row_index("__row")
        blank += int(frame["label"].null_count())
        answered = frame.filter(pl.col("label").is_not_null())
        bad = answered.filter(pl.col("item_ref").is_null() | pl.col("worker_id").is_null())
        rejects += [Reject(where(r["__row"]), "missing_field",
                           f"{label_col} answered with an empty " + ("item" if r["item_ref"] is None else "worker"))
                    for r in bad.iter_rows(named=True)]
        answered = answered.filter(pl.col("item_ref").is_not_null() & pl.col("worker_id").is_not_null())
        if export.layout == "counts":
            answered, bad_counts = _counted(answered, label_col)
            rejects += [Reject(where(r["__row"]), "bad_count", f"{label_col}: {r['label']!r} is not a count of votes")
                        for r in bad_counts.iter_rows(named=True)]
        else:
            answered = answered.with_columns(assignment=pl.lit(""))
        parts.append(answered.drop("__row"))
    votes = pl.concat(parts) if parts else pl.DataFrame(schema={"item_ref": pl.String, "worker_id": pl.String,
                                                                "label": pl.String, "assignment": pl.String})
    if export.layout == "answers":
        _refuse_fractions(votes["label"], path)
    else:
        votes = _anonymous_workers(votes)
    votes = votes.with_columns(task_id=pl.lit(None, pl.String), status=pl.lit("submitted"),
                               submitted_at=pl.lit(None, pl.Datetime("us", "UTC")))
    return Parsed(votes, rejects, no_answer=blank)


ANONYMOUS = "anonymous"  # the worker of votes given as counts, until _anonymous_workers numbers them


def _counted(answered: pl.DataFrame, label_col: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A class column of counts as that many votes for the class, each its own assignment (``<class>/<k>``)."""
    counts = answered.with_columns(n=pl.col("label").cast(pl.Int64, strict=False))
    bad = counts.filter(pl.col("n").is_null())
    votes = (counts.filter(pl.col("n") > 0).with_columns(k=pl.int_ranges(0, pl.col("n"))).explode("k")
             .select("__row", "item_ref", "worker_id", pl.lit(label_col).alias("label"),
                     pl.format("{}/{}", pl.lit(label_col), pl.col("k")).alias("assignment")))
    return votes, bad


def _anonymous_workers(votes: pl.DataFrame) -> pl.DataFrame:
    """Counts say what an item's voters chose, not who they were: the k-th vote of an item lands as worker
    ``anonymous-k``, the item's votes shuffled by a stable hash first. Distinct workers per item keep every
    vote (the labels stage counts one vote per worker and item), and the shuffle keeps any one pseudo-worker
    from leaning to a class, so each looks like an average voter to Dawid-Skene."""
    keys = (votes["item_ref"] + "\x1f" + votes["assignment"]).to_list()
    order = pl.Series([zlib.crc32(k.encode()) for k in keys], dtype=pl.UInt32)
    k = votes.with_columns(h=order).select((pl.col("h").rank("ordinal").over("item_ref") - 1).alias("k"))["k"]
    return votes.with_columns(worker_id=pl.format("anonymous-{}", k))


def _refuse_fractions(labels: pl.Series, path: Path) -> None:
    """Class probabilities (CIFAR-10H's cifar10h-probs.npy) are soft labels, not votes: never read as classes."""
    fractions = labels.str.contains(r"^-?\d*\.\d+$")
    if fractions.sum() > 0.5 * max(labels.len(), 1):
        example = labels.filter(fractions)[0]
        raise InputError(f"{path}: its answers are fractions (e.g. {example}), not class indices or names: class "
                         "probabilities are not votes; give the votes, or their counts per class with layout: counts")


def detect(path: str) -> dict:
    """The label (and item, worker) columns of a wide vote file: a numbered family of columns
    (``random_label1..3``, ``rater_1, rater_2``), else every column that is not a reference answer."""
    from ingest.votes.plain_csv import COLUMN_NAMES, _key

    cols = columns(Path(path))
    names = list(cols)
    items = {_key(n): n for n in names}
    item = next((items[k] for k in COLUMN_NAMES["item"] + ("index", "idx", "id") if k in items), None)
    families: dict[str, dict[str, str]] = {}
    for name in names:
        m = re.fullmatch(r"(.*?)[\s_\-.]*(\d+)", name)
        if m and name != item:
            families.setdefault(_key(m.group(1)), {})[m.group(2)] = name
    numbered = {stem: f for stem, f in families.items() if len(f) >= 2}
    # worker_1, worker_2 beside label_1, label_2 say who answered; rater_1, rater_2 alone are the answers
    workers = [f for stem, f in numbered.items() if stem in COLUMN_NAMES["worker"]
               and any(set(g) == set(f) and o not in COLUMN_NAMES["worker"] for o, g in numbered.items())]
    labels = [f for f in numbered.values() if f not in workers]
    found: dict = {}
    if labels:
        family = max(labels, key=len)
        found["label_columns"] = [family[k] for k in sorted(family, key=int)]
        pair = next((w for w in workers if set(w) == set(family)), None)
        if pair:
            found["worker_columns"] = [pair[k] for k in sorted(pair, key=int)]
    else:  # named arrays (CIFAR-100N's noisy_label) or Parquet columns; a CSV needs a numbered family
        plain = [n for n in names if n != item and not any(w in _key(n) for w in _NOT_VOTES)]
        fine = [n for n in plain if not any(w in _key(n) for w in ("coarse", "superclass"))]
        plain = fine or plain  # one label space: CIFAR-100's coarse labels are not votes for its fine classes
        if not plain or Path(path).suffix.lower() not in ARRAY_SUFFIXES + TABLE_SUFFIXES:
            raise InputError(f"{path}: cannot tell which columns hold the votes (it has {', '.join(names)}); set "
                             "label_columns on its labels.exports entry in params.yaml")
        found["label_columns"] = plain
    if "count" in _key(Path(path).stem) or all("count" in _key(c) for c in found["label_columns"]):
        found["layout"] = "counts"  # cifar10h-counts.npy: a column per class, how many chose it
    n = len(cols[found["label_columns"][0]])
    if item:
        found["item_column"] = item
    elif names_file := _names_beside(Path(path), n):  # LabelMe's filenames_train.txt beside answers.txt
        found["items_file"] = names_file.absolute().as_posix()
    else:  # positions: CIFAR's split sizes in torchvision's order, as the cifar connector records them
        index = {50_000: "column:train_index", 10_000: "column:test_index"}.get(n)
        if index:
            found["item_key"] = index
    return found


def _names_beside(path: Path, n: int) -> Path | None:
    """The one text file beside a positional vote file with a line per row, each naming an image file."""
    from sluice.imaging import image_extensions

    extensions = image_extensions()
    found = []
    for other in sorted(path.parent.glob("*.txt")):
        if other == path or other.stat().st_size > 512 * 2**20:
            continue
        lines = other.read_text(encoding="utf-8-sig", errors="replace").rstrip("\n").splitlines()
        if len(lines) == n and all(Path(line.strip()).suffix.lower() in extensions for line in lines[:500]):
            found.append(other)
    return found[0] if len(found) == 1 else None


CONNECTOR = Connector("votes", "wide", WideVotesExport, read, "wide table (CSV, Parquet, .npy/.npz/.pt arrays), "
                      "one row per item, one column per answer", detect=detect)
