"""Labels files in JSON: COCO (camera-trap sets), JSON Lines (Hugging Face's metadata.jsonl), arrays, mappings."""

from __future__ import annotations

import json

import pytest

from ingest import public
from ingest.sources.image_folder import detect
from ingest.sources.labels_json import read
from sluice.errors import InputError


def camera_traps(root, png):
    """A camera-trap set as LILA publishes one: images/<location>/ beside a COCO file of image-level labels."""
    images = []
    for i in range(6):
        name = f"loc{i % 2}/IMG_{i:04d}.JPG"
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / name).write_bytes(png(i))
        images.append({"id": f"im{i}", "file_name": name})
    annotations = [{"id": "a0", "image_id": "im0", "category_id": 1},
                   {"id": "a1", "image_id": "im1", "category_id": 0},
                   {"id": "a2", "image_id": "im2", "category_id": 1},
                   {"id": "a3", "image_id": "im2", "category_id": 1},  # two deer: one label
                   {"id": "a4", "image_id": "im3", "category_id": 1},
                   {"id": "a5", "image_id": "im3", "category_id": 2},  # deer and fox: several labels
                   {"id": "a6", "image_id": "im4", "category_id": 7},  # a category the file does not list
                   {"id": "a7", "image_id": "gone", "category_id": 1}]  # an image the file does not list
    categories = [{"id": 0, "name": "empty"}, {"id": 1, "name": "deer"}, {"id": 2, "name": "fox"}]
    (root / "cct.json").write_text(json.dumps({"info": {}, "images": images, "annotations": annotations,
                                               "categories": categories}))
    return root


def test_a_coco_file_beside_the_images_labels_them(tmp_path, make_params, lake, png):
    root = camera_traps(tmp_path / "cct", png)
    found = detect(str(root / "images"))
    assert found == {"label_from": "file", "labels_file": (root / "cct.json").as_posix(),
                     "file_column": "file_name", "label_column": "category"}
    params = make_params({"ingest": {"sources": [{"name": "c", "kind": "image_folder", "path": str(root / "images"),
                                                  **found}]}})
    stats = public.run(params)["sources"]["c"]
    assert stats["quarantine_reasons"] == {"multiple_labels": 1, "missing_field": 2}
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels == {"loc0/IMG_0000.JPG": "deer", "loc1/IMG_0001.JPG": "empty", "loc0/IMG_0002.JPG": "deer",
                      "loc1/IMG_0003.JPG": None, "loc0/IMG_0004.JPG": None, "loc1/IMG_0005.JPG": None}
    where = {r["row_key"].rsplit(":", 1)[1]: r["reason"] for r in lake.read("quarantine").to_pylist()}
    assert where == {"annotations[4]": "multiple_labels", "annotations[6]": "missing_field",
                     "annotations[7]": "missing_field"}


def test_hugging_face_metadata_jsonl_labels_its_split_folder(tmp_path, make_params, lake, png):
    tmp_path = tmp_path / "hf"
    for split, n in (("train", 4), ("test", 2)):
        (tmp_path / split).mkdir(parents=True)
        rows = []
        for i in range(n):
            (tmp_path / split / f"{i}.png").write_bytes(png(i + 10 * n))
            rows.append(json.dumps({"file_name": f"{i}.png", "label": ["cat", "dog"][i % 2], "text": "a photo"}))
        (tmp_path / split / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    found = detect(str(tmp_path))
    assert found == {"split_labels": {"train": (tmp_path / "train" / "metadata.jsonl").as_posix(),
                                      "test": (tmp_path / "test" / "metadata.jsonl").as_posix()}}
    params = make_params({"ingest": {"sources": [{"name": "h", "kind": "image_folder", "path": str(tmp_path), **found}]}})
    public.run(params)
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"train/0.png": ("cat", "train"), "train/1.png": ("dog", "train"), "train/2.png": ("cat", "train"),
                    "train/3.png": ("dog", "train"), "test/0.png": ("cat", "test"), "test/1.png": ("dog", "test")}


def test_arrays_and_mappings_of_files_read_as_rows_and_class_names_do_not(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"image": "x.jpg", "labels": ["cat"]},
                                                 {"image": "y.jpg", "labels": ["cat", "dog"], "score": 0.5},
                                                 {"image": "z.jpg", "labels": 3.0}]))
    rows = read(tmp_path / "a.json")
    assert rows.to_dicts() == [{"image": "x.jpg", "labels": "cat", "score": None, "line": "[0]"},
                               {"image": "y.jpg", "labels": "cat|dog", "score": "0.5", "line": "[1]"},
                               {"image": "z.jpg", "labels": "3", "score": None, "line": "[2]"}]
    (tmp_path / "m.json").write_text(json.dumps({"x.jpg": "cat", "y.png": 2}))
    assert read(tmp_path / "m.json").to_dicts() == [{"file": "x.jpg", "label": "cat", "line": '"x.jpg"'},
                                                    {"file": "y.png", "label": "2", "line": '"y.png"'}]
    (tmp_path / "names.json").write_text(json.dumps({"0": "cat", "1": "dog"}))  # class names, not labels
    with pytest.raises(InputError, match="no labels in this file"):
        read(tmp_path / "names.json")


