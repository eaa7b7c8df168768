"""Files of one label an item (gold answers, ground truth): every layout research collections ship them in."""

from __future__ import annotations

import pytest

from sluice.errors import InputError
from sluice.item_labels import read_item_labels


@pytest.mark.parametrize("text", [
    "item,label\nq1,cat\nq2,dog\nq3,cat\n",  # by name
    "question,truth\nq1,cat\nq2,dog\nq3,cat\n",  # the truth-inference benchmark's names: by position
    "q1\tcat\nq2\tdog\nq3\tcat\n",  # SQUARE's *.gold.txt: no header, tab
    "q1 cat\nq2  dog\nq3 cat\n",  # no header, blanks
])
def test_every_layout_gives_the_same_labels(tmp_path, text):
    path = tmp_path / "truth.txt"
    path.write_text(text)
    assert read_item_labels(str(path), "truth").rows() == [("q1", "cat"), ("q2", "dog"), ("q3", "cat")]


def test_a_json_object_and_a_wrong_file(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text('{"true_labels": {"q1": "cat", "q2": null}}')
    assert read_item_labels(str(path), "truth").rows() == [("q1", "cat"), ("q2", None)]
    path = tmp_path / "gt.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="missing column"):
        read_item_labels(str(path), "truth")


def test_a_yaml_mapping_reads_as_json_records_do(tmp_path):
    path = tmp_path / "gt.yaml"
    path.write_text("1000: 1\n1001: 0\n1002: true\n1003: 2.0\n")
    assert read_item_labels(str(path), "truth").rows() == [("1000", "1"), ("1001", "0"), ("1002", "true"), ("1003", "2")]
    path.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a YAML object"):
        read_item_labels(str(path), "truth")
    path.write_text("x: &x [1, 1]\ny: &y [*x, *x]\n1000: *y\n")
    with pytest.raises(InputError, match="uses YAML aliases"):
        read_item_labels(str(path), "truth")
