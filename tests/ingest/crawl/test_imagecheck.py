import io

import numpy as np
import pytest
from PIL import Image

from ingest.crawl.imagecheck import check_image, has_gps, strip_gps
from demo.generate import _jpeg_with_gps, _png_bomb

IMG = (np.random.default_rng(1).random((24, 24, 3)) * 255).astype(np.uint8)


def _png(img=IMG, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_gps_removed_from_jpeg_without_touching_pixels_or_other_tags():
    data = _jpeg_with_gps(IMG)
    assert has_gps(data)
    cleaned = strip_gps(data)
    assert not has_gps(cleaned)
    assert np.array_equal(_pixels(cleaned), _pixels(data))  # lossless: the scan data is copied byte for byte
    assert Image.open(io.BytesIO(cleaned)).getexif()[0x010F] == "SluiceDemoCam"  # Make tag kept


def test_gps_removed_from_png_exif_chunk():
    exif = Image.open(io.BytesIO(_jpeg_with_gps(IMG))).getexif()
    data = _png(exif=exif.tobytes())
    assert has_gps(data)
    cleaned = strip_gps(data)
    assert not has_gps(cleaned)
    assert np.array_equal(_pixels(cleaned), IMG)
    assert check_image(cleaned, "image/png", 10**6).reason is None


def test_images_without_gps_are_returned_unchanged():
    data = _png()
    assert strip_gps(data) == data


@pytest.mark.parametrize("body, ctype, reason", [
    (b"", "image/png", "empty"),
    (b"<!doctype html><html><body>moved</body></html>", "image/jpeg", "content_mismatch"),
    (b"<!doctype html><html><body>moved</body></html>", "text/html", "not_an_image"),
    (_png()[:100], "image/png", "truncated"),
    (_png_bomb(20_000, 20_000), "image/png", "decompression_bomb"),
])
def test_bad_bodies_get_their_reason(body, ctype, reason):
    verdict = check_image(body, ctype, 50_000_000)
    assert verdict.reason == reason
    assert verdict.details or reason == "empty"


def test_pixel_budget_is_a_param():
    data = _png(np.zeros((100, 100, 3), np.uint8))
    assert check_image(data, "image/png", 10_000).reason is None
    verdict = check_image(data, "image/png", 9_999)
    assert verdict.reason == "decompression_bomb" and "crawl.max_pixels 9999" in verdict.details
