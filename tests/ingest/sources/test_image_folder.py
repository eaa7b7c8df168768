import hashlib
import os
from pathlib import Path

import pytest

from ingest import public
from sluice.errors import InputError


def folder_params(make_params, path, **extra):
    return make_params({"ingest": {"batch_rows": 3, "sources": [
        {"name": "f", "kind": "image_folder", "path": str(path), "license": "CC0", **extra}]}})


def test_image_folder_with_split_level_and_rejections(tmp_path, make_params, lake, png):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for k in range(2):
                (root / split / cls / f"{k}.png").write_bytes(png(hash((split, cls, k)) % 1000))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "empty.png").write_bytes(b"")
    truncated = png(1)[:30]
    (root / "train" / "dog" / "truncated.png").write_bytes(truncated)

    summary = public.run(folder_params(make_params, root))
    stats = summary["sources"]["f"]
    assert stats["seen"] == 11 and stats["inserted"] == 9 and stats["quarantined"] == 2
    assert stats["quarantine_reasons"] == {"not_an_image_extension": 1, "empty_file": 1}
    rows = lake.read("raw_images").to_pylist()
    assert {r["split_hint"] for r in rows} == {"train", "test"}
    assert {r["source_label"] for r in rows} == {"cat", "dog"}
    assert all(r["license"] == "CC0" and r["run_id"] == summary["run_id"] for r in rows)
    # the truncated image lands as bronze bytes; the clean stage rejects it
    assert any(r["content"] == truncated for r in rows)
    # item_id: the path relative to the root, a queryable column
    assert "train/dog/truncated.png" in {r["item_id"] for r in rows}
    q = lake.read("quarantine").to_pylist()
    assert sorted(r["reason"] for r in q) == ["empty_file", "not_an_image_extension"]
    assert all(r["stage"] == "ingest" and r["source_table"] == "source:f" for r in q)

    again = public.run(folder_params(make_params, root))["sources"]["f"]
    assert again["inserted"] == 0 and again["already_present"] == 9
    assert lake.count("raw_images") == 9 and lake.count("quarantine") == 2


def test_unreadable_entries_are_quarantined(tmp_path, make_params, lake, png):
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "i" / "a" / "ok.png").write_bytes(png(3))
    (tmp_path / "i" / "a" / "gone.png").symlink_to(tmp_path / "deleted.png")
    stats = public.run(folder_params(make_params, tmp_path / "i"))["sources"]["f"]
    assert stats["inserted"] == 1 and stats["quarantine_reasons"] == {"unreadable": 1}
    assert lake.read("quarantine").column("row_key").to_pylist()[0].endswith("gone.png")


def test_a_link_to_a_folder_inside_a_class_is_quarantined_not_dropped(tmp_path, make_params, lake, png):
    """os.walk does not follow links (a link can loop back up); what lies behind one is named, not lost."""
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "i" / "a" / "ok.png").write_bytes(png(3))
    (tmp_path / "elsewhere" / "more.png").write_bytes(png(4))
    (tmp_path / "i" / "a" / "more").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "i" / "a" / "loop").symlink_to(tmp_path / "i")
    stats = public.run(folder_params(make_params, tmp_path / "i"))["sources"]["f"]
    assert stats["inserted"] == 1 and stats["quarantine_reasons"] == {"unreadable": 2}
    details = sorted(r["details"] for r in lake.read("quarantine").to_pylist())
    assert all(d.startswith("a link to a folder, not followed") for d in details)


def test_oversized_file_is_quarantined(tmp_path, make_params, lake, png):
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "i" / "a" / "big.png").write_bytes(png(4, (64, 64)))
    params = make_params({"ingest": {"max_file_bytes": 100, "sources": [
        {"name": "f", "kind": "image_folder", "path": str(tmp_path / "i")}]}})
    assert public.run(params)["sources"]["f"]["quarantine_reasons"] == {"too_large": 1}


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no class folders found"),
    (lambda p: (p / "cls").mkdir(parents=True), "contains no files"),
    (lambda p: p.write_text("x"), "must be a folder"),
])
def test_bad_image_folder_paths(tmp_path, make_params, setup, message):
    root = tmp_path / "imgs"
    setup(root)
    with pytest.raises(InputError, match=message):
        public.run(folder_params(make_params, root))


