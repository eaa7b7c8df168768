"""The revalidation pass of a re-crawl: conditional GETs for what the last crawl saw, before Scrapy starts.

A re-crawl of an unchanged site is thousands of conditional GETs answered 304 with no body. Through
Scrapy each one costs its full request cycle (scheduler, middlewares, signals, callback, item pipeline):
about as much CPU as downloading the image did, so a no-op re-crawl took two thirds of a first crawl.
This pass sends them over plain keep-alive HTTP connections from a few threads:

- it walks the site as the job journal remembers it: the start URLs, then the remembered links of each
  page answered 304 (pages with validators and remembered links, landed images with validators);
- a 304 (or a 200 with the same validators) is logged as ``not_modified`` with its validators, as the
  spider logs it; a changed image (200) is downloaded, checked at the door
  (:func:`ingest.crawl.pipelines.vet`) and landed here;
- everything else (a changed page, a URL without validators, a redirect, an error, a 429/503, a URL
  robots.txt forbids) is handed to the crawler, which requests it as always: retries, backoff,
  redirects, drops and their log rows stay in one place. When nothing is handed over, Scrapy is not
  even started.

Politeness is the crawl's: robots.txt is fetched and obeyed per host, and a host with a robots
``Crawl-delay`` (or any ``download_delay``, or a proxy) is left to the crawler entirely; the same
User-Agent is sent; at most ``concurrency_per_domain`` requests are in flight (AutoThrottle's target
concurrency when it is on), and after a 429/503 the host's remaining URLs go to the crawler, which
backs off. The pass runs only with a ``job_dir`` journal (a 304 page needs its remembered links), not
when resuming a killed crawl (the crawler resumes), and not with the HTTP cache (its own revalidation
decides then).
"""

from __future__ import annotations

import http.client
import math
import threading
import urllib.request
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ingest.crawl.items import Fetch
from ingest.crawl.pipelines import vet
from ingest.crawl.urls import UrlAlias, in_domains

ROBOTS_MAX_BYTES = 500_000
RETRY_ELSEWHERE = (429, 503)  # the crawler's backoff / Retry-After handling takes the host over


@dataclass
class Reply:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes | None = None  # only for a 200 that was asked for its body and fit in max_bytes
    error: str | None = None


