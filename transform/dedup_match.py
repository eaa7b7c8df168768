"""Near-duplicate matching that survives real edits (shifts, crops, greyscale, colour/contrast, re-encodes).

Every image becomes a fixed 32x32 *equalised grey* thumbnail (luma, box-resized, histogram-equalised
per image): colour shifts, greyscale copies, contrast and gamma changes all map to nearly the same
thumbnail, whatever the stored resolution. On it:

- **Candidates** (sub-quadratic): each image is indexed by one 64-bit DCT hash of its central 24x24
  window, and queried with the hashes of windows of 24, 22 and 20 px at offsets of up to 4 px around
  the centre (75 queries). A copy shifted by d px, or cropped by up to ~17% and resized back, has one
  query window that covers the same content as the other image's central window, so their hashes
  agree within a few bits; multi-index hashing (:func:`transform.hamming.near_pairs_between`) finds
  those query/index pairs without comparing all pairs. The matching window is the pair's alignment.
- **Verification**: normalised cross-correlation of the aligned windows (refined by +-1 px) on the
  equalised thumbnails. Unrelated images whose coarse hashes collide, and different shots of similar
  scenes, correlate far lower than edited copies; the threshold is calibrated on the labelled
  benchmark in ``benchmarks/dedup.py`` (see docs/transform.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sluice.thumbnails import GRID, grey_levels
from sluice.thumbnails import equalise as equalised

CENTRE = 24  # indexed window side
SIZES = (24, 22, 20)  # query window sides: identity/shift, then crops up to ~17% of the side
REACH, STEP = 4, 2  # query offsets: -REACH..REACH px around the centre, every STEP px
MIRRORED = 4  # added to a verified pair's geometry when it matched mirrored left to right


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    size: int
    mirrored: bool = False  # a window of the thumbnail flipped left to right (x counted in the flipped one)


def _windows() -> list[Window]:
    out = []
    for s in SIZES:
        c = (GRID - s) // 2
        steps = [min(max(c + d, 0), GRID - s) for d in range(-REACH, REACH + 1, STEP)]
        out += [Window(x, y, s) for y in steps for x in steps]
    return out


WINDOWS = _windows()
_C = (GRID - CENTRE) // 2
# indexed windows: the centre and its 1 px neighbours right/down, so that with queries every STEP=2 px
# every whole-pixel displacement is met exactly by some (query, index) window pair
INDEX_WINDOWS = [Window(_C + dx, _C + dy, CENTRE) for dy in (0, 1) for dx in (0, 1)]
# the same windows of the mirrored thumbnail (x mirrored too, so the four cover the same displacements):
# probed as well, they find copies flipped left to right (``dedup.mirrored``); a candidate's ``ref``
# indexes INDEX_WINDOWS + MIRRORED_WINDOWS
MIRRORED_WINDOWS = [Window(GRID - CENTRE - w.x, w.y, CENTRE, mirrored=True) for w in INDEX_WINDOWS]


def probe_windows(mirrored: bool) -> list[Window]:
    """The windows each image is probed (and indexed) by: the centre windows, and with ``mirrored`` the
    same windows of its mirror image."""
    return INDEX_WINDOWS + MIRRORED_WINDOWS if mirrored else INDEX_WINDOWS


# ---------------------------------------------------------------------------- thumbnails
def thumbnails(pixels: np.ndarray, equalise: bool = True) -> np.ndarray:
    """(n, s, s, 3) uint8 images -> (n, 32, 32) uint8 (equalised) grey thumbnails."""
    levels = grey_levels(pixels)
    return equalised(levels) if equalise else levels


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(8)[:, None]
    x = np.arange(size)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * size)).astype(np.float32)


_DCT = {s: _dct_matrix(s) for s in SIZES}


def window_codes(thumbs: np.ndarray, windows: list[Window] = WINDOWS, block: int = 1024) -> np.ndarray:
    """(n, len(windows)) int64 DCT hashes of those windows of each thumbnail: bit k is set where the k-th
    of the 8x8 lowest frequencies is above their median (the DC term left out of the median).
    ``block`` thumbnails at a time are converted to float once for all their windows: 1,024 keeps a
    block's temporaries in the CPU's cache (CIFAR-10's 60,000: 2.25 s instead of 3.6-3.8 s with 8,192;
    the same codes)."""
    n = len(thumbs)
    out = np.zeros((n, len(windows)), np.int64)
    for start in range(0, n, block):
        grey = thumbs[start:start + block].astype(np.float32)
        mirror = grey[:, :, ::-1] if any(w.mirrored for w in windows) else None
        for k, w in enumerate(windows):
            d = _DCT[w.size]
            src = mirror if w.mirrored else grey
            low = (d @ src[:, w.y:w.y + w.size, w.x:w.x + w.size] @ d.T).reshape(len(grey), 64)
            median = np.partition(low[:, 1:], 31, axis=1)[:, 31:32]  # the median of 63: np.median, less overhead
            bits = low > median
            out[start:start + block, k] = np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64).view(np.int64)
    return out


# ---------------------------------------------------------------------------- verification
DETAIL_BLOCK = 1024  # thumbnails transformed at once: 4 float copies of 4 MiB stay in cache (0.25 s vs 0.8-1.0 s at 60k with 16,384)


def detail(grey: np.ndarray) -> np.ndarray:
    """Share of a plain grey thumbnail's variance outside the 8x8 lowest DCT frequencies.

    Upscaled low-resolution scans (the demo's 8x8 digits: <= 0.031) have almost none; of 3,000 CIFAR-10
    test photos 0.1% fall below 0.031, 1% below 0.048. See :func:`spectrum`.
    """
    return spectrum(grey)[0]


# the 8x8 lowest DCT frequencies but the DC term, lowest first (zigzag)
LOW_FREQUENCIES = sorted(((u, v) for u in range(8) for v in range(8) if u + v), key=lambda f: (f[0] + f[1], f[0]))


def spectrum(grey: np.ndarray, dims: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`detail` per thumbnail, and its ``dims`` lowest DCT coefficients (``LOW_FREQUENCIES``) after
    subtracting its mean and scaling it to unit norm: an orthonormal transform, so the coefficients of
    two thumbnails are never farther apart than their unit vectors, whose distance gives their Pearson
    correlation (:mod:`transform.dedup_plain`).
    Computed ``DETAIL_BLOCK`` thumbnails at a time: the transform's float copies of every thumbnail at
    once were dedup's peak (13.5 GB at 1M images)."""
    from scipy.fft import dctn

    share, low = np.empty(len(grey), np.float32), np.empty((len(grey), dims), np.float32)
    u, v = (np.array([f[c] for f in LOW_FREQUENCIES[:dims]], np.int64) for c in (0, 1))
    for start in range(0, len(grey), DETAIL_BLOCK):
        g = grey[start:start + DETAIL_BLOCK].astype(np.float32)
        c = dctn(g - g.mean(axis=(1, 2), keepdims=True), axes=(1, 2), norm="ortho")
        power = np.maximum((c ** 2).sum(axis=(1, 2)), 1e-6)
        share[start:start + DETAIL_BLOCK] = 1.0 - (c[:, :8, :8] ** 2).sum(axis=(1, 2)) / power
        low[start:start + DETAIL_BLOCK] = c[:, u, v] / np.sqrt(power)[:, None]
    return share, low


def plain_correlation(grey: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pearson correlation of whole (not equalised, not aligned) grey thumbnails, per pair (compiled:
    :func:`transform.aligned_ncc.pearson`)."""
    from transform.aligned_ncc import pearson

    out = np.empty(len(i), np.float32)
    pearson(np.ascontiguousarray(grey, np.uint8), np.ascontiguousarray(i, np.int64), np.ascontiguousarray(j, np.int64), out)
    return out


def aligned_scores(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, window: np.ndarray, ref: np.ndarray,
                   plain: np.ndarray | None = None, floor: float = -2.0, min_band: float = -2.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Verification per pair: align ``a``'s query window WINDOWS[window] to ``b``'s indexed window
    INDEX_WINDOWS[ref] (refined +-1 px on the windows), then correlate the *whole overlap* of the two
    equalised thumbnails under that alignment (a resampled onto b's grid), so that borders count too;
    with ``plain`` the lower of that and the same correlation of the plain thumbnails, for the pairs
    whose equalised score reaches ``floor`` (the lowest score a caller accepts: below it the pair is
    rejected either way, and keeps its equalised score); with ``min_band`` those pairs must also agree in
    their band-pass detail, else their score is lowered to that detail correlation (a shared layout is
    not a duplicate: docs/transform.md). Compiled, one pair at a time
    (:mod:`transform.aligned_ncc`).
    A ``ref`` of MIRRORED_WINDOWS (4 and up) compares ``b`` mirrored left to right.
    Returns (score, geometry 0 aligned / 1 shifted / 2 cropped / 3 cropped and shifted, + MIRRORED when
    ``b`` was mirrored)."""
    from transform.aligned_ncc import scores

    a, b = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
    qx, qy, qsize = (_WINDOW_TABLE[c][window] for c in range(3))
    vx, vy, flip = (_INDEX_TABLE[c][ref] for c in range(3))
    score = np.empty(len(a), np.float32)
    bx, by = np.empty(len(a), np.int64), np.empty(len(a), np.int64)
    use_plain = plain is not None
    scores(np.ascontiguousarray(thumbs), np.ascontiguousarray(plain if use_plain else thumbs[:0]), use_plain,
           float(floor), float(min_band), a, b, flip, qx, qy, qsize, vx, vy, *_TAPS, score, bx, by)
    geometry = ((qsize != CENTRE) * 2 + ((bx != vx) | (by != vy)) + flip * MIRRORED).astype(np.int8)
    return score, geometry


def _window_tables() -> tuple[np.ndarray, ...]:
    from transform.aligned_ncc import resize_taps

    query = np.array([(w.x, w.y, w.size) for w in WINDOWS], np.int64).T.copy()
    index = np.array([(w.x, w.y, w.mirrored) for w in INDEX_WINDOWS + MIRRORED_WINDOWS], np.int64).T.copy()
    taps = [np.zeros((CENTRE + 1, CENTRE), np.int64), np.zeros((CENTRE + 1, CENTRE), np.int64),
            np.zeros((CENTRE + 1, CENTRE), np.float32)]
    for s in SIZES:
        for t, values in zip(taps, resize_taps(s)):
            t[s] = values
    return query, index, tuple(taps)


_WINDOW_TABLE, _INDEX_TABLE, _TAPS = _window_tables()
