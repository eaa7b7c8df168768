"""Pixels in sRGB whatever profile a file embeds (sluice/colour.py), through the clean stage's decode."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from sluice.colour import to_srgb
from sluice.imaging import Geometry, Limits, decode

# Display P3's primaries adapted to D50 (as Apple's profile gives them), and D50 white
P3 = ((0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073))
D50 = (0.964203, 1.0, 0.824905)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def rgb_profile(name: str, primaries=P3, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 matrix/TRC display profile: what a camera or phone embeds, built here (no file shipped)."""
    text = name.encode() + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    xyz = lambda v: b"XYZ " + b"\0" * 4 + b"".join(_s15(c) for c in v)  # noqa: E731
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0" * 2
    tags = [(b"desc", desc), (b"wtpt", xyz(D50)), (b"rXYZ", xyz(primaries[0])), (b"gXYZ", xyz(primaries[1])),
            (b"bXYZ", xyz(primaries[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
            (b"cprt", b"text" + b"\0" * 4 + b"none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(sig + struct.pack(">II", offset + len(data), len(body)))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + b"".join(_s15(c) for c in D50) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def _photo(profile: bytes | None, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(0)
    pixels = np.full((48, 48, 3), (200, 100, 50), np.uint8)
    pixels[:24] = rng.integers(0, 256, (24, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **({"icc_profile": profile} if profile else {}))
    return out.getvalue()


GEOMETRY = Geometry(height=48, width=48)


def test_a_display_p3_photo_is_converted_to_srgb():
    p3 = rgb_profile("Display P3")
    plain, tagged = decode(_photo(None), GEOMETRY, Limits()), decode(_photo(p3), GEOMETRY, Limits())
    expected = ImageCms.profileToProfile(Image.open(io.BytesIO(_photo(p3))), ImageCms.ImageCmsProfile(io.BytesIO(p3)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert np.array_equal(tagged.pixels, np.asarray(expected))
    flat = tagged.pixels[40, 40].astype(int)  # P3 (200, 100, 50) is a more saturated orange in sRGB
    assert flat[0] > 200 and flat[2] < 50 and np.abs(plain.pixels[40, 40].astype(int) - flat).max() >= 10


@pytest.mark.parametrize("profile", [b"not a profile at all", None, "srgb"])
def test_no_profile_an_srgb_one_or_a_broken_one_leave_the_pixels_as_stored(profile):
    if profile == "srgb":
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = decode(_photo(None), GEOMETRY, Limits())
    assert np.array_equal(decode(_photo(profile), GEOMETRY, Limits()).pixels, plain.pixels)


def test_alpha_is_kept_and_grey_is_left_alone():
    p3 = rgb_profile("Display P3")
    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 128))
    out = to_srgb(rgba, p3)
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 128 and out.getpixel((0, 0))[:3] != (200, 100, 50)
    assert to_srgb(rgba, p3 + b"\0" * (5 << 20)) is rgba  # past MAX_PROFILE_BYTES: not applied (nor cached)
    grey = Image.new("L", (4, 4), 90)
    assert to_srgb(grey, p3) is grey  # an RGB profile on a grey image: not applied
