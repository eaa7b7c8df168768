"""The ``crawl`` section ``sluice init`` writes: a website to crawl (``--crawl URL``) or a file listing image URLs
(``--urls FILE``: a CSV / TSV / Parquet file whose columns the crawl finds, or a text file of one URL a line); its
images are labelled by a column where one is named as labels, else land unlabelled (for crowd votes)."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import urlsplit

from sluice.delimited import DELIMITERS
from sluice.errors import InputError
from sluice.params_data import URL_LIST_LABEL_NAMES


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _labelled(path: Path) -> bool:
    """Whether a URL list has a column of labels by its name (a plain list of URLs, LAION's ``url,caption`` none)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            columns = pq.read_schema(path).names
        except (OSError, ValueError) as err:
            raise InputError(f"--urls {path}: not a readable Parquet file ({err})") from None
    else:
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            first = next((line.strip() for line in fh if line.strip()), "")
        if not first or _is_url(first.split()[0]):  # no header: no labels either
            return False
        columns = max((next(csv.reader([first], delimiter=d)) for d in DELIMITERS), key=len)
    return any("".join(ch for ch in c.lower() if ch.isalnum()) in URL_LIST_LABEL_NAMES for c in columns)


def crawl_section(defaults: dict, urls: list[str], url_lists: list[str], root: Path, relative) -> dict | None:
    """The section for the start ``urls`` or one URL list (its path written by ``relative``), else None."""
    for url in urls:
        if not _is_url(url):
            raise InputError(f"--crawl {url}: not an http(s) URL")
    if urls and url_lists or len(url_lists) > 1:
        raise InputError("one crawl a project: give --crawl URL... or one --urls FILE")
    if url_lists:
        path = Path(url_lists[0]).expanduser()
        if not path.is_file():
            raise InputError(f"--urls {url_lists[0]}: no such file (a CSV of image URLs, or one URL a line)")
        return {**defaults, "source": f"urls-{path.stem}", "start_urls": [], "url_list": {"path": relative(path, root)},
                "label": {"source": "column" if _labelled(path) else "none"}, "job_dir": f"runs/crawl/urls-{path.stem}"}
    if urls:
        host = urlsplit(urls[0]).hostname or "site"
        return {**defaults, "source": f"crawl-{host}", "start_urls": list(urls), "job_dir": f"runs/crawl/{host}"}
    return None
