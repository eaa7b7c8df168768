"""Politeness against real loopback servers: Crawl-delay, timeouts with retries, Retry-After."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from ingest.crawl.middlewares import parse_retry_after
from ingest.crawl.server import SiteServer
from demo.site import SiteItem, write_catalogue
from ingest.crawl.stage import crawl
from sluice.lake import Lake


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_retry_after_forms():
    assert parse_retry_after(b"3") == 3.0
    assert 0 <= parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))) <= 5
    assert parse_retry_after(b"soon") is None and parse_retry_after(None) is None


@pytest.mark.slow
def test_crawl_delay_is_honoured_between_requests(tmp_path, crawl_params):
    root = tmp_path / "site"
    write_catalogue(root, [SiteItem("a", f"/images/{i}.png", _png(i), "x") for i in range(4)], per_page=10)
    (root / "robots.txt").write_text("User-agent: *\nCrawl-delay: 0.4\n")
    params = crawl_params(concurrency_per_domain=4, autothrottle=True)
    with SiteServer(root) as site:
        result = crawl(params, site=site)
        hits = list(site.hits)
    assert result["counters"]["new_images"] == 4
    assert hits[0].path == "/robots.txt" and len(hits) == 1 + 1 + 1 + 4 + 4  # robots, index, category, items, images
    gaps = [b.at - a.at for a, b in zip(hits[1:], hits[2:])]
    assert min(gaps) >= 0.4 - 0.02, gaps  # the slot delay is exact (no jitter); allow timer granularity


@pytest.mark.slow
def test_slow_server_times_out_is_retried_then_logged_and_retry_after_is_obeyed(tmp_path, crawl_params):
    busy_hits = []

    def hook(handler):
        path = handler.path
        if path == "/":
            return 200, {"Content-Type": "text/html"}, b'<a href="/slow.html">slow</a> <a href="/item.html">item</a>'
        if path == "/item.html":
            return 200, {"Content-Type": "text/html"}, b'<img class="photo" src="/busy.png" alt="a">'
        if path == "/slow.html":
            time.sleep(2.5)
            return 200, {"Content-Type": "text/html"}, b"too late"
        if path == "/busy.png":
            busy_hits.append(time.monotonic())
            if len(busy_hits) == 1:
                return 429, {"Retry-After": "2", "Content-Type": "text/plain"}, b"slow down"
            return 200, {"Content-Type": "image/png"}, _png(7)
        return None

    params = crawl_params(timeout=1.0, retries=1, backoff_base=0.1, autothrottle=False,
                          label={"source": "alt"})
    with SiteServer(None, hook=hook) as site:
        result = crawl(params, site=site)
        hits = list(site.hits)
    assert [h.path for h in hits].count("/slow.html") == 2  # first try + one retry
    log = Lake(params.lake.root).read("crawl_log").to_pylist()
    [slow] = [r for r in log if r["url"].endswith("/slow.html")]
    assert slow["outcome"] == "error" and slow["error"].startswith("timeout after 1 retry")
    assert len(busy_hits) == 2 and busy_hits[1] - busy_hits[0] >= 2.0 - 0.05
    first_429 = busy_hits[0]
    # the whole host waited; a request the crawler sent before the 429 reached it (e.g. the timed-out
    # page's retry, already in flight on a loaded machine) may still arrive in the first moments
    in_flight = 0.5
    assert not [h for h in hits if first_429 + in_flight < h.at < first_429 + 1.95]
    assert result["counters"]["new_images"] == 1


@pytest.mark.slow
def test_page_and_depth_budgets(tmp_path, crawl_params):
    root = tmp_path / "site"
    write_catalogue(root, [SiteItem(str(i % 4), f"/images/{i}.png", _png(i), "x") for i in range(12)], per_page=2)
    params = crawl_params(max_depth=1, max_pages=5, autothrottle=False)
    with SiteServer(root) as site:
        result = crawl(params, site=site)
        paths = [h.path for h in site.hits]
    assert not [p for p in paths if p.startswith(("/item/", "/images/"))]  # items are 2 link hops away
    pages = [p for p in paths if p != "/robots.txt"]
    assert len(pages) == 5 and pages[0] == "/"  # index + 4 of the 8 category pages: the budget
    assert result["budget_skipped"] > 0 and result["counters"]["pages"] == 5
