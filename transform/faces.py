"""Face anonymisation at clean time (``privacy.faces: keep | blur | drop``; docs/privacy.md).

The detector looks at the decoded source image (upright RGB, before it is fitted to the silver
geometry), not at the silver pixels: those are often far too small to find a face in (the demo's are
32x32) while the face is still there, a few pixels wide. The source is scaled so that a face of
``privacy.face_min_px`` silver pixels fills the cascade's 24-pixel window (no smaller face is looked
for), a small source scaled up at most 4x, the longer side at most ``privacy.face_detect_max_side``:
for 32x32 silver that is about 192 pixels, whatever the photo's size, which bounds the cost. Each box
found is grown by
``privacy.face_margin``, mapped onto the silver pixels with the geometry's own maths
(:func:`sluice.imaging.fit_box`) and, with ``blur``, replaced there by a Gaussian blur of itself with a
sigma of a third of the box's longer side (no detail finer than the box survives); with ``drop`` the
image is rejected with check ``privacy:face`` and never reaches silver. ``keep`` never calls this module,
so nothing is imported or loaded.

Detectors: a name in :data:`DETECTORS` or ``"module:function"``: a function of the ``privacy`` params
section returning a :data:`Detector` (RGB uint8 array -> face boxes ``(x, y, w, h)`` in its pixels). The
built-in ones are OpenCV's Haar cascades shipped in the opencv-python-headless wheel (``cv2.data``): no
download, no network. ``haar`` runs the frontal cascade (``alt2``) and the profile cascade on the image
and its mirror; ``haar_frontal`` only the first (a third of the cost, misses faces seen from the side).
A detector is built once per thread (OpenCV's classifiers are not shared between threads).
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from sluice.errors import ConfigError
from sluice.imaging import Decoded, Geometry, Reject, fit_box

CHECK = "privacy:face"  # quarantine check (and reason) of an image dropped for a face
Box = tuple[int, int, int, int]  # x, y, w, h
Detector = Callable[[np.ndarray], list[Box]]
SCALE_STEP = 1.1  # the cascades look for faces at sizes 24, 24 * 1.1, 24 * 1.1^2, ...
MIN_FACE = 24  # the Haar cascades' window: faces smaller than this in the detection image are not found
MIN_SOURCE_FACE = 6  # nor faces under 6 pixels of the source: a small source is scaled up at most 4x

_local = threading.local()


# ---------------------------------------------------------------------------- detectors
def _cascade(name: str):
    import cv2

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise ConfigError(f"OpenCV cannot load its bundled cascade {name} (reinstall opencv-python-headless)")
    return classifier


def haar(privacy, profile: bool = True) -> Detector:
    """OpenCV's frontal face cascade (``alt2``), plus the profile cascade both ways round with ``profile``."""
    import cv2

    cv2.setNumThreads(1)  # the parallelism is Dask's (one task per core); OpenCV's own threads would oversubscribe

    frontal = _cascade("haarcascade_frontalface_alt2.xml")
    side = _cascade("haarcascade_profileface.xml") if profile else None
    neighbours = privacy.face_min_neighbors

    def find(cascade, grey: np.ndarray) -> list[Box]:
        found = cascade.detectMultiScale(grey, scaleFactor=SCALE_STEP, minNeighbors=neighbours, minSize=(MIN_FACE, MIN_FACE))
        return [tuple(int(v) for v in b) for b in found]

    def detect(rgb: np.ndarray) -> list[Box]:
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        boxes = find(frontal, grey)
        if side is not None:
            width = grey.shape[1]
            boxes += find(side, grey)
            boxes += [(width - x - w, y, w, h) for x, y, w, h in find(side, np.ascontiguousarray(grey[:, ::-1]))]
        return boxes

    return detect


def haar_frontal(privacy) -> Detector:
    return haar(privacy, profile=False)


DETECTORS: dict[str, Callable[..., Detector]] = {"haar": haar, "haar_frontal": haar_frontal}


def resolve(name: str) -> Callable[..., Detector]:
    """The detector factory ``privacy.face_detector`` names: built-in, or ``module:function``."""
    if name in DETECTORS:
        return DETECTORS[name]
    module, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"privacy.face_detector {name!r} cannot be loaded ({err}); built-in: "
                          f"{', '.join(DETECTORS)}") from None
    if not callable(factory):
        raise ConfigError(f"privacy.face_detector {name!r} is not a function")
    return factory


def detector(privacy) -> Detector:
    """This thread's detector for the params (built at the first call)."""
    key = (privacy.face_detector, privacy.face_min_neighbors)
    cache = getattr(_local, "detectors", None)
    if cache is None:
        cache = _local.detectors = {}
    if key not in cache:
        cache[key] = resolve(privacy.face_detector)(privacy)
    return cache[key]


