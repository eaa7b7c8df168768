"""Item keys: how vote, gold and truth item names resolve to landed images."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import polars as pl
import pytest

from sluice.items import ItemIndex, check_key, normalize

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URIS = ["data/train/cat/001.png", "data/train/dog/001.png", "data/train/dog/002.jpg",
        "https://example.org/img/003.png?size=large", "data/batch_1#17"]


def iid(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()


@pytest.fixture
def index() -> ItemIndex:
    raw = pl.DataFrame({"image_id": [iid(u) for u in URIS], "source_uri": URIS,
                        "fetched_at": [NOW] * len(URIS), "item_id": [None, None, "q-2", None, "cifar-17"]},
                       schema_overrides={"item_id": pl.String})
    packed = {4: "batch/dump_truck_s_000114.png", 1: "a/shared.png", 2: "b/shared.png"}  # names kept by a connector
    extra = pl.DataFrame({"image_id": [iid(u) for u in URIS],
                          "extra": [json.dumps({"question": f"Q{i}", **({"path": packed[i]} if i in packed else {})})
                                    for i in range(len(URIS))]})
    return ItemIndex(raw, lambda: extra)


def resolve(index, names, key="auto", pattern=None, replace=None):
    return index.resolve(normalize(pl.Series(names), pattern, replace), key).to_list()


def test_label_studio_references_reduce_to_files(index):
    names = ["/data/local-files/?d=data/train/dog/002.jpg", "http://localhost:8080/data/local-files/?d=data%2Ftrain%2Fcat%2F001.png",
             "/data/upload/3/8f2a1b3c-002.jpg", "https://ls.example.com:8080/data/upload/12/0a1b2c3d-003.png"]
    assert normalize(pl.Series(names)).to_list() == ["data/train/dog/002.jpg", "data/train/cat/001.png", "002.jpg", "003.png"]
    assert resolve(index, names) == [iid(URIS[2]), iid(URIS[0]), iid(URIS[2]), iid(URIS[3])]


def test_auto_tries_exact_names_then_unique_path_suffixes(index):
    names = ["data/train/cat/001.png", "file://data/train/cat/001.png", iid(URIS[1]), "q-2", "cat/001.png",
             "001.png", "nowhere.png"]
    assert resolve(index, names) == [iid(URIS[0]), iid(URIS[0]), iid(URIS[1]), iid(URIS[2]), iid(URIS[0]),
                                     None, None]  # 001.png names two images: pending, not guessed


def test_auto_knows_the_file_name_a_packed_image_had(index):
    """A CIFAR pickle or Parquet row has no file of its own; the name its connector kept resolves it."""
    names = ["dump_truck_s_000114.png", "batch/dump_truck_s_000114.png", "shared.png", "a/shared.png"]
    assert resolve(index, names) == [iid(URIS[4]), iid(URIS[4]), None, iid(URIS[1])]


@pytest.mark.parametrize("key, name, uri", [
    ("file_name", "002.jpg", URIS[2]), ("file_name", "003.png", URIS[3]), ("stem", "002", URIS[2]),
    ("path", "dog/001.png", URIS[1]), ("source_uri", "data/batch_1#17", URIS[4]), ("image_id", iid(URIS[4]), URIS[4]),
    ("column:item_id", "cifar-17", URIS[4]), ("column:question", "Q3", URIS[3]),
])
def test_each_key(index, key, name, uri):
    assert resolve(index, [name], key) == [iid(uri)]


def test_keys_do_not_cross(index):
    assert resolve(index, ["002.jpg"], "stem") == [None]
    assert resolve(index, ["q-2"], "file_name") == [None]


def test_regex_rewrite(index):
    assert resolve(index, ["task-17.jpg"], "column:item_id", r"task-(\d+)\.jpg", r"cifar-\1") == [iid(URIS[4])]
    assert resolve(index, ["https://cdn.x/abc/002.jpg?sig=1"], "file_name", r"/(?P<item>[^/?]+)\?") == [iid(URIS[2])]
    assert resolve(index, ["no-match"], "file_name", r"task-(\d+)") == [None]


def test_invalid_key_is_named():
    with pytest.raises(ValueError, match="item_key must be one of auto, source_uri"):
        check_key("image")
    assert check_key("column:item_id") == "column:item_id"


def test_from_lake_reads_raw_images_only_when_a_name_is_resolved(tmp_path):
    """A labels run with no votes must not hold every landed image's names."""
    import pyarrow as pa

    from sluice.catalog import TABLES
    from sluice.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    rows = {"image_id": [iid(u) for u in URIS], "content": [b"x"] * len(URIS), "source": ["s"] * len(URIS),
            "source_uri": URIS, "item_id": [None] * len(URIS), "source_label": [None] * len(URIS),
            "split_hint": [None] * len(URIS), "license": [None] * len(URIS), "extra": [None] * len(URIS),
            "fetched_at": [NOW] * len(URIS), "run_id": ["r"] * len(URIS), "subject": [None] * len(URIS)}
    lake.append("raw_images", pa.table(rows, schema=TABLES["raw_images"].schema), run_id="r")
    reads = []
    read = lake.read
    lake.read = lambda name, *a, **k: reads.append(name) or read(name, *a, **k)

    index = ItemIndex.from_lake(lake)
    assert index.resolve(pl.Series([], dtype=pl.String)).to_list() == [] and reads == []
    assert resolve(index, ["cat/001.png", "001.png"]) == [iid(URIS[0]), None]  # 001.png names two images
    assert reads == ["raw_images", "raw_images"]  # the names, then the names packed images had (extra)
    resolve(index, ["dog/002.jpg"])
    assert reads == ["raw_images", "raw_images"]  # read once


