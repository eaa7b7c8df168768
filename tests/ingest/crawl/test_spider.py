"""The catalogue spider's extraction, driven only by params, on a real HTML response (no crawl)."""

from __future__ import annotations

import pytest
from scrapy.http import HtmlResponse, Request

from ingest.crawl.spiders import CatalogueSpider
from ingest.crawl.spiders.catalogue import UrlAlias
from sluice.config import parse_params

PAGE = b"""<!doctype html><html><head><link rel="license" href="/license.html"></head><body>
<nav class="crumbs"><a href="/">Home</a> &rsaquo; <a href="/c/animals/">Animals</a> &rsaquo; <a href="/c/animals/cats/">Cats</a></nav>
<h2 class="tag"> tabby  cat </h2>
<div id="gallery"><img data-src="/img/1.jpg" src="/placeholder.gif" alt=" a  tabby "><img data-src="data:image/png;base64,xx"></div>
<a href="/c/animals/p/2">next</a> <a class="more" href="/c/animals/p/2">more</a>
<a href="/cart">cart</a> <a href="/c/birds/">birds</a> <a href="https://other.example/x">elsewhere</a>
</body></html>"""
URL = "http://127.0.0.1:8000/c/animals/cats/p/tabby-1"


def _spider(**crawl) -> CatalogueSpider:
    params = parse_params({"crawl": crawl}, "t.yaml").crawl
    return CatalogueSpider(params=params, start_urls=["http://127.0.0.1:8000/"],
                           alias=UrlAlias("http://127.0.0.1:8000", "http://shop.invalid"))


def _response() -> HtmlResponse:
    return HtmlResponse(URL, body=PAGE, encoding="utf-8", request=Request(URL, meta={"spec": {"kind": "page", "depth": 0}}))


@pytest.mark.parametrize("label, expected", [
    ({"source": "selector", "selector": "h2.tag"}, "tabby cat"),
    ({"source": "selector", "selector": "//h2[@class='tag']/text()"}, "tabby cat"),
    ({"source": "breadcrumb", "selector": "nav.crumbs a", "position": 1}, "Animals"),
    ({"source": "breadcrumb", "selector": "nav.crumbs a", "position": -1}, "Cats"),
    ({"source": "breadcrumb", "selector": "nav.crumbs a", "position": 9}, None),
    ({"source": "url_regex", "pattern": r"/c/\w+/(?P<label>\w+)/p/"}, "cats"),
    ({"source": "url_regex", "pattern": r"/c/(\w+)/"}, "animals"),
])
def test_label_sources(label, expected):
    assert _spider(images="img", label=label).page_label(_response()) == expected


def test_images_from_an_attribute_with_alt_labels_and_license_hint():
    spider = _spider(images="xpath://div[@id='gallery']//img", image_attr="data-src", label={"source": "alt"})
    [spec], [inline] = spider._image_specs(_response(), "http://shop.invalid/c/animals/cats/p/tabby-1")
    assert spec == {"url": "http://shop.invalid/img/1.jpg", "kind": "image", "alt": "a tabby", "label": "a tabby",
                    "page_url": "http://shop.invalid/c/animals/cats/p/tabby-1",
                    "license": "http://127.0.0.1:8000/license.html"}
    assert inline[0].startswith("data:image/png;base64;sha256=") and inline[1] == "data_url"  # reported, not requested


LAZY = b"""<!doctype html><html><body>
<img src="/placeholder.gif" data-src="/img/lazy.jpg">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-lazy-src="/img/lazy2.jpg">
<img src="/img/small.jpg" srcset="/img/small.jpg 320w, /img/big.jpg 1280w, /img/mid.jpg 640w">
<img srcset="/img/x1.jpg, /img/x2.jpg 2x">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" srcset="/img/only-srcset.jpg 800w">
<picture><source srcset="/img/a.webp" type="image/webp"><img src="/img/a.jpg"></picture>
<img alt="no url at all">
</body></html>"""


def test_image_attr_auto_takes_what_a_browser_would_show():
    """The default, image_attr: auto: a lazy-loading attribute's URL over the placeholder in src, src over srcset
    where both are real, the widest srcset candidate where src is missing or an inline placeholder; an image
    with no URL is a logged drop, not a silent skip."""
    page_url = "http://127.0.0.1:8000/p"
    response = HtmlResponse(page_url, body=LAZY, encoding="utf-8",
                            request=Request(page_url, meta={"spec": {"kind": "page", "depth": 0}}))
    spider = _spider(label={"source": "alt"})
    assert spider.params.image_attr == "auto"
    specs, drops = spider._image_specs(response, page_url)
    assert [s["url"].rsplit("/", 1)[-1] for s in specs] == ["lazy.jpg", "lazy2.jpg", "small.jpg", "x2.jpg",
                                                            "only-srcset.jpg", "a.jpg"]
    assert drops == [(f"{page_url}#image-7", "no_url",
                      "selected image 7 of the page gives no URL (crawl.image_attr: auto)")]
    specs, _ = _spider(image_attr="src", label={"source": "alt"})._image_specs(response, page_url)
    assert specs[0]["url"].endswith("/placeholder.gif")  # an attribute named: that attribute, as before


