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


def test_split_tables_beside_a_flat_folder_label_it_and_give_each_image_its_file_s_split(tmp_path, png):
    """images/ beside train.csv and valid.csv of one header: both label it, and with no split folder a row's split
    is the one its file's name says (so valid is held out as the test split, as a val/ folder would be)."""
    from ingest.sources.image_folder import ImageFolderSource, detect, read_image_folder

    (tmp_path / "images").mkdir()
    for split, names in (("train", ["a", "b", "c"]), ("valid", ["d"])):
        for k, n in enumerate(names):
            (tmp_path / "images" / f"{n}.png").write_bytes(png(ord(n)))
        (tmp_path / f"{split}.csv").write_text("file,label\n" + "".join(f"{n}.png,{'cat' if k % 2 else 'dog'}\n"
                                                                        for k, n in enumerate(names)))
    found = detect(str(tmp_path / "images"))
    assert found["labels_file"] == [(tmp_path / "train.csv").as_posix(), (tmp_path / "valid.csv").as_posix()]
    records = read_image_folder(ImageFolderSource(name="s", kind="image_folder", **{"path": str(tmp_path / "images"),
                                                                                    **found}), 10**6)
    assert {r.uri.rsplit("/", 1)[1]: (r.label, r.split_hint) for r in records} == {
        "a.png": ("dog", "train"), "b.png": ("cat", "train"), "c.png": ("dog", "train"), "d.png": ("dog", "val")}


def test_class_folders_whose_labels_file_names_patients_are_read_from_the_file(tmp_path, png):
    """train/test class folders and a labels.csv that agrees with them but names each image's patient: the file is
    read (label_from: file), so the subjects land and keep each patient in one split; the folders' splits stay.
    Without the patient column the folders are read as before; a file naming few of the images is not taken."""
    from ingest.sources.image_folder import ImageFolderSource, detect, read_image_folder

    rows = []
    for k, (split, label) in enumerate([("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "dog")] * 3):
        (tmp_path / split / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / label / f"{k}.png").write_bytes(png(k + 1))
        rows.append(f"{split}/{label}/{k}.png,{label},MRN-{k // 2}")
    (tmp_path / "labels.csv").write_text("file,label,patient_id\n" + "\n".join(rows) + "\n")
    found = detect(str(tmp_path))
    assert found["label_from"] == "file" and found["subject_column"] == "patient_id"
    records = read_image_folder(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path), **found), 10**6)
    got = {r.uri.rsplit("/", 1)[1]: (r.label, r.split_hint, r.subject) for r in records}
    assert got["0.png"] == ("cat", "train", "MRN-0") and got["11.png"] == ("dog", "test", "MRN-5")
    (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    assert detect(str(tmp_path)).get("label_from", "folder") == "folder"
    (tmp_path / "labels.csv").write_text("file,label,patient_id\n" + "\n".join(rows[:6]) + "\n")  # half the images
    assert detect(str(tmp_path)).get("label_from", "folder") == "folder"
