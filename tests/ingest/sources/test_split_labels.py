"""A flat split folder labelled by a file: GTSRB (Kaggle's, torchvision's, the original archive's) and Kaggle's
ImageNet, laid out as they ship, small."""

from pathlib import Path

import numpy as np
import pytest

from ingest import public
from ingest.sources.image_folder import detect
from ingest.sources import subjects
from ingest.sources.labels_file import before_boxes
from sluice.errors import ConfigError, InputError


def _tree(root: Path, paths, png, start=0):
    for k, path in enumerate(paths, start=start):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(png(k))


def _run(make_params, path, **extra):
    params = make_params({"ingest": {"batch_rows": 3, "sources": [
        {"name": "f", "kind": "image_folder", "path": str(path), **extra}]}})
    return public.run(params)["sources"]["f"]


def _rows(lake):
    return {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}


def test_kaggle_gtsrb_test_folder_is_labelled_by_test_csv(tmp_path, make_params, lake, png, caplog):
    """Train/<class>/ beside a flat Test/ and Test.csv (Path, ClassId): found by init; the test images land
    labelled; a row naming no image is quarantined with its line; Test.csv itself is not landed."""
    root = tmp_path / "gtsrb"
    _tree(root, [f"Train/{c}/{c:05d}_{k}.png" for c in range(3) for k in range(2)] + [f"Test/{k:05d}.png" for k in range(5)],
          png)
    (root / "Test.csv").write_text("Width,Height,Roi.X1,Roi.Y1,Roi.X2,Roi.Y2,ClassId,Path\n"
                                   + "".join(f"8,8,1,1,7,7,{k % 3},Test/{k:05d}.png\n" for k in range(4))
                                   + "8,8,1,1,7,7,2,Test/09999.png\n")
    (root / "Train.csv").write_text("Width,Height,ClassId,Path\n8,8,0,Train/0/00000_0.png\n")
    found = detect(str(root))
    assert found == {"split_labels": {"Test": (root / "Test.csv").as_posix()}}

    with caplog.at_level("INFO"):
        stats = _run(make_params, root, **found)
    tests = {row for row in _rows(lake) if row[1] == "test"}
    assert tests == {("Test/00000.png", "test", "0"), ("Test/00001.png", "test", "1"), ("Test/00002.png", "test", "2"),
                     ("Test/00003.png", "test", "0"), ("Test/00004.png", "test", None)}  # no row names the fifth
    quarantined = {(r["reason"], r["row_key"].rsplit("/", 1)[-1]) for r in lake.read("quarantine").to_pylist()}
    assert ("label_for_missing_file", "Test.csv:6") in quarantined
    assert not any(key == "Test.csv" for _, key in quarantined) and ("outside_class_folder", "Train.csv") in quarantined
    assert stats["seen"] == stats["inserted"] + stats["quarantined"]
    assert "4 images in " in caplog.text and "labelled by Test.csv, 1 of its rows quarantined" in caplog.text


def test_torchvision_gtsrb_numbers_name_the_numbered_class_folders(tmp_path, make_params, lake, png, caplog):
    """torchvision's GTSRB: GTSRB/Training/00000/ (a CSV in each class folder), GTSRB/Final_Test/Images/ and,
    above, GT-final_test.csv (';', Filename, ClassId 0-42): ClassId 2 is the class 00002, the file above the
    layout is found, and a label no folder has is said."""
    top = tmp_path / "gtsrb"
    root = top / "GTSRB"
    _tree(root, [f"Training/{c:05d}/{c:05d}_{k:05d}.ppm" for c in range(3) for k in range(2)]
          + [f"Final_Test/Images/{k:05d}.ppm" for k in range(4)], png)
    (top / "GT-final_test.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
                                           + "".join(f"{k:05d}.ppm;8;8;1;1;7;7;{[0, 2, 1, 7][k]}\n" for k in range(4)))
    (root / "Final_Test" / "Images" / "GT-final_test.test.csv").write_text("Filename;Width;Height\n00000.ppm;8;8\n")
    found = detect(str(top))
    assert found == {"path": root.as_posix(), "split_labels": {"Final_Test/Images": (top / "GT-final_test.csv").as_posix()},
                     "subject_pattern": subjects.TRACK_PATTERN}  # the training images' tracks (test_subjects.py)

    with caplog.at_level("INFO"):
        _run(make_params, root, split_labels=found["split_labels"])
    assert {row for row in _rows(lake) if row[1] == "test"} == {
        ("Final_Test/Images/00000.ppm", "test", "00000"), ("Final_Test/Images/00001.ppm", "test", "00002"),
        ("Final_Test/Images/00002.ppm", "test", "00001"), ("Final_Test/Images/00003.ppm", "test", "7")}
    assert {row[2] for row in _rows(lake) if row[1] == "train"} == {"00000", "00001", "00002"}
    assert "1 of its labels name no class folder (7)" in caplog.text


