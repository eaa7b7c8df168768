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

GRID = 32  # thumbnail side (fixed, whatever clean.size is)
CENTRE = 24  # indexed window side
SIZES = (24, 22, 20)  # query window sides: identity/shift, then crops up to ~17% of the side
REACH, STEP = 4, 2  # query offsets: -REACH..REACH px around the centre, every STEP px
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    size: int


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


# ---------------------------------------------------------------------------- thumbnails
def thumbnails(pixels: np.ndarray, equalise: bool = True) -> np.ndarray:
    """(n, s, s, 3) uint8 images -> (n, 32, 32) uint8 (equalised) grey thumbnails."""
    n = len(pixels)
    if n == 0:
        return np.zeros((0, GRID, GRID), np.uint8)
    grey = pixels.astype(np.float32) @ _LUMA
    side = grey.shape[1]
    if side % GRID == 0:
        f = side // GRID
        grey = grey.reshape(n, GRID, f, GRID, f).mean(axis=(2, 4))
    else:
        from PIL import Image

        grey = np.stack([np.asarray(Image.fromarray(g, "F").resize((GRID, GRID), Image.Resampling.BOX)) for g in grey])
    levels = np.clip(np.rint(grey), 0, 255).astype(np.int64).reshape(n, -1)
    if not equalise:
        return levels.astype(np.uint8).reshape(n, GRID, GRID)
    hist = np.bincount((levels + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256)
    cdf = np.cumsum(hist, axis=1) - hist / 2.0  # mid-rank: ties share one value
    eq = np.take_along_axis(cdf, levels, axis=1) * (255.0 / levels.shape[1])
    return np.clip(np.rint(eq), 0, 255).astype(np.uint8).reshape(n, GRID, GRID)


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) linear-interpolation matrix (pixel centres aligned)."""
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, src - 1)
    hi = np.clip(lo + 1, 0, src - 1)
    w = np.clip(pos - lo, 0, 1)
    m = np.zeros((dst, src), np.float32)
    m[np.arange(dst), lo] += 1 - w
    m[np.arange(dst), hi] += w
    return m


_RESIZE = {s: _resize_matrix(s, CENTRE) for s in SIZES}


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(8)[:, None]
    x = np.arange(size)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * size)).astype(np.float32)


_DCT = {s: _dct_matrix(s) for s in SIZES}


def _crop(thumbs: np.ndarray, w: Window) -> np.ndarray:
    return thumbs[:, w.y:w.y + w.size, w.x:w.x + w.size].astype(np.float32)


def window_codes(thumbs: np.ndarray, windows: list[Window] = WINDOWS) -> np.ndarray:
    """(n, len(windows)) int64 DCT hashes of those windows of each thumbnail."""
    n = len(thumbs)
    out = np.zeros((n, len(windows)), np.int64)
    for k, w in enumerate(windows):
        d = _DCT[w.size]
        low = (d @ _crop(thumbs, w) @ d.T).reshape(n, 64)
        bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
        out[:, k] = np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64).view(np.int64)
    return out


# ---------------------------------------------------------------------------- verification
def detail(grey: np.ndarray) -> np.ndarray:
    """Share of a plain grey thumbnail's variance outside the 8x8 lowest DCT frequencies.

    Upscaled low-resolution scans (the demo's 8x8 digits: <= 0.031) have almost none; of 3,000 CIFAR-10
    test photos 0.1% fall below 0.031, 1% below 0.048.
    """
    from scipy.fft import dctn

    g = grey.astype(np.float32)
    c = dctn(g - g.mean(axis=(1, 2), keepdims=True), axes=(1, 2), norm="ortho") ** 2
    return 1.0 - c[:, :8, :8].sum(axis=(1, 2)) / np.maximum(c.sum(axis=(1, 2)), 1e-6)


def plain_correlation(grey: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pearson correlation of whole (not equalised, not aligned) grey thumbnails, per pair."""
    return (_standardise(grey[i].astype(np.float32)) * _standardise(grey[j].astype(np.float32))).sum(axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-3)


def aligned_scores(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, window: np.ndarray, ref: np.ndarray,
                   block: int = 4096, plain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Verification per pair: align ``a``'s query window WINDOWS[window] to ``b``'s indexed window
    INDEX_WINDOWS[ref] (refined +-1 px on the windows), then correlate the *whole overlap* of the two
    equalised thumbnails under that alignment (a resampled onto b's grid), so that borders count too.
    Returns (score, geometry 0 aligned / 1 shifted / 2 cropped / 3 cropped and shifted)."""
    best = np.full(len(a), -2.0, np.float32)
    bx, by = np.zeros(len(a), np.int64), np.zeros(len(a), np.int64)
    for start in range(0, len(a), block):
        sl = np.arange(start, min(start + block, len(a)))
        for k, r in {(int(k), int(r)) for k, r in zip(window[sl], ref[sl])}:
            rows = sl[(window[sl] == k) & (ref[sl] == r)]
            w, v = WINDOWS[k], INDEX_WINDOWS[r]
            target = _standardise(thumbs[b[rows], v.y:v.y + CENTRE, v.x:v.x + CENTRE].astype(np.float32))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    x, y = min(max(w.x + dx, 0), GRID - w.size), min(max(w.y + dy, 0), GRID - w.size)
                    crop = thumbs[a[rows], y:y + w.size, x:x + w.size].astype(np.float32)
                    if w.size != CENTRE:
                        crop = _RESIZE[w.size] @ crop @ _RESIZE[w.size].T
                    s = (_standardise(crop) * target).sum(axis=1)
                    better = s > best[rows]
                    best[rows[better]], bx[rows[better]], by[rows[better]] = s[better], x, y
    size = np.array([WINDOWS[k].size for k in window], np.int64)
    vx = np.array([INDEX_WINDOWS[r].x for r in ref], np.int64)
    vy = np.array([INDEX_WINDOWS[r].y for r in ref], np.int64)
    scores = np.zeros(len(a), np.float32)
    for start in range(0, len(a), block):
        sl = slice(start, min(start + block, len(a)))
        scores[sl] = _overlap_ncc(thumbs[a[sl]], thumbs[b[sl]], bx[sl], by[sl], vx[sl], vy[sl], size[sl] / CENTRE)
        if plain is not None:
            scores[sl] = np.minimum(scores[sl], _overlap_ncc(plain[a[sl]], plain[b[sl]], bx[sl], by[sl], vx[sl],
                                                             vy[sl], size[sl] / CENTRE))
    geometry = ((size != CENTRE) * 2 + ((bx != vx) | (by != vy))).astype(np.int8)
    return scores, geometry


def _axis_weights(offset: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, GRID, GRID) linear-interpolation weights taking a's pixels onto b's grid along one axis
    (b pixel u sits at a coordinate offset + (u - ref + 0.5) * scale - 0.5), and which u fall inside a."""
    u = np.arange(GRID)[None, :]
    pos = offset[:, None] + (u - ref[:, None] + 0.5) * scale[:, None] - 0.5
    inside = (pos >= -0.5) & (pos <= GRID - 0.5)
    pos = np.clip(pos, 0, GRID - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), GRID - 2)
    frac = (pos - lo).astype(np.float32)
    weights = np.zeros((len(offset), GRID, GRID), np.float32)
    n_idx, u_idx = np.nonzero(np.ones_like(pos, bool))
    weights[n_idx, u_idx, lo.ravel()] += (1 - frac).ravel()
    weights[n_idx, u_idx, lo.ravel() + 1] += frac.ravel()
    return weights, inside


def _overlap_ncc(ta, tb, x, y, vx, vy, scale) -> np.ndarray:
    """Correlation of b with a resampled onto b's grid, over the pixels both images cover."""
    wy, in_y = _axis_weights(y, vy, scale)
    wx, in_x = _axis_weights(x, vx, scale)
    warped = wy @ ta.astype(np.float32) @ wx.transpose(0, 2, 1)
    mask = (in_y[:, :, None] & in_x[:, None, :]).astype(np.float32)
    count = np.maximum(mask.sum(axis=(1, 2), keepdims=True), 1)
    tb = tb.astype(np.float32)
    ma = warped - (warped * mask).sum(axis=(1, 2), keepdims=True) / count
    mb = tb - (tb * mask).sum(axis=(1, 2), keepdims=True) / count
    num = (ma * mb * mask).sum(axis=(1, 2))
    den = np.sqrt((ma * ma * mask).sum(axis=(1, 2)) * (mb * mb * mask).sum(axis=(1, 2)))
    return num / np.maximum(den, 1e-3)
