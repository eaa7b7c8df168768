"""A label fixed in the source, or a file gone from it, reaches raw_images on the next ingest."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image

from ingest.landing import ingest_source
from ingest.sources.image_folder import ImageFolderSource


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _rows(lake) -> dict[str, tuple[str | None, str | None]]:
    raw = pl.from_arrow(lake.read("raw_images", columns=["source_uri", "source_label", "split_hint"]))
    return {uri.rsplit("/", 2)[-2] + "/" + uri.rsplit("/", 1)[-1]: (label, split)
            for uri, label, split in raw.iter_rows()}


def _ingest(lake, src, run_id):
    return ingest_source(lake, src, run_id, batch_rows=4, max_bytes=10**6)


def test_a_label_corrected_in_the_labels_file_reaches_the_lake(lake, tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(_png(i))
    (folder / "labels.csv").write_text("file,label,split\n" + "".join(f"{i}.png,{'cat' if i % 2 else 'dog'},train\n"
                                                                   for i in range(6)))
    src = ImageFolderSource(name="s", kind="image_folder", path=str(folder), label_from="file",
                            labels_file=str(folder / "labels.csv"))
    first = _ingest(lake, src, "r1")
    assert (first.inserted, first.relabelled, first.withdrawn) == (6, 0, 0)
    again = _ingest(lake, src, "r2")  # nothing changed: nothing written
    assert (again.already_present, again.relabelled, again.withdrawn) == (6, 0, 0)
    version = lake.version("raw_images")

    (folder / "labels.csv").write_text("file,label,split\n" + "".join(
        f"{i}.png,{'cat' if i in (1, 2) else 'dog'},{'test' if i == 3 else 'train'}\n" for i in range(5)))  # no 5.png
    fixed = _ingest(lake, src, "r3")
    assert (fixed.inserted, fixed.already_present, fixed.relabelled, fixed.withdrawn) == (0, 6, 3, 0)
    rows = _rows(lake)
    assert rows["train/2.png"] == ("cat", "train") and rows["train/3.png"] == ("dog", "test")
    assert rows["train/5.png"] == (None, None)  # the source no longer labels it: neither does the lake
    assert fixed.as_dict()["relabelled"] == 3 and lake.version("raw_images") == version + 1
    assert lake.count("raw_images") == 6


def test_a_file_moved_to_another_class_folder_keeps_one_label_the_new_one(lake, tmp_path):
    root = tmp_path / "photos"
    for k, c in enumerate(("cat", "dog")):
        (root / c).mkdir(parents=True)
        for i in range(3):
            (root / c / f"{c}{i}.png").write_bytes(_png(10 * k + i))
    src = ImageFolderSource(name="s", kind="image_folder", path=str(root))
    _ingest(lake, src, "r1")
    (root / "cat" / "cat0.png").rename(root / "dog" / "cat0.png")  # the user fixes a mislabelled photo
    (root / "dog" / "dog2.png").unlink()  # and deletes a bad one
    moved = _ingest(lake, src, "r2")
    assert (moved.inserted, moved.relabelled, moved.withdrawn) == (1, 0, 2)
    rows = _rows(lake)
    assert rows["cat/cat0.png"] == (None, None) and rows["dog/cat0.png"] == ("dog", None)
    assert rows["dog/dog2.png"] == (None, None)
    labelled = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_label"])).drop_nulls()
    assert labelled["image_id"].is_unique().all()  # one label an image: no conflict between the two paths


def test_another_sources_rows_are_left_alone(lake, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "cat").mkdir(parents=True)
        (tmp_path / name / "cat" / "x.png").write_bytes(_png(ord(name)))
        (tmp_path / name / "dog").mkdir()
        (tmp_path / name / "dog" / "y.png").write_bytes(_png(ord(name) + 7))
    a = ImageFolderSource(name="a", kind="image_folder", path=str(tmp_path / "a"))
    b = ImageFolderSource(name="b", kind="image_folder", path=str(tmp_path / "b"))
    _ingest(lake, a, "r1")
    _ingest(lake, b, "r1")
    (tmp_path / "a" / "dog" / "y.png").unlink()
    assert _ingest(lake, a, "r2").withdrawn == 1
    labels = pl.from_arrow(lake.read("raw_images", columns=["source", "source_label"])).sort("source", "source_label")
    assert labels.rows() == [("a", None), ("a", "cat"), ("b", "cat"), ("b", "dog")]


def test_a_subject_named_later_reaches_rows_already_landed_even_in_a_lake_from_before_the_column(lake, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from sluice.catalog import spec

    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(_png(i))
    (folder / "labels.csv").write_text("file,label,patient\n" + "".join(f"{i}.png,cat,p{i // 2}\n" for i in range(4)))
    old = spec("raw_images").schema
    old = pa.schema([f for f in old if f.name != "subject"])  # a lake written before raw_images.subject
    write_deltalake(lake.uri("raw_images"), old.empty_table())
    src = ImageFolderSource(name="s", kind="image_folder", path=str(folder), label_from="file",
                            labels_file=str(folder / "labels.csv"), file_column="file", label_column="label")
    first = _ingest(lake, src, "r1")  # landing adds the column; no subject named yet
    assert first.inserted == 4 and set(pl.from_arrow(lake.read("raw_images", columns=["subject"]))["subject"]) == {None}
    named = src.model_copy(update={"subject_column": "patient"})
    again = _ingest(lake, named, "r2")
    subjects = dict(pl.from_arrow(lake.read("raw_images", columns=["item_id", "subject"])).iter_rows())
    assert (again.inserted, again.relabelled) == (0, 4) and subjects == {"0.png": "p0", "1.png": "p0", "2.png": "p1",
                                                                          "3.png": "p1"}
