"""The demo website: a small static catalogue published from the demo's digit images.

``build_site(demo_out)`` writes ``<demo_out>/site/`` (served by the crawl stage's loopback server on a free
loopback port when the crawl runs) and ``<demo_out>/site_truth.json``, the inventory a test or report
checks a crawl against: the pages expected, the images that must land (with their labels), the
responses that must be dropped and why, and the URLs that must never be requested. URLs in the
inventory use the canonical demo origin ``http://demo-site.invalid`` that the crawl records.

The site has category pages with pagination, item pages with an image and a breadcrumb, a robots.txt
that disallows ``/private/`` and sets a ``Crawl-delay``, a redirect, a redirect loop, a redirect to
another domain, a 404, an off-site link, and planted bad images: an oversized file, a truncated PNG,
an HTML page served as ``image/jpeg``, a pixel bomb, a gzip bomb, an image that 404s, and JPEGs with
GPS EXIF (landed with GPS removed). Everything is deterministic, file times included.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEMO_ORIGIN = "http://demo-site.invalid"  # = ingest.crawl.server.CANONICAL_ORIGIN (what the crawl records)
CRAWL_DELAY = 0.02  # seconds, in robots.txt
FIXED_MTIME = 1_704_067_200  # 2024-01-01T00:00:00Z: Last-Modified headers do not depend on build time
LICENSE_URL = "https://opensource.org/licenses/BSD-3-Clause"
PER_PAGE = 5
PER_CLASS = 8


@dataclass(frozen=True)
class SiteItem:
    label: str  # the category the item is filed under (its label as found)
    image_path: str  # URL path of the image, e.g. /images/3/digit_0123.png
    data: bytes | None  # image bytes to publish (None: the image is not published -> 404)
    alt: str


def _page(title: str, body: str, extra_head: str = "") -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<link rel=\"license\" href=\"{LICENSE_URL}\">{extra_head}</head>\n<body>\n{body}\n</body></html>\n")


def _write(root: Path, rel: str, data: bytes | str) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def write_catalogue(root: Path, items: list[SiteItem], per_page: int = PER_PAGE, index_extra: str = "") -> dict:
    """Write index, paginated category pages and one page per item; return the pages and images written.

    Item pages are ``/item/<n>.html`` with ``nav.breadcrumb`` (Home > label) and ``img.photo``.
    """
    labels = sorted({it.label for it in items}, key=lambda s: (len(s), s))
    pages, images = ["/"], {}
    cats = "\n".join(f'<li><a href="/category/{html.escape(c)}/">Category {html.escape(c)}</a></li>' for c in labels)
    _write(root, "index.html", _page("Catalogue", f"<h1>Catalogue</h1>\n<ul class=\"categories\">\n{cats}\n</ul>\n{index_extra}"))
    for label in labels:
        members = [(n, it) for n, it in enumerate(items) if it.label == label]
        chunks = [members[i:i + per_page] for i in range(0, len(members), per_page)]
        for k, chunk in enumerate(chunks):
            name = "index.html" if k == 0 else f"page-{k + 1}.html"
            links = "\n".join(f'<li><a class="item" href="/item/{n}.html">Item {n}</a></li>' for n, _ in chunk)
            nav = f'<a class="next" href="page-{k + 2}.html">next page</a>' if k + 1 < len(chunks) else ""
            _write(root, f"category/{label}/{name}",
                   _page(f"Category {label}", f"<h1>Category {html.escape(label)}</h1>\n<ul>\n{links}\n</ul>\n{nav}"))
            pages.append(f"/category/{label}/" if k == 0 else f"/category/{label}/{name}")
    for n, it in enumerate(items):
        crumb = f'<nav class="breadcrumb"><a href="/">Home</a> &rsaquo; <a href="/category/{it.label}/">{html.escape(it.label)}</a></nav>'
        img = f'<img class="photo" src="{it.image_path}" alt="{html.escape(it.alt)}">'
        _write(root, f"item/{n}.html", _page(f"Item {n}", f"{crumb}\n<main><h1>Item {n}</h1>\n{img}</main>"))
        pages.append(f"/item/{n}.html")
        if it.data is not None:
            _write(root, it.image_path, it.data)
        images[it.image_path] = it.label
    return {"pages": pages, "images": images}


def _noise_png(side: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _fix_mtimes(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def build_site(demo_out: str | Path, seed: int = 0) -> dict:
    """Publish the demo site under ``<demo_out>/site`` from the demo images; return its inventory."""
    out = Path(demo_out)
    truth_in = json.loads((out / "ground_truth.json").read_text())
    local = lambda uri: out / Path(uri).relative_to(truth_in["out_dir"])  # noqa: E731
    root = out / "site"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    digit = re.compile(r"digit_\d{4}\.png$")
    items, derived = [], {}
    for label in truth_in["classes"]:
        files = sorted(p for p in (out / "folder" / "train" / label).glob("*.png") if digit.search(p.name))[:PER_CLASS]
        for p in files:
            items.append(SiteItem(label, f"/images/{label}/{p.name}", p.read_bytes(), f"handwritten digit {label}"))
            derived[f"/images/{label}/{p.name}"] = p.as_posix()
    gps = []
    for uri in sorted(truth_in["gps_jpegs"])[:2]:
        p = local(uri)
        label = p.parent.name
        items.append(SiteItem(label, f"/images/{label}/{p.name}", p.read_bytes(), f"handwritten digit {label}"))
        derived[f"/images/{label}/{p.name}"] = p.as_posix()
        gps.append(f"/images/{label}/{p.name}")
    expected = {it.image_path: it.label for it in items}

    truncated = local(sorted(truth_in["truncated"])[0])
    bad = {  # image path -> (bytes, expected reason)
        "/images/big/noise.png": (_noise_png(700, seed), "too_large"),
        "/images/broken/truncated.png": (truncated.read_bytes(), "truncated"),
        "/images/fake/photo.jpg": (b"<!doctype html><html><body><h1>Sorry, this photo moved</h1></body></html>\n",
                                   "content_mismatch"),
        "/images/bomb/pixels.png": (local(truth_in["decompression_bomb"][0]).read_bytes(), "decompression_bomb"),
        "/images/bomb/zeros.png": (gzip.compress(b"\x00" * (32 << 20), compresslevel=9, mtime=0), "decompression_bomb"),
    }
    for path, (data, _) in bad.items():
        items.append(SiteItem("8", path, data, "a picture"))
    items.append(SiteItem("5", "/images/5/gone.png", None, "a picture that was deleted"))

    extra = ('<p class="more">More: <a href="/old-catalogue.html">old catalogue</a> · <a href="/missing.html">'
             'archive</a> · <a href="/private/">staff area</a> · <a href="/loop-a">loop</a> · '
             '<a href="/partner">partner (redirects away)</a> · <a href="https://example.org/gallery">'
             'example.org gallery</a></p>')
    written = write_catalogue(root, items, index_extra=extra)
    _write(root, "private/index.html", _page("Staff", '<a href="/private/secret.html">secret</a>'
                                                      '<img class="photo" src="/private/secret.png" alt="secret">'))
    _write(root, "private/secret.png", items[0].data)
    _write(root, "robots.txt", f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\nDisallow: /private/\n")
    routes = {"redirects": {"/old-catalogue.html": [301, "/category/0/"], "/loop-a": [302, "/loop-b"],
                            "/loop-b": [302, "/loop-a"], "/partner": [302, "{other_origin}/gallery"]},
              "headers": {"/images/bomb/zeros.png": {"Content-Encoding": "gzip", "Content-Type": "image/png"}}}
    _write(root, "_routes.json", json.dumps(routes, indent=1, sort_keys=True) + "\n")
    _fix_mtimes(root)

    url = lambda path: DEMO_ORIGIN + path  # noqa: E731
    truth = {
        "origin": DEMO_ORIGIN,
        "site_dir": root.as_posix(),
        "crawl_delay": CRAWL_DELAY,
        "robots": url("/robots.txt"),
        "pages": sorted(url(p) for p in written["pages"]),
        "images": {url(p): label for p, label in sorted(expected.items())},
        "gps_stripped": sorted(url(p) for p in gps),
        "derived_from": {url(p): src for p, src in sorted(derived.items())},
        "dropped": {url(p): reason for p, (_, reason) in sorted(bad.items())},
        "errors": {url("/images/5/gone.png"): "http 404", url("/missing.html"): "http 404",
                   url("/loop-a"): "redirect_limit"},
        "redirects": {url("/old-catalogue.html"): url("/category/0/")},
        "refused_redirects": {url("/partner"): "offsite_redirect"},
        "never_requested": sorted([url("/private/"), url("/private/secret.html"), url("/private/secret.png"),
                                   "https://example.org/gallery", "http://localhost/gallery"]),
        "license": LICENSE_URL,
    }
    (out / "site_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth
