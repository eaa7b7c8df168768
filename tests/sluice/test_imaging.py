"""sluice.imaging: decoding that cannot escape (fuzzed), geometry policies, metadata stripping, geometry in the lake."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from sluice.imaging import (REJECT_REASONS, Geometry, Limits, Reject, decode, fit, fit_box, read_geometry, record_geometry,
                            strip_metadata)

RNG = np.random.default_rng(3)
BASE = Image.fromarray(RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8))
G = Geometry(16, 12, "center_crop")
SMALL = Limits(max_pixels=2_000_000, min_side=1, animated="first_frame")


def enc(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _frames(n: int) -> list[Image.Image]:
    return [Image.fromarray(RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)) for _ in range(n)]


def corpus() -> dict[str, bytes]:
    """One valid file per (format, mode) Pillow can write and read back here, plus multi-frame files."""
    Image.init()
    out: dict[str, bytes] = {}
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "RGBA", "L", "P", "1"):
            try:
                data = enc(BASE.convert(mode), fmt)
                Image.open(io.BytesIO(data)).load()
            except Exception:  # noqa: BLE001 - this format cannot write/read this mode here
                continue
            out[f"{fmt}-{mode}"] = data
    frames = _frames(3)
    for fmt in ("GIF", "PNG", "TIFF", "WEBP"):
        out[f"{fmt}-animated"] = enc(frames[0], fmt, save_all=True, append_images=frames[1:])
    out["PNG-16bit"] = enc(Image.fromarray(RNG.integers(0, 65535, (20, 24), dtype=np.uint16)), "PNG")
    out["TIFF-CMYK"] = enc(BASE.convert("CMYK"), "TIFF")
    exif = Image.Exif()
    exif[0x0112] = 6
    out["JPEG-exif"] = enc(BASE, "JPEG", exif=exif.tobytes())
    return out


CORPUS = corpus()
NAMES = sorted(CORPUS)


def outcome(content: bytes, limits: Limits = SMALL) -> str:
    """'ok' or the reject reason; any other exception propagates (an escape)."""
    try:
        d = decode(content, G, limits)
    except Reject as rej:
        assert rej.reason in REJECT_REASONS and rej.details
        return rej.reason
    assert d.pixels.shape == G.shape and d.pixels.dtype == np.uint8
    return "ok"


def test_the_corpus_covers_the_formats_and_every_entry_decodes():
    formats = {n.split("-")[0] for n in NAMES}
    assert {"PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP", "ICO", "PPM", "TGA"} <= formats
    assert {n: outcome(CORPUS[n]) for n in NAMES} == {n: "ok" for n in NAMES}


def test_truncated_animated_gif_is_rejected_never_raised():
    """The clean-stage killer (IndexError from n_frames on a truncated GIF, outside the old try)."""
    gif = enc(_frames(4)[0], "GIF", save_all=True, append_images=_frames(3))
    seen = set()
    for cut in range(1, len(gif), 7):
        for animated in ("quarantine", "first_frame"):
            seen.add(outcome(gif[:cut], Limits(max_pixels=1_000_000, min_side=1, animated=animated)))
    assert {"truncated", "animated"} <= seen  # frame 1 intact + first_frame policy may legitimately decode


# The bounded CI run; `make fuzz` (SLUICE_FUZZ_EXAMPLES=20000) runs the long one.
FUZZ_EXAMPLES = int(os.environ.get("SLUICE_FUZZ_EXAMPLES", "600"))
mutation = st.tuples(st.integers(0, 1 << 20), st.integers(0, 255))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=FUZZ_EXAMPLES <= 600,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(NAMES), flips=st.lists(mutation, max_size=8), cut=st.floats(0, 1),
       insert=st.binary(max_size=16), where=st.integers(0, 1 << 20))
def test_fuzz_every_input_is_decoded_or_rejected_with_a_reason(name, flips, cut, insert, where):
    data = bytearray(CORPUS[name])
    for pos, value in flips:
        data[pos % len(data)] = value
    pos = where % (len(data) + 1)
    data[pos:pos] = insert
    outcome(bytes(data[: max(1, round(len(data) * cut))] if cut < 0.95 else data))


# ---------------------------------------------------------------------------- geometry
def _wide() -> Image.Image:
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # red left quarter, green centre, blue right quarter
    arr[:, 20:60] = (0, 255, 0)
    arr[:, 60:] = (0, 0, 255)
    return Image.fromarray(arr)


def test_center_crop_keeps_aspect_and_the_centre():
    out = np.asarray(fit(_wide(), Geometry(20, 20, "center_crop")))
    assert out.shape == (20, 20, 3) and (out[..., 1] > 200).all()  # only the green centre survives


@pytest.mark.parametrize("geometry", [Geometry(32, 32), Geometry(48, 64), Geometry(70, 30)])
def test_center_crop_fits_every_source_size(geometry):
    """out / (out / w) is not w for some w in floating point (49, 98, 103, ... at 32 px): the crop box
    then started 1e-14 px outside the image and PIL refused it, so 1.8% of photo sizes were
    quarantined as undecodable."""
    for w in range(1, 400):
        for h in (1, 7, 100, 250, 333, 517):
            assert fit(Image.new("RGB", (w, h)), geometry).size == (geometry.width, geometry.height), (w, h)
    d = decode(enc(Image.new("RGB", (49, 100), (10, 200, 30)), "JPEG"), Geometry(32, 32))
    assert d.pixels.shape == (32, 32, 3) and abs(int(d.pixels[16, 16, 1]) - 200) < 8


def test_squash_keeps_everything_and_pad_borders_with_the_background():
    squashed = np.asarray(fit(_wide(), Geometry(20, 20, "squash")))
    assert squashed[10, 1, 0] > 200 and squashed[10, 18, 2] > 200
    padded = np.asarray(fit(_wide(), Geometry(20, 20, "pad", (7, 8, 9))))
    assert padded.shape == (20, 20, 3) and tuple(padded[0, 10]) == (7, 8, 9) and tuple(padded[-1, 10]) == (7, 8, 9)
    assert padded[10, 0, 0] > 200 and padded[10, -1, 2] > 200


def test_non_square_output_and_draft_decoding_of_large_jpegs():
    photo = Image.fromarray(np.kron(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8)))
    d = decode(enc(photo, "JPEG", quality=90), Geometry(96, 160, "center_crop"))
    assert (d.width, d.height) == (1024, 768) and d.pixels.shape == (96, 160, 3)
    full = np.asarray(fit(photo, Geometry(96, 160, "center_crop")), np.float32)
    assert np.abs(d.pixels.astype(np.float32) - full).mean() < 6  # reduced-scale decode looks the same


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (120, 120), (64, 33)])
@pytest.mark.parametrize("geometry", [Geometry(32, 32, "center_crop"), Geometry(24, 40, "squash"),
                                      Geometry(24, 40, "pad", (0, 0, 0)), Geometry(40, 24, "center_crop")])
def test_fit_box_lands_where_fit_puts_the_pixels(size, geometry):
    w, h = size
    box = (0.3 * w, 0.35 * h, 0.55 * w, 0.6 * h)
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[round(box[1]):round(box[3]), round(box[0]):round(box[2])] = 255
    lit = np.nonzero(np.asarray(fit(Image.fromarray(canvas), geometry))[..., 0] > 127)
    left, top, right, bottom = fit_box(box, size, geometry)
    assert left <= lit[1].min() and lit[1].max() < right and top <= lit[0].min() and lit[0].max() < bottom
    assert right - left <= np.ptp(lit[1]) + 3 and bottom - top <= np.ptp(lit[0]) + 3  # tight: a pixel of slack per side
    assert fit_box((0, 0, 1, 1), (1000, 100), Geometry(32, 32, "center_crop")) is None  # cut off by the crop


def test_decode_returns_the_upright_source_only_when_asked():
    photo = enc(Image.fromarray(RNG.integers(0, 256, (600, 900, 3), dtype=np.uint8)), "JPEG", quality=90)
    assert decode(photo, Geometry(32, 32)).source is None
    source = decode(photo, Geometry(32, 32), source_side=100).source
    assert source.mode == "RGB" and 100 <= min(source.size) < 600  # JPEG draft stops at the detection size


@pytest.mark.parametrize("bad", [dict(height=0, width=4), dict(height=4, width=4, resize="stretch"),
                                 dict(height=4, width=4, background=(999, -1, 3))])
def test_geometry_is_validated(bad):
    with pytest.raises(ValueError):
        Geometry(**bad)


def test_geometry_round_trips_through_the_images_table_with_time_travel(tmp_path):
    from sluice.catalog import TABLES
    from sluice.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    lake.overwrite("images", TABLES["images"].schema.empty_table())
    assert read_geometry(lake) is None
    first = lake.version("images")
    record_geometry(lake, "images", Geometry(32, 32, "squash"))
    v1 = lake.version("images")
    record_geometry(lake, "images", Geometry(32, 32, "squash"))  # unchanged: no commit
    assert lake.version("images") == v1
    record_geometry(lake, "images", Geometry(96, 160, "pad", (0, 0, 0)))
    lake.overwrite("images", TABLES["images"].schema.empty_table())  # later writes keep it
    assert read_geometry(lake) == Geometry(96, 160, "pad", (0, 0, 0))
    assert read_geometry(lake, version=v1) == Geometry(32, 32, "squash")
    assert read_geometry(lake, version=first) is None


# ---------------------------------------------------------------------------- metadata
def _gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    return exif.tobytes()


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>'


def _fill_byte_before_app1(jpeg: bytes) -> bytes:
    """A legal 0xFF fill byte before the first marker after SOI (it stopped the old segment walker)."""
    return jpeg[:2] + b"\xff" + jpeg[2:]


@pytest.mark.parametrize("fmt,kw", [
    ("JPEG", dict(quality=95, exif=_gps_exif(), xmp=XMP, comment=b"shot at home")),
    ("PNG", dict(exif=_gps_exif(), pnginfo=None)),
    ("TIFF", dict(exif=_gps_exif())),
    ("WEBP", dict(lossless=True, exif=_gps_exif(), xmp=XMP)),
])
def test_strip_metadata_removes_exif_gps_xmp_and_comments(fmt, kw):
    from PIL import PngImagePlugin

    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        info.add_text("Comment", "shot at home")
        kw = {**kw, "pnginfo": info}
    original = enc(BASE, fmt, **kw)
    if fmt == "JPEG":
        original = _fill_byte_before_app1(original)
    assert b"SecretCam" in original or b"GPS" in original or b"xmpmeta" in original
    clean = strip_metadata(original)
    for marker in (b"SecretCam", b"xmpmeta", b"GPSLatitude", b"shot at home", b"Exif\x00\x00"):
        assert marker not in clean
    im = Image.open(io.BytesIO(clean))
    exif = im.getexif()  # (a TIFF's own structure tags live there too: width, height, ...)
    assert 0x010F not in exif and 0x8825 not in exif and not exif.get_ifd(0x8825)  # no camera, no GPS IFD
    assert im.format == fmt and not {"exif", "xmp", "comment", "Comment", "XML:com.adobe.xmp"} & set(im.info)
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), np.float32)
    after = np.asarray(im.convert("RGB"), np.float32)
    assert np.abs(before - after).mean() < (4 if fmt == "JPEG" else 1e-9)


def test_strip_metadata_applies_orientation_and_keeps_every_frame():
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = strip_metadata(enc(BASE, "JPEG", quality=95, exif=exif.tobytes()))
    assert Image.open(io.BytesIO(rotated)).size == (24, 20)  # upright now, and no orientation tag left
    gif = strip_metadata(enc(_frames(3)[0], "GIF", save_all=True, append_images=_frames(2), comment=b"secret"))
    assert Image.open(io.BytesIO(gif)).n_frames == 3 and b"secret" not in gif
    with pytest.raises(Reject):
        strip_metadata(b"<html>not an image</html>")


def test_a_large_jpeg_is_judged_by_the_pixels_it_decodes_to():
    """A phone's 108 MP photo (here: 3 MP against a 1 MP limit) decodes at 1/8 scale for a small output, so
    it is not a bomb; the same pixels as PNG are (decoded whole), and so is a JPEG past the headroom."""
    limits = Limits(max_pixels=1_000_000, min_side=1)
    photo = Image.fromarray(np.tile(RNG.integers(0, 256, (1, 2000, 3), dtype=np.uint8), (1500, 1, 1)))
    decoded = decode(enc(photo, "JPEG", quality=80), G, limits)
    assert (decoded.width, decoded.height, decoded.pixels.shape) == (2000, 1500, G.shape)
    with pytest.raises(Reject, match="2000x1500 = 3000000 pixels > clean.max_pixels 1000000") as png:
        decode(enc(photo, "PNG"), G, limits)
    assert png.value.reason == "decompression_bomb"
    with pytest.raises(Reject, match=r"x4 for a JPEG") as past:
        decode(enc(Image.new("RGB", (2500, 2000)), "JPEG"), G, limits)
    assert past.value.reason == "decompression_bomb"
    # an output too large for a reduced decode: the JPEG is decoded whole, so the limit holds as for PNG
    with pytest.raises(Reject, match="at the JPEG's smallest decode scale") as whole:
        decode(enc(photo, "JPEG"), Geometry(1024, 1024, "center_crop"), limits)
    assert whole.value.reason == "decompression_bomb"


HEIC = Path(__file__).parents[1] / "data" / "astronaut-96x64.heic"  # pillow-heif (x265) at quality 90
# the same saved with EXIF orientation 6 (a portrait shot): pillow-heif stores it as the HEIF rotation
HEIC_ROTATED = HEIC.with_name("astronaut-96x64-orientation6.heic")


def test_heic_decodes_like_the_same_photo_as_png():
    """An iPhone's format: decoded through pi-heif (libheif), the same pixels as the PNG it was encoded
    from up to the codec's loss; cut short it is rejected with a reason, never an escape."""
    from skimage import data

    source = Image.fromarray(data.astronaut()).resize((96, 64), Image.Resampling.BICUBIC)  # how the file was made
    heic = decode(HEIC.read_bytes(), G, SMALL)
    png = decode(enc(source, "PNG"), G, SMALL)
    assert (heic.format, heic.width, heic.height) == ("HEIF", 96, 64)
    assert np.abs(heic.pixels.astype(int) - png.pixels.astype(int)).mean() < 6
    data_ = HEIC.read_bytes()
    for cut in (len(data_) // 2, 40):
        with pytest.raises(Reject) as bad:
            decode(data_[:cut], G, SMALL)
        assert bad.value.reason in REJECT_REASONS


def test_a_rotated_heic_is_turned_upright_once():
    """libheif applies the file's rotation and pi-heif then reports EXIF orientation 1: not turned twice."""
    upright = decode(HEIC.read_bytes(), Geometry(64, 96, "squash"), SMALL).pixels  # height, width: as stored
    turned = decode(HEIC_ROTATED.read_bytes(), Geometry(96, 64, "squash"), SMALL)
    assert (turned.width, turned.height) == (64, 96)
    expected = np.rot90(upright, k=-1)  # orientation 6: rotate 90 degrees clockwise to display
    assert np.abs(turned.pixels.astype(int) - expected.astype(int)).mean() < 6


def test_strip_metadata_writes_a_heic_as_a_lossless_png_upright():
    """pi-heif decodes only, so a HEIC whose metadata must go (the crawl's location rule) becomes a PNG: the
    decoded pixels exactly, turned upright by its orientation, with no EXIF."""
    from PIL import ImageOps

    bare = strip_metadata(HEIC_ROTATED.read_bytes())
    out = Image.open(io.BytesIO(bare))
    assert out.format == "PNG" and not out.getexif()
    upright = ImageOps.exif_transpose(Image.open(HEIC_ROTATED)).convert("RGB")
    assert np.array_equal(np.asarray(out.convert("RGB")), np.asarray(upright))


def test_damaged_heic_is_decoded_or_rejected_never_an_escape():
    """libheif behind pi-heif is new decoder surface: bytes changed, cut or inserted anywhere give a
    Reject with a reason or pixels, never another exception (4,500 mutations run by hand did the same)."""
    import random

    data = HEIC_ROTATED.read_bytes()
    rng = random.Random(7)
    outcomes = set()
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.6:
                b[i] = rng.randrange(256)
            elif op < 0.8:
                del b[i:i + rng.randint(1, 64)]
            else:
                b[i:i] = rng.randbytes(rng.randint(1, 16))
        try:
            decode(bytes(b), G, SMALL)
            outcomes.add("decoded")
        except Reject as err:
            assert err.reason in REJECT_REASONS
            outcomes.add("rejected")
    assert outcomes == {"decoded", "rejected"}


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_a_multi_band_tiff_says_what_it_is_and_what_to_export(planar):
    """EuroSAT's 13-band Sentinel-2 TIFFs: Pillow decodes 1-4 bands, so say so instead of 'not an image'."""
    tifffile = pytest.importorskip("tifffile")
    bands = np.random.default_rng(0).integers(0, 4000, (13, 16, 16) if planar == "separate" else (16, 16, 13), np.uint16)
    out = io.BytesIO()
    tifffile.imwrite(out, bands, photometric="minisblack", planarconfig=planar)
    with pytest.raises(Reject) as rej:
        decode(out.getvalue(), Geometry(8, 8, "squash"))
    assert rej.value.reason == "undecodable" and "a TIFF of 13 bands of 16 bits" in rej.value.details
    assert "export three bands as an RGB image" in rej.value.details


def test_an_image_past_pillows_own_limit_is_one_consistent_line():
    """A PNG whose header claims 30000x30000 trips Pillow's bomb check (twice clean.max_pixels) before ours: the
    line names our limit only, as a PNG just over it does, never Pillow's "exceeds limit of N pixels"."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    with pytest.raises(Reject) as bomb:
        decode(png, G, Limits(max_pixels=50_000_000, min_side=1))
    assert bomb.value.reason == "decompression_bomb"
    assert bomb.value.details == "900000000 pixels > clean.max_pixels 50000000"
