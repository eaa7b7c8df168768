"""URL helpers shared by the spider, the middlewares and the revalidation pass (no Scrapy import here)."""

from __future__ import annotations

from urllib.parse import urlsplit


class UrlAlias:
    """Maps the live origin of a crawl (the demo's loopback port) to the canonical one recorded."""

    def __init__(self, live: str | None = None, canonical: str | None = None):
        self.live, self.canonical = live, canonical

    def canon(self, url: str) -> str:
        if self.live and url.startswith(self.live):
            return self.canonical + url[len(self.live):]
        return url

    def to_live(self, url: str) -> str:
        if self.canonical and url.startswith(self.canonical):
            return self.live + url[len(self.canonical):]
        return url


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def in_domains(url: str, domains: list[str]) -> bool:
    """Whether the URL's host is one of ``domains`` or a subdomain of one (ports do not matter)."""
    host = host_of(url).lower()
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains)


def crawl_domains(allowed_domains: list[str], start_urls: list[str]) -> list[str]:
    """``crawl.allowed_domains``, or the start URLs' hosts when it is empty."""
    return list(allowed_domains) or sorted({urlsplit(u).hostname for u in start_urls})
