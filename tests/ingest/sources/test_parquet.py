import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest import public
from sluice.errors import InputError


def test_parquet_hf_layout_and_missing_column(tmp_path, make_params, lake, png):
    images = [{"bytes": png(i), "path": f"{i}.png"} for i in range(5)]
    table = pa.table({"img": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array([0, 1, 0, 1, 0], pa.int64())})
    meta = {"info": {"features": {"label": {"_type": "ClassLabel", "names": ["ant", "bee"]}}}}
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps(meta)}), tmp_path / "d.parquet")
    src = {"name": "p", "kind": "parquet", "path": str(tmp_path / "d.parquet"), "image_column": "img"}
    assert public.run(make_params({"ingest": {"sources": [src]}}))["sources"]["p"]["inserted"] == 5
    rows = lake.read("raw_images").to_pylist()
    assert sorted(r["source_label"] for r in rows) == ["ant", "ant", "ant", "bee", "bee"]
    assert all(json.loads(r["extra"])["path"].endswith(".png") for r in rows)
    assert sorted(r["item_id"] for r in rows) == [f"{i}.png" for i in range(5)]  # the struct's path
    with pytest.raises(InputError, match="Parquet has no column 'picture'"):
        public.run(make_params({"ingest": {"sources": [{**src, "image_column": "picture"}]}}))


def test_item_id_from_id_column_or_row_number(tmp_path, make_params, lake, png):
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"image": [png(i) for i in range(3)], "qid": ["q7", "q8", "q9"], "split": [1, 1, 2]}),
                   tmp_path / "d" / "part-0.parquet")
    src = {"name": "p", "kind": "parquet", "path": str(tmp_path / "d"), "label_column": None,
           "split_column": "split"}
    public.run(make_params({"ingest": {"sources": [{**src, "id_column": "qid"}]}}))
    rows = lake.read("raw_images", columns=["item_id", "split_hint"]).to_pylist()
    assert sorted(r["item_id"] for r in rows) == ["q7", "q8", "q9"]
    assert sorted(r["split_hint"] for r in rows) == ["1", "1", "2"]
    public.run(make_params({"lake": {"root": str(tmp_path / "lake2")}, "ingest": {"sources": [src]}}))
    from sluice.lake import Lake

    ids = Lake(str(tmp_path / "lake2")).read("raw_images", columns=["item_id"]).column("item_id").to_pylist()
    assert sorted(ids) == ["part-0.parquet:0", "part-0.parquet:1", "part-0.parquet:2"]


def test_label_outside_class_names_is_quarantined(tmp_path, make_params, png):
    pq.write_table(pa.table({"image": [png(1), png(2)], "label": [0, 5]}), tmp_path / "d.parquet")
    src = {"name": "p", "kind": "parquet", "path": str(tmp_path / "d.parquet"), "class_names": ["a", "b"]}
    stats = public.run(make_params({"ingest": {"sources": [src]}}))["sources"]["p"]
    assert stats["inserted"] == 1 and stats["quarantine_reasons"] == {"bad_label": 1}


@pytest.mark.parametrize("column,type_name", [(pa.array([1, 2], pa.int64()), "int64"),
                                              (pa.array(["a.png", "b.png"]), "string")])
def test_image_column_of_wrong_type_is_a_one_line_error(tmp_path, run_cli, column, type_name):
    pq.write_table(pa.table({"image": column}), tmp_path / "d.parquet")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "ingest": {"sources": [{"name": "p", "kind": "parquet", "path": str(tmp_path / "d.parquet"),
                                      "label_column": None}]}}
    result = run_cli("ingest", params=params)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        (f"sluice: error: {tmp_path / 'd.parquet'}: image column 'image' has type {type_name}; expected binary image "
         "bytes or a {bytes, path} struct (source 'p')")]


