"""Dedup's pixel verification, compiled (numba): the aligned correlation of one candidate pair at a time.

Per pair (see :func:`transform.dedup_match.aligned_scores`): the query window of ``a`` is resized onto
the 24 px indexed window of ``b`` at 9 positions (+-1 px), the best-correlated position is kept, and
the score is the correlation of the two whole thumbnails over their overlap under that alignment (``a``
resampled bilinearly onto ``b``'s grid), the lower of the equalised and plain thumbnails' scores when
both are given (the plain one only where the equalised score reaches ``floor``: below it the lower of
the two is below it too, so a caller that rejects scores under ``floor`` gets the same decisions for
about a third less work, the equalised score standing for a rejected pair's). A pair that reaches
``floor`` must also agree in its *detail* (:func:`_band_ncc`, at least ``min_band``, and ``moved_band`` when the
alignment was fitted: shifted, cropped or of another aspect, as the score's ``moved_margin``); if not, its
score is lowered to that detail correlation: two photos that share a layout (a ship on a horizon, a
plane over a runway) correlate highly as whole thumbnails while their detail is unrelated. In NumPy that was batched matrix products over dense (32 x 32) interpolation matrices
and several gathered float copies per pair (~120 us a pair); every interpolation here touches its two
taps only, in one pass, with nothing allocated per pair. The 9 positions share their resize: each of the
3 column positions is resized along x once over the rows its 3 row positions span, and the resize along
y is fused with the correlation (each row's sums in float32, added in float64); a window of the target's
size is correlated as it is. The overlap is resampled along x, then along y, in loops over its rows and
columns that the compiler vectorises. Same positions and decisions as before, scores within 1e-7, in
0.57x the time a pair (``benchmarks/dedup_verify.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from transform.detail_share import detail_share
from transform.overlay_band import OVERLAY_GATE, OVERLAY_MARGIN, best_band, in_band, masked_ncc

GRID = 32
CENTRE = 24


def resize_taps(src: int, dst: int = CENTRE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from ``src`` to ``dst`` pixels (pixel centres aligned): per output pixel its
    two source pixels and the weight of the second."""
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    lo = np.clip(np.floor(pos).astype(np.int64), 0, src - 1)
    hi = np.clip(lo + 1, 0, src - 1)
    w = np.clip(pos - lo, 0, 1).astype(np.float32)
    return lo, hi, w


@njit(inline="always")
def _standardise(x):
    """In place: zero mean, unit norm (the norm floored at 1e-3, as for a flat window)."""
    n = x.shape[0] * x.shape[1]
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            total += x[i, j]
    mean = total / n
    sq = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            d = x[i, j] - mean
            x[i, j] = d
            sq += d * d
    norm = max(np.sqrt(sq), 1e-3)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] = x[i, j] / norm


@njit(inline="always")
def _rows_resized(img, x, s, y0, y1, lo, hi, w, out):
    """Rows ``y0 .. y1 - 1`` of ``img``'s columns ``x .. x + s - 1`` resized along x to CENTRE into ``out``
    (its row 0 is ``y0``): the row pass of a window's resize, shared by the windows that start at ``x``."""
    for k in range(y1 - y0):
        for j in range(CENTRE):
            out[k, j] = (np.float32(1.0) - w[j]) * img[y0 + k, x + lo[j]] + w[j] * img[y0 + k, x + hi[j]]


@njit(inline="always")
def _resized_correlation(rows, top, lo, hi, w, target, target_sum):
    """Correlation of a standardised ``target`` with the window whose row-resized rows start at ``rows[top]``,
    resized along y on the fly (the column pass, never stored): each row's sums in float32 (24 terms),
    added up in float64."""
    total = 0.0
    sq = 0.0
    dot = 0.0
    for i in range(CENTRE):
        r0, r1, wy = top + lo[i], top + hi[i], w[i]
        row_total = np.float32(0.0)
        row_sq = np.float32(0.0)
        row_dot = np.float32(0.0)
        for j in range(CENTRE):
            v = (np.float32(1.0) - wy) * rows[r0, j] + wy * rows[r1, j]
            row_total += v
            row_sq += v * v
            row_dot += v * target[i, j]
        total += row_total
        sq += row_sq
        dot += row_dot
    return _pearson(total, sq, dot, target_sum)