def test_files_outside_class_folders_are_quarantined_not_skipped(tmp_path, make_params, lake, png):
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "i" / "a" / "ok.png").write_bytes(png(5))
    (tmp_path / "i" / "stray.png").write_bytes(png(6))
    stats = public.run(folder_params(make_params, tmp_path / "i"))["sources"]["f"]
    assert stats["seen"] == 2 and stats["quarantine_reasons"] == {"outside_class_folder": 1}


def test_unlabelled_folder_lands_without_labels(tmp_path, make_params, lake, png):
    root = tmp_path / "u"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(png(7))
    (root / "sub" / "b.png").write_bytes(png(8))
    stats = public.run(folder_params(make_params, root, label_from="none"))["sources"]["f"]
    assert stats["inserted"] == 2 and stats["quarantined"] == 0
    rows = lake.read("raw_images", columns=["item_id", "source_label", "split_hint"]).to_pylist()
    assert sorted(r["item_id"] for r in rows) == ["a.png", "sub/b.png"]
    assert all(r["source_label"] is None and r["split_hint"] is None for r in rows)


def test_unlabelled_folder_with_split_folders(tmp_path, make_params, lake, png):
    root = tmp_path / "u"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        (root / split / "x.png").write_bytes(png(len(split)))
    public.run(folder_params(make_params, root, label_from="none"))
    rows = lake.read("raw_images", columns=["item_id", "source_label", "split_hint"]).to_pylist()
    assert {(r["item_id"], r["split_hint"], r["source_label"]) for r in rows} == {
        ("train/x.png", "train", None), ("test/x.png", "test", None)}


def test_non_utf8_file_name_lands_with_a_safe_uri(tmp_path, run_cli, png):
    """Linux file names are bytes; one that is not UTF-8 used to halt ingest at the same batch on every rerun."""
    cls = tmp_path / "imgs" / "caf\udce9"  # the folder name is the bytes b"caf\xe9"
    os.makedirs(os.fsencode(cls))
    for k, name in enumerate((b"ok.png", b"na\xefve.png")):
        with open(os.path.join(os.fsencode(cls), name), "wb") as f:
            f.write(png(20 + k))
    params = {"lake": {"root": str(tmp_path / "lake")},
              "ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": str(tmp_path / "imgs")}]}}
    result = run_cli("ingest", params=params)
    assert result.returncode == 0, result.stderr
    from sluice.lake import Lake

    rows = Lake(str(tmp_path / "lake")).read("raw_images", columns=["item_id", "source_label"]).to_pylist()
    assert sorted(r["item_id"] for r in rows) == ["caf\\xe9/na\\xefve.png", "caf\\xe9/ok.png"]
    assert {r["source_label"] for r in rows} == {"caf\\xe9"}


def test_iphone_heic_photos_land(tmp_path, make_params, lake):
    """HEIC is what iPhones save by default: an image format here, not a rejected extension."""
    heic = (Path(__file__).parents[2] / "data" / "astronaut-96x64.heic").read_bytes()
    (tmp_path / "i" / "people").mkdir(parents=True)
    (tmp_path / "i" / "people" / "IMG_0001.HEIC").write_bytes(heic)
    stats = public.run(folder_params(make_params, tmp_path / "i"))["sources"]["f"]
    assert stats["inserted"] == 1 and stats["quarantined"] == 0
    assert lake.read("raw_images").column("source_label").to_pylist() == ["people"]


def test_metadata_folders_are_left_out_and_said_so(tmp_path, make_params, lake, png, caplog):
    """A zip made on a Mac carries __MACOSX/ (resource forks named ._x.jpg); notebooks leave .ipynb_checkpoints/."""
    root = tmp_path / "imgs"
    for folder in ("cat", "dog", "__MACOSX/cat", ".ipynb_checkpoints", "dog/.thumbs"):
        (root / folder).mkdir(parents=True)
    (root / "cat" / "0.png").write_bytes(png(0))
    (root / "dog" / "0.png").write_bytes(png(1))
    (root / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / ".ipynb_checkpoints" / "x.png").write_bytes(png(2))
    (root / "dog" / ".thumbs" / "0.png").write_bytes(png(3))
    for system in (".DS_Store", "cat/.DS_Store", "dog/Thumbs.db", "desktop.ini"):  # a Mac's and a Windows share's
        (root / system).write_bytes(b"\x00\x00\x00\x01Bud1")
    with caplog.at_level("INFO"):
        stats = public.run(folder_params(make_params, root))["sources"]["f"]
    assert (stats["inserted"], stats["quarantined"]) == (2, 0)  # the system files were quarantined, two reasons
    assert {r["source_label"] for r in lake.read("raw_images").to_pylist()} == {"cat", "dog"}
    assert ("left out the metadata folders and system files .DS_Store, .ipynb_checkpoints, .thumbs, Thumbs.db, "
            "__MACOSX, desktop.ini") in caplog.text


