"""The generic catalogue spider: everything it does comes from the ``crawl`` params section.

From each page it takes the images (``crawl.images`` selector, URL in ``crawl.image_attr``), their
label (``crawl.label``: a selector's text, a breadcrumb position, a URL regex, the alt text, an
attribute or the link text; ``label.on: image`` runs the selector / regex on each image's element /
URL instead of the page's) and
the license hint (``rel=license`` link, else ``crawl.license``), and follows links that match
``crawl.follow.allow`` and not ``deny`` (one level deeper, up to ``max_depth``) and pagination links
(same depth). Off-domain links are logged as dropped, never requested; ``max_pages`` caps the pages.

Every outcome — page, image, redirect hop, drop, error — becomes a :class:`Fetch` item for the
pipelines. A site needing custom extraction subclasses this and overrides :meth:`page_label`,
:meth:`image_label`, :meth:`image_nodes` or :meth:`license_hint`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.sitemap import Sitemap

from ingest.crawl.image_urls import data_url_drop, image_src
from ingest.crawl.items import Fetch
from ingest.crawl.middlewares import Dropped
from ingest.crawl.urls import UrlAlias, crawl_domains, in_domains
from sluice.selectors import compile_selector, node_text


# Label sources read from each image, whatever ``label.on`` says.
PER_IMAGE_SOURCES = ("alt", "attr", "link_text")
def _now() -> datetime:
    return datetime.now(timezone.utc)


def _header(response, name: str) -> str | None:
    return (response.headers.get(name) or b"").decode("latin-1") or None


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def describe_failure(failure) -> dict:
    """Fetch fields (outcome, status, error...) for a failed request."""
    exc = failure.value
    retries = failure.request.meta.get("retry_times", 0)
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if isinstance(exc, HttpError):
        return {"outcome": "error", "status": exc.response.status, "bytes": len(exc.response.body),
                "error": f"HTTP {exc.response.status}{after}"}
    if isinstance(exc, Dropped):
        return {"outcome": f"dropped:{exc.reason}", "details": exc.details, "status": exc.status, "bytes": exc.bytes}
    if isinstance(exc, StopDownload) and exc.fail:  # our wire-size guard stopped it; the response is partial
        response = exc.response
        return {"outcome": "dropped:too_large", "status": response.status, "bytes": len(response.body),
                "details": failure.request.meta.get("sluice_drop") or f"more than crawl.max_bytes (HTTP {response.status})"}
    if isinstance(exc, IgnoreRequest):
        text = str(exc)
        if "robots.txt" in text:
            return {"outcome": "dropped:robots", "robots": "disallowed", "details": "disallowed by robots.txt"}
        if "max redirections" in text:
            return {"outcome": "dropped:redirect_limit", "details": f"more than the allowed redirects ({text})"}
        return {"outcome": "dropped:ignored", "details": text}
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if "max size" in text or name == "DownloadCancelledError":
        return {"outcome": "dropped:too_large", "details": text or "more than crawl.max_bytes (download cancelled)"}
    if "Timeout" in name or "timed out" in text.lower():
        return {"outcome": "error", "error": f"timeout{after}: {text}"}
    return {"outcome": "error", "error": f"{name}{after}: {text}"[:500]}


class CatalogueSpider(scrapy.Spider):
    name = "catalogue"

    def __init__(self, params, start_urls: list[str], alias: UrlAlias | None = None, sink=None, journal=None,
                 validators: dict | None = None, revalidation=None, **kwargs):
        super().__init__(**kwargs)
        self.params = params
        self.revalidation = revalidation  # revalidate.Revalidation that ran first: its hand-over is the frontier
        self.settled: set[str] = revalidation.settled if revalidation is not None else set()
        self.validators = validators or {}  # url -> state.Validators of images already landed
        self.alias = alias or UrlAlias()
        self.sink, self.journal = sink, journal
        self.start_urls_live = list(start_urls)
        self.allowed_domains = crawl_domains(params.allowed_domains, start_urls)
        self.image_selector = compile_selector(params.images)
        label = params.label
        self.label_selector = compile_selector(label.selector) if label.selector else None
        self.label_pattern = re.compile(label.pattern) if label.pattern else None
        follow = params.follow
        self.pagination = compile_selector(follow.pagination) if follow.pagination else None
        restrict = compile_selector(follow.restrict) if follow.restrict else None
        self.links = LinkExtractor(allow=follow.allow, deny=follow.deny,
                                   restrict_css=restrict.expr if restrict and restrict.kind == "css" else (),
                                   restrict_xpaths=restrict.expr if restrict and restrict.kind == "xpath" else ())
        self.pages_seen: set[str] = set(revalidation.pages_seen) if revalidation is not None else set()
        self.budget_skipped = 0
        self.depth_skipped = 0
        self.fresh_skipped = 0  # landed images checked less than recrawl_after ago: not requested
        self.started_at = _now()
        # With the HTTP cache on, every request states how old a cached answer may be (0 = revalidate).
        self.cache_control = f"max-age={int(params.recrawl_after or 0)}" if params.http_cache else None

    # ------------------------------------------------------------------ requests
    async def start(self):
        pending = self.journal.pending() if self.journal is not None else []
        done = self.journal.done if self.journal is not None else set()
        if self.revalidation is not None:  # it walked the start URLs; what it could not settle is asked here
            for spec, referer in self.revalidation.handoff:
                yield self._request(spec, referer=referer)
            pending, start_urls = [], []
        else:
            start_urls = self.start_urls_live
        if self.params.url_list is not None:  # the images a file lists, each with its label
            for out in self._listed(done):
                yield out
        for url in start_urls:
            if self.alias.canon(url) not in done:
                yield self._request({"url": self.alias.canon(url), "kind": "page", "depth": 0})
        if self.params.sitemap:  # each start host's /sitemap.xml lists more pages (or more sitemaps)
            for origin in dict.fromkeys(f"{p.scheme}://{p.netloc}" for p in map(urlsplit, self.start_urls_live)):
                if self.alias.canon(origin + "/sitemap.xml") not in done:
                    yield self._request({"url": self.alias.canon(origin + "/sitemap.xml"), "kind": "sitemap"})
        for child in pending:
            for out in self._follow(child, child.get("page_url")):
                yield out

    def _listed(self, done):
        """The requests for the images ``crawl.url_list`` lists, and a logged drop for each row that is none."""
        from ingest.crawl.url_list import read_rows

        name = Path(self.params.url_list.path).name
        for row in read_rows(self.params.url_list, self.params.label.source == "column"):
            if row.url is None:
                yield Fetch(url=f"list:{name}:{row.line}", kind="image", outcome=f"dropped:{row.reason}", fetched_at=_now(),
                            details=row.details, label=row.label)
                continue
            url = self.alias.canon(row.url)
            if url in done or url in self.settled:
                continue
            if self._fresh(url):
                self.fresh_skipped += 1
                continue
            yield self._request({"url": url, "kind": "image", "page_url": None, "license": row.license or self.params.license,
                                 "alt": None, "label": row.label, "item_id": row.item_id, "split": row.split,
                                 "listed": True})

    def _claim_page(self, url: str) -> bool:
        """Count a page against ``max_pages``; False when it was seen already or the budget is spent."""
        if url in self.pages_seen:
            return False
        if self.params.max_pages and len(self.pages_seen) >= self.params.max_pages:
            self.budget_skipped += 1
            return False
        self.pages_seen.add(url)
        return True

    def _request(self, spec: dict, referer: str | None = None) -> scrapy.Request:
        is_page = spec["kind"] == "page"
        if is_page:
            self.pages_seen.add(spec["url"])
        headers = {"Referer": self.alias.to_live(referer)} if referer else {}
        meta = {"spec": spec}
        if self.cache_control:
            headers["Cache-Control"] = self.cache_control
        known = self.validators.get(spec["url"])
        if is_page and (self.journal is None or spec["url"] not in self.journal.known):
            known = None  # a 304 page would leave its links unknown
        if known is not None:  # a conditional GET: 304 when the landed image / parsed page is unchanged
            headers.update(known.headers())
            meta["handle_httpstatus_list"] = [304]
        callback = {"page": self.parse_page, "image": self.parse_image, "sitemap": self.parse_sitemap}[spec["kind"]]
        return scrapy.Request(self.alias.to_live(spec["url"]), callback=callback, errback=self.failed,
                              priority=10 if spec["kind"] == "image" else 0, headers=headers, meta=meta)

    # ------------------------------------------------------------------ extraction (override points)
    def image_nodes(self, response):
        return self.image_selector.select(response)

    def page_label(self, response) -> str | None:
        """The label every image of the page shares (None when labels are read per image)."""
        label = self.params.label
        if label.on == "image" or label.source in PER_IMAGE_SOURCES:
            return None
        if label.source == "selector":
            return next((t for t in map(node_text, self.label_selector.select(response)) if t), None)
        if label.source == "breadcrumb":
            crumbs = [t for t in map(node_text, self.label_selector.select(response)) if t]
            try:
                return crumbs[label.position]
            except IndexError:
                return None
        if label.source == "url_regex":
            return self._url_label(self.alias.canon(response.url))
        return None

    def image_label(self, node, url: str, alt: str | None, page_label: str | None) -> str | None:
        """The label of one image: read from its element or URL, else the page's label."""
        label = self.params.label
        element = None if isinstance(node.root, str) else node  # a selected URL string has no element
        if label.source == "alt":
            return alt
        if label.source == "attr":
            return _clean(element.attrib.get(label.attr)) if element is not None else None
        if label.source == "link_text":
            links = element.xpath("ancestor-or-self::a[1]") if element is not None else []
            return node_text(links[0]) if links else None
        if label.on == "image" and label.source == "url_regex":
            return self._url_label(url)
        if label.on == "image" and label.source == "selector":
            if element is None:
                return None
            return next((t for t in map(node_text, self.label_selector.select(element)) if t), None)
        return page_label

    def _url_label(self, url: str) -> str | None:
        match = self.label_pattern.search(url)
        if not match:
            return None
        return match.groupdict().get("label") or (match.group(1) if match.re.groups else match.group(0))

    def license_hint(self, response) -> str | None:
        found = response.css('link[rel~="license"]::attr(href), a[rel~="license"]::attr(href)').get()
        return urljoin(response.url, found) if found else self.params.license

    # ------------------------------------------------------------------ callbacks
    def _fetch(self, response, kind: str, outcome: str, **fields) -> Fetch:
        """The Fetch for a response; ``status`` is what came over the wire (304 for a cache revalidation)."""
        referer = response.request.headers.get("Referer")
        fields.setdefault("etag", _header(response, "ETag"))
        fields.setdefault("last_modified", _header(response, "Last-Modified"))
        cached = "cached" in response.flags
        return Fetch(url=self.alias.canon(response.url), kind=kind, outcome=outcome, fetched_at=_now(),
                     status=response.meta.get("sluice_wire_status", response.status), bytes=len(response.body),
                     referer=self.alias.canon(referer.decode("latin-1")) if referer else None,
                     robots="allowed" if self.params.obey_robots else "n/a", from_cache=cached, **fields)

    def parse_page(self, response):
        spec = response.meta["spec"]
        if response.status == 304:  # unchanged: follow the links it had when last parsed
            page_url = self.alias.canon(response.url)
            known = self.validators[spec["url"]]
            yield self._fetch(response, "page", "not_modified", etag=_header(response, "ETag") or known.etag,
                              last_modified=_header(response, "Last-Modified") or known.last_modified)
            yield from self._follow_children(page_url, self.journal.known[spec["url"]])
            return
        if not isinstance(response, TextResponse):
            yield self._fetch(response, "page", "dropped:not_html",
                              details=f"Content-Type {response.headers.get('Content-Type', b'').decode()}")
            return
        yield self._fetch(response, "page", "page")
        page_url = self.alias.canon(response.url)
        images, inline = self._image_specs(response, page_url)
        for url, reason, details in inline:  # never requested, but logged: nothing on a page is skipped silently
            yield Fetch(url=url, kind="image", outcome=f"dropped:{reason}", fetched_at=_now(), referer=page_url,
                        robots="n/a", details=details)
        yield from self._follow_children(page_url, images + self._link_specs(response, spec["depth"]))

    def _follow_children(self, page_url: str, children: list[dict]):
        if self.journal is not None:
            self.journal.links(page_url, children)
        done = self.journal.done if self.journal is not None else ()
        for child in children:
            if child["url"] not in done and child["url"] not in self.settled:
                yield from self._follow(child, page_url)

    def _follow(self, child: dict, referer: str | None):
        """The request for a child link or image, a logged drop when it is off-domain, or nothing."""
        if not in_domains(self.alias.to_live(child["url"]), self.allowed_domains):
            yield Fetch(url=child["url"], kind=child["kind"], outcome="dropped:offsite", fetched_at=_now(),
                        referer=referer, details=f"not in allowed domains ({', '.join(self.allowed_domains)})")
        elif child["kind"] == "image" and self._fresh(child["url"]):
            self.fresh_skipped += 1
        elif child["kind"] != "page" or self._claim_page(child["url"]):
            yield self._request(child, referer=referer)

    def _fresh(self, url: str) -> bool:
        """A landed image checked less than ``recrawl_after`` seconds ago is not asked for again."""
        known, after = self.validators.get(url), self.params.recrawl_after
        return known is not None and after is not None and (self.started_at - known.checked_at).total_seconds() < after

    def _image_specs(self, response, page_url: str) -> tuple[list[dict], list[tuple[str, str]]]:
        """The page's image requests, and as (logged URL, reason, details) drops its inline ``data:`` images and
        the selected images that give no URL."""
        label = self.page_label(response)
        license_ = self.license_hint(response)
        specs, inline = [], []
        for n, node in enumerate(self.image_nodes(response)):
            if isinstance(node.root, str):
                src, alt = node.root, None
            else:
                src, alt = image_src(node.attrib, self.params.image_attr), node.attrib.get("alt")
            if not src or not src.strip():
                inline.append((f"{page_url}#image-{n + 1}", "no_url", f"selected image {n + 1} of the page gives no URL "
                               f"(crawl.image_attr: {self.params.image_attr})"))
                continue
            if src.strip()[:5].lower() == "data:":
                dropped, details = data_url_drop(src.strip())
                inline.append((dropped, "data_url", details))
                continue
            url = self.alias.canon(response.urljoin(src.strip()))
            alt = _clean(alt)
            specs.append({"url": url, "kind": "image", "page_url": page_url, "license": license_, "alt": alt,
                          "label": self.image_label(node, url, alt, label)})
        return specs, inline

    def _link_specs(self, response, depth: int) -> list[dict]:
        specs = []
        if self.pagination is not None:
            for node in self.pagination.select(response):
                href = node.root if isinstance(node.root, str) else node.attrib.get("href")
                if href:
                    specs.append({"url": self.alias.canon(response.urljoin(href.strip())), "kind": "page", "depth": depth})
        if depth >= self.params.max_depth:
            self.depth_skipped += 1
            return specs
        for link in self.links.extract_links(response):
            specs.append({"url": self.alias.canon(link.url), "kind": "page", "depth": depth + 1})
        return specs

    def parse_sitemap(self, response):
        """A sitemap's ``<loc>`` URLs: pages at depth 0 (``urlset``) or further sitemaps (``sitemapindex``)."""
        try:
            sitemap = Sitemap(response.body)
        except Exception as err:  # lxml gives up on some non-XML bodies; others parse to an empty root
            sitemap, details = None, f"not a sitemap: {err}"[:500]
        else:
            details = None if sitemap.type in ("urlset", "sitemapindex") else f"not a sitemap (root <{sitemap.type}>)"
        if details:
            yield self._fetch(response, "sitemap", "dropped:not_a_sitemap", details=details)
            return
        yield self._fetch(response, "sitemap", "sitemap")
        kind = "sitemap" if sitemap.type == "sitemapindex" else "page"
        children = [{"url": self.alias.canon(response.urljoin(entry["loc"].strip())), "kind": kind, "depth": 0}
                    for entry in sitemap if entry.get("loc")]
        yield from self._follow_children(self.alias.canon(response.url), children)

    def parse_image(self, response):
        spec = response.meta["spec"]
        etag, modified = _header(response, "ETag"), _header(response, "Last-Modified")
        known = self.validators.get(spec["url"])
        if known is not None and (response.status == 304 or known.matches(etag, modified)):
            # Unchanged since it landed: logged with its validators (the next crawl's), nothing to land.
            yield self._fetch(response, "image", "not_modified", etag=etag or known.etag,
                              last_modified=modified or known.last_modified, page_url=spec.get("page_url"))
            return
        yield self._fetch(response, "image", "image", body=response.body, content_type=_header(response, "Content-Type"),
                          page_url=spec.get("page_url"), label=spec.get("label"), license=spec.get("license"),
                          alt=spec.get("alt"), item_id=spec.get("item_id"), split_hint=spec.get("split"),
                          listed=bool(spec.get("listed")))

    def failed(self, failure):
        request = failure.request
        spec = request.meta.get("spec", {"kind": "page"})
        referer = request.headers.get("Referer")
        fields = {"robots": "allowed" if self.params.obey_robots else "n/a", **describe_failure(failure)}
        yield Fetch(url=self.alias.canon(request.url), kind=spec["kind"], fetched_at=_now(),
                    referer=self.alias.canon(referer.decode("latin-1")) if referer else None,
                    page_url=spec.get("page_url"), label=spec.get("label"), item_id=spec.get("item_id"),
                    listed=bool(spec.get("listed")), **fields)

    def record_redirect(self, request, response, target: str) -> None:
        """Called by the redirect guard for every hop (a loop ends at the dupefilter or REDIRECT_MAX_TIMES)."""
        if self.sink is not None:
            self.sink.add(Fetch(url=self.alias.canon(request.url), kind=request.meta.get("spec", {}).get("kind", "page"),
                                outcome="redirect", fetched_at=_now(), status=response.status,
                                robots="allowed" if self.params.obey_robots else "n/a",
                                details=f"to {self.alias.canon(target)}"))

    def record_robots(self, request, response) -> None:
        """Called by the crawl-delay middleware: robots.txt fetches are requests too."""
        if self.sink is not None:
            self.sink.add(Fetch(url=self.alias.canon(request.url), kind="robots", outcome="robots", fetched_at=_now(),
                                status=response.status, bytes=len(response.body)))
