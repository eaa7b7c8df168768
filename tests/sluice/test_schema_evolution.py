"""An older lake keeps working when the catalog adds a nullable column (images.faces_blurred)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sluice.catalog import TABLES, TableSpec
from sluice.errors import SchemaMismatch
from sluice.lake import Lake
from sluice.schema_evolution import missing_columns

ROW = {"image_id": ["a"], "width": [4], "height": [4], "mode": ["RGB"], "pixels": [b"\0" * 48],
       "pixel_hash": ["h"], "phash": [1], "run_id": ["r0"]}


def _older_images_table(lake: Lake) -> None:
    """``images`` as a lake from before faces_blurred existed wrote it, with one row."""
    old = pa.schema([f for f in TABLES["images"].schema if f.name != "faces_blurred"])
    DeltaTable.create(lake.uri("images"), schema=old)
    from deltalake import write_deltalake

    write_deltalake(lake.uri("images"), pa.table({**ROW, **{f.name: pa.nulls(1, f.type) for f in old
                                                               if f.name not in ROW}}).select(old.names), mode="append")


def test_a_write_to_an_older_table_adds_the_new_nullable_column_first(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _older_images_table(lake)
    assert missing_columns(lake, TABLES["images"]) == ["faces_blurred"]
    before = lake.version("images")
    lake.append("images", pa.table({**ROW, "image_id": ["b"], "faces_blurred": pa.array([2], pa.int16())}))
    table = lake.read("images").sort_by("image_id")
    assert table.column("faces_blurred").to_pylist() == [None, 2]  # the older row reads null
    assert missing_columns(lake, TABLES["images"]) == []
    assert "faces_blurred" not in lake.read("images", version=before).column_names  # time travel: that version's schema
    lake.overwrite("images", TABLES["images"].schema.empty_table())  # what the clean stage does first
    assert lake.count("images") == 0


def test_a_missing_required_column_is_not_evolved(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _older_images_table(lake)
    stricter = TableSpec("images", "silver", TABLES["images"].schema.append(pa.field("extra", pa.string(), False)),
                         ("image_id",), "")
    from sluice.schema_evolution import add_missing_columns

    with pytest.raises(SchemaMismatch, match="required column 'extra'"):
        add_missing_columns(lake, stricter)
