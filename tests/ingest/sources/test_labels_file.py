"""A flat image folder labelled by a CSV (``label_from: file``): matching, rejects, detection."""

from __future__ import annotations

import pytest

from ingest import public
from ingest.sources.image_folder import ImageFolderSource, class_names, detect
from ingest.sources.labels_file import find_columns
from sluice.errors import ConfigError, InputError


def kaggle(root, png):
    """Kaggle's usual layout: train/ and test/ of flat files, train.csv naming ids, a sample submission."""
    for split, names in (("train", ["a1", "b2", "c3", "d4"]), ("test", ["t1"])):
        (root / split).mkdir(parents=True)
        for i, name in enumerate(names):
            (root / split / f"{name}.jpg").write_bytes(png(hash((split, i)) % 1000))
    (root / "train" / "e5.png").write_bytes(png(77))  # named by its path in the CSV
    (root / "train" / "a1.png").write_bytes(png(78))  # shares the stem a1 with train/a1.jpg
    (root / "train.csv").write_text(
        "id,label\n"
        "a1.jpg,cat\n"  # line 2: by file name
        "b2,dog\n"  # 3: by stem
        "C:\\kaggle\\train\\e5.png,dog\n"  # 4: by path (as a Windows tool wrote it)
        "b2,cat\n"  # 5: a second, different label: quarantined, the first kept
        "b2,dog\n"  # 6: the same label again: nothing to say
        "gone,cat\n"  # 7: no such image
        "a1,dog\n"  # 8: stem of two images
        "c3,\n")  # 9: no label
    (root / "sample_submission.csv").write_text("id,label\nt1,cat\n")
    return root


def test_a_flat_folder_takes_its_labels_from_the_csv(tmp_path, make_params, lake, png):
    root = kaggle(tmp_path / "data", png)
    found = detect(str(root))
    assert found == {"label_from": "file", "labels_file": (root / "train.csv").as_posix(), "file_column": "id",
                     "label_column": "label"}  # train.csv over the sample submission
    params = make_params({"ingest": {"batch_rows": 3, "sources": [
        {"name": "k", "kind": "image_folder", "path": str(root), **found}]}})
    stats = public.run(params)["sources"]["k"]
    assert stats["quarantine_reasons"] == {"conflicting_label": 1, "label_for_missing_file": 1,
                                           "ambiguous_file_name": 1, "missing_field": 1, "not_an_image_extension": 1}
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    assert {k: (r["source_label"], r["split_hint"]) for k, r in rows.items()} == {
        "train/a1.jpg": ("cat", "train"), "train/b2.jpg": ("dog", "train"), "train/e5.png": ("dog", "train"),
        "train/c3.jpg": (None, "train"), "train/d4.jpg": (None, "train"), "train/a1.png": (None, "train"),
        "test/t1.jpg": (None, "test")}  # images no row labels land unlabelled, never dropped
    where = {r["reason"]: r for r in lake.read("quarantine").to_pylist()}
    assert where["conflicting_label"]["row_key"].endswith("train.csv:5")
    assert where["label_for_missing_file"]["row_key"].endswith("train.csv:7")
    assert where["ambiguous_file_name"]["row_key"].endswith("train.csv:8")


def test_the_labels_file_beside_the_folder_and_a_split_column(tmp_path, make_params, lake, png):
    (tmp_path / "train").mkdir()
    for i in range(3):
        (tmp_path / "train" / f"{i}.png").write_bytes(png(i))
    (tmp_path / "train.csv").write_text("file_name;class;subset\n0.png;cat;train\n1.png;dog;validation\n2.png;cat;\n")
    found = detect(str(tmp_path / "train"))
    assert found["labels_file"] == (tmp_path / "train.csv").as_posix() and found["split_column"] == "subset"
    public.run(make_params({"ingest": {"sources": [
        {"name": "k", "kind": "image_folder", "path": str(tmp_path / "train"), **found}]}}))
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"0.png": ("cat", "train"), "1.png": ("dog", "val"), "2.png": ("cat", None)}


