"""Erasing a group's first-landed member does not move its surviving copies to another split."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa

from sluice.config import DatasetParams
from sluice.split_pins import pin_before_erasure, pinned, stable_rank
from transform.splits import assign_splits

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _lake(lake, groups: dict[str, list[str]]):
    """raw_images landed in the order given (a group's first member first), image_groups as given."""
    ids = [i for members in groups.values() for i in members]
    lake.merge_insert("raw_images", pa.table({
        "image_id": ids, "content": pa.array([i.encode() for i in ids], pa.binary()), "source": ["s"] * len(ids),
        "source_uri": ids, "fetched_at": pa.array([T0 + timedelta(seconds=k) for k in range(len(ids))],
                                                  pa.timestamp("us", tz="UTC")), "run_id": ["r"] * len(ids)}))
    lake.overwrite("image_groups", pa.table({
        "image_id": ids, "dup_group": [g for g, members in groups.items() for _ in members],
        "is_canonical": [i == g for g, members in groups.items() for i in members], "run_id": ["r"] * len(ids)}))


def test_the_survivors_of_an_erased_split_key_are_pinned_to_its_rank(lake):
    _lake(lake, {"g": ["a", "b", "c"], "h": ["d", "e"], "k": ["f"]})
    assert pin_before_erasure(lake, {"a", "e", "f"}, seed=7, run_id="erase-1") == 2  # e is not h's key; f is alone
    pins = pinned(lake, 7).sort("image_id")
    rank_a = stable_rank(pl.Series(["a"]), 7)[0]
    assert pins.rows() == [("b", rank_a), ("c", rank_a)]
    assert pinned(lake, 8).is_empty()  # another seed reshuffles every group, pinned ones included
    row = lake.read("split_pins").to_pylist()[0]
    assert "a" not in {str(v) for v in row.values()}  # the rank, never the erased id


def test_a_second_erasure_carries_the_pin_on(lake):
    _lake(lake, {"g": ["a", "b", "c"]})
    pin_before_erasure(lake, {"a"}, seed=0, run_id="e1")
    lake.overwrite("image_groups", pa.table({"image_id": ["b", "c"], "dup_group": ["b", "b"],  # a erased, regrouped
                                             "is_canonical": [True, False], "run_id": ["e1"] * 2}))
    pin_before_erasure(lake, {"b"}, seed=0, run_id="e2")  # b is the key now, and its pin is a's rank
    assert pinned(lake, 0).filter(pl.col("image_id") == "c")["pinned_rank"].item() == stable_rank(pl.Series(["a"]), 0)[0]


def test_with_pins_no_group_moves_when_its_key_is_erased_and_without_them_many_would():
    cfg = DatasetParams(seed=3, val_fraction=0.1, test_fraction=0.2)
    n = 400
    keys = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(n)]
    survivors = [hashlib.sha256(f"copy {k}".encode()).hexdigest() for k in range(n)]

    def groups(split_key):
        return pl.DataFrame({"dup_group": [f"g{k}" for k in range(n)], "split_key": split_key,
                             "label": [f"c{k % 4}" for k in range(n)], "hint_test": [False] * n,
                             "hint_train": [False] * n})

    before = assign_splits(groups(keys), cfg).sort("dup_group")["split"]
    pins = pl.DataFrame({"image_id": survivors, "pinned_rank": stable_rank(pl.Series(keys), cfg.seed)})
    after = assign_splits(groups(survivors), cfg, pins).sort("dup_group")["split"]
    unpinned = assign_splits(groups(survivors), cfg).sort("dup_group")["split"]
    assert (before == after).all()
    assert (before != unpinned).sum() > n // 10  # re-keyed by hash: ~46% would move (1 - 0.7^2 - 0.1^2 - 0.2^2)


def test_erasing_a_subjects_split_key_pins_every_group_of_the_subject(lake):
    """Groups g and h show one patient (raw_images.subject): they split as one unit keyed by a, so erasing a pins
    a's rank on the survivors of both groups, not only on g's."""
    _lake(lake, {"g": ["a", "b"], "h": ["d"], "k": ["f"]})
    lake.update_columns("raw_images", pa.table({"image_id": ["a", "d"], "source": ["s", "s"], "source_uri": ["a", "d"],
                                                "subject": ["patient 1", "patient 1"]}), ["subject"])
    assert pin_before_erasure(lake, {"a"}, seed=3, run_id="e1") == 2
    rank_a = stable_rank(pl.Series(["a"]), 3)[0]
    assert pinned(lake, 3).sort("image_id").rows() == [("b", rank_a), ("d", rank_a)]
