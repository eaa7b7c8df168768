"""A file of image URLs as the crawl's input (``crawl.url_list``): columns found by content and name, rows that are
no URL or that repeat one logged and quarantined with their line, and a real crawl of the listed images."""

from __future__ import annotations

import pytest

from ingest.crawl.stage import crawl, summarize
from ingest.crawl.url_list import find_columns, read_rows
from sluice.config import parse_params
from sluice.errors import ConfigError, InputError
from sluice.lake import Lake
from sluice.params_data import CrawlUrlList
from tests.ingest.crawl.test_stage import FlatListing, flat_site  # noqa: F401 (the loopback site fixture)


def test_columns_found_by_their_values_and_names(tmp_path):
    landmarks = tmp_path / "train.csv"  # Google Landmarks v2: id,url,landmark_id
    landmarks.write_text("id,url,landmark_id\nabc,https://a.example/1.jpg,7\ndef,https://a.example/2.jpg,9\n")
    assert find_columns(landmarks) == {"url_column": "url", "label_column": "landmark_id", "id_column": "id"}
    open_images = tmp_path / "ids.tsv"  # Open Images: two URL columns, the original preferred by its name
    open_images.write_text("ImageID\tThumbnail300KURL\tOriginalURL\nx\thttp://t.example/x.jpg\thttp://o.example/x.jpg\n")
    assert find_columns(open_images) == {"url_column": "OriginalURL", "id_column": "ImageID"}
    plain = tmp_path / "urls.txt"
    plain.write_text("https://a.example/1.jpg\nhttps://a.example/2.jpg\n")
    assert find_columns(plain) == {}
    (tmp_path / "none.csv").write_text("id,label\n1,cat\n")
    with pytest.raises(InputError, match="no column of http.s. URLs .header: id, label."):
        find_columns(tmp_path / "none.csv")


def test_the_lists_split_column_gives_each_image_its_split(tmp_path, caplog):
    """Open Images' Subset column: train / validation / test; another value is no split, and said."""
    path = tmp_path / "ids.csv"
    path.write_text("ImageID,Subset,OriginalURL,License,label\na,train,https://x.example/a.jpg,https://cc.example/by,cat\n"
                    "b,validation,https://x.example/b.jpg,,cat\nc,Test,https://x.example/c.jpg,,dog\n"
                    "d,extra,https://x.example/d.jpg,,dog\n")
    assert find_columns(path)["split_column"] == "Subset"
    rows = list(read_rows(CrawlUrlList(path=str(path))))
    assert [(r.item_id, r.split) for r in rows] == [("a", "train"), ("b", "val"), ("c", "test"), ("d", None)]
    assert [r.license for r in rows] == ["https://cc.example/by", None, None, None]  # its License column
    assert "1 rows name a split that is none of train, val, test ('extra' x1)" in caplog.text


