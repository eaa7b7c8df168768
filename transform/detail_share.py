"""A thumbnail's detail share, compiled: the share of its variance outside its 8x8 lowest DCT frequencies.

The same value as :func:`transform.dedup_match.detail` (SciPy's DCT over many thumbnails at once), for the
compiled pixel check (:mod:`transform.aligned_ncc`), which needs it for the few pairs whose decision depends on
how smooth the two images are (``dedup_match.LOW_DETAIL``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRID = 32


def dct_matrix(n: int = GRID) -> np.ndarray:
    """The orthonormal DCT-II matrix (``scipy.fft.dctn(x, norm="ortho")`` is ``D @ x @ D.T``)."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


@njit
def detail_share(img, dct, tmp):
    """The share of a thumbnail's variance outside its 8x8 lowest DCT frequencies
    (:func:`transform.dedup_match.detail`), with ``tmp`` (GRID x GRID float32) as scratch."""
    mean = 0.0
    for i in range(GRID):
        for j in range(GRID):
            mean += img[i, j]
    mean /= GRID * GRID
    for u in range(GRID):
        for j in range(GRID):
            acc = 0.0
            for i in range(GRID):
                acc += dct[u, i] * (img[i, j] - mean)
            tmp[u, j] = acc
    total, low = 0.0, 0.0
    for u in range(GRID):
        for v in range(GRID):
            acc = 0.0
            for j in range(GRID):
                acc += tmp[u, j] * dct[v, j]
            total += acc * acc
            if u < 8 and v < 8:
                low += acc * acc
    return 1.0 - low / max(total, 1e-6)
