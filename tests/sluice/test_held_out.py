"""The side of its source's split each image is on: a source's test split, or its val where it gives no test."""

from __future__ import annotations

import duckdb
import polars as pl

from sluice.held_out import SIDES_SQL, sides, val_held_out

ROWS = [  # image_id, source, split_hint
    ("a1", "imagenette", "train"), ("a2", "imagenette", "val"), ("a3", "imagenette", " Val "),  # ImageNet's layout
    ("b1", "chest", "train"), ("b2", "chest", "val"), ("b3", "chest", "test"),  # a test split: val is train side
    ("c1", "extra", "val"), ("c2", "extra", None),  # val and no train: nothing to hold it out from
    ("d1", "crawl", None),
]
EXPECTED = {"a1": "train", "a2": "test", "a3": "test", "b1": "train", "b2": "train", "b3": "test",
            "c1": "train", "c2": None, "d1": None}


def _raw() -> pl.DataFrame:
    return pl.DataFrame(ROWS, schema=["image_id", "source", "split_hint"], orient="row")


def test_a_source_without_a_test_split_holds_out_its_val_split():
    assert dict(sides(_raw()).select("image_id", "side").rows()) == EXPECTED
    assert val_held_out(_raw()) == {"imagenette": 2}


def test_the_quality_checks_sql_says_the_same_as_the_dataset_stage():
    raw_images = _raw().to_arrow()  # noqa: F841 - DuckDB reads the frame by its name
    assert dict(duckdb.sql(f"SELECT image_id, side FROM ({SIDES_SQL})").fetchall()) == EXPECTED
