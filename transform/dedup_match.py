"""Near-duplicate matching that survives real edits (shifts, crops, greyscale, colour/contrast, re-encodes).

Every image becomes a fixed 32x32 *equalised grey* thumbnail (luma, box-resized, histogram-equalised
per image with a level cap, :func:`sluice.thumbnails.equalise`): colour shifts, greyscale copies,
contrast and gamma changes all map to nearly the same thumbnail, whatever the stored resolution, and a
flat background's re-encoding noise is not stretched into a texture. On it:

- **Candidates** (sub-quadratic): each image is indexed by one 64-bit DCT hash of its central 24x24
  window, and queried with the hashes of windows of 24, 22, 20 and 18 px at offsets of up to 4 px around
  the centre, and of 18 windows of another aspect (118 queries). A copy shifted by d px, cropped by up to
  ~30% and resized back, or squashed to another aspect, has one query window that covers the same content
  as the other image's central window, so their hashes
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
# query window sides: identity/shift, then crops up to ~17% of the side, then (18: "zoomed") crops of 20-30%, the
# crop of a picture to another aspect ratio (a 16:9 cut of a 4:3 photo, centre-cropped square by clean, is a
# 25% crop of the original's square): docs/transform.md, "Larger crops"
SIZES = (24, 22, 20, 18)
ZOOM_SIZE = 18  # query windows this small or smaller had the most freedom to fit: their pairs need more
REACH, STEP = 4, 2  # query offsets: -REACH..REACH px around the centre, every STEP px
MIRRORED = 4  # added to a verified pair's geometry when it matched mirrored left to right
OVERLAID = 8  # added when it matched with a band left out (a caption, a watermark: transform/overlay_band.py)
ZOOMED = 16  # added when it matched at a query window of ZOOM_SIZE or less (a crop of 20-30%)
# query windows of another aspect (width, height): a copy resized to another aspect ratio, e.g. a 4:3 or 3:2 photo
# squashed to a square where the other copy was centre-cropped (docs/transform.md, "Squashed copies")
STRETCHES = ((24, 20), (20, 24), (24, 18), (18, 24), (24, 16), (16, 24))
STRETCHED = 32  # added when it matched at a window of another aspect
# a pair aligned by a shift, a crop or a squash (its alignment fitted, as for ``dedup.moved_margin``) in which either
# image has little detail (a share under LOW_DETAIL: a ship on a flat sea, a plane against the sky, whose band-pass is
# one horizon any such scene shares) needs MOVED_DETAIL_MARGIN more detail correlation than
# ``dedup.min_detail_correlation``: on CIFAR-10, of 155 such accepted pairs looked at with their detail at 0.50-0.65,
# 81 were different photos of a similar scene, 58 of the 75 with a share under 0.09 (docs/transform.md, "The detail check")
MOVED_DETAIL_MARGIN = 0.15
LOW_DETAIL = 0.09
# a mirrored match counts only by what it adds to the two images' own mirror symmetry: a ship on a flat sea
# correlates 0.9-0.97 with its mirror image, so any such scene matches it mirrored (docs/transform.md)
MIRROR_SYMMETRY_MARGIN = 0.05


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    size: int  # its width (and its height unless ``height``)
    mirrored: bool = False  # a window of the thumbnail flipped left to right (x counted in the flipped one)
    height: int = 0  # another height than ``size``: a window of another aspect (STRETCHES)

    @property
    def rows(self) -> int:
        return self.height or self.size


def _windows() -> list[Window]:
    out = []
    for s in SIZES:
        c = (GRID - s) // 2
        steps = [min(max(c + d, 0), GRID - s) for d in range(-REACH, REACH + 1, STEP)]
        out += [Window(x, y, s) for y in steps for x in steps]
    for w, h in STRETCHES:  # at the centre and STEP px either way across their short side
        cx, cy = (GRID - w) // 2, (GRID - h) // 2
        out += [Window(cx + d * (w < h), cy + d * (h < w), w, height=h) for d in (0, -STEP, STEP)]
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
FRAME_TOLERANCE = 6  # grey levels a frame's rows and columns stay within of its colour
FRAME_MAX = 8  # thumbnail pixels (of 32) a frame may take on one side: up to 25%
EDGE_SHARE = 0.5  # of the line inside a frame that differs from it: a picture edge, not an object
# high-frequency share below which an image is "detail-free" (an upscaled 8x8 scan, a smooth scene):
# such pairs are judged by their plain correlation alone (transform.dedup), and are never unframed
MIN_DETAIL = 0.035


def unframe(levels: np.ndarray) -> np.ndarray:
    """Plain (n, 32, 32) thumbnails with a frame or letterbox cut off and the inside resized back to
    32x32. A frame is uniform rows on both the top and the bottom, or uniform columns on both sides
    (within FRAME_TOLERANCE of the median colour of the outermost ring, at most FRAME_MAX pixels a side):
    a copy padded to a square, letterboxed or framed is then compared as the image it holds (at 32 px a
    12% border left no candidate at all). Uniform rows on one side only (a sky, a wall) are content, not
    a frame: cutting them made unrelated ships on one sky match on CIFAR-10 (docs/transform.md). Nor is
    a plain background around an object (a digit, a product shot): a frame ends at a picture's edge,
    where most of the next line differs from it; a background ends where the object touches a few pixels,
    and cutting it would cut a copy differently wherever re-encoding noise moves that line."""
    n = len(levels)
    if n == 0:
        return levels
    sides = np.zeros((4, n), np.int64)  # frame lines at the top, bottom, left, right
    colour = np.zeros(n, np.int16)
    for lo in range(0, n, 1024):  # int16 blocks that stay in the CPU's cache (not n x 1,024 float64)
        g = levels[lo:lo + 1024].astype(np.int16)
        ring = np.concatenate([g[:, 0], g[:, -1], g[:, :, 0], g[:, :, -1]], axis=1)
        colour[lo:lo + 1024] = np.median(ring, axis=1).round()
        flat = np.abs(g - colour[lo:lo + 1024, None, None]) <= FRAME_TOLERANCE
        rows, cols = flat.all(axis=2), flat.all(axis=1)
        for k, f in enumerate((rows, rows[:, ::-1], cols, cols[:, ::-1])):
            sides[k, lo:lo + 1024] = np.cumprod(f[:, :FRAME_MAX], axis=1).sum(axis=1)  # leading uniform lines
    top, bottom, left, right = sides
    framed = (((top > 0) & (bottom > 0)) | ((left > 0) & (right > 0))) & (top + bottom < GRID // 2) & (left + right < GRID // 2)
    if not framed.any():
        return levels
    from PIL import Image

    out = levels.copy()
    framed = np.flatnonzero(framed)
    # an upscaled scan on a plain background is detail-free: judged whole, by plain correlation (where a
    # cut that re-encoding noise moves by one line costs a copy), so it keeps its background
    framed = framed[spectrum(levels[framed])[0] >= MIN_DETAIL]
    for k in framed:
        g = levels[k].astype(np.int16)
        lines = [(g, top[k]), (g[::-1], bottom[k]), (g.T, left[k]), (g.T[::-1], right[k])]
        if not all(_picture_edge(x, m, colour[k]) for x, m in lines if m):
            continue  # an object on a plain background (a digit, a product shot), not a picture in a frame
        t, b, le, r = (_blended(x, m, colour[k]) for x, m in lines)
        inside = levels[k, t:GRID - b, le:GRID - r].astype(np.float32)
        resized = Image.fromarray(inside, "F").resize((GRID, GRID), Image.Resampling.BILINEAR)
        out[k] = np.clip(np.rint(np.asarray(resized)), 0, 255).astype(np.uint8)
    return out


def _picture_edge(lines: np.ndarray, n: int, colour: float) -> bool:
    """Whether the frame's ``n`` lines end at a picture's edge: most of the next line (or the one after,
    where the border blends into that one) differs from the frame's colour."""
    return any(float((np.abs(lines[m] - colour) > FRAME_TOLERANCE).mean()) >= EDGE_SHARE for m in (n, n + 1) if m < len(lines))


