"""The ``crawl`` section ``sluice init`` writes: a website to crawl (``--crawl URL``) or a file listing image URLs
(``--urls FILE``: a CSV / TSV whose columns the crawl finds, or a text file of one URL a line)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sluice.errors import InputError


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


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
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            first = next((line.strip() for line in fh if line.strip()), "")
        plain = _is_url(first.split()[0]) if first else False  # no header: no labels either
        return {**defaults, "source": f"urls-{path.stem}", "start_urls": [], "url_list": {"path": relative(path, root)},
                "label": {"source": "none" if plain else "column"}, "job_dir": f"runs/crawl/urls-{path.stem}"}
    if urls:
        host = urlsplit(urls[0]).hostname or "site"
        return {**defaults, "source": f"crawl-{host}", "start_urls": list(urls), "job_dir": f"runs/crawl/{host}"}
    return None