def test_a_wrapper_folder_is_looked_through(tmp_path, png):
    from ingest.sources.image_folder import detect

    for c in ("daisy", "rose"):
        (tmp_path / "flowers" / "flowers" / c).mkdir(parents=True)
        (tmp_path / "flowers" / "flowers" / c / "0.png").write_bytes(png(0))
    assert detect(str(tmp_path / "flowers")) == {"path": (tmp_path / "flowers" / "flowers").as_posix()}
    assert detect(str(tmp_path / "flowers" / "flowers")) == {}
    (tmp_path / "one" / "cat").mkdir(parents=True)  # a single class folder is a class, not a wrapper
    (tmp_path / "one" / "cat" / "0.png").write_bytes(png(0))
    assert detect(str(tmp_path / "one")) == {}
    (tmp_path / "split" / "train" / "cat").mkdir(parents=True)  # nor is a lone split folder
    (tmp_path / "split" / "train" / "cat" / "0.png").write_bytes(png(0))
    assert detect(str(tmp_path / "split")) == {}
    for c in ("accordion", "airplanes"):  # Caltech-101: class folders in a folder beside Annotations/
        (tmp_path / "caltech101" / "101_ObjectCategories" / c).mkdir(parents=True)
        (tmp_path / "caltech101" / "101_ObjectCategories" / c / "image_0001.jpg").write_bytes(png(1))
        (tmp_path / "caltech101" / "Annotations" / c).mkdir(parents=True)
        (tmp_path / "caltech101" / "Annotations" / c / "annotation_0001.mat").write_bytes(b"MATLAB 5.0")
    assert detect(str(tmp_path / "caltech101")) == {"path": (tmp_path / "caltech101" / "101_ObjectCategories").as_posix()}


@pytest.mark.parametrize("layout", ["training_set/training_set/{c}", "seg_{s}/{c}", "{s}_images/{c}"])
def test_split_folders_as_published_sets_name_them(tmp_path, make_params, lake, png, layout):
    """Kaggle's cats-and-dogs (training_set/training_set/cats), Intel's scenes (seg_train), test_images/..."""
    root = tmp_path / "imgs"
    for s, split in (("train", "train"), ("test", "test")):
        for c in ("cat", "dog"):
            rel = layout.replace("training_set", "training_set" if split == "train" else "test_set").format(s=s, c=c)
            (root / rel).mkdir(parents=True)
            (root / rel / "0.png").write_bytes(png(hash((s, c)) % 1000))
    public.run(folder_params(make_params, root))
    rows = {(r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "dog")}


def test_split_names_with_filler_words():
    from ingest.sources.base import split_of

    assert [split_of(n) for n in ("Validation", "training_set", "seg_pred", "test-images", "contest", "train_test", None)] \
        == ["val", "train", None, "test", None, None, None]


def test_a_folder_to_predict_beside_the_splits_lands_unlabelled(tmp_path, make_params, lake, png):
    """Intel's scenes: seg_train/seg_train/<class>, seg_test/seg_test/<class>, seg_pred/seg_pred/<images>."""
    root = tmp_path / "intel"
    for split in ("train", "test"):
        for c in ("sea", "street"):
            (root / f"seg_{split}" / f"seg_{split}" / c).mkdir(parents=True)
            (root / f"seg_{split}" / f"seg_{split}" / c / "0.jpg").write_bytes(png(hash((split, c)) % 1000))
    (root / "seg_pred" / "seg_pred").mkdir(parents=True)
    (root / "seg_pred" / "seg_pred" / "9.jpg").write_bytes(png(9))
    public.run(folder_params(make_params, root))
    rows = {(r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("train", "sea"), ("train", "street"), ("test", "sea"), ("test", "street"), (None, None)}


def test_class_folders_of_heic_photos_are_classes(tmp_path):
    """An iPhone export (HEIC) or .jfif files make class folders as any other image format does; a folder
    without an image is no class."""
    from ingest.sources.image_folder import ImageFolderSource, class_names

    heic = (Path(__file__).resolve().parents[2] / "data" / "astronaut-96x64.heic").read_bytes()
    for name, suffix in (("people", ".HEIC"), ("cats", ".jfif")):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / f"IMG_0001{suffix}").write_bytes(heic)
    (tmp_path / "train" / "notes").mkdir()
    (tmp_path / "train" / "notes" / "readme.txt").write_text("x")
    assert class_names(ImageFolderSource(name="s", kind="image_folder", path=str(tmp_path))) == ["cats", "people"]


