"""The compiled kernel of :func:`sluice.thumbnails.equalise` (numba; imported when first used)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def equalise_into(levels, out):
    """Per row of ``levels`` (n, pixels) uint8: each level's mid-rank scaled to 0-255,
    ``rint((below + ties / 2) * 255 / pixels)`` clipped, into ``out``."""
    size = levels.shape[1]
    hist = np.zeros(256, np.int64)
    table = np.zeros(256, np.uint8)
    scale = 255.0 / size
    for k in range(levels.shape[0]):
        hist[:] = 0
        for p in range(size):
            hist[levels[k, p]] += 1
        below = 0
        for v in range(256):
            value = np.rint((below + hist[v] - hist[v] / 2.0) * scale)
            table[v] = np.uint8(min(max(value, 0.0), 255.0))
            below += hist[v]
        for p in range(size):
            out[k, p] = table[levels[k, p]]
