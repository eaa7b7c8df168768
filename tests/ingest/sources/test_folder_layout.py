"""Where an image folder's splits are (``ingest/sources/folder_layout.py``)."""

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
