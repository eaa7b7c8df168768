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


def test_label_columns_of_a_table_of_votes(tmp_path):
    """Two columns of a table holding a row per vote: one label an item, rows without one passed over, whole numbers
    named by class_names, an item with two labels refused naming it."""
    import polars as pl

    from sluice.params_labels import LabelColumns

    path = tmp_path / "raw.csv"
    path.write_text("annotator_id;image_filename;true_label\n1;a.png;3\n2;a.png;3\n1;b.png;0\n2;c.png;\n")
    spec = LabelColumns(path=str(path), item_column="image_filename", label_column="true_label")
    assert read_item_labels(spec, "truth").rows() == [("a.png", "3"), ("b.png", "0")]
    named = spec.model_copy(update={"class_names": ["plane", "car", "bird", "cat"]})
    assert read_item_labels(named, "truth").rows() == [("a.png", "cat"), ("b.png", "plane")]
    with pytest.raises(InputError, match=r"label 3 \(item 'a.png'\) is no position in class_names \(0..2\)"):
        read_item_labels(spec.model_copy(update={"class_names": ["x", "y", "z"]}), "truth")
    pl.DataFrame({"image_filename": ["a.png", "b.png"], "true_label": [1, 2]}).write_parquet(tmp_path / "raw.parquet")
    assert read_item_labels(spec.model_copy(update={"path": str(tmp_path / "raw.parquet")}), "truth").rows() == \
        [("a.png", "1"), ("b.png", "2")]
    with pytest.raises(InputError, match=r"missing column\(s\) 'answer' named by truth"):
        read_item_labels(spec.model_copy(update={"path": str(tmp_path / "raw.parquet"), "label_column": "answer"}),
                         "truth")
    path.write_text("annotator_id,image_filename,true_label\n1,a.png,\n")
    with pytest.raises(InputError, match="column 'true_label' named by truth holds no label"):
        read_item_labels(spec, "truth")
    pl.DataFrame({"image_filename": ["a.png"], "true_label": [[1, 2]]}).write_parquet(tmp_path / "lists.parquet")
    with pytest.raises(InputError, match=r"column 'true_label' named by truth holds List\(Int64\), not one label a row"):
        read_item_labels(spec.model_copy(update={"path": str(tmp_path / "lists.parquet")}), "truth")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(InputError, match="truth is not a readable Parquet file"):
        read_item_labels(spec.model_copy(update={"path": str(tmp_path / "cut.parquet")}), "truth")


@pytest.mark.parametrize("value, message", [
    ({"path": "a.csv", "item_colum": "i", "label_column": "l"},
     "labels.ground_truth: unknown key 'item_colum'; allowed keys: path, item_column, label_column"),
    ({"path": "a.csv", "item_column": "i"}, "labels.ground_truth: missing key 'label_column'"),
    (3, "labels.ground_truth: a file's path, or a mapping with path, item_column and label_column"),
])
def test_a_labels_value_names_what_is_wrong(tmp_path, value, message):
    import yaml

    from sluice.config import load_params_file
    from sluice.errors import ConfigError

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"labels": {"ground_truth": value}}))
    with pytest.raises(ConfigError, match=message):
        load_params_file(tmp_path / "params.yaml")