def test_a_data_url_image_is_logged_as_dropped_with_a_reason():
    spider = _spider(images="xpath://div[@id='gallery']//img", image_attr="data-src", label={"source": "alt"})
    fetches = [item for item in spider.parse_page(_response()) if not isinstance(item, Request)]
    drops = [f for f in fetches if f.kind == "image" and f.outcome.startswith("dropped:")]
    [drop] = drops
    assert (drop.kind, drop.reason, drop.referer) == ("image", "data_url", "http://shop.invalid/c/animals/cats/p/tabby-1")
    assert "data: URL" in drop.details and "not fetched" in drop.details
    assert drop.url.startswith("data:image/png;base64;sha256=") and len(drop.url) < 120


def test_a_data_url_drop_lands_in_crawl_log_and_is_counted(tmp_path):
    from ingest.crawl.sink import LakeSink
    from sluice.lake import Lake

    spider = _spider(images="xpath://div[@id='gallery']//img", image_attr="data-src", label={"source": "alt"})
    [drop] = [f for f in spider.parse_page(_response()) if getattr(f, "reason", None) == "data_url"]
    lake = Lake(str(tmp_path / "lake"))
    sink = LakeSink(lake, "shop", "run-1", batch_rows=10)
    sink.add(drop)
    counters = sink.close()
    assert counters["dropped"] == {"data_url": 1} and counters["quarantined"] == 0
    [row] = lake.read("crawl_log").to_pylist()
    assert (row["url"], row["outcome"]) == (drop.url, "dropped:data_url") and "not fetched" in row["error"]


def test_a_long_data_url_is_logged_under_a_short_stable_url():
    from ingest.crawl.image_urls import data_url_drop

    src = "data:image/jpeg;base64," + "A" * 100_000
    assert data_url_drop(src) == data_url_drop(src) and len(data_url_drop(src)[0]) < 120
    assert data_url_drop(src)[0] != data_url_drop(src + "B")[0]


def test_images_selected_as_urls():
    spider = _spider(images="#gallery img::attr(src)", label={"source": "alt"}, license="CC0")
    [spec], _ = spider._image_specs(HtmlResponse(URL, body=PAGE.replace(b'<link rel="license" href="/license.html">', b""),
                                                 encoding="utf-8"), "p")
    assert (spec["url"], spec["alt"], spec["license"]) == ("http://shop.invalid/placeholder.gif", None, "CC0")


def test_links_follow_allow_deny_pagination_and_depth():
    spider = _spider(images="img", follow={"allow": ["/c/"], "deny": ["/birds/"], "pagination": "a.more"}, max_depth=1)
    specs = spider._link_specs(_response(), depth=0)
    assert {(s["url"], s["depth"]) for s in specs} == {
        ("http://shop.invalid/c/animals/p/2", 0),  # pagination: same depth
        ("http://shop.invalid/c/animals/p/2", 1),  # also an allowed link (deduplicated by the scheduler)
        ("http://shop.invalid/c/animals/", 1), ("http://shop.invalid/c/animals/cats/", 1)}
    deep = spider._link_specs(_response(), depth=1)  # at max_depth only pagination is followed
    assert [(s["url"], s["depth"]) for s in deep] == [("http://shop.invalid/c/animals/p/2", 1)]


def test_offsite_children_are_logged_not_requested():
    spider = _spider(images="img")
    [drop] = list(spider._follow({"url": "https://other.example/x", "kind": "page", "depth": 1}, "http://shop.invalid/"))
    assert drop.outcome == "dropped:offsite" and drop.referer == "http://shop.invalid/"
    [request] = list(spider._follow({"url": "http://shop.invalid/c/", "kind": "page", "depth": 1}, None))
    assert request.url == "http://127.0.0.1:8000/c/"


GALLERY = b"""<!doctype html><html><body><nav class="crumbs"><a href="/">Home</a> <a href="/c/pets/">Pets</a></nav>
<ul><li><a href="files/cat/0001.jpg" title="a cat"> Tabby   cat </a></li>
<li class="dog"><a href="files/dog/0002.jpg"><img src="files/dog/0002.jpg" data-label="dog" alt="good dog"></a>
<span class="name">Rex</span></li></ul></body></html>"""
GALLERY_URL = "http://127.0.0.1:8000/c/pets/p/1"


