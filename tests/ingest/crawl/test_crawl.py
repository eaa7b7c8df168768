"""Crawls of the demo website served on 127.0.0.1, checked against the site's own inventory."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from ingest.crawl.imagecheck import has_gps
from ingest.crawl.server import SiteServer
from ingest.crawl.stage import crawl, summarize
from sluice.config import parse_params
from sluice.lake import Lake


@pytest.fixture(scope="module")
def demo_crawl(tmp_path_factory, demo_site):
    """Crawl the demo site twice (the second run must add nothing); keep what the server saw."""
    tmp = tmp_path_factory.mktemp("crawl")
    params = parse_params({"lake": {"root": str(tmp / "lake")},
                           "crawl": {"demo_site_dir": demo_site["site_dir"], "max_bytes": 1_000_000, "batch_rows": 25,
                                     "job_dir": str(tmp / "job"), "max_redirects": 3}}, "test-params.yaml")
    with SiteServer(demo_site["site_dir"]) as site:
        first = crawl(params, site=site)
        first_hits = list(site.hits)
    with SiteServer(demo_site["site_dir"]) as site:  # another port: the canonical origin keeps URLs stable
        second = crawl(params, site=site)
    lake = Lake(str(tmp / "lake"))
    return {"params": params, "first": first, "second": second, "hits": first_hits, "lake": lake,
            "truth": demo_site, "log": lake.read("crawl_log").to_pylist()}


def _outcomes(run, url):
    return [r for r in run["log"] if r["url"] == url and r["run_id"] == run["first"]["run_id"]]


def test_every_expected_image_lands_once_with_its_label(demo_crawl):
    rows = demo_crawl["lake"].read("raw_images", columns=["source", "source_uri", "source_label", "license", "extra"])
    assert set(rows.column("source").to_pylist()) == {"demo-site"}
    landed = dict(zip(rows.column("source_uri").to_pylist(), rows.column("source_label").to_pylist()))
    assert landed == demo_crawl["truth"]["images"]
    assert rows.num_rows == len(landed)
    assert set(rows.column("license").to_pylist()) == {demo_crawl["truth"]["license"]}
    extra = json.loads(rows.column("extra")[0].as_py())
    assert extra["page_url"].startswith("http://demo-site.invalid/item/") and extra["last_modified"]


def test_a_recrawl_adds_nothing(demo_crawl):
    first, second = demo_crawl["first"]["counters"], demo_crawl["second"]["counters"]
    assert first["new_images"] == len(demo_crawl["truth"]["images"])
    assert second["new_images"] == 0 and second["already_present"] == 0  # unchanged: conditional GETs answered 304
    assert second["not_modified"] == first["new_images"]
    assert demo_crawl["lake"].count("raw_images") == first["new_images"]
    assert second["quarantined"] == first["quarantined"]
    assert demo_crawl["lake"].count("quarantine") == first["quarantined"]  # idempotent by key too


def test_gps_is_removed_before_bytes_land(demo_crawl):
    gps_urls = demo_crawl["truth"]["gps_stripped"]
    assert gps_urls
    rows = [r for r in demo_crawl["lake"].read("raw_images").to_pylist() if r["source_uri"] in gps_urls]
    assert len(rows) == len(gps_urls)
    for row in rows:
        assert not has_gps(row["content"])
        assert json.loads(row["extra"])["gps_removed"] is True
        Image.open(io.BytesIO(row["content"])).load()


@pytest.mark.parametrize("kind", ["too_large", "truncated", "content_mismatch", "decompression_bomb"])
def test_bad_responses_are_logged_and_quarantined_with_their_reason(demo_crawl, kind):
    urls = [u for u, reason in demo_crawl["truth"]["dropped"].items() if reason == kind]
    assert urls
    quarantine = {r["row_key"]: r for r in demo_crawl["lake"].read("quarantine").to_pylist()}
    for url in urls:
        assert [(r["outcome"], r["status"]) for r in _outcomes(demo_crawl, url)] == [(f"dropped:{kind}", 200)]
        q = quarantine[url]
        assert (q["source_table"], q["stage"], q["check"], q["reason"]) == ("crawl:demo-site", "crawl", kind, kind)
        assert q["details"]


def test_gzip_bomb_is_not_inflated_past_the_limit(demo_crawl):
    [row] = _outcomes(demo_crawl, "http://demo-site.invalid/images/bomb/zeros.png")
    assert row["outcome"] == "dropped:decompression_bomb" and "expands past crawl.max_bytes 1000000" in row["error"]
    assert row["status"] == 200 and row["bytes"] > 0


def test_disallowed_and_offsite_urls_are_never_requested(demo_crawl):
    paths = [h.path for h in demo_crawl["hits"]]
    assert "/robots.txt" == paths[0]
    assert not [p for p in paths if p.startswith("/private/")]
    assert not [h for h in demo_crawl["hits"] if (h.host or "").startswith("localhost")]  # the off-domain redirect
    assert [r["outcome"] for r in _outcomes(demo_crawl, "http://demo-site.invalid/private/")] == ["dropped:robots"]
    assert _outcomes(demo_crawl, "http://demo-site.invalid/private/")[0]["robots"] == "disallowed"
    assert [r["outcome"] for r in _outcomes(demo_crawl, "https://example.org/gallery")] == ["dropped:offsite"]
    [refused] = _outcomes(demo_crawl, "http://demo-site.invalid/partner")
    assert refused["outcome"] == "dropped:offsite_redirect" and "localhost" in refused["error"]
    assert refused["status"] in (301, 302, 303, 307, 308)


def test_user_agent_names_the_project_and_a_contact(demo_crawl):
    agents = {h.user_agent for h in demo_crawl["hits"]}
    assert agents == {demo_crawl["params"].crawl.user_agent}
    assert "Sluice" in agents.pop()


def test_redirects_are_followed_and_a_loop_ends(demo_crawl):
    [hop] = _outcomes(demo_crawl, "http://demo-site.invalid/old-catalogue.html")
    assert (hop["outcome"], hop["status"]) == ("redirect", 301)
    loop = [p for p in (h.path for h in demo_crawl["hits"]) if p in ("/loop-a", "/loop-b")]
    assert 2 <= len(loop) <= 2 + demo_crawl["params"].crawl.max_redirects
    assert demo_crawl["first"]["finish_reason"] == "finished"


def test_every_page_is_crawled_and_404s_are_errors(demo_crawl):
    pages = {r["url"] for r in demo_crawl["log"] if r["outcome"] == "page" and r["run_id"] == demo_crawl["first"]["run_id"]}
    assert pages == set(demo_crawl["truth"]["pages"])
    for url, what in demo_crawl["truth"]["errors"].items():
        if what == "http 404":
            [row] = _outcomes(demo_crawl, url)
            assert (row["outcome"], row["status"], row["error"]) == ("error", 404, "HTTP 404")


def test_counters_reconcile_and_the_manifest_names_versions(demo_crawl, capsys):
    summary = summarize(demo_crawl["params"], demo_crawl["first"])
    out = capsys.readouterr()
    assert "[crawl] demo-site: requests" in out.err and "reconcile" in out.err and "OK" in out.err
    c = summary["counters"]
    assert c["pages"] == len(demo_crawl["truth"]["pages"])
    assert c["dropped"]["decompression_bomb"] == 2 and c["dropped"]["robots"] == 1
    assert set(summary["versions"]) == {"raw_images", "crawl_log", "quarantine"}
    assert c["requests"] == len([r for r in demo_crawl["log"] if r["run_id"] == demo_crawl["first"]["run_id"]])
