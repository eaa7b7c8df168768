"""The one item pipeline: check the image at the door, strip GPS, hand the fetch to the lake sink.

One pipeline, not one per job: every pipeline stage costs Scrapy a deferred / task hop per item,
which on a loopback crawl weighed more than the work itself. Only image fetches carry a body; pages,
redirects, errors, drops and not-modified answers pass straight to the log. A rejected image keeps
flowing (with ``outcome = dropped:<reason>``) so it reaches the quarantine and the crawl log: nothing
is dropped silently. :func:`vet` is the same door for images the revalidation pass downloads itself.
"""

from __future__ import annotations

from ingest.crawl.imagecheck import check_image, strip_location
from ingest.crawl.items import Fetch


def vet(item: Fetch, max_pixels: int) -> Fetch:
    """Check an image fetch at the door (full decode) and remove its location; reject it with a reason."""
    if item.outcome != "image":
        return item
    verdict = check_image(item.body, item.content_type, max_pixels)
    if verdict.reason:
        item.reject(verdict.reason, verdict.details)
        return item
    try:  # location removed before the bytes land (their sha256 is the image id)
        cleaned = strip_location(item.body)
    except Exception as err:  # unreadable metadata in a decodable image: quarantined, never lost
        item.reject("metadata_unreadable", f"{type(err).__name__}: {err}"[:300])
    else:
        if cleaned != item.body:
            item.body, item.gps_removed = cleaned, True
    return item


class LandPipeline:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_item(self, item: Fetch) -> Fetch:
        spider = self.crawler.spider
        spider.sink.add(vet(item, spider.params.max_pixels))
        return item