def test_the_split_a_file_path_names_is_the_rows_split_hint(tmp_path, source_params, lake, png):
    """Hugging Face's layout: data/train-00000-of-00001.parquet, data/test-..., validation/0000.parquet."""
    from ingest.sources.parquet import file_split_of

    for rel, seed in (("data/train-00000-of-00001.parquet", 1), ("data/test-00000-of-00001.parquet", 2),
                      ("validation/0000.parquet", 3), ("extra.parquet", 4)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"image": [png(seed)], "label": ["cat"]}), tmp_path / rel)
    assert file_split_of("data/Test_part1.parquet") == "test" and file_split_of("contest.parquet") is None
    public.run(source_params(kind="parquet", path=str(tmp_path)))
    hints = {r["item_id"].split(":")[0]: r["split_hint"] for r in lake.read("raw_images").to_pylist()}
    assert hints == {"data/train-00000-of-00001.parquet": "train", "data/test-00000-of-00001.parquet": "test",
                     "validation/0000.parquet": "val", "extra.parquet": None}


def test_an_image_struct_with_only_a_path_is_read_from_beside_the_file(tmp_path, source_params, lake, png):
    """Dataset.to_parquet keeps local images as {bytes: null, path}; a path outside the source is never read."""
    (tmp_path / "ds" / "imgs").mkdir(parents=True)
    (tmp_path / "ds" / "imgs" / "a.png").write_bytes(png(1))
    (tmp_path / "secret.png").write_bytes(png(2))
    rows = [{"bytes": None, "path": "imgs/a.png"}, {"bytes": None, "path": str(tmp_path / "secret.png")},
            {"bytes": None, "path": "../secret.png"}, {"bytes": None, "path": "imgs/missing.png"}]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"image": pa.array(rows, image_type), "label": ["cat"] * 4}), tmp_path / "ds" / "train.parquet")
    (tmp_path / "ds" / "README.md").write_text("# a dataset card, as a Hugging Face snapshot has\n")
    stats = public.run(source_params(kind="parquet", path=str(tmp_path / "ds")))["sources"]["s"]
    assert (stats["inserted"], stats["quarantine_reasons"]) == (1, {"missing_image_bytes": 3})
    assert lake.read("raw_images").to_pylist()[0]["content"] == png(1)


def _save_to_disk(root, png, splits=(("train", 4), ("validation", 2), ("test", 2))):
    """A data set as Hugging Face's ``save_to_disk`` writes it (``beans``): a folder a split, each with its
    ``data-00000-of-00001.arrow`` in Arrow's stream format (the ClassLabel names in the schema's metadata)
    beside ``dataset_info.json`` and ``state.json``."""
    meta = {"info": {"features": {"image_file_path": {"_type": "Value"}, "image": {"_type": "Image"},
                                  "labels": {"_type": "ClassLabel", "names": ["angular_leaf_spot", "bean_rust", "healthy"]}}}}
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for k, (split, n) in enumerate(splits):
        (root / split).mkdir(parents=True)
        table = pa.table({"image_file_path": [f"/cache/{split}/{i}.jpg" for i in range(n)],
                          "image": pa.array([{"bytes": png(10 * k + i), "path": None} for i in range(n)], struct),
                          "labels": pa.array([i % 3 for i in range(n)], pa.int64())})
        table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
        with pa.ipc.new_stream(str(root / split / "data-00000-of-00001.arrow"), table.schema) as writer:
            writer.write_table(table, max_chunksize=3)
        (root / split / "dataset_info.json").write_text(json.dumps(meta["info"]))
        (root / split / "state.json").write_text("{}")
    (root / "dataset_dict.json").write_text(json.dumps({"splits": [s for s, _ in splits]}))
    return root


def test_a_hugging_face_save_to_disk_folder(tmp_path, make_params, lake, png, run_cli):
    """Arrow stream files read as Parquet's are: the image structs, the ClassLabel names, the split each folder
    names; sluice init --images picks the connector and finds the label column ``labels``."""
    root = _save_to_disk(tmp_path / "beans", png)
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(root), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Parquet or Hugging Face Arrow files, read by the parquet connector" in res.stdout
    assert "3 classes (angular_leaf_spot, bean_rust, healthy)" in res.stdout
    src = {"name": "p", "kind": "parquet", "path": str(root), "label_column": "labels"}
    stats = public.run(make_params({"ingest": {"batch_rows": 3, "sources": [src]}}))["sources"]["p"]
    assert stats["inserted"] == 8
    rows = {(r["item_id"], r["split_hint"], r["source_label"]) for r in lake.read("raw_images").to_pylist()}
    assert ("train/data-00000-of-00001.arrow:2", "train", "healthy") in rows
    assert ("validation/data-00000-of-00001.arrow:1", "val", "bean_rust") in rows
    assert ("test/data-00000-of-00001.arrow:0", "test", "angular_leaf_spot") in rows
    pq.write_table(pa.table({"image": [png(1)]}), root / "train" / "extra.parquet")
    with pytest.raises(InputError, match="both Parquet and Arrow files"):
        public.run(make_params({"ingest": {"sources": [src]}}))


