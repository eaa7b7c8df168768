"""The pixel sketch clean stores for dedup: thumbnails of any geometry, equalisation, greyscale and colour."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sluice.thumbnails import GRID, LEVEL_CAP, equalise, grey_levels, sketch


def test_thumbnails_of_square_and_non_square_images_are_box_resized_grey():
    rng = np.random.default_rng(0)
    for h, w in ((32, 32), (64, 96), (48, 64)):  # exact blocks, unequal blocks, PIL's box resize
        px = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        got = grey_levels(px)
        grey = px.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        want = np.stack([np.asarray(Image.fromarray(g, "F").resize((GRID, GRID), Image.Resampling.BOX)) for g in grey])
        assert got.shape == (3, GRID, GRID) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - np.rint(want)).max() <= 1


def test_equalising_forgets_a_monotone_brightness_and_contrast_change():
    levels = np.random.default_rng(1).integers(0, 100, (4, GRID, GRID)).astype(np.uint8)
    brighter = (levels.astype(int) * 2 + 10).astype(np.uint8)  # strictly increasing: the ranks stay
    assert np.array_equal(equalise(levels), equalise(brighter))
    assert equalise(np.zeros((0, GRID, GRID), np.uint8)).shape == (0, GRID, GRID)


def _capped_reference(levels: np.ndarray) -> np.ndarray:
    """Per thumbnail, in exact fractions: each occupied level's count c becomes min(c + a, LEVEL_CAP) with the
    a that keeps the total (found by bisection to 1e-12 here, stepwise in the kernel), or the total shared
    evenly when LEVEL_CAP per occupied level cannot hold it; each level's mid-rank under those counts."""
    out = np.empty(levels.shape, np.float64)
    for k, thumb in enumerate(levels.reshape(len(levels), -1)):
        size = thumb.size
        count = np.bincount(thumb, minlength=256).astype(np.float64)
        occupied = count > 0
        if LEVEL_CAP * occupied.sum() <= size:
            weight = np.where(occupied, size / occupied.sum(), 0.0)
        else:
            lo, hi = 0.0, float(size)
            for _ in range(200):
                a = (lo + hi) / 2
                lo, hi = (a, hi) if np.minimum(count[occupied] + a, LEVEL_CAP).sum() < size else (lo, a)
            a = 0.0 if np.minimum(count, LEVEL_CAP).sum() == size else hi
            weight = np.where(occupied, np.minimum(count + a, LEVEL_CAP), 0.0)
        below = np.concatenate([[0.0], np.cumsum(weight)[:-1]])
        out[k] = ((below + weight / 2) * 255.0 / size)[thumb].reshape(levels.shape[1:])
    return out


def test_equalising_maps_each_level_to_its_mid_rank():
    """Where no level holds more than LEVEL_CAP pixels, every pixel becomes the mid-rank of its level in its
    own thumbnail (ties share one value), scaled to 0-255: a per-pixel reference on noise thumbnails."""
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 256, (5, GRID, GRID)).astype(np.uint8)
    assert max(np.bincount(t.ravel()).max() for t in levels) <= LEVEL_CAP
    flat = levels.reshape(len(levels), -1).astype(int)
    below = (flat[:, :, None] > flat[:, None, :]).sum(axis=2)
    ties = (flat[:, :, None] == flat[:, None, :]).sum(axis=2)
    want = np.clip(np.rint((below + ties / 2.0) * 255.0 / flat.shape[1]), 0, 255).reshape(levels.shape)
    assert np.array_equal(equalise(levels), want)


def test_equalising_caps_what_a_level_counts_for():
    """Fuller levels count for at most LEVEL_CAP pixels, the excess shared among the occupied levels: against
    a reference solved by bisection, on constant, two-level, few-level, skewed and flat-background thumbnails
    (equal to it but where float rounding lands on the other side of a half)."""
    rng = np.random.default_rng(4)
    background = np.clip(250 + rng.integers(-2, 3, (3, GRID, GRID)), 0, 255)
    background[:, 8:24, 8:24] = rng.integers(0, 200, (3, 16, 16))
    levels = np.concatenate([np.full((1, GRID, GRID), 77), rng.choice([0, 255], (2, GRID, GRID)),
                             rng.integers(0, 8, (2, GRID, GRID)) ** 2, rng.integers(0, 40, (2, GRID, GRID)),
                             background]).astype(np.uint8)
    got = equalise(levels).astype(int)
    want = _capped_reference(levels)
    assert np.abs(got - want).max() <= 0.5 + 1e-9
    assert (got == np.clip(np.rint(want), 0, 255)).mean() > 0.99


def test_a_flat_background_is_not_stretched_into_a_texture():
    """A product shot's white background with re-encoding noise of +-2 levels: plain equalisation spread it
    over most of the range; capped, its 5 levels span at most 4 caps' worth of ranks."""
    rng = np.random.default_rng(5)
    levels = np.clip(250 + rng.integers(-2, 3, (4, GRID, GRID)), 0, 255).astype(np.uint8)
    levels[:, 6:26, 8:24] = rng.integers(20, 200, (4, 20, 16))
    inside = np.zeros((GRID, GRID), bool)
    inside[6:26, 8:24] = True
    out = equalise(levels).astype(int)[:, ~inside]
    spread = out.max(axis=1) - out.min(axis=1)
    assert (spread <= 4 * LEVEL_CAP * 255 / GRID ** 2 + 1).all(), spread
    flat = levels[:, ~inside].astype(int)
    counts = np.stack([np.bincount(t, minlength=256) for t in levels.reshape(4, -1)])
    uncapped = (np.cumsum(counts, axis=1)[np.arange(4)[:, None], flat] * 255 / GRID ** 2)
    assert (uncapped.max(axis=1) - uncapped.min(axis=1) > 100).all()  # what the cap prevents


def test_sketch_flags_greyscale_images_and_keeps_the_mean_colour():
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    grey = np.repeat(rng.integers(0, 256, (1, 64, 64, 1), dtype=np.uint8), 3, axis=3)
    thumb, is_grey, mean = sketch(np.concatenate([colour, grey]))
    assert thumb.shape == (2, GRID, GRID) and list(is_grey) == [False, True]
    assert np.allclose(mean[0], colour[0].reshape(-1, 3).mean(axis=0)) and mean.dtype == np.float64
    empty = sketch(np.zeros((0, 32, 32, 3), np.uint8))
    assert [a.shape for a in empty] == [(0, GRID, GRID), (0,), (0, 3)]
