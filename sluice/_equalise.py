"""The compiled kernel of :func:`sluice.thumbnails.equalise` (numba; imported when first used)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _capped(hist, cap, size, small, out):
    """``hist``'s occupied levels' counts, each at most ``cap``, the excess shared evenly among the occupied
    levels until none is over (converged clip-and-redistribute): ``min(count + a, cap)`` with the one ``a``
    that keeps the total at ``size``; equal shares where even ``cap`` each cannot hold ``size``. Empty
    levels stay empty, so the result depends on the order of the counts only, not on which levels hold them."""
    used = 0
    kept = 0  # the counts clipped at cap: the total at a = 0
    small[:] = 0  # occupied levels by count, for counts under cap
    for v in range(256):
        h = hist[v]
        if h > 0:
            used += 1
            kept += min(h, cap)
            if h < cap:
                small[h] += 1
    if kept == size:  # no level over the cap
        for v in range(256):
            out[v] = float(hist[v])
        return
    if cap * used <= size:
        for v in range(256):
            out[v] = size / used if hist[v] > 0 else 0.0
        return
    # the total at a is piecewise linear, with slope the levels still under the cap: a level of count h
    # reaches it at a = cap - h, an integer, so step a by 1 and interpolate in the step that reaches size
    under = 0
    for c in range(1, cap):
        under += small[c]
    total = kept
    a = 0.0
    for step in range(cap):
        if total + under >= size:
            a = step + (size - total) / under
            break
        total += under
        under -= small[cap - 1 - step]  # the levels of count cap - 1 - step reach the cap at a = step + 1
    for v in range(256):
        out[v] = min(hist[v] + a, float(cap)) if hist[v] > 0 else 0.0


@njit(nogil=True, cache=True)
def equalise_into(levels, out, cap):
    """Per row of ``levels`` (n, pixels) uint8: each level's mid-rank under the capped counts
    (:func:`_capped`) scaled to 0-255, ``rint((below + count / 2) * 255 / pixels)`` clipped, into ``out``."""
    size = levels.shape[1]
    hist = np.zeros(256, np.int64)
    weight = np.zeros(256, np.float64)
    small = np.zeros(cap + 1, np.int64)
    table = np.zeros(256, np.uint8)
    scale = 255.0 / size
    for k in range(levels.shape[0]):
        hist[:] = 0
        for p in range(size):
            hist[levels[k, p]] += 1
        _capped(hist, cap, size, small, weight)
        below = 0.0
        for v in range(256):
            value = np.rint((below + weight[v] / 2.0) * scale)
            table[v] = np.uint8(min(max(value, 0.0), 255.0))
            below += weight[v]
        for p in range(size):
            out[k, p] = table[levels[k, p]]