def test_the_original_archive_final_training_images_holds_the_classes(tmp_path, make_params, lake, png):
    """GTSRB's own archive: Final_Training/Images/<class>/ is the train split's class folders, not a class called
    Images; Final_Test/Images/ is the test split."""
    root = tmp_path / "GTSRB"
    _tree(root, [f"Final_Training/Images/{c:05d}/{k}.ppm" for c in range(2) for k in range(2)]
          + ["Final_Test/Images/00000.ppm"], png)
    (tmp_path / "GT-final_test.csv").write_text("Filename;ClassId\n00000.ppm;1\n")
    found = detect(str(tmp_path))
    _run(make_params, root, split_labels=found["split_labels"])
    assert {(row[1], row[2]) for row in _rows(lake)} == {("train", "00000"), ("train", "00001"), ("test", "00001")}


def test_kaggle_imagenet_val_is_labelled_by_the_wnid_before_its_boxes(tmp_path, make_params, lake, png):
    """Kaggle's ILSVRC/Data/CLS-LOC/{train/<wnid>,val,test} with LOC_val_solution.csv (ImageId, PredictionString
    of the wnid and its boxes) three folders above; the sample submission is not taken for labels."""
    top = tmp_path / "imagenet-object-localization-challenge"
    root = top / "ILSVRC" / "Data" / "CLS-LOC"
    wnids = ["n01440764", "n01443537"]
    _tree(root, [f"train/{w}/{w}_{k}.JPEG" for w in wnids for k in range(2)]
          + [f"val/ILSVRC2012_val_{k:08d}.JPEG" for k in (1, 2)] + ["test/ILSVRC2012_test_00000001.JPEG"], png)
    (top / "ILSVRC" / "Annotations" / "CLS-LOC").mkdir(parents=True)
    (top / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n"
                                              "ILSVRC2012_val_00000001,n01443537 10 20 30 40 n01443537 1 2 3 4 \n"
                                              "ILSVRC2012_val_00000002,n01440764 5 6 7 8 \n")
    (top / "LOC_sample_submission.csv").write_text("ImageId,PredictionString\nILSVRC2012_test_00000001,n01440764\n")
    found = detect(str(top))
    assert found == {"path": root.as_posix(), "split_labels": {"val": (top / "LOC_val_solution.csv").as_posix()}}
    _run(make_params, root, split_labels=found["split_labels"])
    assert {row for row in _rows(lake) if row[1] != "train"} == {
        ("val/ILSVRC2012_val_00000001.JPEG", "val", "n01443537"), ("val/ILSVRC2012_val_00000002.JPEG", "val", "n01440764"),
        ("test/ILSVRC2012_test_00000001.JPEG", "test", None)}


def test_a_file_that_names_other_images_or_another_split_is_not_proposed(tmp_path, png):
    root = tmp_path / "set"
    _tree(root, [f"train/{c}/{k}.png" for c in ("a", "b") for k in range(2)] + [f"test/{k}.png" for k in range(5)], png)
    (root / "test.csv").write_text("file,label\n" + "".join(f"other_{k}.png,a\n" for k in range(4)) + "0.png,a\n")
    (root / "train_labels.csv").write_text("file,label\n" + "".join(f"test/{k}.png,a\n" for k in range(5)))
    assert "split_labels" not in detect(str(root))  # 1 of 5 rows names an image; the other file says train
    (root / "test.csv").write_text("file,label\n" + "".join(f"{k}.png,b\n" for k in range(4)) + "gone.png,a\n")
    assert detect(str(root))["split_labels"] == {"test": (root / "test.csv").as_posix()}  # 4 of 5: 80%


def test_split_labels_naming_no_flat_split_folder_is_one_line(tmp_path, make_params, png):
    root = tmp_path / "set"
    _tree(root, ["train/a/0.png", "train/b/1.png", "test/2.png"], png)
    (root / "t.csv").write_text("file,label\n2.png,a\n")
    with pytest.raises(InputError, match=r"split_labels names 'train', which is no split folder of unlabelled images "
                                         r"in it \(those are: test\)"):
        _run(make_params, root, split_labels={"train": str(root / "t.csv")})
    with pytest.raises(ConfigError, match="split_labels goes with class folders"):
        _run(make_params, root, split_labels={"test": str(root / "t.csv")}, label_from="none")


@pytest.mark.parametrize("label, expected", [
    ("n01751748 160 139 372 291 n01751748 1 2 3 4", "n01751748"), ("n01751748", "n01751748"),
    ("grade 2", "grade 2"), ("stage 1 2 3", "stage 1 2 3"), ("12 1 2 3 4", "12 1 2 3 4"), (None, None)])
def test_a_label_before_its_boxes_is_the_label(label, expected):
    assert before_boxes(label) == expected


