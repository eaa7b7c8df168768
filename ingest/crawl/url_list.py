"""A file of image URLs to land (``crawl.url_list``): the crawl fetches each listed image, with the same robots.txt,
politeness, retries, size and content checks and conditional GETs as the images it finds on pages.

Open Images' ``image_ids_and_rotation.csv`` (``ImageID,...,OriginalURL,...``), Google Landmarks v2's ``train.csv``
(``id,url,landmark_id``), a scraped set's ``url,label``: a CSV or TSV with a header, or a Parquet file (LAION's,
COYO's, DataComp's ``url,caption,...`` shards: its rows numbered from 1 where a CSV's lines are), its URL column the
one whose values are http(s) URLs (or ``url_column``), its labels in ``label_column`` (``sluice init`` finds one by
name); or a text file of one URL a line. Nothing is dropped without a word: a row whose URL is not http(s), or that lists
again a URL an earlier row gave another label, is logged and quarantined with its line (``bad_url``,
``conflicting_label``); the same URL with the same label again is one image, and the repeat is logged
(``repeated_url``). The list's id of an image (``id_column``: ``id``, ``ImageID``...) lands as its
``raw_images.item_id``, so votes keyed by it (Open Images' human-verified labels) find the image, and its split
(``split_column``: Open Images' ``Subset`` of ``train`` / ``validation`` / ``test``) its ``split_hint``, so the
dataset stage keeps the list's test images as test; a column named license gives each image its license.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sluice.delimited import DELIMITERS, column_key, read_delimited, require_file
from sluice.errors import InputError
from sluice.params_data import URL_LIST_LABEL_NAMES as LABEL_NAMES
from sluice.stage import stage_logger

SPLIT_NAMES = ("split", "subset", "set", "partition", "fold")
# a split column's values (any case) -> the split; another value is counted as no split (a warning), never dropped
SPLITS = {"train": "train", "training": "train", "trainval": "train", "val": "val", "valid": "val",
          "validation": "val", "dev": "val", "test": "test", "testing": "test"}
ID_NAMES = ("id", "imageid", "imgid", "key", "uid", "itemid", "photoid", "sampleid")  # the image's own id: raw_images.item_id
_PREFERRED_URL = ("url", "imageurl", "originalurl", "imgurl", "photourl", "src", "link")
_SAMPLE = 500


@dataclass
class Row:
    line: int
    url: str | None  # None where the row is not fetched (a bad URL, a repeat)
    label: str | None = None
    item_id: str | None = None  # the list's id of the image (id_column)
    split: str | None = None  # train / val / test from the split column
    license: str | None = None  # the image's license, from a column named license
    reason: str | None = None  # bad_url / conflicting_label / repeated_url: logged (the first two quarantined)
    details: str | None = None



def is_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        return next((line.strip() for line in fh if line.strip()), "")


def _delimiter(path: Path, given: str | None) -> str:
    header = _first_line(path)
    return given or max(DELIMITERS, key=lambda d: len(next(csv.reader([header], delimiter=d))))


def _parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _frame(path: Path, columns: list[str], delimiter: str | None, rows: int | None = None):
    """The list's ``columns`` (every column of text or numbers where none are named) as strings; ``rows``: the first."""
    if not _parquet(path):
        frame = read_delimited(path, columns, _delimiter(path, delimiter), "crawl.url_list")
        return frame.head(rows) if rows else frame
    import polars as pl

    try:
        schema = pl.read_parquet_schema(path)
        if missing := [c for c in columns if c not in schema]:
            raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))} in crawl.url_list (columns: "
                             f"{', '.join(schema)}); set the column names in params.yaml")
        wanted = columns or [c for c, t in schema.items() if not t.is_nested() and t != pl.Binary]
        frame = pl.read_parquet(path, columns=wanted, n_rows=rows)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0][:200]})") from None
    return frame.with_columns(pl.col(c).cast(pl.String) for c in wanted)


def _plain(path: Path) -> bool:
    """A list of one URL a line, no header."""
    if _parquet(path):
        return False
    return is_url(_first_line(path).split()[0] if _first_line(path) else "")


def find_columns(path: str | Path, delimiter: str | None = None) -> dict:
    """``url_column`` (the column whose first values are mostly http(s) URLs; of several, one named as a URL) and
    ``label_column``, ``id_column`` and ``split_column`` (by name, else absent) of a CSV / TSV of image URLs; {} for a
    plain list."""
    path = Path(path)
    require_file(path, "crawl.url_list")
    if _plain(path):
        return {}
    frame = _frame(path, [], delimiter, _SAMPLE)
    urls = [c for c in frame.columns if frame[c].drop_nulls().len() and not _license_column([c], set())
            and sum(map(is_url, frame[c].drop_nulls().to_list())) >= 0.8 * frame[c].drop_nulls().len()]
    if not urls:
        raise InputError(f"{path}: no column of http(s) URLs (header: {', '.join(frame.columns)}); a list of image "
                         "URLs needs one (set crawl.url_list.url_column)")
    url = next((c for key in _PREFERRED_URL for c in urls if column_key(c) == key), urls[0])
    label = next((c for key in LABEL_NAMES for c in frame.columns if column_key(c) == key and c != url), None)
    ident = next((c for key in ID_NAMES for c in frame.columns if column_key(c) == key and c not in (url, label)), None)
    split = next((c for key in SPLIT_NAMES for c in frame.columns if column_key(c) == key and c not in (url, label, ident)),
                 None)
    return {"url_column": url, **({"label_column": label} if label else {}), **({"id_column": ident} if ident else {}),
            **({"split_column": split} if split else {})}