def test_labels_from_file_names(tmp_path, make_params, lake, png, caplog):
    """Kaggle's Dogs vs Cats: train/cat.12.jpg, dog.3.jpg; test1/1.jpg (no class in the name: unlabelled)."""
    root = tmp_path / "dogs-vs-cats"
    (root / "train").mkdir(parents=True)
    (root / "test1").mkdir()
    for k, name in enumerate(("cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.12.jpg", "great_pyrenees_104.jpg")):
        (root / "train" / name).write_bytes(png(k))
    (root / "test1" / "1.jpg").write_bytes(png(9))
    (root / "train" / "notes.txt").write_text("not an image")  # quarantined as ever, no label asked of it
    caplog.set_level("INFO")
    stats = public.run(folder_params(make_params, root, label_from="name"))["sources"]["f"]
    assert stats["inserted"] == 6 and stats["quarantine_reasons"] == {"not_an_image_extension": 1}
    rows = {r["item_id"]: (r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"train/cat.0.jpg": ("train", "cat"), "train/cat.1.jpg": ("train", "cat"),
                    "train/dog.0.jpg": ("train", "dog"), "train/dog.12.jpg": ("train", "dog"),
                    "train/great_pyrenees_104.jpg": ("train", "great_pyrenees"), "test1/1.jpg": ("test", None)}
    assert "1 images whose names name_pattern does not fit landed unlabelled" in caplog.text


def test_a_name_pattern_picks_the_label(tmp_path, make_params, lake, png):
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "0001_tulip_a.png").write_bytes(png(1))
    (tmp_path / "i" / "0002_rose_b.png").write_bytes(png(2))
    public.run(folder_params(make_params, tmp_path / "i", label_from="name", name_pattern=r"\d+_([a-z]+)_.*"))
    assert {r["source_label"] for r in lake.read("raw_images").to_pylist()} == {"tulip", "rose"}


@pytest.mark.parametrize("extra, message", [
    ({"label_from": "folder", "name_pattern": "(.*)"}, "name_pattern goes with label_from: name"),
    ({"label_from": "name", "name_pattern": "[a-z]+"}, "needs exactly one group"),
    ({"label_from": "name", "name_pattern": "(unclosed"}, "is not a regular expression"),
])
def test_a_bad_name_pattern_is_refused(tmp_path, extra, message):
    from pydantic import ValidationError

    from ingest.sources.image_folder import ImageFolderSource

    with pytest.raises(ValidationError, match=message):
        ImageFolderSource(name="f", kind="image_folder", path=str(tmp_path), **extra)


def test_split_names_with_a_number():
    from ingest.sources.base import split_of

    assert [split_of(n) for n in ("train2017", "val2014", "test1", "test_2", "model3")] == ["train", "val", "test", "test", None]


def test_what_detect_finds_in_published_layouts(tmp_path, png):
    """The Oxford-IIIT Pets (images/Bengal_104.jpg beside annotations/), Food-101 (images/<class>/ beside
    meta/), Dogs vs Cats (train/cat.0.jpg, test1/1.jpg) and a camera's dump (IMG_0001.jpg: no classes)."""
    from ingest.sources.image_folder import ImageFolderSource, class_names, detect

    def files(folder, names):
        folder.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            (folder / name).write_bytes(png(k))
    files(tmp_path / "pets" / "images", [f"{b}_{k}.jpg" for b in ("Abyssinian", "great_pyrenees") for k in (1, 2)])
    files(tmp_path / "pets" / "annotations", [])
    (tmp_path / "pets" / "annotations" / "list.txt").write_text("#Image CLASS-ID\nAbyssinian_1 1\n")
    found = detect(str(tmp_path / "pets"))
    assert found == {"path": (tmp_path / "pets" / "images").as_posix(), "label_from": "name"}
    src = ImageFolderSource(name="p", kind="image_folder", **found)
    assert class_names(src) == ["Abyssinian", "great_pyrenees"]

    for c in ("apple_pie", "baklava"):
        files(tmp_path / "food-101" / "images" / c, ["1005649.jpg"])
    files(tmp_path / "food-101" / "meta", [])
    (tmp_path / "food-101" / "meta" / "train.txt").write_text("apple_pie/1005649\n")
    assert detect(str(tmp_path / "food-101")) == {"path": (tmp_path / "food-101" / "images").as_posix()}

    files(tmp_path / "dvc" / "train", ["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg"])
    files(tmp_path / "dvc" / "test1", ["1.jpg", "2.jpg"])
    assert detect(str(tmp_path / "dvc")) == {"label_from": "name"}

    files(tmp_path / "phone", ["IMG_0001.jpg", "IMG_0002.jpg", "DSC_0001.jpg", "DSC_0002.jpg"])
    assert detect(str(tmp_path / "phone")) == {"label_from": "none"}
    files(tmp_path / "numbered", ["1.jpg", "2.jpg", "3.jpg"])
    assert detect(str(tmp_path / "numbered")) == {"label_from": "none"}


