"""Image decoding, RGB conversion and resizing: the one preprocessing path of the clean stage and of ``predict``.

Every call into a Pillow decoder (open, frame count, seek, load, EXIF orientation, mode conversion,
resize) runs inside :func:`guard`, which turns any exception into :class:`Reject` with a quarantine
reason code. Decoders raise far more than ``OSError`` on hostile bytes (IndexError on a truncated
animated GIF, TypeError or SyntaxError in multi-page TIFF, ...), and one escape would fail a whole
Dask batch and, after its retries, the stage. ``tests/sluice/test_imaging.py`` fuzzes every format
Pillow writes here to keep it that way.

The output size and how an image is fitted to it are data (:class:`Geometry`): the clean stage records
the geometry it used on the ``images`` table (a Delta table property, so time travel returns the
geometry of that version) and in its manifest; every reader takes it from there, never from params.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from pi_heif import register_heif_opener

from sluice import dicom
from sluice.colour import to_srgb
from sluice.errors import Reject  # noqa: F401 - where every caller takes it from

# HEIF/HEIC (what iPhones save by default) through libheif: pi-heif decodes only (no HEVC encoder
# bundled); its files are opened, bomb-checked and decoded inside guard() like any other format
register_heif_opener()

Resize = Literal["squash", "center_crop", "pad"]
RESIZE_POLICIES: tuple[str, ...] = ("squash", "center_crop", "pad")
REJECT_REASONS = ("zero_byte", "not_an_image", "truncated", "undecodable", "decompression_bomb", "too_small", "animated")
GEOMETRY_PROPERTY = "sluice.geometry"  # Delta table property holding Geometry as JSON
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# clean.max_pixels bounds the pixels *decoded*. A JPEG is decoded at a reduced DCT scale (down to 1/8 a
# side) when the output is small (:func:`_draft`), so a phone's 108 or 200 MP photo decodes to ~3 MP; its
# header may then say up to this many times the limit (200 MP at the default 50 MP), which bounds the
# coefficient memory of a progressive JPEG (~3 bytes a pixel) that libjpeg holds whatever the scale.
JPEG_HEADROOM = 4


@dataclass(frozen=True)
class Geometry:
    """The normalized image: ``height`` x ``width`` RGB uint8, fitted by ``resize`` (``pad`` and alpha
    use ``background``), bicubic."""

    height: int
    width: int
    resize: Resize = "center_crop"
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self):
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image size must be positive, got {self.height}x{self.width}")
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {self.resize!r}")
        if len(self.background) != 3 or any(not 0 <= int(v) <= 255 for v in self.background):
            raise ValueError(f"background must be three values 0..255, got {list(self.background)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def to_dict(self) -> dict:
        return {**asdict(self), "background": list(self.background), "channels": 3, "resample": "bicubic"}

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(int(d["height"]), int(d["width"]), d.get("resize", "center_crop"),
                   tuple(int(v) for v in d.get("background", (255, 255, 255))))


@dataclass(frozen=True)
class Limits:
    """What an image must satisfy to be decoded at all."""

    max_pixels: int = 50_000_000
    min_side: int = 8
    animated: Literal["quarantine", "first_frame"] = "quarantine"


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (height, width, 3) uint8 of the geometry
    width: int  # decoded size, upright (after EXIF orientation)
    height: int
    mode: str
    format: str | None
    source: Image.Image | None = None  # the upright RGB image before fitting (only when decode asks for it)


def image_extensions() -> set[str]:
    """File extensions of the formats Pillow opens here (HEIF included), lower case with the dot; not its stubs
    (HDF5's ``.h5``, BUFR, GRIB, WMF off Windows), which identify a file but cannot decode it."""
    from PIL import ImageFile

    return {ext for ext, fmt in Image.registered_extensions().items()
            if fmt in Image.OPEN and not (isinstance(Image.OPEN[fmt][0], type)
                                          and issubclass(Image.OPEN[fmt][0], ImageFile.StubImageFile))} | set(dicom.EXTENSIONS)


# ---------------------------------------------------------------------------- the guard
@contextmanager
def guard(limits: Limits, headroom: int = 1) -> Iterator[None]:
    """Map every exception raised inside to :class:`Reject`. Pillow's own decompression-bomb check is kept as
    a second line, at twice what :func:`_open` allows (``headroom`` x ``limits.max_pixels`` for a JPEG),
    its warning raised as an error."""
    Image.MAX_IMAGE_PIXELS = 2 * limits.max_pixels * headroom
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except Reject:
            raise
        except UnidentifiedImageError as err:
            raise Reject("not_an_image", f"no image format recognises the bytes ({err})") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            # Pillow's text names its own limit (twice ours), which contradicts ours: say what _open says
            size = re.search(r"\((\d+) pixels\)", str(err))
            raise Reject("decompression_bomb", f"{size.group(1) if size else 'more than ' + str(Image.MAX_IMAGE_PIXELS)}"
                                               f" pixels > clean.max_pixels {limits.max_pixels}") from None
        except Exception as err:  # noqa: BLE001 - hostile bytes raise anything; each one becomes a reason
            text = f"{err.__class__.__name__}: {err}"
            lowered = text.lower()
            truncated = isinstance(err, EOFError) or any(w in lowered for w in ("truncat", "broken", "premature end"))
            raise Reject("truncated" if truncated else "undecodable", text) from None


def _open(content: bytes, limits: Limits, headroom: int = 1) -> Image.Image:
    """Open, size-check (at most ``headroom`` x ``limits.max_pixels``) and pick the frame; call inside
    :func:`guard`."""
    if not content:
        raise Reject("zero_byte", "0 bytes")
    head = bytes(content[:8])
    try:
        im = Image.open(io.BytesIO(content))
    except UnidentifiedImageError:
        if note := _tiff_bands(content):  # a satellite or microscopy stack: a TIFF, but not one Pillow can read
            raise Reject("undecodable", f"{note}: images of 1 to 4 bands are read (RGB, grey, with alpha); export three "
                                        "bands as an RGB image (Sentinel-2's B4, B3, B2 for EuroSAT)") from None
        raise Reject("not_an_image", f"{len(content)} bytes that no image format recognises (starts {head!r})") from None
    width, height = im.size
    if width * height > limits.max_pixels * (headroom if im.format == "JPEG" else 1):
        raise Reject("decompression_bomb", f"{width}x{height} = {width * height} pixels > clean.max_pixels {limits.max_pixels}"
                     + (f" (x{headroom} for a JPEG decoded at a reduced scale)" if headroom > 1 and im.format == "JPEG" else ""))
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        if limits.animated == "quarantine":
            raise Reject("animated", f"{im.format} with {frames} frames (clean.animated: quarantine)")
        im.seek(0)
    return im


def _tiff_bands(content: bytes) -> str | None:
    """"a TIFF of 13 bands of 16 bits" for a TIFF whose first image has more bands than Pillow decodes; else None."""
    from PIL import TiffImagePlugin

    if content[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        fp = io.BytesIO(content)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(fp.read(8))
        fp.seek(ifd.next)
        ifd.load(fp)
        bands, bits = int(ifd.get(277, 1)), ifd.get(258, (8,))
    except Exception:  # noqa: BLE001 - a hostile header: no note, the bytes stay "not an image"
        return None
    depth = bits[0] if isinstance(bits, tuple) and bits else bits
    return f"a TIFF of {bands} bands of {depth} bits" if bands > 4 else None


# ---------------------------------------------------------------------------- decode
def decode(content: bytes, geometry: Geometry, limits: Limits = Limits(), source_side: int = 0) -> Decoded:
    """Decode, orient, convert to RGB and fit one image to ``geometry``, or raise :class:`Reject`.

    With ``source_side`` the upright RGB image before fitting comes back too (``Decoded.source``, what a
    face detector looks at), a JPEG decoded at no less than ``source_side`` on its shorter side when the
    file has that many pixels (so its fitted pixels can differ by a grey level from a decode without it).
    """
    with guard(limits, JPEG_HEADROOM):
        if dicom.is_dicom(content):  # a medical image: windowed to 8 bits (sluice/dicom.py)
            return _fitted(*dicom.to_image(content, limits.max_pixels, limits.animated != "quarantine"),
                           geometry, limits, source_side)
        im = _open(content, limits, JPEG_HEADROOM)
        fmt, mode, (width, height) = im.format, im.mode, im.size
        orientation = im.getexif().get(0x0112, 1)
        if orientation in _ROTATED:
            width, height = height, width
        if min(width, height) < limits.min_side:
            raise Reject("too_small", f"{width}x{height} < clean.min_side {limits.min_side}")
        _draft(im, geometry, source_side)
        if im.size[0] * im.size[1] > limits.max_pixels:  # a JPEG the draft could not bring under the limit
            raise Reject("decompression_bomb", f"{width}x{height} = {width * height} pixels, {im.size[0]}x{im.size[1]} "
                                               f"at the JPEG's smallest decode scale > clean.max_pixels {limits.max_pixels}")
        im.load()
        im = ImageOps.exif_transpose(im)
        profile = im.info.get("icc_profile")  # a P3 / Adobe RGB / CMYK file's colours as sRGB (sluice/colour.py)
        if im.mode == "CMYK":
            im, profile = to_srgb(im, profile), None
        upright = to_rgb(im, geometry.background)
        pixels = np.asarray(to_srgb(fit(upright, geometry), profile), np.uint8)
        if pixels.shape != geometry.shape:
            raise Reject("undecodable", f"decoded to {pixels.shape}, expected {geometry.shape}")
    return Decoded(pixels, width, height, mode, fmt, upright if source_side else None)


def _fitted(im: Image.Image, fmt: str, mode: str, geometry: Geometry, limits: Limits, source_side: int) -> Decoded:
    """A decoded image (no EXIF, already at full size: DICOM) fitted as :func:`decode` fits the others."""
    width, height = im.size
    if min(width, height) < limits.min_side:
        raise Reject("too_small", f"{width}x{height} < clean.min_side {limits.min_side}")
    upright = to_rgb(im, geometry.background)
    pixels = np.asarray(fit(upright, geometry), np.uint8)
    return Decoded(pixels, width, height, mode, fmt, upright if source_side else None)


def _draft(im: Image.Image, geometry: Geometry, source_side: int = 0) -> None:
    """Let JPEG decode at a reduced DCT scale when the image is far larger than needed (>= 2x the output
    on the shorter side, whatever the orientation, and no less than ``source_side``): most of a photo's
    decode time, no visible loss after the bicubic resize. Other formats ignore it."""
    if im.format != "JPEG":
        return
    need = max(2 * max(geometry.height, geometry.width), source_side)
    scale = need / min(im.size)
    if scale < 0.5:
        im.draft(im.mode, (math.ceil(im.size[0] * scale), math.ceil(im.size[1] * scale)))


def to_rgb(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB uint8 from any mode: 16/32-bit grey rescaled (not clipped), floating point in 0..1 (a scientific
    TIFF) scaled to 0..255, alpha composited on ``background``."""
    if im.mode in _HIGH_BIT_MODES:
        arr = np.asarray(im, np.float64)
        finite = arr[np.isfinite(arr)]
        if im.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range -> 8-bit
        elif im.mode == "F" and finite.size and finite.min() >= 0 and finite.max() <= 1:
            arr = arr * 255.0
        im = Image.fromarray(np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8), "L")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def fit(rgb: Image.Image, geometry: Geometry) -> Image.Image:
    """Resize an RGB image to the geometry: ``squash`` (aspect ignored), ``center_crop`` (aspect kept, the
    centre cut out) or ``pad`` (aspect kept, bordered with the background)."""
    w, h = rgb.size
    out_w, out_h = geometry.width, geometry.height
    if (w, h) == (out_w, out_h):
        return rgb
    bicubic = Image.Resampling.BICUBIC
    if geometry.resize == "squash" or w * out_h == h * out_w:
        return rgb.resize((out_w, out_h), bicubic)
    if geometry.resize == "center_crop":
        # the side that limits keeps its exact length: out / (out / w) is not always w in floating
        # point, and a box 1e-14 px outside the image made PIL reject 1.8% of photo sizes
        if out_w * h >= out_h * w:
            crop_w, crop_h = float(w), min(float(h), w * out_h / out_w)
        else:
            crop_w, crop_h = min(float(w), h * out_w / out_h), float(h)
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return rgb.resize((out_w, out_h), bicubic, box=(left, top, left + crop_w, top + crop_h))
    scale = min(out_w / w, out_h / h)
    inner = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = Image.new("RGB", (out_w, out_h), tuple(geometry.background))
    canvas.paste(rgb.resize(inner, bicubic), ((out_w - inner[0]) // 2, (out_h - inner[1]) // 2))
    return canvas


def fit_box(box: tuple[float, float, float, float], size: tuple[int, int],
            geometry: Geometry) -> tuple[int, int, int, int] | None:
    """Where the box ``(x0, y0, x1, y1)`` of an upright image of ``size`` (w, h) lands in the fitted image
    (the maths of :func:`fit`), widened to whole pixels and clipped to the image; None when it is cut off."""
    w, h = size
    out_w, out_h = geometry.width, geometry.height
    if geometry.resize == "squash" or w * out_h == h * out_w:
        sx, sy, ox, oy = out_w / w, out_h / h, 0.0, 0.0
    elif geometry.resize == "center_crop":
        sx = sy = max(out_w / w, out_h / h)
        ox, oy = (out_w - w * sx) / 2, (out_h - h * sy) / 2
    else:
        scale = min(out_w / w, out_h / h)
        inner = (max(1, round(w * scale)), max(1, round(h * scale)))
        sx, sy = inner[0] / w, inner[1] / h
        ox, oy = (out_w - inner[0]) // 2, (out_h - inner[1]) // 2
    x0, y0, x1, y1 = box
    left, top = max(0, math.floor(x0 * sx + ox)), max(0, math.floor(y0 * sy + oy))
    right, bottom = min(out_w, math.ceil(x1 * sx + ox)), min(out_h, math.ceil(y1 * sy + oy))
    return (left, top, right, bottom) if right > left and bottom > top else None


# ---------------------------------------------------------------------------- metadata
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}


def strip_metadata(content: bytes, limits: Limits = Limits(max_pixels=200_000_000, min_side=1,
                                                             animated="first_frame")) -> bytes:
    """The same image re-encoded in its own format with no EXIF (GPS included), XMP, IPTC, comments or
    text chunks; the EXIF orientation is applied to the pixels first so the picture looks the same.

    Only the pixels (and the ICC colour profile) are carried over to a fresh image, so nothing a format
    keeps in ``info`` can ride along. A format Pillow cannot write here (HEIC: pi-heif decodes only) becomes
    a PNG. Pixels stay bit-exact except in JPEG, re-encoded at quality 95
    without chroma subsampling (WebP is written lossless, whatever it was). Every frame of an animation is kept. Raises :class:`Reject` for bytes
    that do not decode (call it where bytes land, e.g. the crawler and the image-folder connector).
    """
    with guard(limits):
        im = _open(content, limits)
        fmt = im.format if im.format in Image.SAVE else "PNG"  # HEIC is decode-only here: lossless PNG
        frames = [ImageOps.exif_transpose(f.copy()) for f in ImageSequence.Iterator(im)]
        icc = im.info.get("icc_profile")
        fresh = [_bare(f) for f in frames]
        options: dict = dict(_SAVE_OPTIONS.get(fmt, {}))
        if icc and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            options["icc_profile"] = icc
        if len(fresh) > 1:
            options.update(save_all=True, append_images=fresh[1:])
            for key in ("duration", "loop"):
                if key in im.info:
                    options[key] = im.info[key]
        out = io.BytesIO()
        fresh[0].save(out, fmt, **options)
    return out.getvalue()


def _bare(im: Image.Image) -> Image.Image:
    """The pixels (and palette/transparency) of ``im`` in a new image with an empty ``info``."""
    im.load()
    bare = Image.frombytes(im.mode, im.size, im.tobytes())
    if im.mode in ("P", "PA"):
        bare.putpalette(im.getpalette())
    if "transparency" in im.info:
        bare.info["transparency"] = im.info["transparency"]
    return bare


# ---------------------------------------------------------------------------- geometry in the lake
def record_geometry(lake, table: str, geometry: Geometry) -> None:
    """Set ``geometry`` as a property of ``table`` (one commit, only when it changes)."""
    from sluice.catalog import with_retries

    value = json.dumps(geometry.to_dict(), sort_keys=True, separators=(",", ":"))
    if lake.table(table).metadata().configuration.get(GEOMETRY_PROPERTY) == value:
        return
    with_retries(lambda: lake.table(table).alter.set_table_properties({GEOMETRY_PROPERTY: value}, raise_if_not_exists=False),
                 lake.retries, f"record geometry on {table}")


def read_geometry(lake, table: str = "images", version: int | None = None) -> Geometry | None:
    """The geometry recorded on ``table`` at ``version`` (None when it was written without one)."""
    value = lake.table(table, version).metadata().configuration.get(GEOMETRY_PROPERTY)
    return Geometry.from_dict(json.loads(value)) if value else None