def _annotations(path: Path, rows, labelled=True):
    """A MATLAB struct array as Stanford Cars' devkit ships it: bbox_x1 ... (class), fname."""
    from scipy.io import savemat

    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), *([("class", "O")] if labelled else []), ("fname", "O")]
    table = np.array([(np.uint8(1), np.uint8(2), *([np.uint8(c)] if labelled else []), name) for name, c in rows],
                     dtype=fields)
    savemat(path, {"annotations": table.reshape(1, -1)})


def test_torchvision_stanford_cars_tables_label_both_flat_splits(tmp_path, make_params, lake, png):
    """stanford_cars/: flat cars_train/ and cars_test/ (named for the set and the split), devkit/ with
    cars_train_annos.mat (fname, class 1..3) and cars_meta.mat (class_names), cars_test_annos_withlabels.mat
    beside; devkit/cars_test_annos.mat has no class and is not taken. Indices are named by cars_meta.mat."""
    from scipy.io import savemat

    root = tmp_path / "stanford_cars"
    _tree(root, [f"cars_train/{k:05d}.jpg" for k in range(1, 6)] + [f"cars_test/{k:05d}.jpg" for k in range(1, 4)], png)
    (root / "devkit").mkdir()
    _annotations(root / "devkit" / "cars_train_annos.mat", [(f"{k:05d}.jpg", k % 3 + 1) for k in range(1, 6)]
                 + [("09999.jpg", 1)])
    _annotations(root / "devkit" / "cars_test_annos.mat", [(f"{k:05d}.jpg", 0) for k in range(1, 4)], labelled=False)
    _annotations(root / "cars_test_annos_withlabels.mat", [(f"{k:05d}.jpg", 4 - k) for k in range(1, 4)])
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"], dtype=object)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    found = detect(str(root))
    assert found == {"split_labels": {"cars_test": (root / "cars_test_annos_withlabels.mat").as_posix(),
                                      "cars_train": (root / "devkit" / "cars_train_annos.mat").as_posix()},
                     "class_names": list(names), "class_index_base": 1}
    _annotations(root / "cars_test_annos_withlabels.mat", [(f"{k:05d}.jpg", 4 - k) for k in range(1, 4)] + [("00003.jpg", 9)])
    stats = _run(make_params, root, **found)
    rows = _rows(lake)
    assert ("cars_train/00001.jpg", "train", "Acura RL Sedan 2012") in rows
    assert ("cars_train/00002.jpg", "train", "Acura TL Sedan 2012") in rows
    assert ("cars_test/00001.jpg", "test", "Acura TL Sedan 2012") in rows
    assert ("cars_test/00003.jpg", "test", "AM General Hummer SUV 2000") in rows
    quarantined = {(r["reason"], r["row_key"].rsplit("/", 1)[-1]) for r in lake.read("quarantine").to_pylist()}
    assert ("label_for_missing_file", "cars_train_annos.mat:record 6") in quarantined
    assert ("unknown_class_index", "cars_test_annos_withlabels.mat:record 4") in quarantined
    assert ("outside_split_folder", "cars_meta.mat") in quarantined  # kept with its reason: not read as an image
    assert not any(key == "cars_train_annos.mat" for _, key in quarantined)  # read, as the split's labels
    assert stats["seen"] == stats["inserted"] + stats["quarantined"]


def test_a_flat_val_folder_labelled_by_class_indices_in_a_list(tmp_path, make_params, lake, png):
    """ImageNet as Caffe's lists label it: train/<wnid>/ beside a flat val/ and val.txt of '<image> <index>' lines
    (no header); the indices number the class folders in sorted order, as torchvision's ImageFolder does, written
    as class_names; an index past them is quarantined with its line."""
    root = tmp_path / "ilsvrc"
    wnids = ["n01440764", "n01443537", "n01484850"]
    _tree(root, [f"train/{w}/{w}_0.JPEG" for w in reversed(wnids)] + [f"val/ILSVRC2012_val_{k:08d}.JPEG" for k in (1, 2, 3)],
          png)
    (root / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 2\nILSVRC2012_val_00000002.JPEG 0\n"
                                  "ILSVRC2012_val_00000003.JPEG 1\n")
    found = detect(str(root))
    assert found == {"split_labels": {"val": (root / "val.txt").as_posix()}, "class_names": wnids}
    (root / "val.txt").write_text((root / "val.txt").read_text() + "ILSVRC2012_val_00000003.JPEG 7\n")
    _run(make_params, root, **found)
    assert {row for row in _rows(lake) if row[1] == "val"} == {
        ("val/ILSVRC2012_val_00000001.JPEG", "val", "n01484850"), ("val/ILSVRC2012_val_00000002.JPEG", "val", "n01440764"),
        ("val/ILSVRC2012_val_00000003.JPEG", "val", "n01443537")}
    quarantined = {(r["reason"], r["row_key"].rsplit("/", 1)[-1]) for r in lake.read("quarantine").to_pylist()}
    assert ("unknown_class_index", "val.txt:4") in quarantined