def test_a_split_holding_only_an_images_folder_is_unlabelled(tmp_path, make_params, lake, png):
    """Tiny ImageNet: train/<wnid>/images/*.JPEG, val/images/*.JPEG (labels in a file), test/images/*.JPEG."""
    root = tmp_path / "tiny"
    for k, wnid in enumerate(("n01443537", "n01629819")):
        (root / "train" / wnid / "images").mkdir(parents=True)
        (root / "train" / wnid / "images" / f"{wnid}_0.JPEG").write_bytes(png(k))
    for split in ("val", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "images" / f"{split}_0.JPEG").write_bytes(png(hash(split) % 1000))
    public.run(folder_params(make_params, root))
    rows = {(r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("train", "n01443537"), ("train", "n01629819"), ("val", None), ("test", None)}


def test_a_split_images_folder_is_labelled_by_the_annotations_beside_it(tmp_path, make_params, lake, png, caplog):
    """Tiny ImageNet's val/val_annotations.txt (file, class, box; no header): its val images land labelled; a
    line naming no image and one relabelling an image are quarantined with the line; test/ stays unlabelled."""
    root = tmp_path / "tiny-imagenet-200"
    _tree(root, ["train/n01443537/images/n01443537_0.JPEG", "train/n01629819/images/n01629819_0.JPEG",
                 "val/images/val_0.JPEG", "val/images/val_1.JPEG", "val/images/val_2.JPEG", "test/images/test_0.JPEG"], png)
    (root / "train" / "n01443537" / "n01443537_boxes.txt").write_text("n01443537_0.JPEG\t0\t10\t20\t30\n")
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01629819\t0\t32\t44\t62\n"
                                                      "val_1.JPEG\tn01443537\t1\t2\t3\t4\n"
                                                      "val_9.JPEG\tn01443537\t1\t2\t3\t4\n"
                                                      "val_1.JPEG\tn01629819\t1\t2\t3\t4\n")
    with caplog.at_level("INFO"):
        stats = public.run(folder_params(make_params, root))["sources"]["f"]
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert {row for row in rows if row[1] != "train"} == {
        ("val/images/val_0.JPEG", "val", "n01629819"), ("val/images/val_1.JPEG", "val", "n01443537"),
        ("val/images/val_2.JPEG", "val", None), ("test/images/test_0.JPEG", "test", None)}
    quarantined = {(r["reason"], r["row_key"].rsplit("/", 1)[-1]) for r in lake.read("quarantine").to_pylist()}
    assert ("label_for_missing_file", "val_annotations.txt:3") in quarantined
    assert ("conflicting_label", "val_annotations.txt:4") in quarantined
    assert ("not_an_image_extension", "n01443537_boxes.txt") in quarantined  # kept, with its reason
    assert not any(uri == "val_annotations.txt" for _, uri in quarantined)  # read, not an image outside a class
    assert stats["seen"] == stats["inserted"] + stats["quarantined"]
    assert "2 images in " in caplog.text and "labelled by val_annotations.txt, 2 of its lines quarantined" in caplog.text