def test_a_malformed_json_labels_file_is_one_line_naming_where(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"file": "a.jpg", "label": "cat"}\n{"file": "b.jpg", "label": \n')
    with pytest.raises(InputError, match=r"m.jsonl:2: not a JSON object"):
        read(tmp_path / "m.jsonl")
    (tmp_path / "b.json").write_text('{"images": [}')
    with pytest.raises(InputError, match=r"b.json:1: not valid JSON"):
        read(tmp_path / "b.json")
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)  # hostile: Python's parser recurses
    with pytest.raises(InputError, match="nested too deep"):
        read(tmp_path / "deep.json")


def test_a_photo_exports_sidecars_are_not_a_labels_file(tmp_path, png):
    for i in range(10):  # Google Takeout: IMG_0001.jpg beside IMG_0001.jpg.json
        (tmp_path / f"IMG_{i:04d}.jpg").write_bytes(png(i))
        (tmp_path / f"IMG_{i:04d}.jpg.json").write_text(json.dumps({"title": f"IMG_{i:04d}.jpg", "label": "x"}))
    assert detect(str(tmp_path)) == {"label_from": "none"}


def test_iwildcams_metadata_folder_labels_its_train_split_and_not_its_test(tmp_path, png):
    root = tmp_path / "iwildcam"
    for split, n in (("train", 3), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            (root / split / f"{split}{i}.jpg").write_bytes(png(i + 5 * n))
    (root / "metadata").mkdir()
    (root / "metadata" / "iwildcam2021_train_annotations.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": f"train{i}.jpg"} for i in range(3)],
        "annotations": [{"id": i, "image_id": i, "category_id": 372} for i in range(3)],
        "categories": [{"id": 372, "name": "tayassu pecari"}]}))
    (root / "metadata" / "iwildcam2021_test_information.json").write_text(json.dumps({  # no annotations: no labels
        "images": [{"id": i, "file_name": f"test{i}.jpg"} for i in range(2)], "categories": []}))
    assert detect(str(root)) == {"split_labels": {
        "train": (root / "metadata" / "iwildcam2021_train_annotations.json").as_posix()}}
    assert detect(str(root / "train"))["labels_file"].endswith("iwildcam2021_train_annotations.json")


def test_json_of_other_shapes_beside_the_images_is_not_their_labels(tmp_path, png):
    (tmp_path / "images").mkdir()
    for i in range(3):
        (tmp_path / "images" / f"{i}.png").write_bytes(png(i))
    (tmp_path / "export.ndjson").write_text(  # a Labelbox export: two fields, both objects (votes, not labels)
        json.dumps({"data_row": {"external_id": "0.png"}, "projects": {"p": {"labels": []}}}) + "\n")
    (tmp_path / "label_map.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    assert detect(str(tmp_path / "images")) == {"label_from": "none"}


def test_cvats_annotations_xml_beside_the_images_labels_them(tmp_path, make_params, lake, png):
    """CVAT's "CVAT for images 1.1" export: images/ beside annotations.xml; an image's tags are its labels, its
    boxes are not; an image with no tag lands unlabelled."""
    (tmp_path / "images").mkdir()
    for i in range(4):
        (tmp_path / "images" / f"{i}.jpg").write_bytes(png(i))
    (tmp_path / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><task><name>t</name></task></meta>'
        '<image id="0" name="0.jpg"><tag label="cat" source="manual"/></image>'
        '<image id="1" name="1.jpg"><tag label="dog"/><box label="cat" xtl="1" ytl="1" xbr="2" ybr="2"/></image>'
        '<image id="2" name="2.jpg"><tag label="cat"/><tag label="dog"/></image>'
        '<image id="3" name="3.jpg"><box label="dog" xtl="1" ytl="1" xbr="2" ybr="2"/></image></annotations>')
    found = detect(str(tmp_path / "images"))
    assert found == {"label_from": "file", "labels_file": (tmp_path / "annotations.xml").as_posix(),
                     "file_column": "name", "label_column": "label"}
    params = make_params({"ingest": {"sources": [{"name": "c", "kind": "image_folder", "path": str(tmp_path / "images"),
                                                  **found}]}})
    stats = public.run(params)["sources"]["c"]
    assert stats["quarantine_reasons"] == {"multiple_labels": 1}
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels == {"0.jpg": "cat", "1.jpg": "dog", "2.jpg": None, "3.jpg": None}
    assert lake.read("quarantine").to_pylist()[0]["row_key"].endswith("annotations.xml:image 2")


def test_xml_with_entity_declarations_is_refused(tmp_path):
    (tmp_path / "annotations.xml").write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]>'
                                              '<annotations><image name="a.jpg"><tag label="&x;"/></image></annotations>')
    with pytest.raises(InputError, match="entity declarations is not read"):
        read(tmp_path / "annotations.xml")