def _labels(**crawl) -> dict[str, str | None]:
    response = HtmlResponse(GALLERY_URL, body=GALLERY, encoding="utf-8")
    spider = _spider(**crawl)
    specs, _ = spider._image_specs(response, "page")
    return {s["url"].rsplit("/", 1)[1]: s["label"] for s in specs}


@pytest.mark.parametrize("crawl, expected", [
    ({"images": "li a", "image_attr": "href",
      "label": {"source": "url_regex", "on": "image", "pattern": r"/files/(?P<label>\w+)/"}},
     {"0001.jpg": "cat", "0002.jpg": "dog"}),
    ({"images": "li a", "image_attr": "href", "label": {"source": "url_regex", "pattern": r"/c/(\w+)/"}},
     {"0001.jpg": "pets", "0002.jpg": "pets"}),  # on: page (the default) reads the page URL
    ({"images": "li a", "image_attr": "href", "label": {"source": "link_text"}}, {"0001.jpg": "Tabby cat", "0002.jpg": None}),
    ({"images": "img", "label": {"source": "link_text"}}, {"0002.jpg": None}),  # the enclosing link has no text
    ({"images": "li a", "image_attr": "href", "label": {"source": "attr", "attr": "title"}},
     {"0001.jpg": "a cat", "0002.jpg": None}),
    ({"images": "img", "label": {"source": "attr", "attr": "data-label"}}, {"0002.jpg": "dog"}),
    ({"images": "img", "label": {"source": "selector", "on": "image", "selector": "xpath:ancestor::li/span"}},
     {"0002.jpg": "Rex"}),
    ({"images": "img::attr(src)", "label": {"source": "attr", "attr": "data-label"}}, {"0002.jpg": None}),
    ({"images": "img", "label": {"source": "none"}}, {"0002.jpg": None}),
])
def test_labels_read_from_each_image(crawl, expected):
    assert _labels(**crawl) == expected


@pytest.mark.parametrize("label, message", [
    ({"source": "breadcrumb", "selector": "nav a", "on": "image"}, "reads the page"),
    ({"source": "attr"}, "needs label.attr"),
    ({"source": "url_regex", "on": "everywhere", "pattern": "x"}, "label.on"),
])
def test_label_settings_are_checked(label, message):
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        _spider(images="img", label=label)


def _sitemap(body: bytes, url: str = "http://127.0.0.1:8000/sitemap.xml"):
    from scrapy.http import XmlResponse
    return XmlResponse(url, body=body, request=Request(url, meta={"spec": {"kind": "sitemap"}}))


def test_sitemap_lists_pages_and_nested_sitemaps():
    import asyncio

    from scrapy import Request as ScrapyRequest

    from ingest.crawl.items import Fetch

    spider = _spider(images="img", sitemap=True)
    starts = asyncio.run(_collect(spider.start()))
    assert [(r.url, r.meta["spec"]["kind"]) for r in starts] == [
        ("http://127.0.0.1:8000/", "page"), ("http://127.0.0.1:8000/sitemap.xml", "sitemap")]
    ns = b'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    out = list(spider.parse_sitemap(_sitemap(b'<urlset ' + ns + b'><url><loc>/orphan.html</loc></url>'
                                             b'<url><loc> http://127.0.0.1:8000/b.html </loc></url></urlset>')))
    assert isinstance(out[0], Fetch) and (out[0].url, out[0].outcome) == ("http://shop.invalid/sitemap.xml", "sitemap")
    assert [(r.url, r.meta["spec"]) for r in out[1:] if isinstance(r, ScrapyRequest)] == [
        ("http://127.0.0.1:8000/orphan.html", {"url": "http://shop.invalid/orphan.html", "kind": "page", "depth": 0}),
        ("http://127.0.0.1:8000/b.html", {"url": "http://shop.invalid/b.html", "kind": "page", "depth": 0})]
    [_, nested] = spider.parse_sitemap(_sitemap(b'<sitemapindex ' + ns + b'><sitemap><loc>/s2.xml</loc></sitemap></sitemapindex>'))
    assert (nested.url, nested.meta["spec"]["kind"]) == ("http://127.0.0.1:8000/s2.xml", "sitemap")
    [bad] = spider.parse_sitemap(_sitemap(b"<html><body>no</body></html>"))
    assert bad.outcome == "dropped:not_a_sitemap" and "<html>" in bad.details


async def _collect(agen):
    return [x async for x in agen]
