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


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_named_as_such_by_every_header_reader(tmp_path, encoding):
    """UTF-16 without a byte order mark decodes as UTF-8 (NUL is a character): it is told by its NUL bytes."""
    from sluice.delimited import header_line

    path = tmp_path / "v.txt"
    path.write_bytes("item\tworker\tlabel\nä.png\tw1\tcat\n".encode(encoding))
    for read in (header_line, first_fields, lambda p: read_delimited(p, ["item"], None, "votes"),
                 lambda p: read_headerless(p, None, "votes")):
        with pytest.raises(InputError, match=r"UTF-16 text \(.*\), not UTF-8; save the file as UTF-8"):
            read(path)
    path.write_text("item\tworker\tlabel\nä.png\tw1\tcat\n")
    assert header_line(path) == "item\tworker\tlabel"


def test_a_row_polars_cannot_parse_is_named_by_its_line(tmp_path):
    """Polars says "found more fields than defined in 'Schema'" with no line; the csv module finds it."""
    path = tmp_path / "v.csv"
    path.write_text("item,worker,label\na.png,w1,cat\nb.png,w2,dog,extra,stuff\nc.png,w3,\n\nd.png,w4\n")
    with pytest.raises(InputError, match=r"v\.csv:3: 5 fields where the header has 3 \(malformed CSV"):
        read_delimited(path, ["item", "worker", "label"], None, "votes")
    ragged: list = []
    frame = read_delimited(path, ["item", "label"], None, "votes", ragged=ragged)
    assert ragged == [(3, 5, 3)]
    assert frame.select("item", "label", "__line").rows() == [
        ("a.png", "cat", 2), ("c.png", None, 4), (None, None, 5), ("d.png", None, 6)]


def test_a_quote_never_closed_names_the_line_it_opens_on(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text('item,worker,label\na.png,w1,cat\n"b.png,w2,dog\nc.png,w3,cat\n')
    for ragged in (None, []):
        with pytest.raises(InputError, match=r"v\.csv:3: malformed CSV \(unexpected end of data.*never closed"):
            read_delimited(path, ["item", "worker", "label"], None, "votes", ragged=ragged)