def check(privacy) -> None:
    """Build the detector here, before any task runs, so a bad ``face_detector`` or a missing OpenCV is one
    line on the driver instead of a failed (and retried) Dask task."""
    try:
        detector(privacy)
    except ImportError as err:
        raise ConfigError(f"privacy.faces: {privacy.faces} needs {err.name or 'its detector'} "
                          f"(pip install -r requirements.lock): {err}") from None


# ---------------------------------------------------------------------------- one image
def detection_scale(size: tuple[int, int], geometry: Geometry, privacy) -> float:
    """The factor the source is resized by for detection: a face of ``privacy.face_min_px`` silver pixels
    becomes the cascade's 24-pixel window (smaller faces are not looked for: they are a few pixels of the
    silver image) nor under 6 source pixels (a small source is scaled up at most 4x), and the longer side
    stays within ``privacy.face_detect_max_side``."""
    w, h = size
    to_silver = max(geometry.width / w, geometry.height / h)  # source -> silver pixels (centre crop's scale)
    return min(MIN_FACE * to_silver / privacy.face_min_px, MIN_FACE / MIN_SOURCE_FACE,
               privacy.face_detect_max_side / max(w, h))


def source_side(geometry: Geometry, privacy) -> int:
    """The shorter side the decoded source needs for :func:`detection_scale` (a JPEG decodes no smaller)."""
    return min(math.ceil(MIN_FACE / privacy.face_min_px * max(geometry.height, geometry.width)),
               privacy.face_detect_max_side)


def find_faces(source: Image.Image, geometry: Geometry, privacy) -> list[tuple[float, float, float, float]]:
    """Face boxes ``(x0, y0, x1, y1)`` in the source image's pixels, grown by the margin, overlaps merged."""
    scale = detection_scale(source.size, geometry, privacy)
    image = source
    if scale != 1.0:
        size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
        image = source.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.BOX)
    boxes = []
    for x, y, w, h in detector(privacy)(np.asarray(image, np.uint8)):
        pad_x, pad_y = w * privacy.face_margin, h * privacy.face_margin
        boxes.append(((x - pad_x) / scale, (y - pad_y) / scale, (x + w + pad_x) / scale, (y + h + pad_y) / scale))
    return merge_overlaps(boxes)


def merge_overlaps(boxes: list[tuple[float, float, float, float]], share: float = 0.5):
    """One box per face: a box whose intersection with a kept one covers ``share`` of the smaller is
    merged into it (frontal and profile cascades often both find the same face)."""
    kept: list[list[float]] = []
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        for k in kept:
            iw = min(k[2], box[2]) - max(k[0], box[0])
            ih = min(k[3], box[3]) - max(k[1], box[1])
            smaller = min((k[2] - k[0]) * (k[3] - k[1]), (box[2] - box[0]) * (box[3] - box[1]))
            if iw > 0 and ih > 0 and iw * ih >= share * smaller:
                k[:] = [min(k[0], box[0]), min(k[1], box[1]), max(k[2], box[2]), max(k[3], box[3])]
                break
        else:
            kept.append(list(box))
    return [tuple(k) for k in kept]


def blur_region(pixels: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Blur ``pixels[y0:y1, x0:x1]`` in place with a Gaussian of sigma = a third of the box's longer side,
    computed from the box's own pixels only (nothing from outside leaks in)."""
    left, top, right, bottom = box
    region = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right]))
    sigma = max(1.5, max(right - left, bottom - top) / 3)
    pixels[top:bottom, left:right] = np.asarray(region.filter(ImageFilter.GaussianBlur(sigma)), np.uint8)


def anonymise(decoded: Decoded, geometry: Geometry, privacy) -> tuple[np.ndarray, int]:
    """The silver pixels with every face in them blurred, and how many faces (one cut off by the fit,
    e.g. outside a centre crop, is not counted); raises :class:`Reject` with ``privacy.faces: drop``
    when there is a face. ``decoded.source`` must be set (decode with ``source_side``)."""
    found = (fit_box(face, decoded.source.size, geometry) for face in find_faces(decoded.source, geometry, privacy))
    boxes = [box for box in found if box is not None]
    if boxes and privacy.faces == "drop":
        raise Reject(CHECK, f"{len(boxes)} face(s) found by {privacy.face_detector} (privacy.faces: drop)")
    pixels = decoded.pixels
    if boxes:
        pixels = pixels.copy()
        for box in boxes:
            blur_region(pixels, box)
    return pixels, len(boxes)
