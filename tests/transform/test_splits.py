"""transform/splits.py: split keys that survive a group's growth, and small classes' guaranteed splits."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from sluice.config import DatasetParams
from transform.splits import assign_splits, split_keys

T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)


def test_the_split_key_is_the_first_landed_member_then_the_smallest_id():
    m = pl.DataFrame({"image_id": ["b", "a", "c", "z", "y"], "dup_group": ["g", "g", "g", "h", "h"],
                      "landed": [T0, T1, T0, None, None]})
    keys = dict(split_keys(m).rows())
    assert keys == {"g": "b", "h": "y"}  # "a" came later; without landing times the smallest id


def _groups(labels: list[str]) -> pl.DataFrame:
    n = len(labels)
    return pl.DataFrame({"dup_group": [f"g{k}" for k in range(n)], "split_key": [f"g{k}" for k in range(n)],
                         "label": labels, "hint_test": [False] * n, "hint_train": [False] * n})


def test_every_class_of_three_or_more_groups_gets_each_split():
    labels = [f"c{k}" for k in range(200) for _ in range(3)] + ["pair", "pair", "one"]
    out = assign_splits(_groups(labels), DatasetParams(seed=0, val_fraction=0.1, test_fraction=0.2))
    per = out.group_by("label").agg(pl.col("split").n_unique().alias("n"), pl.len())
    assert per.filter(pl.col("len") >= 3)["n"].min() == 3  # 200 classes of 3: each holds train, val and test
    # a fraction of 0 asks for no such split, and no class is given one
    none = assign_splits(_groups(labels), DatasetParams(seed=0, val_fraction=0.1, test_fraction=0.0))
    assert set(none["split"]) == {"train", "val"}


def test_a_source_test_split_of_copies_of_train_images_alone_makes_no_test_split():
    """A competition's unlabelled test/ whose only labelled groups are copies of train images (each a leak):
    keeping it would leave the test split empty, so test is carved as without one; a source test group of its
    own keeps the source's split."""
    groups = _groups([f"c{k % 3}" for k in range(60)]).with_columns(
        hint_test=pl.Series([k < 5 for k in range(60)]), hint_train=pl.Series([True] * 60))
    cfg = DatasetParams(seed=0, val_fraction=0.1, test_fraction=0.2)
    out = assign_splits(groups, cfg)
    assert out.filter(pl.col("split") == "test").height > 0 and not out["from_test"].any()
    own = groups.with_columns(hint_train=pl.Series([k != 0 for k in range(60)]))
    kept = assign_splits(own, cfg)
    assert kept.filter(pl.col("split") == "test")["dup_group"].to_list() == ["g0"]