def test_several_labels_in_a_cell_leave_the_image_unlabelled_with_the_reason(tmp_path, make_params, lake, png):
    """ChestX-ray14 as published: images/ beside Data_Entry_2017.csv (Image Index, Finding Labels, ...), found by its
    columns. A single finding labels its image ("No Finding" is one label: spaces do not split a label); several
    (Effusion|Infiltration) are quarantined as multiple_labels and the image lands unlabelled. In a column of
    tags (Planet's), spaces split them."""
    from ingest.sources.labels_file import labels_of

    root = tmp_path / "chestxray"
    (root / "images").mkdir(parents=True)
    for i in range(3):
        (root / "images" / f"0000000{i}_000.png").write_bytes(png(i))
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels,Follow-up #,Patient ID\n"
                                              "00000000_000.png,No Finding,0,1\n00000001_000.png,Effusion|Infiltration,0,2\n"
                                              "00000002_000.png,Cardiomegaly,0,3\n")
    found = detect(str(root))
    assert (found["path"], found["labels_file"]) == ((root / "images").as_posix(), (root / "Data_Entry_2017.csv").as_posix())
    assert (found["file_column"], found["label_column"]) == ("Image Index", "Finding Labels")
    stats = public.run(make_params({"ingest": {"sources": [{"name": "x", "kind": "image_folder", **found}]}}))["sources"]["x"]
    assert stats["quarantine_reasons"] == {"multiple_labels": 1}
    rows = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert rows == {"00000000_000.png": "No Finding", "00000001_000.png": None, "00000002_000.png": "Cardiomegaly"}
    [q] = [r for r in lake.read("quarantine").to_pylist() if r["reason"] == "multiple_labels"]
    assert q["row_key"].endswith("Data_Entry_2017.csv:3") and "'Effusion|Infiltration' gives 2 labels" in q["details"]
    assert labels_of("haze primary", "tags") == ["haze", "primary"] and labels_of("golden retriever", "breed") == [
        "golden retriever"]
    assert labels_of("cat;cat", "label") == ["cat"]  # the same label twice is one


def test_a_flat_folder_without_labels_lands_unlabelled_and_class_folders_need_nothing(tmp_path, png):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "0.png").write_bytes(png(0))
    assert detect(str(tmp_path / "flat")) == {"label_from": "none"}
    (tmp_path / "classes" / "cat").mkdir(parents=True)
    (tmp_path / "classes" / "cat" / "0.png").write_bytes(png(0))
    (tmp_path / "classes" / "notes.csv").write_text("a,b\n")
    assert detect(str(tmp_path / "classes")) == {}


def test_mistakes_are_one_line(tmp_path, make_params):
    (tmp_path / "odd.csv").write_text("x,y,z\n1,2,3\n")
    with pytest.raises(InputError, match="set file_column and label_column"):
        find_columns(tmp_path / "odd.csv")
    assert find_columns(_two(tmp_path)) == {
        "file_column": "photo", "label_column": "kind"}
    with pytest.raises(ValueError, match="label_from: file and labels_file go together"):
        ImageFolderSource(name="s", kind="image_folder", path="p", label_from="file")
    with pytest.raises(ConfigError, match="labels_file go together"):
        make_params({"ingest": {"sources": [{"name": "s", "kind": "image_folder", "path": "p", "labels_file": "l.csv"}]}})


def _two(tmp_path):
    """Two columns named nothing usual: the file, then the label."""
    (tmp_path / "two.csv").write_text("photo,kind\n0.png,cat\n")
    return tmp_path / "two.csv"


def test_a_labels_file_over_part_folders_labels_their_images(tmp_path, make_params, lake, png):
    """HAM10000 as Kaggle ships it: HAM10000_images_part_1/ and _part_2/ (and a lower-case copy of both) beside
    HAM10000_metadata.csv (image_id, dx): the folders are parts, not classes; the file labels every image, each
    copy of an image too; a name two different images share stays quarantined."""
    root = tmp_path / "skin-cancer-mnist-ham10000"
    parts = {"HAM10000_images_part_1": ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"],
             "HAM10000_images_part_2": ["ISIC_0000004", "ISIC_0000005"]}
    for copy in (str.strip, str.lower):
        for folder, ids in parts.items():
            (root / copy(folder)).mkdir(parents=True)
            for image_id in ids:
                (root / copy(folder) / f"{image_id}.jpg").write_bytes(png(int(image_id[-1])))
    (root / "HAM10000_images_part_2" / "ISIC_0000006.jpg").write_bytes(png(6))
    (root / "ham10000_images_part_2" / "ISIC_0000006.jpg").write_bytes(png(60))  # same name, other pixels
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx,dx_type,age,sex\n" + "".join(
        f"HAM_{k},ISIC_000000{k},{['nv', 'mel', 'bkl'][k % 3]},histo,50,male\n" for k in range(1, 7)))
    (root / "hmnist_8_8_L.csv").write_text("pixel0000,pixel0001,label\n1,2,0\n")
    found = detect(str(root))
    assert found == {"label_from": "file", "labels_file": (root / "HAM10000_metadata.csv").as_posix(),
                     "file_column": "image_id", "label_column": "dx", "subject_column": "lesion_id"}
    params = make_params({"ingest": {"sources": [{"name": "h", "kind": "image_folder", "path": str(root), **found}]}})
    stats = public.run(params)["sources"]["h"]
    labels = {}
    for r in lake.read("raw_images").to_pylist():
        labels.setdefault(r["item_id"].rsplit("/", 1)[-1], set()).add(r["source_label"])
    assert labels["ISIC_0000001.jpg"] == {"mel"} and labels["ISIC_0000005.jpg"] == {"bkl"}
    assert labels["ISIC_0000006.jpg"] == {None}  # two different images: never guessed
    assert stats["quarantine_reasons"]["ambiguous_file_name"] == 1


