"""The small per-image sketch that near-duplicate search works on, computed once where pixels are decoded.

The clean stage stores it beside the pixels in ``images`` (``thumb``, ``greyscale``, ``mean_rgb``), so
dedup reads 1 KB an image instead of every pixel (3 KB at 32 px, 150 KB at 224 px) and does not
recompute it on each run:

- ``thumb``: a 32x32 grey thumbnail (luma, box-resized), plain levels 0-255, row-major (1,024 bytes);
  dedup histogram-equalises it (:func:`equalise`) for hashing and verification;
- ``greyscale``: 99% of the pixels have channels within 3 levels of each other;
- ``mean_rgb``: the per-channel mean of the pixels (float64, as dedup compares colours).
"""

from __future__ import annotations

import numpy as np

GRID = 32  # thumbnail side (fixed, whatever clean.size is)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
LEVEL_CAP = 32  # pixels (of 1,024) a grey level counts for at most when equalising: 8x the mean level's 4


def grey_levels(pixels: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 images -> (n, 32, 32) uint8 plain grey thumbnails (box-resized)."""
    n, h, w = pixels.shape[:3]
    if n == 0:
        return np.zeros((0, GRID, GRID), np.uint8)
    grey = pixels.astype(np.float32) @ _LUMA
    if h % GRID == 0 and w % GRID == 0:
        grey = grey.reshape(n, GRID, h // GRID, GRID, w // GRID).mean(axis=(2, 4))
    else:
        from PIL import Image

        grey = np.stack([np.asarray(Image.fromarray(g, "F").resize((GRID, GRID), Image.Resampling.BOX)) for g in grey])
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def equalise(levels: np.ndarray) -> np.ndarray:
    """(n, 32, 32) uint8 plain thumbnails -> contrast-limited histogram-equalised ones.

    Each level maps to its mid-rank (ties share one value) in its own thumbnail, with every level counting
    for at most ``LEVEL_CAP`` pixels: the excess of a fuller level is shared evenly among the thumbnail's
    occupied levels, until none is over (clip-and-redistribute, as CLAHE's clip limit, converged). Plain
    equalisation forgets any monotone change of brightness, contrast or gamma, and so does this (only the
    order of the occupied levels' counts matters), but plain equalisation also stretched a flat area's few
    levels over most of the range: the white background of a product shot or a clip-art object, where
    re-encoding noise of +-2 levels became a texture of +-60, so a copy's thumbnails no longer matched
    (a frog, a B-2 and a horse on white, CIFAR-10's test images mirrored in its training set, correlated
    0.80-0.89 where 0.90 was needed). Capped, a flat area spans a few tens of levels at most. Measured
    (docs/transform.md): recall up on every edit type of ``benchmarks/dedup.py``'s labelled set at the
    same precision, and 15% more images grouped on CIFAR-10 with no more groups that mix two classes.

    One compiled pass a thumbnail (histogram, capped counts, table, map), nothing allocated per thumbnail;
    dedup equalises every image's thumbnail on every run (the NumPy version this replaced took 10.1 of an
    incremental run's 48 s at 1M images)."""
    from sluice._equalise import equalise_into

    n = len(levels)
    out = np.empty((n, GRID, GRID), np.uint8)
    if n:
        equalise_into(np.ascontiguousarray(levels, np.uint8).reshape(n, -1), out.reshape(n, -1), LEVEL_CAP)
    return out


def sketch(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, h, w, 3) uint8 images -> plain thumbnails (n, 32, 32) uint8, greyscale flags (n,) bool and mean
    colours (n, 3) float64."""
    n = len(pixels)
    if n == 0:
        return np.zeros((0, GRID, GRID), np.uint8), np.zeros(0, bool), np.zeros((0, 3), np.float64)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]  # channel views: 15x a reduction over axis 3
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    mean = np.stack([c.sum(axis=(1, 2), dtype=np.int64) for c in (r, g, b)], axis=1) / (pixels.shape[1] * pixels.shape[2])
    return grey_levels(pixels), (spread <= 3).mean(axis=(1, 2)) > 0.99, mean
