"""A data set's own split from lists of its files (Food-101's meta/, the Oxford-IIIT Pets' annotations/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.sources.image_folder import ImageFolderSource, detect, read_image_folder
from ingest.sources.split_lists import list_sets, list_split
from sluice.errors import InputError


def _food(root: Path, png) -> Path:
    """food-101/images/<class>/<id>.jpg with meta/train.txt and meta/test.txt naming `class/id`."""
    lines = {"train": [], "test": []}
    for c, cls in enumerate(("apple_pie", "beignets")):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(10):
            (root / "images" / cls / f"{100 + i}.jpg").write_bytes(png(c * 100 + i))
            lines["test" if i >= 7 else "train"].append(f"{cls}/{100 + i}")
    (root / "meta").mkdir()
    for split, entries in lines.items():
        (root / "meta" / f"{split}.txt").write_text("\n".join(entries) + "\n")
    (root / "meta" / "classes.txt").write_text("apple_pie\nbeignets\n")
    return root


def _hints(src: ImageFolderSource) -> dict[str, str | None]:
    return {Path(r.uri).relative_to(src.path).as_posix(): r.split_hint for r in read_image_folder(src, 10**6)}


def test_food101_lists_are_found_and_give_the_split(tmp_path, png):
    root = _food(tmp_path / "food-101", png)
    found = detect(str(root))
    assert found["path"] == (root / "images").as_posix()
    assert found["split_lists"] == [(root / "meta" / "test.txt").as_posix(), (root / "meta" / "train.txt").as_posix()]
    src = ImageFolderSource(name="food", kind="image_folder", **found)
    hints = _hints(src)
    assert len(hints) == 20 and hints["apple_pie/107.jpg"] == "test" and hints["beignets/100.jpg"] == "train"
    assert sum(h == "test" for h in hints.values()) == 6


def test_pets_lists_name_stems_and_an_image_on_no_list_is_left_to_the_dataset_stage(tmp_path, png, caplog):
    images, notes = tmp_path / "pets" / "images", tmp_path / "pets" / "annotations"
    images.mkdir(parents=True)
    notes.mkdir()
    trainval, test = [], []
    for c, breed in enumerate(("Abyssinian", "american_bulldog")):
        for i in range(1, 11):
            (images / f"{breed}_{i}.jpg").write_bytes(png(c * 50 + i))
            (test if i > 6 else trainval).append(f"{breed}_{i} {c + 1} 1 {c + 1}")
    (images / "Abyssinian_99.jpg").write_bytes(png(999))  # on no list
    (images / "Abyssinian_1.mat").write_bytes(b"MATLAB 5.0")  # not an image: quarantined, given no split
    (notes / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (notes / "test.txt").write_text("# Image CLASS-ID SPECIES BREED-ID\n" + "\n".join(test) + "\nGone_1 1 1 1\n")
    found = detect(str(tmp_path / "pets"))
    assert found["label_from"] == "name" and len(found["split_lists"]) == 2
    caplog.set_level("INFO")
    hints = _hints(ImageFolderSource(name="pets", kind="image_folder", **found))
    assert (hints["Abyssinian_7.jpg"], hints["american_bulldog_2.jpg"], hints["Abyssinian_99.jpg"]) == ("test", "train", None)
    assert "images given a split: test 8, train 12; 1 entries name no image in the folder (first: 'Gone_1' in " \
           "test.txt)" in caplog.text


def test_an_image_on_two_lists_is_test_and_paths_from_another_machine_fit(tmp_path, png):
    root = _food(tmp_path / "food-101", png)
    with (root / "meta" / "train.txt").open("a") as fh:
        fh.write("apple_pie/108\n")  # also on test.txt
    with (root / "meta" / "test.txt").open("a") as fh:  # a Windows path, with the extension: its part under images/
        fh.write("C:\\data\\food-101\\images\\beignets\\100.JPG\n")  # also on train.txt (as beignets/100)
    src = ImageFolderSource(name="food", kind="image_folder", **detect(str(root)))
    hints = _hints(src)
    assert hints["apple_pie/108.jpg"] == "test" and hints["beignets/100.jpg"] == "test"


def test_lists_that_are_not_one_per_split_or_not_of_this_folder_are_not_proposed(tmp_path, png):
    root = _food(tmp_path / "food-101", png)
    (root / "meta" / "test.txt").rename(root / "meta" / "test1.txt")
    (root / "meta" / "test2.txt").write_text((root / "meta" / "test1.txt").read_text())  # DTD's folds
    assert "split_lists" not in detect(str(root))
    (root / "meta" / "test2.txt").unlink()
    (root / "meta" / "test1.txt").write_text("a test plan\nstep one\n")  # a test.txt that lists no image
    assert "split_lists" not in detect(str(root))


def test_a_list_must_say_its_split_and_exist(tmp_path, png):
    names = ("train.txt", "TrainVal.txt", "val.txt", "test_list.txt", "TestImages.txt", "notes.txt", "contest.txt",
             "images_variant_trainval.txt", "images_family_test.txt", "LOC_val_solution.csv", "train_test_split.txt")
    assert [list_split(n) for n in names] == ["train", "train", "val", "test", "test", None, None, "train", "test", None,
                                              None]
    with pytest.raises(ValidationError, match="'notes.txt' does not say its split by its name"):
        ImageFolderSource(name="f", kind="image_folder", path=str(tmp_path), split_lists=["notes.txt"])
    root = _food(tmp_path / "food-101", png)
    src = ImageFolderSource(name="f", kind="image_folder", path=str(root / "images"),
                            split_lists=[str(root / "meta" / "val.txt")])
    with pytest.raises(InputError, match="val.txt: split list of image folder .* does not exist"):
        list(read_image_folder(src, 10**6))


def test_cub_ids_and_training_flags(tmp_path, png):
    """CUB-200-2011: images.txt (`<id> <path>`) and train_test_split.txt (`<id> <1: train, 0: test>`)."""
    root = tmp_path / "CUB_200_2011"
    index, flags = [], []
    for c, cls in enumerate(("001.Black_footed_Albatross", "002.Laysan_Albatross")):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(4):
            name = f"{cls}/{cls[4:]}_{i:04d}.jpg"
            (root / "images" / name).write_bytes(png(c * 10 + i))
            index.append(f"{len(index) + 1} {name}")
            flags.append(f"{len(index)} {int(i < 3)}")
    (root / "images.txt").write_text("\n".join(index) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(flags) + "\n")
    found = detect(str(root))
    assert found["split_lists"] == [(root / "train_test_split.txt").as_posix()]
    hints = _hints(ImageFolderSource(name="cub", kind="image_folder", **found))
    assert hints["001.Black_footed_Albatross/Black_footed_Albatross_0003.jpg"] == "test"
    assert sorted(hints.values()) == ["test"] * 2 + ["train"] * 6
    (root / "train_test_split.txt").write_text("1 1\n2 yes\n")
    with pytest.raises(InputError, match=r"train_test_split.txt:2: expected '<image id in images.txt> <1 or 0>'"):
        list(read_image_folder(ImageFolderSource(name="cub", kind="image_folder", **found), 10**6))


def _mat_cells(names):
    import numpy as np

    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = np.array([name])
    return cells


def test_flowers_102_labels_and_set_ids_in_matlab_files(tmp_path, png, make_params, lake):
    """Oxford Flowers-102 as torchvision keeps it: jpg/image_00001.jpg..., imagelabels.mat (the class of each
    image in name order) and setid.mat (trnid, valid, tstid: 1-based image numbers)."""
    import numpy as np
    from scipy.io import savemat

    from ingest import public

    root = tmp_path / "flowers-102"
    (root / "jpg").mkdir(parents=True)
    for k in range(1, 7):
        (root / "jpg" / f"image_{k:05d}.jpg").write_bytes(png(k))
    savemat(root / "imagelabels.mat", {"labels": np.array([[77, 77, 5, 5, 12, 12]], np.uint8)})
    savemat(root / "setid.mat", {"trnid": np.array([[1, 3, 5]], np.uint16), "valid": np.array([[2]], np.uint16),
                                 "tstid": np.array([[4, 6]], np.uint16)})
    found = detect(str(root))
    assert found == {"path": (root / "jpg").as_posix(), "split_lists": [(root / "setid.mat").as_posix()],
                     "label_from": "file", "labels_file": (root / "imagelabels.mat").as_posix()}
    public.run(make_params({"ingest": {"sources": [{"name": "f", "kind": "image_folder", **found}]}}))
    rows = {(r["item_id"], r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("image_00001.jpg", "77", "train"), ("image_00002.jpg", "77", "val"),
                    ("image_00003.jpg", "5", "train"), ("image_00004.jpg", "5", "test"),
                    ("image_00005.jpg", "12", "train"), ("image_00006.jpg", "12", "test")}
    savemat(root / "imagelabels.mat", {"labels": np.array([[1, 2]], np.uint8)})
    with pytest.raises(InputError, match="2 labels for the 6 images of .*jpg; its labels name the images by position"):
        public.run(make_params({"ingest": {"sources": [{"name": "f", "kind": "image_folder", **found}]}}))


def test_stanford_dogs_lists_in_matlab_files(tmp_path, png):
    """Images/<wnid-breed>/ beside lists/train_list.mat and test_list.mat (file_list: a cell array of paths) and
    lists/file_list.mat (every file: no split, not proposed)."""
    from scipy.io import savemat

    root = tmp_path / "stanford-dogs"
    names = [f"n0208562{c}-{b}/n0208562{c}_{k}.jpg" for c, b in ((0, "Chihuahua"), (1, "Maltese")) for k in range(3)]
    for k, name in enumerate(names):
        (root / "Images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "Images" / name).write_bytes(png(k))
    (root / "Annotation" / "n02085620-Chihuahua").mkdir(parents=True)
    (root / "Annotation" / "n02085620-Chihuahua" / "n02085620_0").write_text("<annotation/>")
    (root / "lists").mkdir()
    savemat(root / "lists" / "train_list.mat", {"file_list": _mat_cells(names[:2] + names[3:5])})
    savemat(root / "lists" / "test_list.mat", {"file_list": _mat_cells([names[2], names[5]])})
    savemat(root / "lists" / "file_list.mat", {"file_list": _mat_cells(names)})
    found = detect(str(root))
    assert found["path"] == (root / "Images").as_posix()
    assert sorted(found["split_lists"]) == [(root / "lists" / n).as_posix() for n in ("test_list.mat", "train_list.mat")]
    src = ImageFolderSource(name="d", kind="image_folder", **found)
    got = {r.item_id: (r.label, r.split_hint) for r in read_image_folder(src, 1 << 20)}
    assert got[names[2]] == ("n02085620-Chihuahua", "test") and got[names[0]] == ("n02085620-Chihuahua", "train")


def test_lists_form_sets_by_their_names_less_the_split(tmp_path):
    """DTD's folds are ten sets (none proposed alone); FGVC-Aircraft's trainval leaves a set with train and val
    (their union); the Pets' trainval is its set's train list; a set with two lists of a split is none."""
    for name in ("train1", "val1", "test1", "train2", "val2", "test2", "a_train", "a_val", "a_trainval", "a_test",
                 "trainval", "test", "b_train", "b_training", "notes"):
        (tmp_path / f"{name}.txt").write_text("x\n")
    found = sorted((sorted((split, path.stem) for split, path in lists.items()) for lists in list_sets([tmp_path], (".txt",))))
    assert found == [[("test", "a_test"), ("train", "a_train"), ("val", "a_val")],
                     [("test", "test"), ("train", "trainval")],
                     [("test", "test1"), ("train", "train1"), ("val", "val1")],
                     [("test", "test2"), ("train", "train2"), ("val", "val2")]]
