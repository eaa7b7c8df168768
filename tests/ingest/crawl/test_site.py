"""The demo website generator (deterministic, complete inventory) and the loopback server."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from ingest.crawl.server import SiteServer
from demo.site import DEMO_ORIGIN, build_site


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_site_is_deterministic_and_its_inventory_is_complete(tmp_path, demo_site, mini_demo):
    again = build_site(mini_demo(tmp_path / "demo"))
    assert _digest(Path(again["site_dir"])) == _digest(Path(demo_site["site_dir"]))
    assert {k: v for k, v in again.items() if k not in ("site_dir", "derived_from")} == \
           {k: v for k, v in demo_site.items() if k not in ("site_dir", "derived_from")}
    root = Path(demo_site["site_dir"])
    for url in list(demo_site["images"]) + list(demo_site["dropped"]):
        assert (root / url.removeprefix(DEMO_ORIGIN + "/")).is_file(), url
    assert set(demo_site["dropped"].values()) == {"too_large", "truncated", "content_mismatch", "decompression_bomb"}
    assert "Disallow: /private/" in (root / "robots.txt").read_text()


def _get(url: str):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_server_serves_files_routes_and_hides_private_names(demo_site):
    with SiteServer(demo_site["site_dir"]) as site:
        status, headers, body = _get(site.origin + "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"Catalogue" in body
        assert _get(site.origin + "/_routes.json")[0] == 404
        assert _get(site.origin + "/../site_truth.json")[0] == 404
        status, headers, _ = _get(site.origin + "/partner")
        assert status == 302 and headers["Location"] == site.other_origin + "/gallery"
        status, headers, body = _get(site.origin + "/images/bomb/zeros.png")
        assert headers["Content-Encoding"] == "gzip" and len(body) < 100_000
        assert headers["Last-Modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"
        assert [h.path for h in site.hits][:2] == ["/", "/_routes.json"]
