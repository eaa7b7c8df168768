"""Lists that label as well as split (Caffe's / PaddleClas' / MMPretrain's ``train.txt``: ``images/a.jpg 3``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.sources.image_folder import ImageFolderSource, class_names, detect, read_image_folder
from ingest.sources.label_lists import class_names_beside


def _caffe(root: Path, png, names: str | None = "cat\ndog\nbird\n", base: int = 0) -> Path:
    """root/images/img_NNN.jpg (no class folders, no class in the names) + train.txt / val.txt beside."""
    (root / "images").mkdir(parents=True)
    lists = {"train": [], "val": []}
    for i in range(30):
        (root / "images" / f"img_{i:03d}.jpg").write_bytes(png(i))
        lists["val" if i >= 24 else "train"].append(f"images/img_{i:03d}.jpg {i % 3 + base}")
    for split, lines in lists.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    if names is not None:
        (root / "classes.txt").write_text(names)
    return root


def _landed(src: ImageFolderSource):
    records = list(read_image_folder(src, 10**6))
    landed = {Path(r.uri).name: (r.label, r.split_hint) for r in records if r.reject is None}
    return landed, [r for r in records if r.reject]


def test_caffe_lists_are_found_and_label_and_split_the_images(tmp_path, png):
    root = _caffe(tmp_path / "set", png)
    found = detect(str(root))
    assert found["path"] == (root / "images").as_posix() and found["label_from"] == "lists"
    assert found["split_lists"] == [(root / "train.txt").as_posix(), (root / "val.txt").as_posix()]
    assert found["class_names"] == ["cat", "dog", "bird"] and "class_index_base" not in found
    src = ImageFolderSource(name="s", kind="image_folder", **found)
    landed, rejects = _landed(src)
    assert not rejects and len(landed) == 30
    assert landed["img_000.jpg"] == ("cat", "train") and landed["img_025.jpg"] == ("dog", "val")
    assert Counter(label for label, _ in landed.values()) == {"cat": 10, "dog": 10, "bird": 10}
    assert class_names(src) == ["cat", "dog", "bird"]


def test_without_a_names_file_the_indices_land_as_they_are(tmp_path, png):
    root = _caffe(tmp_path / "set", png, names=None)
    found = detect(str(root))
    assert "class_names" not in found
    landed, _ = _landed(ImageFolderSource(name="s", kind="image_folder", **found))
    assert landed["img_004.jpg"] == ("1", "train")


@pytest.mark.parametrize("names, base, expected", [
    ("1 cat\n2 dog\n3 bird\n", 1, ["cat", "dog", "bird"]),  # numbered lines, 1-based lists
    ("cat\ndog\nbird\n", 1, ["cat", "dog", "bird"]),  # a name a line, lists counting from 1 (CUB's, the Pets')
    ("0: cat\n1: dog\n2: bird\n", 0, ["cat", "dog", "bird"]),
])
def test_class_names_files_and_the_index_they_start_at(tmp_path, png, names, base, expected):
    root = _caffe(tmp_path / "set", png, names=names, base=base)
    found = detect(str(root))
    assert found["class_names"] == expected and found.get("class_index_base", 0) == base
    landed, _ = _landed(ImageFolderSource(name="s", kind="image_folder", **found))
    assert landed["img_002.jpg"] == ("bird", "train")


def test_a_names_file_that_names_too_few_classes_is_not_used(tmp_path, png):
    root = _caffe(tmp_path / "set", png, names="cat\ndog\n")
    assert "class_names" not in detect(str(root))
    assert class_names_beside([root], Counter({0: 10, 1: 10, 7: 1})) is None
    assert class_names_beside([root], Counter({0: 100, 1: 100, 7: 1})) == (["cat", "dog"], 0)  # a stray 0.5%


def test_bad_lines_are_quarantined_and_their_images_still_land(tmp_path, png):
    root = _caffe(tmp_path / "set", png)
    found = detect(str(root))  # as sluice init wrote it; then the lists changed
    with (root / "val.txt").open("a") as f:
        f.write("images/gone.jpg 1\nimages/img_000.jpg 2\nimages/img_001.jpg 9\n")
    landed, rejects = _landed(ImageFolderSource(name="s", kind="image_folder", **found))
    by_reason = {r.reject: r for r in rejects}
    assert set(by_reason) == {"label_for_missing_file", "conflicting_label", "unknown_class_index"}
    assert by_reason["label_for_missing_file"].uri == f"{root / 'val.txt'}:7"
    assert by_reason["conflicting_label"].uri == f"{root / 'val.txt'}:8" and "'cat'" in by_reason["conflicting_label"].details
    assert by_reason["unknown_class_index"].uri == f"{root / 'val.txt'}:9"
    assert landed["img_000.jpg"][0] == "cat" and landed["img_001.jpg"][0] == "dog"  # the first line's label kept
    assert len(landed) == 30


def test_tab_separated_lines_keep_spaces_in_names_and_labels(tmp_path, png):
    (tmp_path / "images").mkdir()
    for i in range(6):
        (tmp_path / "images" / f"my photo {i}.jpg").write_bytes(png(i))
    (tmp_path / "train.txt").write_text("".join(f"my photo {i}.jpg\t{'golden retriever' if i % 2 else 'pug'}\n"
                                                for i in range(6)))
    found = detect(str(tmp_path / "images"))
    assert found["label_from"] == "lists"
    landed, _ = _landed(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path / "images"), **found))
    assert landed["my photo 1.jpg"] == ("golden retriever", "train")


def test_lists_without_labels_or_naming_other_files_are_not_label_lists(tmp_path, png):
    root = _caffe(tmp_path / "set", png)
    (root / "train.txt").write_text("".join(f"images/img_{i:03d}.jpg\n" for i in range(24)))  # no labels
    assert detect(str(root))["label_from"] == "none"
    (root / "train.txt").write_text("".join(f"elsewhere/{i}.jpg 1\n" for i in range(24)))
    assert detect(str(root))["label_from"] == "none"


def test_settings_that_do_not_go_together_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="label_from: lists needs split_lists"):
        ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path), label_from="lists")
    with pytest.raises(ValidationError, match="class_names goes with label_from: lists, file, folder or path"):
        ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path), class_names=["a"], label_from="name")


def test_flat_split_folders_labelled_by_lists_that_name_their_files(tmp_path, png):
    for split, n in (("train", 12), ("val", 6)):
        (tmp_path / split).mkdir()
        for i in range(n):
            (tmp_path / split / f"{split}_{i}.jpg").write_bytes(png(i + 100 * n))
        (tmp_path / f"{split}.txt").write_text("".join(f"{split}_{i}.jpg {i % 2}\n" for i in range(n)))
    (tmp_path / "labels.txt").write_text("0 cat\n1 dog\n")
    found = detect(str(tmp_path))
    assert found["label_from"] == "lists" and found["class_names"] == ["cat", "dog"]
    landed, rejects = _landed(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path), **found))
    assert not rejects and len(landed) == 18
    assert landed["train_3.jpg"] == ("dog", "train") and landed["val_4.jpg"] == ("cat", "val")


def test_lists_and_names_inside_the_folder_are_not_landed_as_images(tmp_path, png):
    for i in range(8):
        (tmp_path / f"{i}.png").write_bytes(png(i))
    (tmp_path / "train.txt").write_text("".join(f"{i}.png {i % 2}\n" for i in range(8)))
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "notes.txt").write_text("not a list\n")
    found = detect(str(tmp_path))
    landed, rejects = _landed(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path), **found))
    assert len(landed) == 8 and landed["3.png"] == ("dog", "train")
    assert [Path(r.uri).name for r in rejects] == ["notes.txt"]  # any other file is still quarantined


def test_a_labels_file_of_class_indices_is_named_by_the_map_beside_it(tmp_path, png):
    """Kaggle's Cassava: train_images/ + train.csv (image_id,label as numbers) + label_num_to_disease_map.json."""
    (tmp_path / "train_images").mkdir()
    for i in range(9):
        (tmp_path / "train_images" / f"{i}.jpg").write_bytes(png(i))
    labels = tmp_path / "train_images" / "train.csv"
    labels.write_text("image_id,label\n" + "".join(f"{i}.jpg,{i % 3}\n" for i in range(9)))
    (tmp_path / "label_num_to_disease_map.json").write_text('{"0": "Bacterial Blight", "1": "Brown Streak", "2": "Healthy"}')
    found = detect(str(tmp_path / "train_images"))
    labels.write_text(labels.read_text() + "8.jpg,0\ngone.jpg,7\n")  # edited after sluice init
    assert found["label_from"] == "file" and found["class_names"] == ["Bacterial Blight", "Brown Streak", "Healthy"]
    landed, rejects = _landed(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path / "train_images"),
                                                **found))
    assert landed["4.jpg"][0] == "Brown Streak" and len(landed) == 9
    # 8.jpg again with the same class (0 is not 2: a conflict, named), and an index past the names
    assert sorted((r.reject, Path(r.uri).name) for r in rejects) == [("conflicting_label", "train.csv:11"),
                                                                      ("unknown_class_index", "train.csv:12")]


