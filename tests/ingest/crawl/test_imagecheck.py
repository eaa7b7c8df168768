import io

import numpy as np
import pytest
from PIL import Image

from ingest.crawl.imagecheck import XMP_LOCATION, check_image, has_gps, strip_gps, strip_location
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


def test_gps_behind_a_fill_byte_is_removed():
    """0xFF fill bytes before a marker are legal JPEG; the segment walk stops there, the fallback does not."""
    data = _jpeg_with_gps(IMG)
    filled = data[:2] + b"\xff" + data[2:]
    assert has_gps(filled)
    assert not has_gps(strip_location(filled))


def test_gps_in_xmp_is_removed():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="48,51.5N" '
           b'exif:GPSLongitude="2,17.4E"/></rdf:RDF></x:xmpmeta>')
    for data in (_png(pnginfo=_itxt_xmp(xmp)), _jpeg_xmp(xmp)):
        cleaned = strip_location(data)
        assert not any(tag in cleaned for tag in XMP_LOCATION)
        assert check_image(cleaned, None, 10**6).reason is None


def test_a_corrupt_exif_header_raises_for_the_caller_to_quarantine():
    data = _jpeg_with_gps(IMG)
    at = data.index(b"Exif\x00\x00") + 6
    broken = data[:at] + b"XX" + data[at + 2:]  # byte-order mark neither II nor MM
    assert check_image(broken, "image/jpeg", 10**6).reason is None  # the pixels still decode
    with pytest.raises(Exception):
        strip_location(broken)


def _itxt_xmp(xmp: bytes):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def _jpeg_xmp(xmp: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, format="JPEG", xmp=xmp)
    return buf.getvalue()


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


def test_the_pipeline_quarantines_what_it_cannot_strip():
    """A decodable image whose metadata cannot be read is rejected with a reason, not lost to Scrapy."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from ingest.crawl.items import QUARANTINE_REASONS, Fetch
    from ingest.crawl.pipelines import LandPipeline

    data = _jpeg_with_gps(IMG)
    at = data.index(b"Exif\x00\x00") + 6
    landed = []
    spider = SimpleNamespace(params=SimpleNamespace(max_pixels=10**6), sink=SimpleNamespace(add=landed.append))
    pipeline = LandPipeline(SimpleNamespace(spider=spider))
    for body in (data, data[:at] + b"XX" + data[at + 2:]):
        pipeline.process_item(Fetch(url="http://x/a.jpg", kind="image", outcome="image",
                                    fetched_at=datetime.now(timezone.utc), body=body, content_type="image/jpeg"))
    ok, bad = landed
    assert ok.outcome == "image" and not has_gps(ok.body)
    assert bad.outcome == "dropped:metadata_unreadable" and bad.body is None and bad.details
    assert "metadata_unreadable" in QUARANTINE_REASONS


def test_a_heic_photo_served_by_a_site_is_an_image():
    """iPhone photos served as they are (image/heic): accepted, landed as served when they carry no location;
    before, the crawl process had no HEIF opener and quarantined them as content_mismatch."""
    from pathlib import Path

    heic = (Path(__file__).parents[2] / "data" / "astronaut-96x64-orientation6.heic").read_bytes()
    verdict = check_image(heic, "image/heic", 10**8)
    assert (verdict.reason, verdict.format, verdict.width, verdict.height) == (None, "HEIF", 64, 96)
    assert not has_gps(heic) and strip_location(heic) == heic