def test_a_labels_file_that_gives_the_folders_labels_leaves_the_class_folders(tmp_path, png):
    """A labels.csv whose classname is the folder's: class folders, as before. State Farm's imgs/train/c0/ ... with
    driver_imgs_list.csv, which also names each image's driver (``subject``): read from the file, so that one
    driver's images stay in one split."""
    root = tmp_path / "imgs"
    for k in range(4):
        (root / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"c{k % 2}" / f"img_{k}.jpg").write_bytes(png(k))
    (root / "labels.csv").write_text("classname,img\n" + "".join(f"c{k % 2},img_{k}.jpg\n" for k in range(4)))
    assert detect(str(root)) == {}
    (root / "labels.csv").write_text("subject,classname,img\n" + "".join(f"p1,c{k % 2},img_{k}.jpg\n" for k in range(4)))
    assert detect(str(root)) == {"label_from": "file", "labels_file": (root / "labels.csv").as_posix(),
                                 "file_column": "img", "label_column": "classname", "subject_column": "subject"}


def test_one_hot_columns_label_the_images(tmp_path, make_params, lake, png):
    """Plant Pathology 2020 as Kaggle ships it: images/ of Train_* and Test_*, train.csv of image_id and one column a
    class (1 marking the image's), test.csv of ids, a sample submission; ISIC's 1.0 / 0.0 likewise."""
    root = tmp_path / "plant-pathology"
    (root / "images").mkdir(parents=True)
    for name in [f"Train_{i}" for i in range(20)] + ["Test_0"]:
        (root / "images" / f"{name}.jpg").write_bytes(png(int(name.split("_")[1]) + 100 * name.startswith("Test")))
    (root / "train.csv").write_text("image_id,healthy,multiple_diseases,rust,scab\n"
                                    "Train_0,0,0,0,1\nTrain_1,0,1,0,0\nTrain_2,1,0,0,0\n"
                                    "Train_3,1,0,1,0\n"  # line 5: two classes marked
                                    "Train_4,0,0,0,0\n"  # line 6: none
                                    + "".join(f"Train_{i},0,0,1,0\n" for i in range(5, 20)))
    (root / "test.csv").write_text("image_id\nTest_0\n")
    (root / "sample_submission.csv").write_text("image_id,healthy,multiple_diseases,rust,scab\nTest_0,0.25,0.25,0.25,0.25\n")
    found = detect(str(root))
    assert found == {"path": (root / "images").as_posix(), "label_from": "file",
                     "labels_file": (root / "train.csv").as_posix(), "file_column": "image_id",
                     "label_columns": ["healthy", "multiple_diseases", "rust", "scab"]}
    assert class_names(ImageFolderSource(name="p", kind="image_folder", **found)) == found["label_columns"]
    params = make_params({"ingest": {"sources": [{"name": "p", "kind": "image_folder", **found}]}})
    stats = public.run(params)["sources"]["p"]
    assert stats["quarantine_reasons"] == {"multiple_labels": 1, "missing_field": 1}
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels == {"Train_0.jpg": "scab", "Train_1.jpg": "multiple_diseases", "Train_2.jpg": "healthy",
                      "Train_3.jpg": None, "Train_4.jpg": None, "Test_0.jpg": None,
                      **{f"Train_{i}.jpg": "rust" for i in range(5, 20)}}
    where = {r["reason"]: (r["row_key"].rsplit(":", 1)[1], r["details"]) for r in lake.read("quarantine").to_pylist()}
    assert where["multiple_labels"][0] == "5" and where["missing_field"] == ("6", "no class column marked 1 "
                                                                            "(healthy, multiple_diseases, rust, scab)")