class Client:
    """GETs over keep-alive connections, one per thread and origin; never follows redirects."""

    def __init__(self, user_agent: str, timeout: float):
        self.user_agent, self.timeout = user_agent, timeout
        self._local = threading.local()

    def get(self, url: str, headers: dict[str, str], max_body: int = 0) -> Reply:
        """``max_body`` > 0: read a 200's identity-encoded body up to that many bytes (else leave it)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        conns = self._local.__dict__.setdefault("conns", {})
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": self.user_agent, "Accept": "*/*", **headers}
        for attempt in (0, 1):  # a kept-alive connection the server has closed meanwhile is reopened once
            reused = key in conns
            if not reused:
                kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conns[key] = kind(parts.hostname, parts.port, timeout=self.timeout)
            conn = conns[key]
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()})
                if not self._drain(response, reply, max_body):
                    conns.pop(key).close()
                return reply
            except (http.client.HTTPException, OSError) as err:
                conns.pop(key).close()
                if reused and attempt == 0 and isinstance(err, (http.client.RemoteDisconnected, ConnectionError)):
                    continue
                return Reply(None, error=f"{type(err).__name__}: {err}")
        raise AssertionError("unreachable")

    @staticmethod
    def _drain(response, reply: Reply, max_body: int) -> bool:
        """Read what the reply needs; True when the connection can be reused."""
        if response.status == 304:
            response.read()
            return True
        encoded = reply.headers.get("content-encoding", "identity").lower() != "identity"
        length = reply.headers.get("content-length")
        if response.status != 200 or not max_body or encoded or (length and length.isdigit() and int(length) > max_body):
            return False  # not read: the crawler asks again and applies its limits
        body = response.read(max_body + 1)
        if len(body) > max_body:
            return False
        body += response.read()  # the end of a chunked body
        reply.body = body
        return True

    def close(self) -> None:
        for conn in self._local.__dict__.get("conns", {}).values():
            conn.close()


def applies(p, journal, validators: dict) -> bool:
    """Whether a crawl starts with the revalidation pass (see the module docstring)."""
    return bool(p.incremental and validators and journal is not None and journal.known and not journal.resumed
                and not p.http_cache and not p.download_delay)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Revalidation:
    """One pass; afterwards :attr:`handoff` lists (request spec, referer) for the crawler, :attr:`settled`
    the URLs answered here (the crawler skips them) and :attr:`pages_seen` the pages counted in ``max_pages``."""

    def __init__(self, p, journal, validators: dict, alias: UrlAlias, allowed_domains: list[str], sink):
        self.p, self.journal, self.validators, self.alias, self.sink = p, journal, validators, alias, sink
        self.allowed_domains = allowed_domains
        self.robots = "allowed" if p.obey_robots else "n/a"
        per_host = p.concurrency_per_domain
        if p.autothrottle:
            per_host = min(per_host, max(1, math.ceil(p.autothrottle_target)))
        self.workers = max(1, min(p.concurrency, per_host))
        self.client = Client(p.user_agent, p.timeout)
        self.handoff: list[tuple[dict, str | None]] = []
        self.settled: set[str] = set()
        self.pages_seen: set[str] = set()
        self._asked: set[str] = set()  # images queued or handed over (a second page linking one adds nothing)
        self._hosts: dict[str, object] = {}  # origin -> robots parser, True (no rules) or None (crawler only)
        self.requests = self.budget_skipped = self.fresh_skipped = 0
        self.started_at = _now()

    # ------------------------------------------------------------------ the walk
    def run(self, start_urls: list[str]) -> None:
        queue: deque[tuple[dict, str | None]] = deque()
        for url in start_urls:
            spec = {"url": self.alias.canon(url), "kind": "page", "depth": 0}
            if spec["url"] not in self.pages_seen:
                self.pages_seen.add(spec["url"])
                self._route(spec, None, queue)
        inflight: dict = {}
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="crawl-revalidate") as pool:
                while (queue or inflight) and self.sink.error is None:
                    while queue and len(inflight) < self.workers:
                        spec, referer = queue.popleft()
                        inflight[pool.submit(self._ask, spec, referer)] = (spec, referer)
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        spec, referer = inflight.pop(future)
                        self._answer(spec, referer, future.result(), queue)
                for spec, referer in queue:  # stopped by a failed lake write: nothing is lost, the crawl fails
                    self.handoff.append((spec, referer))
        finally:
            self.client.close()

    def _follow(self, child: dict, referer: str, queue: deque) -> None:
        """The spider's ``_follow`` for a remembered link: log an offsite drop, skip, ask here or hand over."""
        url, kind = child["url"], child["kind"]
        if url in self.settled or url in self.journal.done:
            return
        if not in_domains(self.alias.to_live(url), self.allowed_domains):
            self.sink.add(Fetch(url=url, kind=kind, outcome="dropped:offsite", fetched_at=_now(), referer=referer,
                                details=f"not in allowed domains ({', '.join(self.allowed_domains)})"))
            return
        if kind == "image":
            if url in self._asked:
                return
            known, after = self.validators.get(url), self.p.recrawl_after
            if known is not None and after is not None and (self.started_at - known.checked_at).total_seconds() < after:
                self.fresh_skipped += 1
                return
            self._asked.add(url)
        elif kind == "page":
            if url in self.pages_seen:
                return
            if self.p.max_pages and len(self.pages_seen) >= self.p.max_pages:
                self.budget_skipped += 1
                return
            self.pages_seen.add(url)
        self._route(child, referer, queue)

    def _route(self, spec: dict, referer: str | None, queue: deque) -> None:
        url, kind = spec["url"], spec["kind"]
        askable = url in self.validators and (kind == "image" or (kind == "page" and url in self.journal.known))
        if askable and self._allowed(self.alias.to_live(url)):
            queue.append((spec, referer))
        else:
            self.handoff.append((spec, referer))

    # ------------------------------------------------------------------ requests (worker threads)
    def _ask(self, spec: dict, referer: str | None) -> Reply:
        headers = self.validators[spec["url"]].headers()
        if referer:
            headers["Referer"] = self.alias.to_live(referer)
        return self.client.get(self.alias.to_live(spec["url"]), headers,
                               max_body=self.p.max_bytes if spec["kind"] == "image" else 0)

    # ------------------------------------------------------------------ answers (this thread)
    def _answer(self, spec: dict, referer: str | None, reply: Reply, queue: deque) -> None:
        url, kind, known = spec["url"], spec["kind"], self.validators[spec["url"]]
        self.requests += reply.status is not None
        etag, modified = reply.headers.get("etag"), reply.headers.get("last-modified")
        fields = {"url": url, "kind": kind, "fetched_at": _now(), "status": reply.status, "referer": referer,
                  "robots": self.robots, "from_cache": False, "bytes": len(reply.body or b""),
                  "page_url": spec.get("page_url") if kind == "image" else None}
        if reply.status == 304 or (kind == "image" and reply.status == 200 and known.matches(etag, modified)):
            self.settled.add(url)
            self.sink.add(Fetch(outcome="not_modified", etag=etag or known.etag,
                                last_modified=modified or known.last_modified, **fields))
            if kind == "page":
                children = self.journal.known[url]
                self.journal.links(url, children)
                for child in children:
                    self._follow(child, url, queue)
        elif kind == "image" and reply.status == 200 and reply.body is not None:
            self.settled.add(url)
            self.sink.add(vet(Fetch(outcome="image", etag=etag, last_modified=modified, body=reply.body,
                                    content_type=reply.headers.get("content-type"), label=spec.get("label"),
                                    license=spec.get("license"), alt=spec.get("alt"), **fields), self.p.max_pixels))
        else:
            if reply.status in RETRY_ELSEWHERE:
                self._hosts[self._origin(self.alias.to_live(url))] = None
            self.handoff.append((spec, referer))

    # ------------------------------------------------------------------ robots
    @staticmethod
    def _origin(live_url: str) -> str:
        parts = urlsplit(live_url)
        return f"{parts.scheme}://{parts.netloc}"

    def _allowed(self, live_url: str) -> bool:
        """Whether this pass may ask for the URL: its host has no delay and robots.txt allows it."""
        origin = self._origin(live_url)
        if origin not in self._hosts:
            self._hosts[origin] = self._host_rules(origin)
        rules = self._hosts[origin]
        return rules is True or (rules is not None and rules.can_fetch(live_url, self.p.user_agent))

    def _host_rules(self, origin: str):
        host = urlsplit(origin).hostname or ""
        if urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
            return None  # the crawler's proxy middleware knows how to get there
        if not self.p.obey_robots:
            return True
        from protego import Protego  # Scrapy's robots.txt parser

        reply = self.client.get(origin + "/robots.txt", {}, max_body=ROBOTS_MAX_BYTES)
        if reply.status is not None:
            self.requests += 1
            self.sink.add(Fetch(url=self.alias.canon(origin + "/robots.txt"), kind="robots", outcome="robots",
                                fetched_at=_now(), status=reply.status, bytes=len(reply.body or b"")))
        if reply.status is not None and 400 <= reply.status < 500:
            return True  # no robots.txt: everything allowed (as Scrapy reads it)
        if reply.status != 200 or reply.body is None:
            return None  # redirect, 5xx, error: the crawler decides
        rules = Protego.parse(reply.body.decode("utf-8", errors="ignore"))
        return None if rules.crawl_delay(self.p.user_agent) else rules