def test_detect_refuses_a_folder_without_images_and_points_at_idx_files(tmp_path):
    from ingest.sources.image_folder import detect

    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)  # torchvision's root: IDX files, no images
    (tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"\0\0\x08\x03")
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz is an IDX file: give the folder that holds it to --idx"):
        detect(str(tmp_path / "data"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files in it or below"):
        detect(str(tmp_path / "empty"))


def test_files_read_ahead_on_threads_land_as_one_thread_lands_them(tmp_path, png):
    """Reads run ahead on threads; the records (order, bytes, labels, rejections) are those of one thread."""
    from ingest.sources.image_folder import ImageFolderSource, read_image_folder

    root = tmp_path / "imgs"
    for cls in ("cat", "dog", "emu"):
        (root / cls).mkdir(parents=True)
        for k in range(15):
            (root / cls / f"{k:02d}.png").write_bytes(png(hash((cls, k)) % 1000))
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "emu" / "empty.png").write_bytes(b"")
    (root / "stray.png").write_bytes(png(7))

    def records(threads: int) -> list[tuple]:
        src = ImageFolderSource(name="f", kind="image_folder", path=str(root), read_threads=threads)
        return [(r.uri, r.content, r.label, r.reject) for r in read_image_folder(src, 10**6)]
    one = records(1)
    assert len(one) == 48 and sum(r[3] is not None for r in one) == 3  # 2 bad files and the stray one
    assert records(8) == one
    src = ImageFolderSource(name="f", kind="image_folder", path=str(root))
    landed = [r for r in read_image_folder(src, 10**6) if not r.reject]  # keyed on the reading thread, as landing keys
    assert all(r.image_id == hashlib.sha256(r.content).hexdigest() for r in landed)


@pytest.mark.parametrize("threads", [0, 65])
def test_read_threads_out_of_range_is_refused_by_name(tmp_path, make_params, threads):
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ingest\.sources\.0\.read_threads"):
        folder_params(make_params, tmp_path, read_threads=threads)


def test_a_split_folder_without_class_folders_lands_unlabelled_in_its_split(tmp_path, make_params, lake, png):
    """Kaggle's train/<class>/ beside a flat test/ of unlabelled images: those used to be neither landed nor
    quarantined."""
    root = tmp_path / "set"
    for k, path in enumerate(("train/cat/1.png", "train/dog/2.png", "test/3.png", "test/4.png")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(png(k))
    stats = public.run(folder_params(make_params, root))["sources"]["f"]
    assert stats["seen"] == 4 and stats["inserted"] == 4
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("train/cat/1.png", "train", "cat"), ("train/dog/2.png", "train", "dog"),
                    ("test/3.png", "test", None), ("test/4.png", "test", None)}


def test_train_and_val_together_are_train():
    from ingest.sources.base import split_of

    assert [split_of(n) for n in ("train_val2019", "trainval", "TrainVal", "train_val_test")] == ["train", "train", "train", None]


def _tree(root, paths, png):
    for k, path in enumerate(paths):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(png(k))


def test_nested_class_folders_are_labelled_by_their_path(tmp_path, make_params, lake, png):
    """SUN397 (a/abbey/, b/bakery/shop/ beside ClassName.txt) and iNaturalist 2019 (train_val2019/Plants/644/,
    a flat test2019/): ``sluice init`` proposes label_from: path, each image labelled by the folders from the class
    level down, so a/ and Plants/ are not read as a class each."""
    from ingest.sources.image_folder import ImageFolderSource, class_names, detect

    sun = tmp_path / "SUN397"
    _tree(sun, ["a/abbey/sun_1.jpg", "a/airport/sun_2.jpg", "b/bakery/shop/sun_3.jpg", "b/bakery/shop/sun_4.jpg",
                "b/bedroom/sun_5.jpg", "c/canyon/sun_6.jpg", "c/castle/sun_7.jpg"], png)
    (sun / "ClassName.txt").write_text("/a/abbey\n/a/airport\n")
    assert detect(str(sun)) == {"label_from": "path"}
    src = ImageFolderSource(name="s", kind="image_folder", path=str(sun), label_from="path")
    assert class_names(src) == ["a/abbey", "a/airport", "b/bakery/shop", "b/bedroom", "c/canyon", "c/castle"]

    inat = tmp_path / "inat"
    _tree(inat, ["train_val2019/Plants/644/a.jpg", "train_val2019/Plants/645/b.jpg", "train_val2019/Insects/12/c.jpg",
                 "train_val2019/Insects/13/d.jpg", "test2019/e.jpg"], png)
    assert detect(str(inat)) == {"label_from": "path"}
    public.run(folder_params(make_params, inat, label_from="path"))
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {("train_val2019/Plants/644/a.jpg", "train", "Plants/644"),
                    ("train_val2019/Plants/645/b.jpg", "train", "Plants/645"),
                    ("train_val2019/Insects/12/c.jpg", "train", "Insects/12"),
                    ("train_val2019/Insects/13/d.jpg", "train", "Insects/13"), ("test2019/e.jpg", "test", None)}


def test_folders_below_the_classes_that_repeat_are_not_classes(tmp_path, png):
    """cat/2019/ beside dog/2019/ (a year, a camera), and Tiny ImageNet's <wnid>/images/: the top folder is
    the class, as torchvision's ImageFolder reads it."""
    from ingest.sources.image_folder import detect

    _tree(tmp_path / "years", [f"{c}/{y}/{k}.jpg" for c in ("cat", "dog") for y in (2019, 2020) for k in (1, 2)], png)
    assert detect(str(tmp_path / "years")) == {}
    _tree(tmp_path / "tiny", [f"train/{w}/images/{w}_0.JPEG" for w in ("n01443537", "n01629819", "n01641577")], png)
    assert detect(str(tmp_path / "tiny")) == {}
    _tree(tmp_path / "mixed", ["a/abbey/1.jpg", "a/airport/2.jpg", "a/3.jpg", "b/bakery/4.jpg", "b/bar/5.jpg"], png)
    assert detect(str(tmp_path / "mixed")) == {}  # an image in a top folder: it is a class


def _landed(lake):
    return {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}


def test_splits_wrapped_again_beside_the_splits_are_read(tmp_path, make_params, lake, png):
    """Kaggle's New Plant Diseases: <name>/<name>/{train,valid}/<class>/ beside a flat test/test/: read as
    two classes named after the folders."""
    root = tmp_path / "plants"
    npd = "New Plant Diseases Dataset(Augmented)"
    _tree(root, [f"{npd}/{npd}/train/Apple___scab/a.JPG", f"{npd}/{npd}/train/Apple___healthy/b.JPG",
                 f"{npd}/{npd}/valid/Apple___scab/c.JPG", "test/test/AppleScab1.JPG"], png)
    (root / npd / "README.txt").write_text("read me")
    stats = public.run(folder_params(make_params, root))["sources"]["f"]
    assert _landed(lake) == {(f"{npd}/{npd}/train/Apple___scab/a.JPG", "train", "Apple___scab"),
                             (f"{npd}/{npd}/train/Apple___healthy/b.JPG", "train", "Apple___healthy"),
                             (f"{npd}/{npd}/valid/Apple___scab/c.JPG", "val", "Apple___scab"),
                             ("test/test/AppleScab1.JPG", "test", None)}
    assert stats["quarantine_reasons"] == {"outside_class_folder": 1}  # the README inside the wrapper: named



def test_a_folder_of_images_beside_the_splits_is_quarantined_not_a_class(tmp_path, make_params, lake, png):
    """Fruits-360: Training/<class>/, Test/<class>/, test-multiple_fruits/ (no split, no class), papers/ of PDFs:
    read as classes, a model would have learnt 'Training' and 'Test'."""
    root = tmp_path / "fruits-360"
    _tree(root, ["Training/Apple Braeburn/0_100.jpg", "Training/Banana/1_100.jpg", "Test/Banana/2_100.jpg",
                 "test-multiple_fruits/apple_banana.jpg"], png)
    (root / "papers").mkdir()
    (root / "papers" / "fruits.pdf").write_bytes(b"%PDF-1.4")
    stats = public.run(folder_params(make_params, root))["sources"]["f"]
    assert _landed(lake) == {("Training/Apple Braeburn/0_100.jpg", "train", "Apple Braeburn"),
                             ("Training/Banana/1_100.jpg", "train", "Banana"), ("Test/Banana/2_100.jpg", "test", "Banana")}
    assert stats["quarantine_reasons"] == {"outside_split_folder": 2}
    details = {r["row_key"].rsplit("/", 1)[-1]: r["details"] for r in lake.read("quarantine").to_pylist()}
    assert details["apple_banana.jpg"].startswith("test-multiple_fruits/ lies beside the split folders (Test/, Training/)")
    assert set(details) == {"apple_banana.jpg", "fruits.pdf"}


def test_pointers_in_place_of_images_are_quarantined_as_not_downloaded(tmp_path, make_params, lake, png):
    """A clone without its Git LFS or git-annex content: each pointer is named with the command that fetches it."""
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "real.png").write_bytes(png(1))
    (root / "cat" / "pointer.png").write_bytes((b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 90\n"))
    objects = tmp_path / ".git" / "annex" / "objects"
    objects.mkdir(parents=True)
    (root / "cat" / "annexed.png").symlink_to(objects / "SHA256E-s90--ab.png")
    params = make_params({"ingest": {"sources": [{"name": "f", "kind": "image_folder", "path": str(root)}]}})
    stats = public.run(params)["sources"]["f"]
    assert stats["inserted"] == 1 and stats["quarantine_reasons"] == {"not_downloaded": 2}
    reasons = {r["row_key"].rsplit("/", 1)[-1]: r["details"] for r in lake.read("quarantine").to_pylist()}
    assert "git lfs pull" in reasons["pointer.png"] and "git annex get" in reasons["annexed.png"]
    single = make_params({"ingest": {"sources": [{"name": "p", "kind": "parquet", "path": str(root / "cat" / "pointer.png")}]}})
    with pytest.raises(InputError, match="path of ingest source 'p' is a Git LFS pointer"):
        public.run(single)


def test_dicom_files_land_de_identified_with_their_patient_as_subject(tmp_path, make_params, lake):
    """An X-ray folder of .dcm files: no name of the header reaches the lake; the PatientID keeps a patient in one split."""
    from pydicom.data import get_testdata_file

    from sluice import dicom
    from sluice.imaging import Geometry, Reject, decode

    root = tmp_path / "xrays"
    (root / "ct").mkdir(parents=True)
    original = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (root / "ct" / "slice.dcm").write_bytes(original)
    (root / "ct" / "broken.dcm").write_bytes(original[:128] + b"DICM" + b"\xff" * 40)
    (root / "ct" / "hostile.dcm").write_bytes(b"\0" * 128 + b"DICM\x02\x00\x10\x00ZZ\x04\x00abcd")  # no header to read
    params = make_params({"ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": str(root)}]}})
    stats = public.run(params)["sources"]["x"]
    assert stats["inserted"] == 2  # the cut file lands as it is (pydicom reads what it can); clean rejects it
    assert stats["quarantine_reasons"] == {"unreadable": 1}  # a header pydicom cannot read: kept with why
    assert "DICOM header unreadable" in lake.read("quarantine").to_pylist()[0]["details"]
    row, cut = sorted(lake.read("raw_images").to_pylist(), key=lambda r: r["item_id"] != "ct/slice.dcm")
    assert cut["subject"] is None
    with pytest.raises(Reject):
        decode(cut["content"], Geometry(8, 8, "squash"))
    assert row["subject"] == "1CT1" and b"CompressedSamples" not in row["content"] and b"CompressedSamples" in original
    assert row["content"] == dicom.deidentify(original)[0] and b"1CT1" not in row["content"]
    assert stats["subjects_as_given"] == 1  # no key: stored as given, said (privacy.pseudonymize_subjects: auto)
    assert public.run(params)["sources"]["x"]["inserted"] == 0  # landing again: the same de-identified bytes, nothing new


