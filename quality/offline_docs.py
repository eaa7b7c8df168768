"""Data Docs that render offline: vendored CSS/JS instead of CDN links.

GX writes every Data Docs page with ``<link>``/``<script>`` tags pointing at public CDNs (jQuery,
Bootstrap, bootstrap-table, Font Awesome, Vega) and an ``<img>`` of its logo from GX's web-asset
bucket; offline the index is two links and a few buttons, and online each page view tells those
hosts about it. :func:`make_offline` runs after every build (``quality.gxcontext.build_docs``): it
copies ``quality/datadocs_assets/`` (the same files, vendored from their npm packages with their
licences; see its README.md) to ``<site>/static/vendor/`` and rewrites each page so that every asset
it loads is a relative path into the site. A network asset it has no copy of is dropped (Vega: no
Sluice page draws a Vega chart) and counted, never left to be fetched. Plain ``<a href>`` links stay:
following a link is the reader's choice, not a request the page makes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).with_name("datadocs_assets")
VENDOR = Path("static") / "vendor"

# the file name at the end of a CDN URL -> the vendored copy (under static/vendor/)
LOCAL = {
    "jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "jquery.min.js": "jquery/jquery.min.js",
    "bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "popper.min.js": "popper/popper.min.js",
    "bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "bootstrap-table-filter-control.css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.js": "bootstrap-table/bootstrap-table-filter-control.min.js",
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "bootstrap-prefers-dark.css": "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "all.min.css": "fontawesome/css/all.min.css",
}
# GX's logos from its web-asset bucket -> the copy the site already has
IMAGES = {"logo-long.png": "static/images/logo-long.png", "full_logo_dark.png": "static/images/logo-long.png"}

_NETWORK = r"(?:https?:)?//"
_SCRIPT = re.compile(rf"<script\b[^>]*\bsrc=(['\"])({_NETWORK}[^'\"]+)\1[^>]*>\s*</script>", re.I)
_LINK = re.compile(rf"<link\b[^>]*\bhref=(['\"])({_NETWORK}[^'\"]+)\1[^>]*>", re.I)
_IMG = re.compile(rf"(<img\b[^>]*\bsrc=)(['\"])({_NETWORK}[^'\"]+)\2", re.I)
_CSS_URL = re.compile(rf"url\((['\"]?)({_NETWORK}[^)'\"]+)\1\)", re.I)
NETWORK_ASSET = re.compile(rf"<(?:script|link|img)\b[^>]*\b(?:src|href)=['\"]?{_NETWORK}|url\(['\"]?{_NETWORK}", re.I)


def _name(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def rewrite(html: str, to_root: str, dropped: list[str]) -> str:
    """``html`` with every network asset pointing under ``to_root`` (the site root, relative to the
    page: ``""``, ``"../"``, ...); the URLs of assets without a local copy are appended to ``dropped``."""

    def local(url: str, table: dict[str, str], prefix: str) -> str | None:
        found = table.get(_name(url))
        return None if found is None else f"{to_root}{prefix}{found}"

    def script(m: re.Match) -> str:
        path = local(m.group(2), LOCAL, f"{VENDOR.as_posix()}/")
        if path is None:
            dropped.append(m.group(2))
            return f"<!-- offline: dropped {_name(m.group(2))} -->"
        return m.group(0).replace(m.group(2), path)

    def link(m: re.Match) -> str:
        path = local(m.group(2), LOCAL, f"{VENDOR.as_posix()}/")
        if path is None:
            dropped.append(m.group(2))
            return f"<!-- offline: dropped {_name(m.group(2))} -->"
        return m.group(0).replace(m.group(2), path)

    def img(m: re.Match) -> str:
        path = local(m.group(3), IMAGES, "")
        if path is None:
            dropped.append(m.group(3))
            path = ""
        return f"{m.group(1)}{m.group(2)}{path}{m.group(2)}"

    def css_url(m: re.Match) -> str:
        path = local(m.group(2), IMAGES, "")
        if path is None:
            dropped.append(m.group(2))
            return "none"
        return f"url('{path}')"

    html = _SCRIPT.sub(script, html)
    html = _LINK.sub(link, html)
    html = _IMG.sub(img, html)
    return _CSS_URL.sub(css_url, html)


def make_offline(site: Path | str) -> dict:
    """Vendor the assets into ``site`` and rewrite its pages and stylesheets; returns the counts of
    files rewritten and the distinct network assets dropped (no local copy)."""
    site = Path(site)
    if not site.is_dir():
        return {"pages": 0, "rewritten": 0, "dropped": []}
    shutil.copytree(ASSETS, site / VENDOR, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    dropped: list[str] = []
    pages = rewritten = 0
    for path in sorted([*site.rglob("*.html"), *(site / "static" / "styles").glob("*.css")]):
        text = path.read_text(encoding="utf-8")
        rel = os.path.relpath(site, path.parent)
        to_root = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        new = rewrite(text, to_root, dropped)
        pages += path.suffix == ".html"
        if new != text:
            path.write_text(new, encoding="utf-8")
            rewritten += 1
    return {"pages": pages, "rewritten": rewritten, "dropped": sorted({_name(u) for u in dropped})}