def _blended(lines: np.ndarray, n: int, colour: float) -> int:
    """``n`` frame lines, plus the next one where it is part frame (a border that did not fall on a
    thumbnail pixel's edge: that line is nearer the frame's colour than the picture's next line is)."""
    if n == 0 or n + 1 >= len(lines):
        return n
    near, far = (float(np.abs(lines[m] - colour).mean()) for m in (n, n + 1))
    return n + 1 if near < 0.6 * far else n


def thumbnails(pixels: np.ndarray, equalise: bool = True) -> np.ndarray:
    """(n, s, s, 3) uint8 images -> (n, 32, 32) uint8 (equalised) grey thumbnails, frames cut off
    (:func:`unframe`)."""
    levels = unframe(grey_levels(pixels))
    return equalised(levels) if equalise else levels


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(8)[:, None]
    x = np.arange(size)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * size)).astype(np.float32)


_SIDES = sorted({*SIZES, *(side for shape in STRETCHES for side in shape)})
_DCT = {s: _dct_matrix(s) for s in _SIDES}


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
            src = mirror if w.mirrored else grey
            low = (_DCT[w.rows] @ src[:, w.y:w.y + w.rows, w.x:w.x + w.size] @ _DCT[w.size].T).reshape(len(grey), 64)
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


def mirror_symmetry(grey: np.ndarray) -> np.ndarray:
    """Pearson correlation of each plain grey thumbnail with its mirror image (left to right)."""
    x = grey.reshape(len(grey), -1).astype(np.float32)
    y = grey[:, :, ::-1].reshape(len(grey), -1).astype(np.float32)
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    return (x * y).sum(axis=1) / np.maximum(np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1)), 1e-3)