def test_names_from_other_machines_resolve_by_their_tail(index):
    """An MTurk batch names images by the URL they were served from, a Windows tool by its own disk path."""
    names = ["https://bucket.s3.amazonaws.com/exports/train/cat/001.png", "s3://b/x/dog/001.png?v=2",
             "D:\\labelling\\dog\\002.jpg", "DATA/Train/Cat/001.PNG", "train/dog/002", "dog/002",
             "https://cdn.example.com/other/001.png", "https://cdn.example.com/x/unknown.png"]
    assert normalize(pl.Series(names)).to_list()[2] == "D:/labelling/dog/002.jpg"
    assert resolve(index, names) == [iid(URIS[0]), iid(URIS[1]), iid(URIS[2]), iid(URIS[0]), iid(URIS[2]),
                                     iid(URIS[2]), None, None]  # 001.png is two images: never guessed
    assert resolve(index, ["https://h/x/train/dog/001.png"], "path") == [iid(URIS[1])]
    assert resolve(index, ["https://h/x/train/dog/001.png"], "file_name") == [None]  # only auto and path look at tails


def test_names_a_url_encodes_resolve_decoded():
    """S3, MTurk and web links percent-encode a file's spaces and letters past ASCII (S3's console: + for a
    space); such a name resolves to the file, while a name that fits as it is (a+b.jpg) is taken as it is."""
    uris = ["/photos/cats/my photo.jpg", "/photos/dogs/caf\u00e9.jpg", "/photos/dogs/a+b.jpg", "/photos/dogs/a b.jpg"]
    index = ItemIndex(pl.DataFrame({"image_id": [iid(u) for u in uris], "source_uri": uris, "fetched_at": [NOW] * 4}))
    names = ["https://bucket.s3.amazonaws.com/batch/cats/my%20photo.jpg?X-Amz-Signature=ab%2Fc",
             "https://host/dogs/caf%C3%A9.jpg", "cats/my+photo.jpg", "dogs/a+b.jpg", "dogs/a%2Bb.jpg", "dogs/a%20b.jpg",
             "dogs/gone%20now.jpg"]
    assert resolve(index, names) == [iid(uris[0]), iid(uris[1]), iid(uris[0]), iid(uris[2]), iid(uris[2]), iid(uris[3]),
                                     None]


def test_a_name_whose_file_landed_under_another_extension_resolves_by_its_stem_only_where_unique():
    """Votes on cat/0000.png, images cat/0000.jpg (converted copies): the stem names one landed file. A stem two
    landed files share (0000 in two class folders, or cat/0001.jpg beside cat/0001.webp) names none, and is
    reported as shared (waiting will not resolve it); a file landed with the name's own extension wins."""
    uris = ["imgs/cat/0000.jpg", "imgs/dog/0000.jpg", "imgs/cat/0001.jpg", "imgs/cat/0001.webp", "imgs/cat/0002.png",
            "imgs/cat/0002.jpg", "imgs/cat/0003.JPG"]
    index = ItemIndex(pl.DataFrame({"image_id": [iid(u) for u in uris], "source_uri": uris, "fetched_at": [NOW] * 7}))
    names = ["cat/0000.png", "CAT/0000.PNG", "0000.png", "cat/0001.png", "cat/0002.png", "cat/0003.jpeg", "cat/0000.txt",
             "cat/0009.png"]
    assert resolve(index, names) == [iid(uris[0]), iid(uris[0]), None, None, iid(uris[4]), iid(uris[6]), None, None]
    assert index.shared(pl.Series(names)).to_list() == [False, False, True, True, False, False, False, False]
    assert resolve(index, ["cat/0000.png"], "path") == [None]  # only auto ignores the extension
