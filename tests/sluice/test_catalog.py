import datetime as dt

import pyarrow as pa
import pytest

from sluice.catalog import TABLES, conform, dedupe_keys, spec
from sluice.errors import InputError, SchemaMismatch

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def raw_rows(ids, source="s", label="a"):
    return pa.table({
        "image_id": [f"{i:064x}" for i in ids], "content": [b"x%d" % i for i in ids],
        "source": [source] * len(ids), "source_uri": [f"f{i}.png" for i in ids],
        "source_label": [label] * len(ids), "fetched_at": [NOW] * len(ids), "run_id": ["r"] * len(ids),
    })


def test_every_table_has_keys_in_its_schema():
    for table in TABLES.values():
        assert table.layer in {"bronze", "silver", "gold", "audit"}
        assert set(table.keys) <= set(table.schema.names)
        assert all(not table.schema.field(k).nullable for k in table.keys)


def test_conform_fills_nullable_and_orders_columns():
    out = conform(spec("raw_images"), raw_rows([1, 2]))
    assert out.schema == spec("raw_images").schema
    assert out.column("license").null_count == 2


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t.drop_columns(["content"]), "missing required column 'content'"),
    (lambda t: t.append_column("colour", pa.array(["red", "blue"])), "unexpected column 'colour'"),
    (lambda t: t.set_column(0, "image_id", pa.array([1.5, 2.5])), None),  # float -> string casts fine
    (lambda t: t.set_column(t.schema.get_field_index("fetched_at"), "fetched_at", pa.array(["yesterday", "today"])),
     "column 'fetched_at' has type string"),
    (lambda t: t.append_column("source", pa.array(["a", "b"])), "column 'source' appears 2 times"),
])
def test_schema_mismatch_names_the_column(mutate, message):
    data = mutate(raw_rows([1, 2]))
    if message is None:
        conform(spec("raw_images"), data)
        return
    with pytest.raises(SchemaMismatch, match=message):
        conform(spec("raw_images"), data)


def test_required_column_with_nulls_is_rejected():
    data = raw_rows([1, 2]).set_column(2, "source", pa.array(["s", None]))
    with pytest.raises(SchemaMismatch, match="'source' has 1 null"):
        conform(spec("raw_images"), data)


def test_dedupe_keys_keeps_first_occurrence():
    t = pa.table({"k": [1, 2, 1, 3, 2], "v": ["a", "b", "c", "d", "e"]})
    assert dedupe_keys(t, ["k"]).column("v").to_pylist() == ["a", "b", "d"]


def test_unknown_table_is_a_user_error():
    with pytest.raises(InputError, match="unknown table 'rawimages'"):
        spec("rawimages")
