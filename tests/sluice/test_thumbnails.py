"""The pixel sketch clean stores for dedup: thumbnails of any geometry, equalisation, greyscale and colour."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sluice.thumbnails import GRID, equalise, grey_levels, sketch


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


def test_equalising_maps_each_level_to_its_mid_rank():
    """Every pixel becomes the mid-rank of its level in its own thumbnail (ties share one value),
    scaled to 0-255: a per-pixel reference, on noise, constant, two-level and skewed thumbnails."""
    rng = np.random.default_rng(3)
    levels = np.concatenate([rng.integers(0, 256, (5, GRID, GRID)), np.full((1, GRID, GRID), 77),
                             rng.choice([0, 255], (2, GRID, GRID)), rng.integers(0, 8, (2, GRID, GRID)) ** 2]
                            ).astype(np.uint8)
    flat = levels.reshape(len(levels), -1).astype(int)
    below = (flat[:, :, None] > flat[:, None, :]).sum(axis=2)
    ties = (flat[:, :, None] == flat[:, None, :]).sum(axis=2)
    want = np.clip(np.rint((below + ties / 2.0) * 255.0 / flat.shape[1]), 0, 255).reshape(levels.shape)
    assert np.array_equal(equalise(levels), want)


def test_sketch_flags_greyscale_images_and_keeps_the_mean_colour():
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    grey = np.repeat(rng.integers(0, 256, (1, 64, 64, 1), dtype=np.uint8), 3, axis=3)
    thumb, is_grey, mean = sketch(np.concatenate([colour, grey]))
    assert thumb.shape == (2, GRID, GRID) and list(is_grey) == [False, True]
    assert np.allclose(mean[0], colour[0].reshape(-1, 3).mean(axis=0)) and mean.dtype == np.float64
    empty = sketch(np.zeros((0, 32, 32, 3), np.uint8))
    assert [a.shape for a in empty] == [(0, GRID, GRID), (0,), (0, 3)]
