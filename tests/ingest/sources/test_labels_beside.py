"""Where a folder's labels file is (ingest/sources/labels_beside.py); most cases run through ``detect`` in
test_labels_file.py and test_image_folder.py."""

from __future__ import annotations

from ingest.sources.labels_beside import beside, with_split_siblings


def test_a_labels_file_named_for_a_split_takes_the_tables_of_the_other_splits_with_its_header(tmp_path):
    """CheXpert's train.csv and valid.csv; a test.csv of another header (a competition's, without labels) and a
    sample submission are not labels of the set."""
    header = "Path,Sex,Edema,Cardiomegaly\n"
    for name, text in (("train.csv", header), ("valid.csv", header), ("test.csv", "Path,Sex\n"),
                       ("sampleSubmission.csv", header), ("notes.csv", header)):
        (tmp_path / name).write_text(text)
    assert beside(tmp_path) == tmp_path / "train.csv"
    assert with_split_siblings(tmp_path / "train.csv") == [tmp_path / "train.csv", tmp_path / "valid.csv"]
    assert with_split_siblings(tmp_path / "notes.csv") == [tmp_path / "notes.csv"]  # its name says no split
    (tmp_path / "trainLabels.csv").write_text("id,label\n")
    assert with_split_siblings(tmp_path / "trainLabels.csv") == [tmp_path / "trainLabels.csv"]  # no sibling alike
