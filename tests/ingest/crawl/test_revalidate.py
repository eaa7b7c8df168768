"""The revalidation pass of a re-crawl (ingest/crawl/revalidate.py): conditional GETs outside Scrapy, politely."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from demo.site import SiteItem, write_catalogue
from ingest.crawl.server import SiteServer
from ingest.crawl.stage import crawl
from sluice.config import parse_params
from sluice.lake import Lake


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _site(root: Path, n: int = 6, robots: str = "User-agent: *\nAllow: /\n") -> None:
    write_catalogue(root, [SiteItem(str(i % 2), f"/images/{i}.png", _png(i), f"item {i}") for i in range(n)], per_page=3)
    (root / "robots.txt").write_text(robots)


def _params(tmp_path: Path, **crawl_overrides):
    return parse_params({"lake": {"root": str(tmp_path / "lake")},
                         "crawl": {"start_urls": ["{demo_site}/"], "images": "img.photo", "follow": {"pagination": "a.next"},
                                   "autothrottle": False, "concurrency_per_domain": 4, "batch_rows": 4,
                                   "job_dir": str(tmp_path / "job"), **crawl_overrides}}, "t.yaml")


def _log(lake: Lake, run_id: str) -> list[dict]:
    return [r for r in lake.read("crawl_log").to_pylist() if r["run_id"] == run_id]


def test_an_unchanged_site_is_revalidated_without_scrapy_in_one_commit(tmp_path):
    root = tmp_path / "site"
    _site(root)
    params, lake = _params(tmp_path), Lake(str(tmp_path / "lake"))
    with SiteServer(root) as site:
        first = crawl(params, site=site)
        site.hits.clear()
        again = crawl(params, site=site)
        hits = site.hits
    assert again["handed_over"] == 0 and again["revalidated"] == first["counters"]["pages"] + 6
    assert all(h.conditional for h in hits if h.path != "/robots.txt")
    assert sorted(h.path for h in hits) == sorted(set(h.path for h in hits))  # nothing asked twice
    c = again["counters"]
    assert (c["new_images"], c["images"], c["pages"], c["not_modified"], c["commits"]) == (0, 0, 0, 6, 1)
    rows = _log(lake, again["run_id"])
    assert {(r["outcome"], r["status"]) for r in rows if r["url"].endswith("robots.txt")} == {("robots", 200)}
    rest = [r for r in rows if not r["url"].endswith("robots.txt")]
    assert {(r["outcome"], r["status"], r["from_cache"]) for r in rest} == {("not_modified", 304, False)}
    images = [r for r in rest if "/images/" in r["url"]]
    assert len(images) == 6 and all(r["etag"] and r["last_modified"] and r["referer"] for r in images)


def test_robots_changes_and_changed_images_keep_the_crawl_rules(tmp_path):
    root = tmp_path / "site"
    _site(root)
    params, lake = _params(tmp_path), Lake(str(tmp_path / "lake"))
    with SiteServer(root) as site:
        crawl(params, site=site)
        (root / "robots.txt").write_text("User-agent: *\nDisallow: /images/2.png\n")
        (root / "images" / "3.png").write_bytes(_png(3)[:len(_png(3)) // 2])  # changed, and now truncated
        (root / "images" / "4.png").write_bytes(_png(44))  # changed, valid
        site.hits.clear()
        again = crawl(params, site=site)
        paths = site.paths()
    assert "/images/2.png" not in paths  # neither the pass nor the crawler asked for a disallowed URL
    assert paths.count("/images/3.png") == 1 and paths.count("/images/4.png") == 1  # landed by the pass itself
    assert again["handed_over"] == 1  # 2.png: the crawler logs the robots drop
    by_url = {r["url"].rsplit("/", 1)[1]: r for r in _log(lake, again["run_id"]) if "/images/" in r["url"]}
    assert by_url["2.png"]["outcome"] == "dropped:robots"
    assert (by_url["3.png"]["outcome"], by_url["3.png"]["status"]) == ("dropped:truncated", 200)
    assert (by_url["4.png"]["outcome"], by_url["4.png"]["status"]) == ("image", 200)
    c = again["counters"]
    assert (c["new_images"], c["not_modified"], c["quarantined"]) == (1, 3, 1)
    landed = {r["source_uri"].rsplit("/", 1)[1]: r for r in lake.read("raw_images").to_pylist()
              if r["run_id"] == again["run_id"]}
    assert set(landed) == {"4.png"} and landed["4.png"]["content"] == _png(44) and landed["4.png"]["source_label"] == "0"


def test_a_crawl_delay_or_a_429_leaves_the_host_to_the_crawler(tmp_path):
    root = tmp_path / "site"
    _site(root, n=3, robots="User-agent: *\nCrawl-delay: 0.05\n")
    params = _params(tmp_path, retries=1, backoff_base=0.05)
    with SiteServer(root) as site:
        crawl(params, site=site)
        again = crawl(params, site=site)
    assert (again["revalidated"], again["counters"]["not_modified"]) == (0, 3)  # all asked by Scrapy, with its delay

    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    busy = {"left": 1}

    def hook(handler):
        if handler.path == "/images/1.png" and busy["left"]:
            busy["left"] -= 1
            return 429, {"Retry-After": "0"}, b""
        return None

    with SiteServer(root, hook=hook) as site:
        third = crawl(params, site=site)
        paths = site.paths()
    assert third["handed_over"] >= 1 and paths.count("/images/1.png") == 2  # the crawler retried it
    assert third["counters"]["not_modified"] == 3 and third["counters"]["errors"] == 0
