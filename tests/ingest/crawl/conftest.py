"""Fixtures for the crawl tests: a small demo layout, its website, and crawl params on a tmp lake."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.site import build_site
from demo.generate import CLASSES, _jpeg_with_gps, _png_bomb


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def write_mini_demo(out: Path, per_class: int = 2) -> Path:
    """The part of the demo layout the site generator reads: train images, a GPS JPEG, bad files."""
    truth = {"out_dir": out.as_posix(), "classes": CLASSES, "gps_jpegs": [], "truncated": [], "decompression_bomb": []}
    for c, label in enumerate(CLASSES):
        folder = out / "folder" / "train" / label
        folder.mkdir(parents=True)
        for k in range(per_class):
            (folder / f"digit_{c * 100 + k:04d}.png").write_bytes(_png(c * 100 + k))
    gps = out / "folder" / "train" / "4" / "digit_0499.jpg"
    gps.write_bytes(_jpeg_with_gps(np.full((16, 16, 3), 120, np.uint8)))
    truth["gps_jpegs"].append(gps.as_posix())
    truncated = out / "folder" / "train" / "1" / "truncated_0.png"
    truncated.write_bytes(_png(999)[:60])
    truth["truncated"].append(truncated.as_posix())
    bomb = out / "folder" / "train" / "8" / "bomb.png"
    bomb.write_bytes(_png_bomb(20_000, 20_000))
    truth["decompression_bomb"].append(bomb.as_posix())
    (out / "ground_truth.json").write_text(json.dumps(truth))
    return out


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory) -> dict:
    """A demo website built by ``build_site`` from a small demo layout; returns its inventory."""
    out = write_mini_demo(tmp_path_factory.mktemp("demo"))
    return build_site(out)


@pytest.fixture
def crawl_params(tmp_path, demo_site):
    """Validated params for crawling the demo site into a lake under tmp_path; ``overrides`` for ``crawl``."""
    from sluice.config import parse_params

    def build(**overrides):
        crawl = {"start_urls": ["{demo_site}/"], "demo_site_dir": demo_site["site_dir"], "images": "img.photo",
                 "follow": {"pagination": "a.next"}, "max_bytes": 1_000_000, "batch_rows": 20,
                 "http_cache_dir": str(tmp_path / "httpcache"), **overrides}
        return parse_params({"lake": {"root": str(tmp_path / "lake")}, "crawl": crawl}, "test-params.yaml")

    return build


@pytest.fixture
def mini_demo():
    """``mini_demo(out)`` writes the small demo layout under ``out`` (for building a second site)."""
    return write_mini_demo
