"""The web crawl connector: a Scrapy project configured entirely from ``params.yaml`` (section ``crawl``).

A generic catalogue spider (``spiders/catalogue.py``) follows links by allow/deny patterns and
pagination, finds images with a CSS or XPath selector and takes their label from a selector's text, a
breadcrumb position, a URL pattern or the alt text. Downloader middlewares keep it polite (robots.txt
``Crawl-delay``, ``Retry-After``, backoff) and safe (no redirects to other domains, size limits); item
pipelines check every image at the door, strip GPS EXIF and land batches in ``raw_images``, with every
request and its outcome in ``crawl_log`` and every rejected response in ``quarantine``.

Scrapy runs in a child process per crawl (``ingest.crawl.worker``): Twisted's reactor cannot restart
in one process, and the stage, ``sluice crawl`` and tests all need to crawl more than once.
"""