@njit(inline="always")
def _window_correlation(img, y, x, target, target_sum):
    """Correlation of a standardised ``target`` with ``img[y:y+CENTRE, x:x+CENTRE]`` as it is (a window the
    size of the target: nothing to resize). ``img`` holds whole grey levels as float32, so each row's sum
    and sum of squares (at most 24 x 255^2) are exact."""
    total = 0.0
    sq = 0.0
    dot = 0.0
    for i in range(CENTRE):
        row_total = np.float32(0.0)
        row_sq = np.float32(0.0)
        row_dot = np.float32(0.0)
        for j in range(CENTRE):
            v = img[y + i, x + j]
            row_total += v
            row_sq += v * v
            row_dot += v * target[i, j]
        total += row_total
        sq += row_sq
        dot += row_dot
    return _pearson(total, sq, dot, target_sum)


@njit(inline="always")
def _pearson(total, sq, dot, target_sum):
    """The correlation from a window's sum, sum of squares and dot product with a standardised target
    (which sums to ``target_sum``, zero but for rounding): its mean taken out of the dot, its norm after."""
    mean = total / (CENTRE * CENTRE)
    return (dot - mean * target_sum) / max(np.sqrt(max(sq - total * mean, 0.0)), 1e-3)


@njit(inline="always")
def _axis(offset, ref, scale, lo, frac, inside):
    """Where b's pixels u fall on a's grid along one axis (a coordinate offset + (u - ref + 0.5) * scale - 0.5):
    the lower source pixel, the weight of the upper one, and whether u falls inside a."""
    for u in range(GRID):
        pos = offset + (u - ref + 0.5) * scale - 0.5
        inside[u] = pos >= -0.5 and pos <= GRID - 0.5
        pos = min(max(pos, 0.0), GRID - 1.0)
        low = min(int(np.floor(pos)), GRID - 2)
        lo[u] = low
        frac[u] = np.float32(pos - low)


@njit(inline="always")
def _span(inside):
    """The first and one past the last index where ``inside`` holds (a run: where one axis of b falls on a)."""
    first, stop = 0, 0
    for u in range(GRID):
        if inside[u]:
            if stop == 0:
                first = u
            stop = u + 1
    return first, stop


@njit(inline="always")
def _overlap_ncc(ta, tb, ly, fy, iy, lx, fx, ix, warped, along_x):
    """Correlation of ``tb`` with ``ta`` resampled onto its grid (into ``warped``), over the pixels both
    cover. The bilinear resampling is done along x for every row of ``ta`` (into ``along_x``), then along
    y: the same arithmetic as the four taps at once, in loops the compiler vectorises."""
    for y in range(GRID):
        for v in range(GRID):
            x0, wx = lx[v], fx[v]
            along_x[y, v] = (np.float32(1.0) - wx) * np.float32(ta[y, x0]) + wx * np.float32(ta[y, x0 + 1])
    for u in range(GRID):
        y0, wy = ly[u], fy[u]
        for v in range(GRID):
            warped[u, v] = (np.float32(1.0) - wy) * along_x[y0, v] + wy * along_x[y0 + 1, v]
    u0, u1 = _span(iy)
    v0, v1 = _span(ix)
    count = max((u1 - u0) * (v1 - v0), 1)
    sum_a = 0.0
    sum_b = 0.0
    for u in range(u0, u1):
        for v in range(v0, v1):
            sum_a += warped[u, v]
            sum_b += tb[u, v]
    mean_a, mean_b = sum_a / count, sum_b / count
    num = 0.0
    var_a = 0.0
    var_b = 0.0
    for u in range(u0, u1):
        for v in range(v0, v1):
            da = warped[u, v] - mean_a
            db = tb[u, v] - mean_b
            num += da * db
            var_a += da * da
            var_b += db * db
    return num / max(np.sqrt(var_a * var_b), 1e-3)