def mirror_of_itself(plain: np.ndarray, i: np.ndarray, j: np.ndarray, score: np.ndarray, geometry: np.ndarray,
                     accepted: np.ndarray) -> np.ndarray:
    """Which ``accepted`` pairs matched mirrored without beating the lower of their two images' own mirror symmetry
    by ``MIRROR_SYMMETRY_MARGIN``: a symmetric scene (a ship on a flat sea) meets any other like it mirrored."""
    out = np.zeros(len(i), bool)
    rows = np.flatnonzero(accepted & ((geometry & MIRRORED) > 0))
    if len(rows):
        own = np.minimum(mirror_symmetry(plain[i[rows]]), mirror_symmetry(plain[j[rows]]))
        out[rows] = score[rows] < own + MIRROR_SYMMETRY_MARGIN
    return out


def plain_correlation(grey: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pearson correlation of whole (not equalised, not aligned) grey thumbnails, per pair (compiled:
    :func:`transform.aligned_ncc.pearson`)."""
    from transform.aligned_ncc import pearson

    out = np.empty(len(i), np.float32)
    pearson(np.ascontiguousarray(grey, np.uint8), np.ascontiguousarray(i, np.int64), np.ascontiguousarray(j, np.int64), out)
    return out


def aligned_scores(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, window: np.ndarray, ref: np.ndarray,
                   plain: np.ndarray | None = None, floor: float = -2.0, min_band: float = -2.0,
                   overlays: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Verification per pair: align ``a``'s query window WINDOWS[window] to ``b``'s indexed window
    INDEX_WINDOWS[ref] (refined +-1 px on the windows), then correlate the *whole overlap* of the two
    equalised thumbnails under that alignment (a resampled onto b's grid), so that borders count too;
    with ``plain`` the lower of that and the same correlation of the plain thumbnails, for the pairs
    whose equalised score reaches ``floor`` (the lowest score a caller accepts: below it the pair is
    rejected either way, and keeps its equalised score); with ``min_band`` those pairs must also agree in
    their band-pass detail (``MOVED_DETAIL_MARGIN`` more where the alignment was fitted and an image has little
    detail: ``LOW_DETAIL``), else their score is
    lowered to that detail correlation (a shared layout is not a duplicate: docs/transform.md); with ``overlays`` a pair short of ``floor`` is also scored without
    its worst band, less a margin (a caption or a watermark: :mod:`transform.overlay_band`). Compiled, one
    pair at a time (:mod:`transform.aligned_ncc`).
    A ``ref`` of MIRRORED_WINDOWS (4 and up) compares ``b`` mirrored left to right.
    Returns (score, geometry 0 aligned / 1 shifted / 2 cropped / 3 cropped and shifted, + MIRRORED when
    ``b`` was mirrored, + OVERLAID when the score left a band out, + ZOOMED at a square query window of ZOOM_SIZE
    or less, STRETCHED (instead of cropped) at a window of another aspect)."""
    from transform.aligned_ncc import scores

    a, b = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
    qx, qy, qwidth, qheight = (_WINDOW_TABLE[c][window] for c in range(4))
    vx, vy, flip = (_INDEX_TABLE[c][ref] for c in range(3))
    score = np.empty(len(a), np.float32)
    bx, by = np.empty(len(a), np.int64), np.empty(len(a), np.int64)
    overlaid = np.empty(len(a), np.bool_)
    use_plain = plain is not None
    moved_band = min_band + MOVED_DETAIL_MARGIN if min_band > -1 else min_band
    scores(np.ascontiguousarray(thumbs), np.ascontiguousarray(plain if use_plain else thumbs[:0]), use_plain,
           float(floor), float(min_band), float(moved_band), LOW_DETAIL, _DCT32, overlays, a, b, flip, qx, qy, qwidth,
           qheight, vx, vy, *_TAPS, score, bx, by, overlaid)
    stretched = qwidth != qheight
    geometry = (((qwidth != CENTRE) & ~stretched) * 2 + ((bx != vx) | (by != vy)) + flip * MIRRORED
                + overlaid * OVERLAID + ((qwidth <= ZOOM_SIZE) & ~stretched) * ZOOMED + stretched * STRETCHED)
    return score, geometry.astype(np.int8)


def _window_tables() -> tuple[np.ndarray, ...]:
    from transform.aligned_ncc import resize_taps

    query = np.array([(w.x, w.y, w.size, w.rows) for w in WINDOWS], np.int64).T.copy()
    index = np.array([(w.x, w.y, w.mirrored) for w in INDEX_WINDOWS + MIRRORED_WINDOWS], np.int64).T.copy()
    taps = [np.zeros((CENTRE + 1, CENTRE), np.int64), np.zeros((CENTRE + 1, CENTRE), np.int64),
            np.zeros((CENTRE + 1, CENTRE), np.float32)]
    for s in _SIDES:
        for t, values in zip(taps, resize_taps(s)):
            t[s] = values
    return query, index, tuple(taps)


def _thumbnail_dct() -> np.ndarray:
    from transform.detail_share import dct_matrix

    return dct_matrix(GRID)


_WINDOW_TABLE, _INDEX_TABLE, _TAPS = _window_tables()
_DCT32 = _thumbnail_dct()  # a thumbnail's DCT, for the detail share of the pairs it decides (transform.aligned_ncc)