def test_a_patient_id_lands_as_a_keyed_pseudonym_and_erasing_the_patient_reaches_their_images(
        tmp_path, make_params, lake, monkeypatch):
    """With $SLUICE_PSEUDONYM_KEY set, raw_images.subject holds s-<HMAC>, never the PatientID; `sluice erase --subject`
    with the raw id finds the patient's images; with pseudonymize_subjects: true and no key, nothing lands."""
    from pydicom.data import get_testdata_file

    from sluice.erasure_record import erase
    from sluice.errors import ConfigError
    from sluice.privacy import subject_pseudonym
    from sluice.privacy_report import report

    root = tmp_path / "xrays"
    (root / "ct").mkdir(parents=True)
    (root / "ct" / "slice.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    params = make_params({"ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": str(root)}]},
                          "privacy": {"pseudonymize_subjects": True}})
    monkeypatch.delenv("SLUICE_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="pseudonymize_subjects is true"):
        public.run(params)
    assert lake.count("raw_images") == 0
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "k1")
    stats = public.run(params)["sources"]["x"]
    [row] = lake.read("raw_images").to_pylist()
    assert row["subject"] == subject_pseudonym("1CT1", b"k1") != subject_pseudonym("1CT1", b"k2")
    assert stats["subjects_as_given"] == 0 and b"1CT1" not in row["content"]
    subjects = {r["item"]: r for r in report(lake, params) if r["section"] == "subjects"}
    assert subjects["subjects stored as pseudonyms"]["share"] == 1.0
    out = erase(lake, params, "subject", ["1CT1"], None, purge=False, dry_run=False, root=None)
    assert out.images == 1 and lake.count("raw_images") == 0
