"""Pixels in sRGB whatever profile a file embeds: what every model is trained and served on.

A photo is stored in its camera's or editor's colour space and says which by an embedded ICC profile: iPhones write
Display P3, cameras and print work Adobe RGB, print assets CMYK (a press profile). Read as if they were sRGB (what
decoders do), a P3 photo's saturated reds and greens come out dull and a CMYK file's colours far off, so copies of one
picture in two colour spaces (a phone original and a re-encoded web copy) look like two pictures and a model sees
colours no camera it will meet produces. Each image with a profile that is not sRGB is converted to sRGB by
LittleCMS (Pillow's ImageCms), the perceptual intent; a profile that cannot be read is left alone (the pixels as
stored, as before), never a reject: the picture is fine, only its label of colours is broken.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageCms

_CONVERTED_MODES = ("RGB", "RGBA", "CMYK")  # grey and palette images with a profile are left as stored
# real profiles are a few KB (matrix/TRC: P3, Adobe RGB) to ~2 MB (a press's CMYK LUTs); a JPEG can carry 16 MB of
# them. Larger ones are left unapplied, so a hostile collection cannot make the transform cache hold GBs
MAX_PROFILE_BYTES = 4 << 20


@functools.lru_cache(maxsize=32)
def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform from ``profile`` (``mode`` pixels) to sRGB, or None where it is sRGB already or unreadable. Cached:
    building one costs ~1 ms, and a collection's files share a few profiles."""
    try:
        source = ImageCms.ImageCmsProfile(ImageCms.core.profile_frombytes(profile))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower().replace(" ", "").replace("-", ""):
            return None
        return ImageCms.buildTransform(source, _SRGB, mode, "RGBA" if mode == "RGBA" else "RGB",
                                       ImageCms.Intent.PERCEPTUAL)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def to_srgb(im: Image.Image, profile: bytes | None) -> Image.Image:
    """``im`` with its pixels converted from ``profile`` (the ICC profile its file embeds) to sRGB (RGB, or RGBA
    keeping alpha); the image itself where there is no profile, an sRGB one, one that cannot be read, or a mode not
    converted. Clean converts an RGB image once it is fitted to its output size (0.84x the decode of the same photos
    without a profile, against 0.54x converting the full-size photo), a CMYK one before its channels become RGB."""
    if not profile or im.mode not in _CONVERTED_MODES or len(profile) > MAX_PROFILE_BYTES:
        return im
    transform = _transform(bytes(profile), im.mode)
    if transform is None:
        return im
    try:
        return ImageCms.applyTransform(im, transform)
    except (ImageCms.PyCMSError, OSError, ValueError):  # a profile whose channels do not fit the pixels
        return im


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
