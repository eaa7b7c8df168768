"""A split's pictures folder labelled by the list beside it (``ingest/sources/split_annotations.py``)."""

from pathlib import Path

from ingest.sources.split_annotations import SplitLabels, beside


def test_lines_split_on_tabs_commas_or_spaces_and_a_header_skipped(tmp_path):
    images = [tmp_path / "images" / n for n in ("a.jpg", "b b.jpg", "c.png")]
    tabs = tmp_path / "t.txt"
    tabs.write_text("a.jpg\tcat\t1\t2\t3\t4\nb b.jpg\tdog\n")
    assert SplitLabels.read(tabs, images).by_image == {images[0]: "cat", images[1]: "dog"}
    commas = tmp_path / "c.csv"
    commas.write_text("file,label\nimages/a.jpg,cat\nC:\\set\\images\\c.png,bird\n")
    assert SplitLabels.read(commas, images).by_image == {images[0]: "cat", images[2]: "bird"}
    spaces = tmp_path / "s.txt"
    spaces.write_text("a.jpg cat\n\nc.png\n")
    read = SplitLabels.read(spaces, images)
    assert read.by_image == {images[0]: "cat"}
    assert [(r.reject, Path(r.uri).name) for r in read.rejects] == [("missing_field", "s.txt:3")]


def test_an_image_two_folders_share_by_name_is_not_guessed(tmp_path):
    images = [tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.jpg"]
    f = tmp_path / "labels.txt"
    f.write_text("a.jpg\tcat\n")
    read = SplitLabels.read(f, images)
    assert not read.by_image and [r.reject for r in read.rejects] == ["ambiguous_file_name"]


def test_the_file_beside_is_the_one_named_for_annotations_or_labels(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert beside(tmp_path) is None
    (tmp_path / "val_annotations.txt").write_text("a.jpg\tcat\n")
    assert beside(tmp_path) == tmp_path / "val_annotations.txt"
    (tmp_path / "labels.csv").write_text("a.jpg,cat\n")
    assert beside(tmp_path) is None  # two: neither guessed
