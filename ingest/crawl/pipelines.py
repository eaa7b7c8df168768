"""Item pipelines, one job each, in this order: check the image, strip GPS, land (image, quarantine, log).

Only image fetches carry a body; pages, redirects, errors and drops pass straight to the log. A
rejected image keeps flowing (with ``outcome = dropped:<reason>``) so it reaches the quarantine and
the crawl log: nothing is dropped silently.
"""

from __future__ import annotations

from ingest.crawl.imagecheck import check_image, strip_gps
from ingest.crawl.items import Fetch


class _CrawlerBound:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    @property
    def spider(self):
        return self.crawler.spider


class CheckImagePipeline(_CrawlerBound):
    """Decode every image completely; refuse non-images, content-type lies, bombs and truncation."""

    def process_item(self, item: Fetch) -> Fetch:
        if item.outcome == "image":
            verdict = check_image(item.body, item.content_type, self.spider.params.max_pixels)
            if verdict.reason:
                item.reject(verdict.reason, verdict.details)
        return item


class StripGpsPipeline(_CrawlerBound):
    """Remove GPS EXIF before the bytes land (their sha256 is the image id)."""

    def process_item(self, item: Fetch) -> Fetch:
        if item.outcome == "image":
            cleaned = strip_gps(item.body)
            if cleaned != item.body:
                item.body, item.gps_removed = cleaned, True
        return item


class LandPipeline(_CrawlerBound):
    """Hand each fetch to the lake sink: images to raw_images, rejections to quarantine, all to crawl_log."""

    def process_item(self, item: Fetch) -> Fetch:
        self.spider.sink.add(item)
        return item