def test_bad_repeated_and_conflicting_rows_are_named_with_their_line(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("url,label\nhttps://a.example/1.jpg,cat\nftp://a.example/2.jpg,dog\n,dog\n"
                    "https://a.example/1.jpg,cat\nhttps://a.example/1.jpg,dog\nhttps://a.example/3.jpg,\n")
    rows = [(r.line, r.url, r.label, r.reason) for r in read_rows(CrawlUrlList(path=str(path)))]
    assert rows == [(2, "https://a.example/1.jpg", "cat", None), (3, None, None, "bad_url"), (4, None, None, "bad_url"),
                    (5, None, "cat", "repeated_url"), (6, None, "dog", "conflicting_label"),
                    (7, "https://a.example/3.jpg", None, None)]
    [conflict] = [r for r in read_rows(CrawlUrlList(path=str(path))) if r.reason == "conflicting_label"]
    assert conflict.details == "https://a.example/1.jpg listed on line 2 already with label 'cat', here 'dog' (the first kept)"
    (tmp_path / "nolabel.csv").write_text("url,width\nhttps://a.example/1.jpg,3\n")
    with pytest.raises(InputError, match="no column of labels found"):
        list(read_rows(CrawlUrlList(path=str(tmp_path / "nolabel.csv"))))
    assert [r.label for r in read_rows(CrawlUrlList(path=str(tmp_path / "nolabel.csv")), labelled=False)] == [None]


def test_the_listed_images_land_with_their_labels(tmp_path, flat_site):  # noqa: F811
    files = list(FlatListing.files)
    listing = tmp_path / "images.csv"
    listing.write_text("image_url,class,ImageID,split\n" + "".join(
        f"{flat_site}{p},{p.split('/')[1]},id{k},{'test' if k == 1 else 'train'}\n" for k, p in enumerate(files))
        + f"{flat_site}/missing.png,cat,m,train\nnot a url,cat,n,train\n{flat_site}{files[0]},{files[0].split('/')[1]},o,train\n")
    section = {"source": "listed", "start_urls": [], "url_list": {"path": str(listing)},  # columns found
               "label": {"source": "column"}, "batch_rows": 5, "autothrottle": False}
    params = parse_params({"lake": {"root": str(tmp_path / "lake")}, "crawl": section}, "test-params.yaml")
    summary = summarize(params, crawl(params))
    lake = Lake(str(tmp_path / "lake"))
    landed = {r["source_uri"].removeprefix(flat_site): r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert landed == {p: p.split("/")[1] for p in files}
    ids = {r["source_uri"].removeprefix(flat_site): (r["item_id"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    # the list's ids (votes keyed by them find the images) and splits (its test images stay test)
    assert ids == {p: (f"id{k}", "test" if k == 1 else "train") for k, p in enumerate(files)}
    assert summary["counters"]["images"] == len(files) and summary["counters"]["unlabelled"] == 0
    log = {r["url"]: r for r in lake.read("crawl_log").to_pylist()}
    assert log[f"{flat_site}/missing.png"]["outcome"] == "error" and log[f"{flat_site}/missing.png"]["status"] == 404
    n = len(files) + 3
    assert log[f"list:images.csv:{n}"]["outcome"] == "dropped:bad_url" and "'not a url'" in log[f"list:images.csv:{n}"]["error"]
    assert log[f"list:images.csv:{n + 1}"]["outcome"] == "dropped:repeated_url"
    quarantined = {r["row_key"]: (r["check"], r["details"]) for r in lake.read("quarantine").to_pylist()}
    # a listed image that did not arrive is a rejected row of the user's list, kept with its reason
    assert quarantined == {f"list:images.csv:{n}": ("bad_url", quarantined[f"list:images.csv:{n}"][1]),
                           f"{flat_site}/missing.png": ("fetch_failed", "HTTP 404")}
    assert summary["counters"]["quarantined"] == 2 and summary["counters"]["errors"] == 1
    again = summarize(params, crawl(params))  # a rerun: conditional GETs, nothing new
    assert again["counters"]["new_images"] == 0


def test_a_url_list_takes_its_labels_from_a_column_or_none():
    with pytest.raises(ConfigError, match="label.source: column reads the labels of a url_list"):
        parse_params({"crawl": {"label": {"source": "column"}}}, "p")
    with pytest.raises(ConfigError, match="a url_list has no pages to read labels from"):
        parse_params({"crawl": {"start_urls": [], "url_list": {"path": "x.csv"}}}, "p")
    with pytest.raises(ConfigError, match="crawl needs start_urls .pages to crawl. or url_list"):
        parse_params({"crawl": {"start_urls": []}}, "p")


def test_a_list_with_no_label_column_is_one_line_before_any_request(tmp_path):
    (tmp_path / "list.csv").write_text("url,width\nhttp://127.0.0.1:9/1.jpg,3\n")
    section = {"start_urls": [], "url_list": {"path": str(tmp_path / "list.csv")}, "label": {"source": "column"}}
    params = parse_params({"lake": {"root": str(tmp_path / "lake")}, "crawl": section}, "test-params.yaml")
    with pytest.raises(InputError, match="list.csv: no column of labels found"):
        crawl(params)
    assert not (tmp_path / "lake").exists()


def test_a_parquet_list_of_urls_is_read_as_laion_ships_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    laion = tmp_path / "part-00000.parquet"  # LAION: SAMPLE_ID, URL, TEXT, sizes, LICENSE, an embedding
    pq.write_table(pa.table({"SAMPLE_ID": [11, 12, 13, 14, 15], "URL": [
        "https://a.example/1.jpg", "ftp://b/2.jpg", "https://a.example/3.jpg", "https://a.example/1.jpg", "http://c/5.png"],
        "TEXT": ["a dog", "a cat", None, "again", "x"], "WIDTH": [640, 480, 320, 640, 8],
        "LICENSE": ["?", "?", "cc-by", "?", "?"], "emb": [[0.1, 0.2]] * 5}), laion)
    assert find_columns(laion) == {"url_column": "URL", "id_column": "SAMPLE_ID"}
    rows = list(read_rows(CrawlUrlList(path=str(laion)), labelled=False))
    assert [(r.line, r.url, r.item_id, r.license, r.reason) for r in rows] == [
        (1, "https://a.example/1.jpg", "11", "?", None), (2, None, None, None, "bad_url"),
        (3, "https://a.example/3.jpg", "13", "cc-by", None), (4, None, None, None, "repeated_url"),
        (5, "http://c/5.png", "15", "?", None)]
    with pytest.raises(InputError, match="missing column.s. 'link'"):
        list(read_rows(CrawlUrlList(path=str(laion), url_column="link"), labelled=False))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        find_columns(tmp_path / "broken.parquet")