def _fgvc(root: Path, png) -> Path:
    """FGVC-Aircraft's data/: images/<id>.jpg, labels at three levels in images_<level>_<split>.txt (a label may
    hold spaces: ``1025794 Boeing 707``), id-only images_<split>.txt, and trainval lists, the union of train and val."""
    variants = ["707-320", "737-300", "737-400", "A300B4"]
    family = {"707-320": "Boeing 707", "737-300": "Boeing 737", "737-400": "Boeing 737", "A300B4": "A300"}
    maker = {"707-320": "Boeing", "737-300": "Boeing", "737-400": "Boeing", "A300B4": "Airbus"}
    data = root / "data"
    (data / "images").mkdir(parents=True)
    ids = [f"{1000000 + k:07d}" for k in range(24)]
    for k, i in enumerate(ids):
        (data / "images" / f"{i}.jpg").write_bytes(png(k))
    for split, members in (("train", ids[:8]), ("val", ids[8:16]), ("test", ids[16:]), ("trainval", ids[:16])):
        (data / f"images_{split}.txt").write_text("".join(f"{i}\n" for i in members))
        for level, of in (("variant", lambda v: v), ("family", family.get), ("manufacturer", maker.get)):
            (data / f"images_{level}_{split}.txt").write_text("".join(f"{i} {of(variants[k % 4])}\n"
                                                                      for k, i in enumerate(members)))
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    (data / "images_box.txt").write_text("".join(f"{i} 1 2 3 4\n" for i in ids))
    return root


