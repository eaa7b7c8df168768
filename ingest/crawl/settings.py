"""Scrapy settings built from the ``crawl`` params section (the project has no settings.py to edit)."""

from __future__ import annotations

from pathlib import Path

from sluice.config import CrawlParams

M = "ingest.crawl.middlewares."
P = "ingest.crawl.pipelines."
SCRAPY_DMW = "scrapy.downloadermiddlewares."

PIPELINES = {P + "LandPipeline": 300}


def scrapy_settings(p: CrawlParams, land: bool = True) -> dict:
    """Settings for one crawl; ``land=False`` runs the same crawl with every item discarded (benchmark baseline)."""
    return {
        "BOT_NAME": "sluice",
        "USER_AGENT": p.user_agent,
        "ROBOTSTXT_OBEY": p.obey_robots,
        "CONCURRENT_REQUESTS": p.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": p.concurrency_per_domain,
        "DOWNLOAD_DELAY": p.download_delay,
        "AUTOTHROTTLE_ENABLED": p.autothrottle,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": p.autothrottle_target,
        "AUTOTHROTTLE_START_DELAY": max(p.download_delay, 0.25),
        "RETRY_ENABLED": p.retries > 0,
        "RETRY_TIMES": p.retries,
        "RETRY_HTTP_CODES": [429, 500, 502, 503, 504, 408, 522, 524],
        "SLUICE_BACKOFF_BASE": p.backoff_base,
        "SLUICE_RETRY_AFTER_MAX": p.retry_after_max,
        "DOWNLOAD_TIMEOUT": p.timeout,
        "DOWNLOAD_MAXSIZE": p.max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "REDIRECT_MAX_TIMES": p.max_redirects,
        # Items are handled synchronously by one pipeline: Scrapy's default of 100 concurrent items per
        # response spawns ~100 asyncio tasks per callback for nothing (a third of the crawl's CPU).
        "CONCURRENT_ITEMS": 1,
        "DEPTH_LIMIT": 0,  # the spider counts page depth itself: images do not use up depth
        "HTTPCACHE_ENABLED": p.http_cache,
        "HTTPCACHE_DIR": str(Path(p.http_cache_dir).absolute()),
        # Revalidating cache: entries are reused only within the request's max-age (crawl.recrawl_after,
        # 0 by default), then revalidated with a conditional GET; Scrapy's default DummyPolicy never asks.
        "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy",
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # no listening sockets besides what the crawl needs
        "LOG_LEVEL": p.log_level,
        "WARN_ON_GENERATOR_RETURN_VALUE": False,  # reads every callback's source at start: CPU for a lint
        "DOWNLOADER_MIDDLEWARES": {
            M + "CrawlDelayMiddleware": 110,
            SCRAPY_DMW + "retry.RetryMiddleware": None,
            M + "BackoffRetryMiddleware": 550,
            SCRAPY_DMW + "httpcompression.HttpCompressionMiddleware": None,
            M + "SizeLimitMiddleware": 590,
            M + "RedirectGuardMiddleware": 610,
            SCRAPY_DMW + "httpcache.HttpCacheMiddleware": None,
            M + "RevalidatingCacheMiddleware": 900,
        },
        "EXTENSIONS": {M + "WireSizeGuard": 0},
        "ITEM_PIPELINES": PIPELINES if land else {},
    }
