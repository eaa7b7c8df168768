"""What the lake already knows about each URL: its validators, for conditional re-crawls.

The state is read back from ``crawl_log``: the latest ``image`` (landed) or ``not_modified`` row of
each URL carries the ``ETag`` / ``Last-Modified`` the server sent. A re-crawl asks for those URLs
with ``If-None-Match`` / ``If-Modified-Since``; a 304 (or a response with the same validators) is
logged as ``not_modified`` and nothing is downloaded, decoded or landed. A URL whose image was
rejected is not in the state: it is fetched in full again. Pages are asked for conditionally only when
the job journal remembers their links (a 304 page has no body to parse).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from sluice.lake import Lake

KNOWN_OUTCOMES = ("image", "page", "not_modified")


@dataclass(frozen=True)
class Validators:
    etag: str | None
    last_modified: str | None
    checked_at: datetime

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out

    def matches(self, etag: str | None, last_modified: str | None) -> bool:
        """Whether a response with these validators is the representation already landed."""
        if self.etag or etag:
            return self.etag == etag
        return bool(self.last_modified) and self.last_modified == last_modified


def load_validators(lake: Lake) -> dict[str, Validators]:
    """Latest validators per URL among parsed pages, landed and not-modified images (empty on a first crawl)."""
    if not lake.exists("crawl_log"):
        return {}
    columns = ["url", "etag", "last_modified", "fetched_at"]
    table = lake.read("crawl_log", columns=columns + ["outcome"])
    table = table.filter(pc.is_in(table["outcome"], value_set=pa.array(KNOWN_OUTCOMES)))
    table = table.filter(pc.or_(pc.is_valid(table["etag"]), pc.is_valid(table["last_modified"])))
    table = table.sort_by([("fetched_at", "ascending")]).select(columns)
    return {url: Validators(etag, modified, at) for url, etag, modified, at in zip(*(table[c].to_pylist() for c in columns))}