def _license_column(columns: list[str], taken: set[str]) -> str | None:
    """A column named license (Open Images' image_ids_and_rotation.csv: each image's license URL)."""
    return next((c for c in columns if column_key(c) in ("license", "licence", "licenseurl") and c not in taken), None)


def read_rows(cfg, labelled: bool = True) -> Iterator[Row]:
    """Each row of ``cfg`` (``crawl.url_list``) in order: the URL and label to fetch (``labelled``: from its label
    column, named or found by name), or why not (logged under ``list:<file name>:<line>``)."""
    path = Path(cfg.path)
    require_file(path, "crawl.url_list")
    seen: dict[str, tuple[int, str | None]] = {}
    unknown: Counter = Counter()  # split values that are no split
    for line, url, label, item_id, split, license_ in _entries(path, cfg, labelled):
        if not is_url(url):
            yield Row(line, None, reason="bad_url", details=f"{str(url)[:200]!r} is not an http(s) URL")
            continue
        url = url.strip()
        if url in seen:
            first, known = seen[url]
            same = known == label
            yield Row(line, None, label, reason="repeated_url" if same else "conflicting_label",
                      details=f"{url} listed on line {first} already" + ("" if same else
                      f" with label {known!r}, here {label!r} (the first kept)"))
            continue
        seen[url] = (line, label)
        unknown[split] += bool(split) and split.strip().lower() not in SPLITS
        yield Row(line, url, label, item_id, SPLITS.get((split or "").strip().lower()), license_)
    if +unknown:
        named = ", ".join(f"{value!r} x{n}" for value, n in (+unknown).most_common(5))
        stage_logger("crawl").warning(f"{path.name}: {sum(unknown.values())} rows name a split that is none of train, "
                                      f"val, test ({named}): landed without one (the dataset stage splits them)")


def _entries(path: Path, cfg, labelled: bool) -> Iterator[tuple]:
    """(line, url, label, id, split, license) of each row of the file; ``labelled``: with the label of its column."""
    if _plain(path) and not cfg.url_column:
        if labelled:
            raise InputError(f"{path}: a plain list of URLs carries no labels: set crawl.label.source: none, or give a "
                             "CSV with a column of labels")
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            for line, text in enumerate(fh, 1):
                if text.strip() and not text.lstrip().startswith("#"):
                    yield line, text.split()[0], None, None, None, None
        return
    try:
        found = find_columns(path, cfg.delimiter)
    except InputError:  # no column of URLs by its values: the one named, if any
        if not cfg.url_column:
            raise
        found = {}
    url_column, label_column = cfg.url_column or found["url_column"], cfg.label_column or found.get("label_column")
    id_column = cfg.id_column or found.get("id_column")
    split_column = cfg.split_column or found.get("split_column")
    if labelled and label_column is None:
        raise InputError(f"{path}: no column of labels found (label, class, category, ...: set crawl.url_list."
                         "label_column), or declare the images unlabelled with crawl.label.source: none")
    columns = [url_column, *([label_column] if labelled else []), *(c for c in (id_column, split_column) if c)]
    frame = _frame(path, columns + ([found_license] if (found_license := _parquet_license(path, columns)) else []),
                   cfg.delimiter)
    license_column = _license_column(frame.columns, set(columns))
    labels = frame[label_column].to_list() if labelled else [None] * frame.height
    ids = frame[id_column].to_list() if id_column else [None] * frame.height
    splits = frame[split_column].to_list() if split_column else [None] * frame.height
    licenses = frame[license_column].to_list() if license_column else [None] * frame.height
    first = 1 if _parquet(path) else 2  # a Parquet file's rows, a CSV's lines after its header
    for i, row in enumerate(zip(frame[url_column].to_list(), labels, ids, splits, licenses)):
        yield i + first, *row


def _parquet_license(path: Path, columns: list[str]) -> str | None:
    """A Parquet list's license column (read only when asked for: a CSV is read whole)."""
    if not _parquet(path):
        return None
    import polars as pl

    try:
        return _license_column(list(pl.read_parquet_schema(path)), set(columns))
    except (pl.exceptions.PolarsError, OSError):
        return None
