"""What the spider hands to the item pipelines: one ``Fetch`` per request outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Reasons that reject a response's content: these go to the quarantine as well as to crawl_log.
QUARANTINE_REASONS = frozenset({"too_large", "decompression_bomb", "truncated", "not_an_image",
                                "content_mismatch", "empty", "metadata_unreadable",
                                "bad_url", "conflicting_label"})  # the last two: rows of a crawl.url_list


@dataclass
class Fetch:
    """A request and its outcome; image fetches also carry the body and its provenance.

    ``outcome`` is ``page``, ``image``, ``not_modified`` (an image already landed, unchanged), ``robots``,
    ``redirect``, ``dropped:<reason>`` or ``error``.
    URLs are canonical (the demo's loopback origin is replaced by :data:`ingest.crawl.server.CANONICAL_ORIGIN`).
    """

    url: str
    kind: str  # page / image / robots
    outcome: str
    fetched_at: datetime
    status: int | None = None
    bytes: int | None = None
    referer: str | None = None
    robots: str = "n/a"  # allowed / disallowed / n/a
    error: str | None = None
    details: str | None = None
    body: bytes | None = None
    content_type: str | None = None
    last_modified: str | None = None
    etag: str | None = None
    from_cache: bool | None = None
    page_url: str | None = None
    label: str | None = None
    license: str | None = None
    alt: str | None = None
    item_id: str | None = None  # the id a url_list gives the image
    split_hint: str | None = None  # and the split it puts it in
    listed: bool = False  # a crawl.url_list row's image: not landing it (HTTP 404, timeout, robots) is quarantined too
    gps_removed: bool = False

    @property
    def reason(self) -> str | None:
        return self.outcome.removeprefix("dropped:") if self.outcome.startswith("dropped:") else None

    @property
    def quarantined(self) -> bool:
        """Whether it goes to the quarantine: content rejected, or a listed image that did not land."""
        return self.reason in QUARANTINE_REASONS or self.listed and (self.outcome == "error" or self.reason is not None)

    def reject(self, reason: str, details: str | None) -> None:
        self.outcome, self.details, self.body = f"dropped:{reason}", details, None
