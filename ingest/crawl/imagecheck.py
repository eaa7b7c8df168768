"""Images checked at the door: decode fully, refuse bombs and truncation, remove GPS EXIF losslessly.

Pure functions on bytes, so they are tested without a crawl. Reason codes (``crawl_log.outcome`` is
``dropped:<reason>``, ``quarantine.check`` is ``<reason>``):

- ``not_an_image``: the body is not an image and the server did not claim it was;
- ``content_mismatch``: ``Content-Type`` says ``image/*`` but the body is something else (HTML...);
- ``decompression_bomb``: more pixels than ``crawl.max_pixels`` (or a gzip body over ``max_bytes``);
- ``truncated``: a known image format whose data ends early or is corrupt;
- ``too_large``: more than ``crawl.max_bytes`` on the wire (decided by the downloader);
- ``empty``: a 0-byte body.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

import sluice.imaging  # noqa: F401  (registers the HEIF/HEIC opener: a site may serve iPhone photos as they are)

GPS_TAG = ExifTags.IFD.GPSInfo
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Verdict:
    reason: str | None  # None when the image is accepted
    details: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None


def _looks_like_markup(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<svg", b"{", b"["))


def check_image(body: bytes, content_type: str | None, max_pixels: int) -> Verdict:
    """Decode ``body`` completely and say whether it may land, and if not, why."""
    if not body:
        return Verdict("empty", "0 bytes")
    claimed = (content_type or "").split(";")[0].strip().lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as im:
                fmt, (width, height) = im.format, im.size
                if width * height > max_pixels:
                    return Verdict("decompression_bomb", f"{width}x{height} = {width * height} pixels > "
                                   f"crawl.max_pixels {max_pixels}", fmt, width, height)
                try:
                    im.load()
                except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
                    return Verdict("truncated", f"{fmt} data ends early or is corrupt: {' '.join(str(err).split())}",
                                   fmt, width, height)
                return Verdict(None, None, fmt, width, height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return Verdict("decompression_bomb", " ".join(str(err).split()))
    except UnidentifiedImageError:
        what = "markup (HTML/XML/JSON)" if _looks_like_markup(body) else "not a known image format"
        if claimed.startswith("image/"):
            return Verdict("content_mismatch", f"Content-Type {claimed} but the body is {what}")
        return Verdict("not_an_image", f"Content-Type {claimed or 'missing'}; body is {what}")
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        return Verdict("truncated", f"header unreadable: {' '.join(str(err).split())}")


def _exif_without_gps(payload: bytes) -> bytes | None:
    """The EXIF block re-serialised without its GPS IFD, or None when it has no GPS data."""
    exif = Image.Exif()
    exif.load(payload)
    if GPS_TAG not in exif and not exif.get_ifd(GPS_TAG):
        return None
    exif.get_ifd(GPS_TAG).clear()
    exif._ifds.pop(GPS_TAG, None)  # Pillow writes a loaded sub-IFD back even when its tag is gone
    exif.pop(GPS_TAG, None)
    return exif.tobytes()


def _strip_jpeg(body: bytes) -> bytes:
    out, pos = [body[:2]], 2
    while pos + 4 <= len(body) and body[pos] == 0xFF:
        marker = body[pos + 1]
        if marker == 0xDA or 0xD0 <= marker <= 0xD9:  # start of scan / markers without a length
            break
        length = struct.unpack(">H", body[pos + 2:pos + 4])[0]
        segment = body[pos:pos + 2 + length]
        if marker == 0xE1 and segment[4:10] == b"Exif\x00\x00":
            cleaned = _exif_without_gps(segment[4:])
            if cleaned is not None:
                if not cleaned.startswith(b"Exif\x00\x00"):
                    cleaned = b"Exif\x00\x00" + cleaned
                segment = b"\xff\xe1" + struct.pack(">H", len(cleaned) + 2) + cleaned
        out.append(segment)
        pos += 2 + length
    out.append(body[pos:])
    return b"".join(out)


def _strip_png(body: bytes) -> bytes:
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos + 12 <= len(body):
        length = struct.unpack(">I", body[pos:pos + 4])[0]
        kind = body[pos + 4:pos + 8]
        chunk = body[pos:pos + 12 + length]
        if kind == b"eXIf":
            cleaned = _exif_without_gps(body[pos + 8:pos + 8 + length])
            if cleaned is not None:
                data = cleaned.removeprefix(b"Exif\x00\x00")
                chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        out.append(chunk)
        pos += 12 + length
        if kind == b"IEND":
            break
    out.append(body[pos:])
    return b"".join(out)


def strip_gps(body: bytes) -> bytes:
    """``body`` with GPS EXIF removed; JPEG and PNG are edited in place (pixels untouched, lossless); a format
    Pillow cannot write (HEIC) is re-encoded as a lossless PNG without metadata."""
    if body.startswith(b"\xff\xd8"):
        return _strip_jpeg(body)
    if body.startswith(PNG_SIGNATURE):
        return _strip_png(body)
    with Image.open(io.BytesIO(body)) as im:  # other formats: re-encode only when GPS is present
        exif = im.getexif()
        if not exif.get_ifd(GPS_TAG) and GPS_TAG not in exif:
            return body
        if im.format not in Image.SAVE:  # HEIC: decode-only here, so the pixels go to a lossless PNG
            from sluice.imaging import strip_metadata

            return strip_metadata(body)
        exif.pop(GPS_TAG, None)
        exif._ifds.pop(GPS_TAG, None)
        buf = io.BytesIO()
        im.save(buf, format=im.format, exif=exif.tobytes())
        return buf.getvalue()


XMP_LOCATION = (b"GPSLatitude", b"GPSLongitude", b"exif:GPS")


def strip_location(body: bytes) -> bytes:
    """``body`` with no location left: the lossless GPS edit first; when location survives it (a segment
    the walk cannot reach, such as one behind 0xFF fill bytes, or GPS written in XMP), the image is
    re-encoded without any metadata (:func:`sluice.imaging.strip_metadata`). Raises on bytes whose
    metadata cannot be read; the caller quarantines them."""
    cleaned = strip_gps(body)
    if has_gps(cleaned) or any(tag in cleaned for tag in XMP_LOCATION):
        from sluice.imaging import strip_metadata

        cleaned = strip_metadata(cleaned)
    return cleaned


def has_gps(body: bytes) -> bool:
    with Image.open(io.BytesIO(body)) as im:
        exif = im.getexif()
        return bool(exif.get_ifd(GPS_TAG)) or GPS_TAG in exif
