"""Incremental re-crawls: conditional GETs from the validators kept in crawl_log, with and without the HTTP cache."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ingest.crawl.server import SiteServer
from demo.site import SiteItem, write_catalogue
from ingest.crawl.stage import crawl
from sluice.config import parse_params
from sluice.lake import Lake

T0 = 1_600_000_000


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _publish(root: Path, seeds: list[int]) -> None:
    """Write the catalogue; files whose bytes did not change keep their time, changed or new ones get a later one."""
    before = {p: (p.read_bytes(), p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}
    later = max([t for _, t in before.values()], default=T0) + 100
    items = [SiteItem(str(i % 2), f"/images/{i}.png", _png(seed), f"item {i}") for i, seed in enumerate(seeds)]
    write_catalogue(root, items, per_page=3)
    for path in root.rglob("*"):
        if path.is_file():
            old = before.get(path)
            stamp = old[1] if old and old[0] == path.read_bytes() else later
            os.utime(path, (stamp, stamp))


def _image_hits(site: SiteServer) -> list:
    return [h for h in site.hits if h.path.startswith("/images/")]


@pytest.mark.parametrize("http_cache, job_dir", [(False, False), (True, False), (False, True)],
                         ids=["no-cache", "cache", "journal"])
def test_a_recrawl_sends_conditional_requests_lands_changes_and_finds_new_images(tmp_path, http_cache, job_dir):
    root = tmp_path / "site"
    _publish(root, list(range(6)))
    params = parse_params({"lake": {"root": str(tmp_path / "lake")},
                           "crawl": {"start_urls": ["{demo_site}/"], "images": "img.photo", "follow": {"pagination": "a.next"},
                                     "autothrottle": False, "concurrency_per_domain": 2, "batch_rows": 4,
                                     "http_cache": http_cache, "http_cache_dir": str(tmp_path / "cache"),
                                     "job_dir": str(tmp_path / "job") if job_dir else None}}, "t.yaml")
    lake = Lake(str(tmp_path / "lake"))
    with SiteServer(root) as site:  # one port throughout: the cache is keyed by the live URL
        first = crawl(params, site=site)
        assert not [h for h in _image_hits(site) if h.conditional]
        assert first["counters"]["new_images"] == 6

        site.hits.clear()  # unchanged site: only conditional GETs for images, nothing lands
        second = crawl(params, site=site)
        hits = _image_hits(site)
        assert len(hits) == 6 and all(h.conditional for h in hits)
        c = second["counters"]
        assert (c["new_images"], c["images"], c["not_modified"]) == (0, 0, 6)
        assert lake.count("raw_images") == 6
        rows = [r for r in lake.read("crawl_log").to_pylist() if r["run_id"] == second["run_id"] and "/images/" in r["url"]]
        assert {(r["outcome"], r["status"], r["from_cache"]) for r in rows} == {("not_modified", 304, http_cache)}
        assert all(r["etag"] and r["last_modified"] for r in rows)
        if job_dir:  # the journal remembers each page's links: pages too are conditional GETs, answered 304
            assert all(h.conditional for h in site.hits if h.path != "/robots.txt")
            assert c["pages_not_modified"] == first["counters"]["pages"] and c["pages"] == 0

        _publish(root, [0, 1, 2, 3, 40, 5, 6])  # image 4 changes, image 6 is new
        third = crawl(params, site=site)
    c = third["counters"]
    assert (c["new_images"], c["not_modified"]) == (2, 5)
    landed = [r for r in lake.read("raw_images", columns=["source_uri", "content", "run_id"]).to_pylist()
              if r["run_id"] == third["run_id"]]
    assert sorted(r["source_uri"].rsplit("/", 1)[1] for r in landed) == ["4.png", "6.png"]
    assert next(r["content"] for r in landed if r["source_uri"].endswith("/4.png")) == _png(40)


def test_recrawl_after_skips_images_checked_recently(tmp_path):
    root = tmp_path / "site"
    _publish(root, list(range(3)))
    params = parse_params({"lake": {"root": str(tmp_path / "lake")},
                           "crawl": {"start_urls": ["{demo_site}/"], "images": "img.photo", "autothrottle": False,
                                     "recrawl_after": 3600}}, "t.yaml")
    with SiteServer(root) as site:
        crawl(params, site=site)
    with SiteServer(root) as site:
        again = crawl(params, site=site)
        assert not _image_hits(site)
    assert again["fresh_skipped"] == 3 and again["counters"]["images"] == 0
