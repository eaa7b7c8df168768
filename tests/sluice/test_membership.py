"""Members: the same answers as pyarrow's is_in, with the set built once for every batch."""

import pyarrow as pa
import pyarrow.compute as pc

from sluice.membership import Members


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
