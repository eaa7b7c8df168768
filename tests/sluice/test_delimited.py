"""User-made delimited files: one-line errors for what would otherwise be a traceback or a silent loss."""

from __future__ import annotations

import pytest

from sluice.delimited import first_fields, read_delimited, read_headerless
from sluice.errors import InputError


def test_reads_and_trims(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("item;worker;label\n a.png ;w1; cat\nb.png;w2;\n")
    frame = read_delimited(path, ["item", "worker", "label"], None, "votes")
    assert frame.rows() == [("a.png", "w1", "cat"), ("b.png", "w2", None)]


def test_invalid_utf8_names_the_offset_and_line(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b"item,worker,label\na.png,w1,c\xffat\n")
    with pytest.raises(InputError, match=r"not UTF-8 \(byte 0xff at offset 28, line 2\)"):
        read_delimited(path, ["item", "worker", "label"], None, "votes")


def test_a_repeated_column_is_refused_not_dropped(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("item,worker,label,label\na.png,w1,cat,dog\n")
    with pytest.raises(InputError, match=r"column\(s\) 'label' appear more than once"):
        read_delimited(path, ["item", "worker", "label"], None, "votes")


@pytest.mark.parametrize("text, delimiter", [("w1\tq1\t1\nw2\tq1\t0\n", "\t"), ("w1,q1,1\nw2,q1,0\n", ","),
                                             ("w1  q1 1\nw2 q1   0\n\n", " ")])
def test_a_file_without_a_header_reads_by_position(tmp_path, text, delimiter):
    path = tmp_path / "v.txt"
    path.write_text(text)
    assert first_fields(path) == (delimiter, ["w1", "q1", "1"])
    frame = read_headerless(path, None, "votes")
    assert frame.columns == ["column_1", "column_2", "column_3"]
    assert frame.rows() == [("w1", "q1", "1"), ("w2", "q1", "0")]


def test_a_headerless_file_keeps_a_short_row_and_refuses_bad_bytes(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("w1 q1 1\nw2 q2\n")
    assert read_headerless(path, None, "votes").rows() == [("w1", "q1", "1"), ("w2", "q2", None)]
    path.write_bytes(b"w1,q1,1\nw2,q\xff,0\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_headerless(path, None, "votes")
