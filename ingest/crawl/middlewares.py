"""Downloader middlewares that make the crawl polite and safe beyond what Scrapy does by itself.

- :class:`CrawlDelayMiddleware` honours robots.txt ``Crawl-delay`` (Scrapy parses it but ignores it):
  the host's download slot gets that delay without jitter, and AutoThrottle may raise it, never lower it.
- :class:`BackoffRetryMiddleware` retries with exponential backoff, and on 429/503 waits what
  ``Retry-After`` asks (capped) before *any* further request to that host.
- :class:`RedirectGuardMiddleware` records every redirect hop and refuses redirects that leave the
  allowed domains.
- :class:`SizeLimitMiddleware` decompresses bodies but drops those that expand past ``max_bytes``
  (gzip bombs) with a reason; :class:`WireSizeGuard` stops bodies over the limit on the wire (by their
  Content-Length, or as the bytes arrive when there is none) keeping the response's status and size,
  before Scrapy's ``DOWNLOAD_MAXSIZE`` backstop would cancel them without either.

- :class:`RevalidatingCacheMiddleware` is Scrapy's HTTP cache (used with its RFC 2616 policy) that
  also notes the status that came over the wire when a stale entry was revalidated (304), so
  ``crawl_log`` tells a revalidated answer from a fresh one.

Every drop keeps the HTTP status of the response it refused.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from urllib.parse import urljoin

from scrapy import signals
from scrapy.downloadermiddlewares.httpcache import HttpCacheMiddleware
from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.downloadermiddlewares.retry import RetryMiddleware, get_retry_request
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.utils.response import response_status_message

from ingest.crawl.urls import host_of as _host, in_domains  # noqa: F401 (in_domains: re-exported)

REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class Dropped(IgnoreRequest):
    """A response refused on purpose, with a reason code for crawl_log and the quarantine."""

    def __init__(self, reason: str, details: str, response=None):
        super().__init__(f"{reason}: {details}")
        self.reason, self.details = reason, details
        self.status = response.status if response is not None else None
        self.bytes = len(response.body) if response is not None else None


class CrawlDelayMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler
        self.delays: dict[str, float] = {}
        self.user_agent = crawler.settings["ROBOTSTXT_USER_AGENT"] or crawler.settings["USER_AGENT"]

    @classmethod
    def from_crawler(cls, crawler):
        mw = cls(crawler)
        crawler.signals.connect(mw._robots_parsed, signal=signals.robots_parsed)
        # Connected after AutoThrottle's handler (extensions exist before the engine), so it runs last.
        crawler.signals.connect(mw._clamp, signal=signals.response_downloaded)
        return mw

    def _robots_parsed(self, robotparser, request) -> None:
        delay = robotparser.crawl_delay(self.user_agent) if hasattr(robotparser, "crawl_delay") else None
        if delay:
            host = _host(request.url)
            self.delays[host] = float(delay)
            downloader = self.crawler.engine.downloader
            downloader.per_slot_settings.setdefault(host, {}).update({"delay": float(delay), "jitter": 0.0})
            if host in downloader.slots:
                self._apply(downloader.slots[host], float(delay))

    @staticmethod
    def _apply(slot, delay: float) -> None:
        slot.delay = max(slot.delay, delay)
        slot.jitter = 0.0

    def _clamp(self, response, request, spider=None) -> None:
        key = request.meta.get("download_slot")
        delay = self.delays.get(key)
        slot = self.crawler.engine.downloader.slots.get(key)
        if delay and slot is not None:
            self._apply(slot, delay)

    def process_response(self, request, response):
        if request.meta.get("dont_obey_robotstxt") and request.url.endswith("/robots.txt"):
            spider = self.crawler.spider
            if hasattr(spider, "record_robots"):
                spider.record_robots(request, response)
        return response


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("SLUICE_BACKOFF_BASE", 0.5)
        self.retry_after_max = settings.getfloat("SLUICE_RETRY_AFTER_MAX", 120.0)
        self.host_not_before: dict[str, float] = {}

    async def process_request(self, request):
        wait = max(self.host_not_before.get(_host(request.url), 0.0), request.meta.get("retry_not_before", 0.0))
        wait -= time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def _backoff(self, retry_times: int) -> float:
        return min(self.backoff_base * 2 ** (retry_times - 1), self.retry_after_max)

    def _retry_later(self, request, reason, wait: float | None = None):
        retry = get_retry_request(request, spider=self.crawler.spider, reason=reason,
                                  max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
                                  priority_adjust=request.meta.get("priority_adjust", self.priority_adjust))
        if retry is not None:
            delay = self._backoff(retry.meta["retry_times"]) if wait is None else wait
            retry.meta["retry_not_before"] = time.monotonic() + delay
        return retry

    def process_response(self, request, response):
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        wait = None
        if response.status in (429, 503):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is not None:
                wait = min(wait, self.retry_after_max)
                host = _host(request.url)
                self.host_not_before[host] = max(self.host_not_before.get(host, 0.0), time.monotonic() + wait)
        return self._retry_later(request, response_status_message(response.status), wait) or response

    def process_exception(self, request, exception):
        if isinstance(exception, self.exceptions_to_retry) and not request.meta.get("dont_retry", False):
            return self._retry_later(request, exception)
        return None


def parse_retry_after(value: bytes | str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RedirectGuardMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response):
        location = response.headers.get("Location")
        if response.status in REDIRECT_STATUSES and location:
            target = urljoin(request.url, location.decode("latin-1"))
            spider = self.crawler.spider
            domains = list(getattr(spider, "allowed_domains", None) or [])
            if domains and not in_domains(target, domains):
                shown = spider.alias.canon(target) if hasattr(spider, "alias") else target
                raise Dropped("offsite_redirect", f"HTTP {response.status} to {shown} (allowed: {', '.join(domains)})",
                              response)
            if hasattr(spider, "record_redirect"):
                spider.record_redirect(request, response, target)
        return response


class SizeLimitMiddleware(HttpCompressionMiddleware):
    def process_response(self, request, response):
        try:
            return super().process_response(request, response)
        except IgnoreRequest as err:  # the only IgnoreRequest it raises: decompression went past the limit
            limit = request.meta.get("download_maxsize", self._max_size)
            raise Dropped("decompression_bomb", f"{len(response.body)} B compressed "
                          f"({response.headers.get('Content-Encoding', b'').decode()}) expands past "
                          f"crawl.max_bytes {limit}", response) from err


class WireSizeGuard:
    """Extension: stop a download over ``DOWNLOAD_MAXSIZE`` bytes with ``StopDownload(fail=True)``.

    The request's errback then gets the (partial) response, so the drop is logged with its status and
    a reason saying how many bytes came (Scrapy's own limit cancels the download with neither).
    """

    def __init__(self, crawler):
        self.limit = crawler.settings.getint("DOWNLOAD_MAXSIZE")

    @classmethod
    def from_crawler(cls, crawler):
        guard = cls(crawler)
        if guard.limit:
            crawler.signals.connect(guard.headers_received, signal=signals.headers_received)
            crawler.signals.connect(guard.bytes_received, signal=signals.bytes_received)
        return guard

    def _limit(self, request) -> int:
        return request.meta.get("download_maxsize", self.limit)

    def headers_received(self, headers, body_length, request, spider=None) -> None:
        limit = self._limit(request)
        request.meta["sluice_bytes"] = 0  # a retried request starts counting again
        if limit and isinstance(body_length, int) and body_length > limit:  # (Twisted's UNKNOWN_LENGTH is a str)
            request.meta["sluice_drop"] = f"Content-Length {body_length} B > crawl.max_bytes {limit}"
            raise StopDownload(fail=True)

    def bytes_received(self, data, request, spider=None) -> None:
        limit = self._limit(request)
        received = request.meta.get("sluice_bytes", 0) + len(data)
        request.meta["sluice_bytes"] = received
        if limit and received > limit:
            request.meta["sluice_drop"] = f"{received} B received without a Content-Length > crawl.max_bytes {limit}"
            raise StopDownload(fail=True)


class RevalidatingCacheMiddleware(HttpCacheMiddleware):
    def process_response(self, request, response):
        revalidating = "cached_response" in request.meta
        out = super().process_response(request, response)
        if revalidating and out is not response:  # the cached body answers, after a 304 (or a 5xx)
            request.meta["sluice_wire_status"] = response.status
        return out
