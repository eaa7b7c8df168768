"""User-made delimited files: one-line errors for what would otherwise be a traceback or a silent loss."""

from __future__ import annotations

import pytest

from sluice.delimited import read_delimited
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
