"""Which URL an image element on a page stands for (``crawl.image_attr``), and how an inline image is logged."""

from __future__ import annotations

import hashlib
import re

# where lazy-loading scripts keep an image's URL until it scrolls into view (its src a placeholder until then)
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url", "data-srcset", "data-lazy-srcset")


def widest(srcset: str) -> str | None:
    """The candidate of a ``srcset`` with the largest width or density descriptor (``a.jpg 320w, b.jpg 1280w``)."""
    best, size = None, -1.0
    for candidate in re.split(r",\s+", srcset.strip()):
        words = candidate.strip().split()
        if not words:
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)[wx]", words[-1]) if len(words) > 1 else None
        value = float(match.group(1)) if match else 1.0
        if value > size:
            best, size = words[0].rstrip(","), value
    return best


def image_src(attrib, attr: str) -> str | None:
    """An image element's URL: ``attr``'s value, or for ``auto`` the image a page means: a lazy-loading
    attribute's URL where there is one (``src`` then holds a placeholder until a script swaps it in), else ``src``
    (an inline placeholder only where nothing else is given), else the widest ``srcset`` candidate."""
    if attr != "auto":
        return attrib.get(attr)
    values = {name: (attrib.get(name) or "").strip() for name in (*LAZY_ATTRS, "src", "srcset")}
    for name in (*LAZY_ATTRS, "src", "srcset"):
        value = values[name]
        if not value or name == "src" and value[:5].lower() == "data:" and values["srcset"]:
            continue
        return widest(value) if name.endswith("srcset") else value
    return None


def data_url_drop(src: str) -> tuple[str, str]:
    """A short, stable crawl_log URL for an inline ``data:`` image (its media type and content hash), and why."""
    head = src.split(",", 1)[0]
    digest = hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return (f"{head[:80]};sha256={digest}",
            f"inline data: URL ({len(src)} characters) not fetched: only http(s) images are landed")