def test_isic_ground_truth_folder_beside_the_images(tmp_path):
    """ISIC 2018 Task 3: <set>_Input/ of images beside <set>_GroundTruth/<set>_GroundTruth.csv of 1.0 / 0.0."""
    images = tmp_path / "ISIC2018_Task3_Training_Input"
    images.mkdir()
    for i in range(3):
        (images / f"ISIC_{i:07d}.jpg").write_bytes(b"x")
    (images / "ATTRIBUTION.txt").write_text("...")
    truth = tmp_path / "ISIC2018_Task3_Training_GroundTruth"
    truth.mkdir()
    (truth / "ISIC2018_Task3_Training_GroundTruth.csv").write_text(
        "image,MEL,NV,BCC\nISIC_0000000,0.0,1.0,0.0\nISIC_0000001,1.0,0.0,0.0\nISIC_0000002,0.0,0.0,1.0\n")
    found = detect(str(images))
    assert (found["labels_file"], found["label_columns"]) == (
        (truth / "ISIC2018_Task3_Training_GroundTruth.csv").as_posix(), ["MEL", "NV", "BCC"])


def test_label_columns_go_with_a_labels_file_alone(make_params):
    with pytest.raises(ConfigError, match="label_columns .one column a class. goes with label_from: file"):
        make_params({"ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": "p", "label_columns": ["a", "b"]}]}})


def test_a_subject_column_is_found_and_lands_with_each_image(tmp_path, make_params, lake, png):
    """HAM10000 as published: two part folders beside HAM10000_metadata.csv (lesion_id, image_id, dx, ...), several
    images a lesion; ChestX-ray14's "Patient ID" and a camera trap's seq_id are found alike."""
    root = tmp_path / "ham"
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    for i in range(4):
        (root / "HAM10000_images_part_1" / f"ISIC_{i:07d}.jpg").write_bytes(png(i))
    (root / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
        "HAM_0000118,ISIC_0000000,bkl,histo,80.0,male,scalp\n"
        "HAM_0000118,ISIC_0000001,bkl,histo,80.0,male,scalp\n"
        "HAM_0002730,ISIC_0000002,nv,histo,80.0,male,scalp\n"
        "HAM_0001466,ISIC_0000003,nv,histo,75.0,male,ear\n")
    found = detect(str(root))
    assert (found["file_column"], found["label_column"], found["subject_column"]) == ("image_id", "dx", "lesion_id")
    public.run(make_params({"ingest": {"sources": [{"name": "ham", "kind": "image_folder", "path": str(root), **found}]}}))
    rows = {r["item_id"].rsplit("/", 1)[-1]: (r["source_label"], r["subject"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"ISIC_0000000.jpg": ("bkl", "HAM_0000118"), "ISIC_0000001.jpg": ("bkl", "HAM_0000118"),
                    "ISIC_0000002.jpg": ("nv", "HAM_0002730"), "ISIC_0000003.jpg": ("nv", "HAM_0001466")}
    for header, column in (("Image Index,Finding Labels,Follow-up #,Patient ID", "Patient ID"),
                           ("file_name,category,seq_id,location", "seq_id"), ("image,label", None),
                           ("image_name,patient_id,lesion_id,diagnosis,target", "patient_id")):  # ISIC 2020
        (tmp_path / "t.csv").write_text(header + "\n")
        assert find_columns(tmp_path / "t.csv").get("subject_column") == column


def test_subject_column_needs_a_labels_file():
    with pytest.raises(ValueError, match="subject_column is a column of labels_file"):
        ImageFolderSource(name="s", kind="image_folder", path="x", subject_column="patient")


def test_a_coco_files_image_fields_name_the_subject(tmp_path):
    """A camera-trap COCO file (LILA's, iWildCam's): each image's seq_id beside its file name."""
    import json

    (tmp_path / "a.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "seq_id": "s1", "location": 3, "width": 8},
                   {"id": 2, "file_name": "b.jpg", "seq_id": "s1", "location": 3, "width": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 0}, {"id": 2, "image_id": 2, "category_id": 0}],
        "categories": [{"id": 0, "name": "deer"}]}))
    assert find_columns(tmp_path / "a.json") == {"file_column": "file_name", "label_column": "category",
                                                 "subject_column": "seq_id"}


