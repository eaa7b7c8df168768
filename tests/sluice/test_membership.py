"""Members and Lookup: the same answers as pyarrow's is_in and index_in, with the set built once for every batch."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.membership import Lookup, Members


def test_mask_equals_is_in_for_every_column_type():
    wanted = [f"id{k}" for k in range(0, 100, 3)]
    members = Members(wanted)
    assert len(members) == 34
    values = [f"id{k}" for k in range(100)] + [None, ""]
    for column in (pa.array(values, pa.string()), pa.array(values, pa.large_string()),
                   pa.chunked_array([values[:50], values[50:]], pa.string())):
        got = members.mask(column)
        assert got.type == pa.bool_() and len(got) == len(values)
        assert got.to_pylist() == pc.is_in(column, value_set=pa.array(wanted)).to_pylist()
    assert members.mask(pa.array([None, "id0"])).to_pylist() == [False, True]  # null is never a member


def test_rows_equal_index_in_for_every_column_type():
    index = [f"id{k}" for k in range(99, 0, -4)]  # any order: a row is the value's place in the list
    lookup = Lookup(index)
    assert len(lookup) == 25
    values = [f"id{k}" for k in range(100)] + [None, ""]
    for column in (pa.array(values, pa.string()), pa.array(values, pa.large_string()),
                   pa.chunked_array([values[:50], values[50:]], pa.string())):
        got = lookup.rows(column)
        assert got.dtype == np.int64 and len(got) == len(values)
        assert got.tolist() == pc.fill_null(pc.index_in(column, value_set=pa.array(index)), -1).to_pylist()
    assert lookup.rows(pa.array([], pa.string())).tolist() == []