@njit(inline="always")
def _band_ncc(wa, tb, iy, ix, ba, bb, axis, e0, e1):
    """Correlation of the two images' band-pass detail over the overlap (3 px in from its edge): a 3x3
    box blur (drops the pixel-level noise a re-encode or a resampling crop adds), then a Laplacian of
    step 2 (drops the layout). Calibrated in docs/transform.md: every edit of ``benchmarks/dedup.py``'s
    quick set keeps >= 0.54 at 32 px, while accepted CIFAR-10 pairs below 0.45 were different photos.
    Pixels within 3 px of a left-out band (axis 0 rows, 1 columns, -1 none; :mod:`transform.overlay_band`)
    do not count: their detail is the overlay's edge."""
    for u in range(GRID):
        for v in range(GRID):
            sa = 0.0
            sb = 0.0
            for du in (-1, 0, 1):
                y = min(max(u + du, 0), GRID - 1)
                for dv in (-1, 0, 1):
                    x = min(max(v + dv, 0), GRID - 1)
                    sa += wa[y, x]
                    sb += np.float32(tb[y, x])
            ba[u, v] = sa
            bb[u, v] = sb
    n = 0
    sum_a = 0.0
    sum_b = 0.0
    aa = 0.0
    bb2 = 0.0
    ab = 0.0
    for u in range(3, GRID - 3):
        if not (iy[u - 3] and iy[u + 3]):
            continue
        for v in range(3, GRID - 3):
            if not (ix[v - 3] and ix[v + 3]) or in_band(u, v, axis, e0 - 3, e1 + 3):
                continue
            la = 4.0 * ba[u, v] - ba[u - 2, v] - ba[u + 2, v] - ba[u, v - 2] - ba[u, v + 2]
            lb = 4.0 * bb[u, v] - bb[u - 2, v] - bb[u + 2, v] - bb[u, v - 2] - bb[u, v + 2]
            n += 1
            sum_a += la
            sum_b += lb
            aa += la * la
            bb2 += lb * lb
            ab += la * lb
    n = max(n, 1)
    var_a = max(aa - sum_a * sum_a / n, 0.0)
    var_b = max(bb2 - sum_b * sum_b / n, 0.0)
    return (ab - sum_a * sum_b / n) / max(np.sqrt(var_a * var_b), 1e-3)


@njit(inline="always")
def _mirrored(src, out):
    """``src`` flipped left to right, into ``out``."""
    for i in range(GRID):
        for j in range(GRID):
            out[i, j] = src[i, GRID - 1 - j]
    return out