def test_a_labels_file_keyed_by_the_patient_names_its_files_by_that_column(tmp_path):
    """RSNA's stage_2_train_labels.csv: patientId,x,y,width,height,Target beside <patientId>.dcm files, no file column."""
    (tmp_path / "labels.csv").write_text("patientId,x,y,width,height,Target\n0004cfab,,,,,0\n00436515,264,152,213,379,1\n")
    assert find_columns(tmp_path / "labels.csv") == {"file_column": "patientId", "label_column": "Target",
                                                     "subject_column": "patientId"}


def test_a_file_column_and_one_other_column_is_file_and_label_but_not_a_split_table(tmp_path):
    """Kaggle's aerial-cactus train.csv (id,has_cactus); CelebA's list_eval_partition.csv (image_id,partition) is no labels."""
    (tmp_path / "train.csv").write_text("id,has_cactus\n0004be2cfeaba1c0361d39e2b000257b.jpg,1\n")
    assert find_columns(tmp_path / "train.csv") == {"file_column": "id", "label_column": "has_cactus"}
    (tmp_path / "partition.csv").write_text("image_id,partition\n000001.jpg,0\n")
    with pytest.raises(InputError, match="cannot tell which columns"):
        find_columns(tmp_path / "partition.csv")


def test_a_set_of_several_labels_a_cell_is_read_as_one_label_versus_the_rest(tmp_path, make_params, lake, png):
    """ChestX-ray14 whole: a fifth of its rows name several findings. init writes positive_label, the label nearest
    half of the rows (No Finding: normal or not), so every image is labelled; another can be set (Effusion)."""
    root = tmp_path / "chestxray"
    (root / "images").mkdir(parents=True)
    cells = ["No Finding", "No Finding", "Effusion|Infiltration", "Cardiomegaly", "No Finding"]
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID"]
    for i in range(100):
        (root / "images" / f"{i:08d}_000.png").write_bytes(png(i))
        lines.append(f"{i:08d}_000.png,{cells[i % 5]},0,{i}")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    found = detect(str(root))
    assert found["positive_label"] == "No Finding" and found["label_column"] == "Finding Labels"
    source = {"name": "x", "kind": "image_folder", **found}
    stats = public.run(make_params({"ingest": {"sources": [source]}}))["sources"]["x"]
    assert stats["quarantine_reasons"] == {} and stats["inserted"] == 100
    rows = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert rows["00000000_000.png"] == "No Finding" and rows["00000002_000.png"] == "not_No Finding"
    effusion = public.run(make_params({"ingest": {"sources": [{**source, "positive_label": "Effusion"}]}}))
    assert effusion["sources"]["x"]["relabelled"] == 100  # a later read gives every row its new label
    rows = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert rows["00000002_000.png"] == "Effusion" and rows["00000003_000.png"] == "not_Effusion"


def test_names_that_differ_from_the_files_only_in_case_match_and_a_file_naming_none_is_one_line(tmp_path, make_params,
                                                                                             lake, png):
    """Ids `P001` / `p002.JPG` / `P003.jpeg` for files p001.jpg...: matched ignoring case and extension when no exact
    name fits (every label was dropped as label_for_missing_file); two files differing only in case stay ambiguous;
    a labels file naming no image of the folder at all is one line with an example, not its rows quarantined."""
    root = tmp_path / "photos"
    root.mkdir()
    for k, name in enumerate(["p001.jpg", "p002.jpg", "p003.jpg", "Q4.jpg", "q4.jpg"]):
        (root / name).write_bytes(png(k + 1))
    (root / "labels.csv").write_text("id,category\nP001,cat\np002.JPG,dog\nP003.jpeg,cat\nQ4.JPG,dog\n")
    found = detect(str(root))
    stats = public.run(make_params({"ingest": {"sources": [{"name": "u", "kind": "image_folder", "path": str(root),
                                                            **found}]}}))["sources"]["u"]
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels == {"p001.jpg": "cat", "p002.jpg": "dog", "p003.jpg": "cat", "Q4.jpg": None, "q4.jpg": None}
    assert stats["quarantine_reasons"] == {"ambiguous_file_name": 1}
    (root / "labels.csv").write_text("id,category\nX-9,cat\nX-10,dog\n")
    with pytest.raises(InputError, match=r"labels.csv: no row of the labels file names an image of the folder \(2 rows; "
                                         r"e.g. 'X-9' against files like"):
        public.run(make_params({"lake": {"root": str(tmp_path / "lake2")}, "ingest": {"sources": [
            {"name": "u", "kind": "image_folder", "path": str(root), **found}]}}))
