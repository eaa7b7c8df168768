"""Data Docs rendered offline: vendored CSS/JS, pages rewritten, checked in a real headless Chromium
whose every network request goes to a trap (tests/conftest.py: offline_chromium)."""

from __future__ import annotations

import re
from pathlib import Path

from quality.offline_docs import ASSETS, LOCAL, NETWORK_ASSET, make_offline, rewrite

PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<link rel="stylesheet" type="text/css" href="https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css">
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<style>.navbar-brand a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0; }</style>
</head><body>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=abc"/>
<a href="https://greatexpectations.io">Great Expectations</a>
</body></html>"""


def test_every_vendored_file_exists_with_its_licence():
    for local in set(LOCAL.values()):
        assert (ASSETS / local).is_file(), local
    for folder in ASSETS.iterdir():
        if folder.is_dir() and folder.name != "popper":  # popper.js ships its MIT notice in the file's header
            assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), folder
    assert "MIT" in (ASSETS / "popper" / "popper.min.js").read_text()[:200]


def test_rewrite_points_assets_at_local_copies_and_drops_the_rest():
    dropped: list[str] = []
    html = rewrite(PAGE, "../../", dropped)
    assert 'href="../../static/vendor/bootstrap/bootstrap.min.css"' in html
    assert 'href="../../static/vendor/bootstrap-table/bootstrap-table-filter-control.min.css"' in html
    assert 'src="../../static/vendor/jquery/jquery.min.js"></script>' in html
    assert "vega" not in html.replace("offline: dropped vega@5", "") and dropped == ["https://cdn.jsdelivr.net/npm/vega@5"]
    assert "url('../../static/images/logo-long.png')" in html and 'src="../../static/images/logo-long.png"' in html
    assert "dataContextId" not in html
    assert '<a href="https://greatexpectations.io">' in html  # a link to follow is not a request
    assert not NETWORK_ASSET.search(html)


def test_make_offline_copies_assets_and_rewrites_nested_pages(tmp_path):
    site = tmp_path / "docs"
    (site / "validations" / "a" / "b").mkdir(parents=True)
    (site / "static" / "styles").mkdir(parents=True)
    (site / "index.html").write_text(PAGE)
    (site / "validations" / "a" / "b" / "run.html").write_text(PAGE)
    (site / "static" / "styles" / "x.css").write_text(".a{background:url('https://x.s3.amazonaws.com/full_logo_dark.png')}")
    result = make_offline(site)
    assert result == {"pages": 2, "rewritten": 3, "dropped": ["vega@5"]}
    assert (site / "static" / "vendor" / "jquery" / "jquery.min.js").is_file()
    assert not (site / "static" / "vendor" / "README.md").exists()
    nested = (site / "validations" / "a" / "b" / "run.html").read_text()
    assert 'src="../../../static/vendor/jquery/jquery.min.js"' in nested
    assert "url('../../static/images/logo-long.png')" in (site / "static" / "styles" / "x.css").read_text()
    assert make_offline(site)["rewritten"] == 0  # idempotent


def test_the_trap_sees_a_page_that_reaches_for_the_network(offline_chromium, tmp_path):
    page = tmp_path / "net.html"
    page.write_text('<!doctype html><img src="http://example.invalid/x.png"><script src="https://cdn.example.invalid/a.js">'
                    "</script><p id=x>hi</p>")
    dom, requests = offline_chromium(page)
    assert '<p id="x">hi</p>' in dom
    assert any("example.invalid" in r for r in requests), requests


def test_data_docs_index_renders_its_table_with_no_network(world, offline_chromium):
    world.run("gold", docs=True)
    site = Path(world.params.quality.reports_dir) / "docs"
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 3
    for page in pages:
        assert not NETWORK_ASSET.search(page.read_text()), page
    dom, requests = offline_chromium(site / "index.html")
    assert requests == []
    # bootstrap-table (a jQuery plugin) built the validation-results table from the data in the page:
    # the vendored scripts loaded and ran (without them the table is an empty <table> element)
    runs = list((site / "validations").rglob("*.html"))
    assert runs
    wrapper = re.search(r'<div class="bootstrap-table bootstrap4">.*?<table id="section-1-content-block-2-1-body-table"'
                        r".*?</table>.*?Showing 1 to (\d+) of (\d+) rows", dom, re.S)
    assert wrapper, dom[:2000]
    rows = re.findall(r'<tr class="clickable-row" data-href="(validations/[^"]+)" data-index="\d+"', wrapper.group(0))
    assert int(wrapper.group(2)) == len(runs) and len(rows) == int(wrapper.group(1)) == min(len(runs), 10)
    assert {(site / r).resolve() for r in rows} <= {p.resolve() for p in runs}
    assert "ge-success-icon" in wrapper.group(0)
