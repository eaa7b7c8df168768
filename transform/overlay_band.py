"""A copy with a caption, banner or watermark: the aligned correlation with one band left out, compiled.

A meme's caption bar, a stock photo's watermark strip, a news site's banner or a burnt-in timestamp
overwrite a band of the picture; the rest is the original. Over the whole overlap such a copy often
correlates below the bar (the labelled benchmark's 10-20% captions: 63-66% of them), but over the
overlap without that band as high as any other copy. So where a candidate's
overlap correlation falls short of the bar (and not by more than ``OVERLAY_GATE``), the check also
scores it without its worst band: a run of whole rows or whole columns of the overlap, 2 px up to
``OVERLAY_SHARE`` of its side, anywhere (a caption sits at an edge, a watermark anywhere), found
exactly from each line's five sums (prefix sums over lines: every band in O(lines x heights)).

Leaving out the best of ~400 bands lifts unrelated pairs that share a layout too (on the labelled
benchmark: 17 new pairs across distinct photos, nearly all different shots), so a band's score
counts ``OVERLAY_MARGIN`` less: with it, none of those, and 0.78-0.83 of the 20% captions and
watermarks found instead of 0.31-0.62 (docs/transform.md, "Captions and watermarks").
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRID = 32
OVERLAY_SHARE = 0.25  # the widest band left out, as a share of the overlap's side
OVERLAY_MARGIN = 0.10  # a score without a band counts this much less
OVERLAY_GATE = 0.5  # only pairs within this of the bar are tried (unrelated candidates score far lower)
MIN_BAND = 2  # the narrowest band (px): a one-pixel line is resampling noise, not an overlay


@njit(inline="always")
def in_band(u, v, axis, e0, e1):
    """Whether pixel (u, v) lies in the band [e0, e1) of rows (axis 0) or columns (axis 1); axis -1: none."""
    if axis == 0:
        return u >= e0 and u < e1
    if axis == 1:
        return v >= e0 and v < e1
    return False


@njit(inline="always")
def masked_ncc(wa, tb, u0, u1, v0, v1, axis, e0, e1):
    """Correlation of ``wa`` and ``tb`` over rows u0..u1-1 and columns v0..v1-1 less the band."""
    n = 0
    sa = 0.0
    sb = 0.0
    for u in range(u0, u1):
        for v in range(v0, v1):
            if not in_band(u, v, axis, e0, e1):
                n += 1
                sa += wa[u, v]
                sb += tb[u, v]
    n = max(n, 1)
    ma, mb = sa / n, sb / n
    num = 0.0
    va = 0.0
    vb = 0.0
    for u in range(u0, u1):
        for v in range(v0, v1):
            if not in_band(u, v, axis, e0, e1):
                da = wa[u, v] - ma
                db = tb[u, v] - mb
                num += da * db
                va += da * da
                vb += db * db
    return num / max(np.sqrt(va * vb), 1e-3)


@njit(inline="always")
def best_band(wa, tb, u0, u1, v0, v1, sums):
    """The band whose exclusion leaves the highest correlation over the rest of the overlap (rows u0..u1-1,
    columns v0..v1-1): (that correlation, axis, e0, e1), axis -1 when no band fits. ``sums``: a
    (GRID + 1, 5) float64 scratch for the prefix sums of each line's sums of a, b, a^2, b^2 and ab."""
    best = -2.0
    best_axis, best_e0, best_e1 = -1, 0, 0
    for axis in range(2):
        lo, hi = (u0, u1) if axis == 0 else (v0, v1)
        olo, ohi = (v0, v1) if axis == 0 else (u0, u1)
        for q in range(5):
            sums[0, q] = 0.0
        for t in range(lo, hi):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            for o in range(olo, ohi):
                x = wa[t, o] if axis == 0 else wa[o, t]
                y = np.float32(tb[t, o]) if axis == 0 else np.float32(tb[o, t])
                s0 += x
                s1 += y
                s2 += x * x
                s3 += y * y
                s4 += x * y
            k = t - lo + 1
            sums[k, 0] = sums[k - 1, 0] + s0
            sums[k, 1] = sums[k - 1, 1] + s1
            sums[k, 2] = sums[k - 1, 2] + s2
            sums[k, 3] = sums[k - 1, 3] + s3
            sums[k, 4] = sums[k - 1, 4] + s4
        lines = hi - lo
        width = ohi - olo
        for h in range(MIN_BAND, int(lines * OVERLAY_SHARE) + 1):
            n = (lines - h) * width
            for start in range(lines - h + 1):
                a0 = sums[lines, 0] - sums[start + h, 0] + sums[start, 0]
                a1 = sums[lines, 1] - sums[start + h, 1] + sums[start, 1]
                a2 = sums[lines, 2] - sums[start + h, 2] + sums[start, 2]
                a3 = sums[lines, 3] - sums[start + h, 3] + sums[start, 3]
                a4 = sums[lines, 4] - sums[start + h, 4] + sums[start, 4]
                var_a = max(a2 - a0 * a0 / n, 0.0)
                var_b = max(a3 - a1 * a1 / n, 0.0)
                c = (a4 - a0 * a1 / n) / max(np.sqrt(var_a * var_b), 1e-3)
                if c > best:
                    best, best_axis, best_e0, best_e1 = c, axis, lo + start, lo + start + h
    return best, best_axis, best_e0, best_e1
