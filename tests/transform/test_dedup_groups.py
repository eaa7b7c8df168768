"""Which copy of a group is kept, and what a framed copy's match is called (transform/dedup_groups.py)."""

from datetime import datetime

import numpy as np
import polars as pl

from transform.dedup_groups import assign_groups, landing_order, match_kinds
from transform.dedup_match import OVERLAID

T0, T1 = datetime(2026, 1, 1), datetime(2026, 2, 1)


def _images(**columns) -> pl.DataFrame:
    n = len(columns["image_id"])
    base = {"width": [32] * n, "height": [32] * n, "format": ["JPEG"] * n}
    return pl.DataFrame({**base, **columns})


def _kept(images: pl.DataFrame, output_pixels: int | None = 32 * 32) -> str:
    """The canonical member of one group holding every image."""
    n = images.height
    groups = assign_groups(images, np.zeros(n - 1, np.int64), np.arange(1, n), output_pixels)
    assert groups["dup_group"].n_unique() == 1
    return groups.filter(pl.col("is_canonical"))["image_id"].item()


def test_groups_are_components_with_one_canonical_each():
    images = pl.DataFrame({"image_id": ["a", "b", "c", "d", "e"], "width": [32, 48, 48, 10, 10],
                           "height": [32, 48, 48, 10, 10], "format": ["PNG", "JPEG", "PNG", "PNG", "PNG"]})
    groups = assign_groups(images, np.array([0, 1, 3]), np.array([1, 2, 4]))
    assert groups.rows() == [("a", "c", False), ("b", "c", False), ("c", "c", True), ("d", "d", True), ("e", "d", False)]


def test_framed_and_greyscale_copies_are_not_kept_however_large():
    images = _images(image_id=["a", "b", "c"], width=[32, 640, 640], height=[32, 640, 640],
                     framed=[False, True, False], greyscale=[False, False, True])
    assert _kept(images) == "a"


def test_pixels_past_the_output_size_count_only_after_format_and_landing():
    # an upscaled (or captioned, larger) copy gives the same 32 px training pixels: the earlier landing is kept
    upscaled = _images(image_id=["a", "b"], width=[32, 256], height=[32, 256], landed=[T0, T1])
    assert _kept(upscaled) == "a"
    # a copy smaller than the output is not kept when another has enough pixels, whatever landed first
    thumbnail = _images(image_id=["a", "b"], width=[20, 32], height=[20, 32], landed=[T0, T1])
    assert _kept(thumbnail) == "b"
    # lossless beats lossy at equal footing; lossy WebP and GIF's palette are not lossless
    formats = _images(image_id=["a", "b", "c", "d"], format=["WEBP", "GIF", "JPEG", "PNG"])
    assert _kept(formats) == "d"
    assert _kept(formats.head(3)) == "a"  # the three lossy ones tie: smallest id
    # without a clean size, more pixels win after landing (the higher-resolution original of a thumbnail)
    same_run = _images(image_id=["a", "b"], width=[160, 640], height=[120, 480], landed=[T0, T0])
    assert _kept(same_run, None) == "b" and _kept(same_run) == "b"


def test_a_copy_landed_later_never_displaces_the_kept_one_on_a_tie():
    images = _images(image_id=["z_first", "a_later"], landed=[T0, T1])
    assert _kept(images) == "z_first"
    assert _kept(images.with_columns(landed=pl.lit(None, pl.Datetime("us")))) == "a_later"  # no landing known


def test_landing_order_is_the_start_of_the_run_that_first_landed_the_bytes():
    raw = pl.DataFrame({"image_id": ["x", "y", "x", "z"], "run_id": ["r1", "r1", "r2", "r2"],
                        "fetched_at": [datetime(2026, 1, 1, 0, 0, 5), datetime(2026, 1, 1, 0, 1),
                                       datetime(2026, 1, 2), datetime(2026, 1, 2, 0, 3)]})
    landed = dict(landing_order(raw).iter_rows())
    # x and y landed in one run (both at its start, so the ranking's other keys decide); z in the next
    assert landed == {"x": datetime(2026, 1, 1, 0, 0, 5), "y": datetime(2026, 1, 1, 0, 0, 5), "z": datetime(2026, 1, 2)}


def test_a_framed_pair_is_framed_not_recoloured():
    geometry = np.array([0, 0, 0, OVERLAID])
    grey = np.zeros(4, bool)
    colour_a, colour_b = np.full((4, 3), 100.0), np.array([[130.0] * 3, [101.0] * 3, [130.0] * 3, [130.0] * 3])
    framed_a, framed_b = np.array([True, False, False, True]), np.zeros(4, bool)
    kinds = match_kinds(geometry, grey, grey, colour_a, colour_b, framed_a, framed_b)
    assert kinds.tolist() == ["framed", "near", "recoloured", "overlaid"]