@njit(nogil=True, cache=True, fastmath=True)
def scores(thumbs, plain, use_plain, floor, min_band, moved_band, low_detail, dct, overlays, a, b, flip, qx, qy, qwidth, qheight, vx, vy, taps_lo,
           taps_hi, taps_w, score, best_x, best_y, overlaid):
    """For each pair p: ``a[p]``'s query window (qx, qy, qwidth x qheight) aligned to ``b[p]``'s indexed window (vx, vy),
    refined +-1 px; writes the overlap correlation (with ``use_plain``, the lower of the equalised and
    plain thumbnails' where the equalised one reaches ``floor``; lowered to the detail correlation where
    that is under ``min_band``, or ``moved_band`` where the alignment was fitted, shifted, cropped or of another aspect,
    and either image has a detail share under ``low_detail``: :func:`transform.detail_share.detail_share` with
    ``dct``, the orthonormal DCT matrix) and the chosen window position. With ``overlays``, a pair short of
    ``floor`` by at most OVERLAY_GATE is also scored without its worst band of rows or columns, less
    OVERLAY_MARGIN (a caption or watermark: :mod:`transform.overlay_band`), the higher score kept and
    ``overlaid[p]`` set where the band's was. With ``flip[p]`` the pair is compared
    with ``b[p]`` mirrored left to right (its window position is in the mirrored thumbnail).
    ``taps_*[side]``: the resize of a window's side of that length to CENTRE (along x and y apart: a window of
    another aspect is stretched onto the square one)."""
    flipped = np.empty((GRID, GRID), thumbs.dtype)
    flipped_plain = np.empty((GRID, GRID), thumbs.dtype)
    target = np.empty((CENTRE, CENTRE), np.float32)
    rows = np.empty((3, GRID, CENTRE), np.float32)  # per column position: the rows its windows span, resized along x
    xs = np.empty(3, np.int64)
    ys = np.empty(3, np.int64)
    warped = np.empty((GRID, GRID), np.float32)
    along_x = np.empty((GRID, GRID), np.float32)
    grey = np.empty((GRID, GRID), np.float32)
    band_a = np.empty((GRID, GRID), np.float32)
    band_b = np.empty((GRID, GRID), np.float32)
    ly = np.empty(GRID, np.int64)
    lx = np.empty(GRID, np.int64)
    fy = np.empty(GRID, np.float32)
    fx = np.empty(GRID, np.float32)
    iy = np.empty(GRID, np.bool_)
    ix = np.empty(GRID, np.bool_)
    sums = np.empty((GRID + 1, 5), np.float64)
    u0, u1, v0, v1 = 0, 0, 0, 0
    for p in range(len(a)):
        ta = thumbs[a[p]]
        tb = _mirrored(thumbs[b[p]], flipped) if flip[p] else thumbs[b[p]]
        for i in range(CENTRE):
            for j in range(CENTRE):
                target[i, j] = tb[vy[p] + i, vx[p] + j]
        _standardise(target)
        target_sum = 0.0
        for i in range(CENTRE):
            for j in range(CENTRE):
                target_sum += target[i, j]
        sx, sy = qwidth[p], qheight[p]
        best = -2.0
        bx, by = 0, 0
        for k in range(3):  # the window's 3 x 3 positions (+-1 px, kept inside the thumbnail)
            xs[k] = min(max(qx[p] + k - 1, 0), GRID - sx)
            ys[k] = min(max(qy[p] + k - 1, 0), GRID - sy)
        as_is = sx == CENTRE and sy == CENTRE
        if as_is:  # the thumbnail as float32 once, for the 9 windows' loops
            for i in range(GRID):
                for j in range(GRID):
                    grey[i, j] = ta[i, j]
        else:  # each column position's row pass once, for its 3 row positions
            for k in range(3):
                _rows_resized(ta, xs[k], sx, ys[0], ys[2] + sy, taps_lo[sx], taps_hi[sx], taps_w[sx], rows[k])
        for ky in range(3):
            for kx in range(3):
                x, y = xs[kx], ys[ky]
                if as_is:
                    dot = _window_correlation(grey, y, x, target, target_sum)
                else:
                    dot = _resized_correlation(rows[kx], y - ys[0], taps_lo[sy], taps_hi[sy], taps_w[sy], target,
                                               target_sum)
                if dot > best:
                    best, bx, by = dot, x, y
        _axis(by, vy[p], sy / CENTRE, ly, fy, iy)
        _axis(bx, vx[p], sx / CENTRE, lx, fx, ix)
        value = _overlap_ncc(ta, tb, ly, fy, iy, lx, fx, ix, warped, along_x)
        axis, e0, e1 = -1, 0, 0
        if overlays and floor - OVERLAY_GATE <= value < floor:  # a caption or watermark? (transform.overlay_band)
            u0, u1 = _span(iy)
            v0, v1 = _span(ix)
            without, band_axis, band_e0, band_e1 = best_band(warped, tb, u0, u1, v0, v1, sums)
            if without - OVERLAY_MARGIN > value:
                value, axis, e0, e1 = without - OVERLAY_MARGIN, band_axis, band_e0, band_e1
        if value >= floor and min_band > -1.0:
            band = _band_ncc(warped, tb, iy, ix, band_a, band_b, axis, e0, e1)
            bar = min_band
            if min_band <= band < moved_band and (sx != CENTRE or sy != CENTRE or bx != vx[p] or by != vy[p]):
                smooth_a = plain[a[p]] if use_plain else ta
                smooth_b = plain[b[p]] if use_plain else thumbs[b[p]]  # a mirror image has the same share
                if min(detail_share(smooth_a, dct, along_x), detail_share(smooth_b, dct, along_x)) < low_detail:
                    bar = moved_band
            if band < bar:
                value = min(value, band)
        if use_plain and value >= floor:
            pb = _mirrored(plain[b[p]], flipped_plain) if flip[p] else plain[b[p]]
            plain_value = _overlap_ncc(plain[a[p]], pb, ly, fy, iy, lx, fx, ix, warped, along_x)
            if axis >= 0:  # the same band left out of the plain thumbnails (resampled into warped just now)
                plain_value = masked_ncc(warped, pb, u0, u1, v0, v1, axis, e0, e1) - OVERLAY_MARGIN
            value = min(value, plain_value)
        score[p] = value
        overlaid[p] = axis >= 0
        best_x[p] = bx
        best_y[p] = by


@njit(nogil=True, cache=True)
def pearson(grey, i, j, out):
    """Pearson correlation of whole thumbnails ``grey[i[p]]`` and ``grey[j[p]]`` (uint8), per pair: each
    image's mean and norm once, then one integer dot product a pair (the norms floored at 1e-3, as for a
    flat image)."""
    n = grey.shape[0]
    size = grey.shape[1] * grey.shape[2]
    mean = np.empty(n, np.float64)
    norm = np.empty(n, np.float64)
    for k in range(n):
        total = 0
        sq = 0
        for u in range(grey.shape[1]):
            for v in range(grey.shape[2]):
                x = np.int64(grey[k, u, v])
                total += x
                sq += x * x
        mean[k] = total / size
        norm[k] = max(np.sqrt(max(sq - total * mean[k], 0.0)), 1e-3)
    for p in range(len(i)):
        a, b = i[p], j[p]
        dot = 0
        for u in range(grey.shape[1]):
            for v in range(grey.shape[2]):
                dot += np.int64(grey[a, u, v]) * np.int64(grey[b, u, v])
        out[p] = (dot - size * mean[a] * mean[b]) / (norm[a] * norm[b])