def test_a_hugging_face_skin_lesion_set_finds_its_label_and_subject_columns(tmp_path, png):
    """marmal88/skin_cancer (HAM10000 on the Hub): image, image_id, lesion_id, dx, ... as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.sources.parquet import ParquetSource, detect, read_parquet

    table = pa.table({"image": [{"bytes": png(i), "path": f"ISIC_{i}.jpg"} for i in range(3)],
                      "image_id": [f"ISIC_{i}" for i in range(3)], "lesion_id": ["HAM_1", "HAM_1", "HAM_2"],
                      "dx": ["nv", "nv", "mel"]})
    pq.write_table(table, tmp_path / "train-00000-of-00001.parquet")
    found = detect(str(tmp_path))
    assert found == {"label_column": "dx", "subject_column": "lesion_id"}
    records = list(read_parquet(ParquetSource(name="s", kind="parquet", path=str(tmp_path), **found), 10**6))
    assert [(r.label, r.subject) for r in records] == [("nv", "HAM_1"), ("nv", "HAM_1"), ("mel", "HAM_2")]


def test_detect_finds_the_split_column_and_the_image_column_among_other_bytes(tmp_path, png):
    """One file with image, label and split columns: the split column is found (the file's test rows were split by
    hash, most into train); a whole-number fold is no split. Beside an `embedding` of raw bytes, the `photo` struct
    (or the column Hugging Face's metadata types Image) is the image column, not the first binary one."""
    from ingest.sources.parquet import ParquetSource, detect, read_parquet

    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"embedding": [bytes(64)] * 4, "photo": pa.array([{"bytes": png(i), "path": None} for i in range(4)],
                                                                       struct),
                      "label": [0, 1, 0, 1], "split": ["train", "train", "test", "validation"], "fold": [0, 1, 2, 3]})
    pq.write_table(table, tmp_path / "all.parquet")
    found = detect(str(tmp_path / "all.parquet"))
    assert found == {"image_column": "photo", "split_column": "split"}
    records = list(read_parquet(ParquetSource(name="s", kind="parquet", path=str(tmp_path / "all.parquet"), **found),
                                10**6))
    assert [r.split_hint for r in records] == ["train", "train", "test", "val"]
    raw = pa.table({"blob": [bytes(8)] * 2, "pixels_png": [png(1), png(2)], "label": [0, 1]})
    meta = {"info": {"features": {"blob": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": ["a", "b"]}}}}
    pq.write_table(raw, tmp_path / "named.parquet")
    assert detect(str(tmp_path / "named.parquet")) == {"image_column": "pixels_png"}  # named like an image
    pq.write_table(raw.replace_schema_metadata({"huggingface": json.dumps(meta)}), tmp_path / "typed.parquet")
    assert detect(str(tmp_path / "typed.parquet")) == {"image_column": "blob"}  # the metadata's Image column first


def test_a_hugging_face_label_of_minus_one_lands_its_image_unlabelled(tmp_path, png):
    """ClassLabel -1 is Hugging Face's "no label" (a competition's test split): the image lands without a label
    instead of being quarantined as bad_label; another label outside the names still is."""
    from ingest.sources.parquet import ParquetSource, read_parquet

    meta = {"info": {"features": {"label": {"_type": "ClassLabel", "names": ["ant", "bee"]}}}}
    table = pa.table({"image": [png(i) for i in range(3)], "label": [-1, 1, 5]})
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps(meta)}), tmp_path / "test.parquet")
    records = list(read_parquet(ParquetSource(name="s", kind="parquet", path=str(tmp_path / "test.parquet")), 10**6))
    assert [(r.label, r.reject) for r in records] == [(None, None), ("bee", None), (None, "bad_label")]