def test_fgvc_aircraft_lists_label_at_the_finest_level(tmp_path, png):
    """Three sets of labelling lists (variant, family, manufacturer) and one of ids: the variant lists (the most
    labels) are taken, train, val and test (not trainval, their union); a label keeps its spaces."""
    root = _fgvc(tmp_path / "fgvc-aircraft-2013b", png)
    found = detect(str(root))
    data = root / "data"
    assert found == {"path": (data / "images").as_posix(), "label_from": "lists", "split_lists": [
        (data / f"images_variant_{split}.txt").as_posix() for split in ("test", "train", "val")]}
    landed, rejects = _landed(ImageFolderSource(name="s", kind="image_folder", **found))
    assert not rejects and len(landed) == 24
    assert landed["1000000.jpg"] == ("707-320", "train") and landed["1000009.jpg"] == ("737-300", "val")
    assert landed["1000019.jpg"] == ("A300B4", "test")
    (data / "images_variant_test.txt").unlink()
    for split in ("train", "val", "trainval"):
        (data / f"images_variant_{split}.txt").unlink()
    assert detect(str(root))["split_lists"][0].endswith("images_family_test.txt")  # then the next finest
    family = _landed(ImageFolderSource(name="s", kind="image_folder", **detect(str(root))))[0]
    assert family["1000001.jpg"] == ("Boeing 737", "train")


def test_class_folders_named_by_numbers_are_named_by_the_map_beside(tmp_path, png, make_params, lake):
    """Udacity's flowers (Kaggle's pytorch-challange-flower-dataset): dataset/train/1 ... /3, dataset/valid/...,
    and cat_to_name.json beside dataset/ ({"21": "fire lily", ...}): the folders land as their names."""
    from ingest import public

    top = tmp_path / "flowers"
    for split in ("train", "valid"):
        for c in (1, 2, 3):
            (top / "dataset" / split / str(c)).mkdir(parents=True)
            (top / "dataset" / split / str(c) / f"image_{c}.jpg").write_bytes(png(c + 10 * (split == "valid")))
    (top / "cat_to_name.json").write_text('{"2": "hard-leaved pocket orchid", "1": "pink primrose", "3": "canterbury bells"}')
    found = detect(str(top))
    assert found == {"path": (top / "dataset").as_posix(), "class_names": ["pink primrose", "hard-leaved pocket orchid",
                                                                          "canterbury bells"], "class_index_base": 1}
    src = ImageFolderSource(name="s", kind="image_folder", **found)
    assert class_names(src) == ["canterbury bells", "hard-leaved pocket orchid", "pink primrose"]
    public.run(make_params({"ingest": {"sources": [{"name": "s", "kind": "image_folder", **found}]}}))
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert ("train/2/image_2.jpg", "train", "hard-leaved pocket orchid") in rows
    assert ("valid/3/image_3.jpg", "val", "canterbury bells") in rows
    (top / "cat_to_name.json").write_text('{"1": "pink primrose"}')  # names one folder of three: not used
    assert "class_names" not in detect(str(top))
