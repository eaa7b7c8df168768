"""Where an image folder's splits are (``ingest/sources/folder_layout.py``)."""

from pathlib import Path

from ingest.sources.folder_layout import layout


def _tree(root, paths, png):
    for k, path in enumerate(paths):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(png(k))


def test_a_second_copy_of_the_splits_is_read_too(tmp_path, png):
    """The chest X-ray archive: chest_xray/{train,test}/ beside train/ and test/ (dedup groups the copies)."""
    xray = tmp_path / "chest_xray"
    _tree(xray, [f"{copy}{split}/{c}/{k}.jpeg" for copy in ("", "chest_xray/") for split in ("train", "test")
                 for c in ("NORMAL", "PNEUMONIA") for k in (1, 2)], png)
    found = layout(xray)
    assert [p.relative_to(xray).as_posix() for p in found.splits] == ["test", "train", "chest_xray/test", "chest_xray/train"]
    assert not found.outside


def test_one_class_named_like_a_split_is_a_class(tmp_path, png):
    from ingest.sources.image_folder import ImageFolderSource, class_names

    _tree(tmp_path / "set", ["cat/1.jpg", "dog/2.jpg", "test/3.jpg"], png)
    assert layout(tmp_path / "set") is None
    src = ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path / "set"))
    assert class_names(src) == ["cat", "dog", "test"]
    _tree(tmp_path / "annotated", ["train/cat/1.jpg", "test/cat/2.jpg"], png)  # folders of no images beside: splits
    (tmp_path / "annotated" / "annotations").mkdir()
    (tmp_path / "annotated" / "annotations" / "boxes.txt").write_text("1 2 3 4\n")
    assert [p.name for p in layout(tmp_path / "annotated").splits] == ["test", "train"]


def test_a_link_back_to_the_folder_is_quarantined_and_a_linked_class_folder_elsewhere_is_read(tmp_path, png):
    from ingest.sources.image_folder import ImageFolderSource, read_image_folder

    root, elsewhere = tmp_path / "set", tmp_path / "disk2" / "birds"
    for folder in (root / "cat", root / "dog", elsewhere):
        folder.mkdir(parents=True)
        (folder / "1.png").write_bytes(png(len(str(folder))))
    (root / "all").symlink_to(root)  # a link back to the set: it would land every image again, as a class "all"
    (root / "up").symlink_to(tmp_path)  # above it
    (root / "bird").symlink_to(elsewhere)  # a class folder kept on another disk
    records = list(read_image_folder(ImageFolderSource(name="s", kind="image_folder", path=str(root)), 10**6))
    landed = sorted((r.label, Path(r.uri).name) for r in records if not r.reject)
    assert landed == [("bird", "1.png"), ("cat", "1.png"), ("dog", "1.png")]
    assert sorted((Path(r.uri).name, r.reject) for r in records if r.reject) == [("all", "unreadable"), ("up", "unreadable")]
    assert all("link to a folder" in r.details for r in records if r.reject)


def test_folders_named_alike_but_for_a_split_word_are_the_splits(tmp_path, png, make_params, lake):
    """Stanford Cars' cars_train/ and cars_test/ (the set's name and a split) beside devkit/; flowers_train/<class>/
    beside flowers_test/<class>/: splits, read as such. Two folders of one split, or folders of no common name,
    are not."""
    from ingest import public

    _tree(tmp_path / "cars", ["cars_train/00001.jpg", "cars_test/00001.jpg"], png)
    (tmp_path / "cars" / "devkit").mkdir()
    found = layout(tmp_path / "cars")
    assert [p.name for p in found.splits] == ["cars_test", "cars_train"]
    root = tmp_path / "flowers"
    _tree(root, ["flowers_train/rose/1.jpg", "flowers_train/tulip/2.jpg", "flowers_test/rose/3.jpg",
                 "flowers_test/tulip/4.jpg"], png)
    public.run(make_params({"ingest": {"sources": [{"name": "f", "kind": "image_folder", "path": str(root)}]}}))
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert ("flowers_train/rose/1.jpg", "train", "rose") in rows and ("flowers_test/tulip/4.jpg", "test", "tulip") in rows
    _tree(tmp_path / "no", ["a_train/1.jpg", "b_train/2.jpg", "pre_test/3.jpg", "post_test/4.jpg"], png)
    assert layout(tmp_path / "no") is None


def test_places365s_layout_a_training_pool_under_a_pictures_folder_beside_val(tmp_path, png, make_params, lake):
    """Places365 as published: data_256/<letter>/<class>[/<sub>]/ beside a flat val_256/ labelled by class indices
    in places365_val.txt (the classes' sorted paths, as categories_places365.txt numbers them) and an unlabelled
    test_256/. data_256 is the training pool (not a class beside a class called val_256), its classes nest
    (a/abbey, b/bakery/shop) and the val indices name them."""
    from ingest import public
    from ingest.sources.image_folder import detect

    root = tmp_path / "places365"
    classes = ["a/abbey", "a/airfield", "b/bakery/shop", "b/beach", "c/campus", "c/canyon"]
    _tree(root, [f"data_256/{c}/{k:08d}.jpg" for c in classes for k in (1, 2)]
          + [f"val_256/Places365_val_{k:08d}.jpg" for k in range(1, 7)] + ["test_256/Places365_test_00000001.jpg"], png)
    (root / "places365_val.txt").write_text("".join(f"Places365_val_{k:08d}.jpg {k - 1}\n" for k in range(1, 7)))
    found = layout(root)
    assert [p.name for p in found.splits] == ["test_256", "val_256", "data_256"] and not found.outside
    params = detect(str(root))
    assert params["label_from"] == "path" and params["class_names"] == classes
    assert params["split_labels"] == {"val_256": (root / "places365_val.txt").as_posix()}
    source = {"name": "p", "kind": "image_folder", "path": str(root), **params}
    public.run(make_params({"ingest": {"sources": [source]}}))
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert ("data_256/b/bakery/shop/00000002.jpg", "train", "b/bakery/shop") in rows
    assert ("val_256/Places365_val_00000003.jpg", "val", "b/bakery/shop") in rows
    assert ("test_256/Places365_test_00000001.jpg", "test", None) in rows
    assert len(rows) == 19
    _tree(tmp_path / "own", ["images/cat/1.jpg", "images/dog/2.jpg", "test/cat/3.jpg"], png)  # a user's pool and test
    assert [(p.name) for p in layout(tmp_path / "own").splits] == ["test", "images"]
    _tree(tmp_path / "both", ["train/cat/1.jpg", "test/cat/2.jpg", "images/cat/3.jpg"], png)  # a train split: no pool
    assert [p.name for p in layout(tmp_path / "both").splits] == ["test", "train"]
