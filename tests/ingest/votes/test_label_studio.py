"""Label Studio JSON exports: annotations, skips, and the three usual image references."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest

from ingest.votes.label_studio import LabelStudioExport
from ingest.votes.land import land_export
from sluice.items import ItemIndex

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URIS = ["data/a.png", "https://example.org/b.png", "data/c.parquet#0", "/srv/photos/cats/d.jpg"]


def image_id(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()


@pytest.fixture
def landed(lake):
    rows = [{"image_id": image_id(u), "content": u.encode(), "source": "t", "source_uri": u, "source_label": None,
             "fetched_at": NOW, "run_id": "r"} for u in URIS]
    lake.merge_insert("raw_images", pa.Table.from_pylist(rows))
    return lake


def votes(lake) -> pl.DataFrame:
    return pl.from_arrow(lake.read("crowd_votes")).sort("vote_id")


def quarantine(lake) -> pl.DataFrame:
    return pl.from_arrow(lake.read("quarantine"))


def task(n: int, image: str, label: str = "cat") -> dict:
    return {"id": n, "data": {"image": image}, "annotations": [
        {"id": n * 10, "completed_by": 1, "result": [{"from_name": "cls", "type": "choices", "value": {"choices": [label]}}]}]}


def test_the_three_image_reference_forms_resolve(landed, tmp_path):
    tasks = [task(1, "/data/local-files/?d=srv/photos/cats/d.jpg"), task(2, "/data/upload/7/1f2e3d4c-a.png"),
             task(3, "http://localhost:8080/data/local-files/?d=data%2Fa.png"), task(4, "http://localhost:8080/data/upload/7/deadbeef-d.jpg")]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    stats = land_export(landed, LabelStudioExport(name="ls", kind="label_studio", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.new, stats.pending_items) == (4, 0)
    got = dict(votes(landed).select("task_id", "image_id").iter_rows())
    assert got == {"1": image_id(URIS[3]), "2": image_id(URIS[0]), "3": image_id(URIS[0]), "4": image_id(URIS[3])}


def test_label_studio_annotations_and_skips(landed, tmp_path):
    tasks = [
        {"id": 1, "data": {"image": image_id("data/a.png")}, "annotations": [
            {"id": 11, "completed_by": {"id": 5, "email": "ann@x"}, "created_at": "2026-01-02T03:04:05.000Z",
             "result": [{"from_name": "cls", "type": "choices", "value": {"choices": ["cat"]}}]},
            {"id": 12, "completed_by": 6, "result": [{"from_name": "cls", "type": "choices", "value": {"choices": ["dog"]}},
                                                      {"from_name": "other", "type": "choices", "value": {"choices": ["x"]}}]},
            {"id": 13, "completed_by": 7, "was_cancelled": True, "result": []},
            {"id": 14, "completed_by": 8, "result": [{"from_name": "cls", "type": "choices", "value": {"choices": ["a", "b"]}}]},
        ]},
        {"id": 2, "data": {"image": "data/c.parquet#0"}, "annotations": [
            {"id": 21, "completed_by": 5, "result": [{"from_name": "cls", "type": "choices", "value": {"choices": ["dog"]}}]}]},
        {"id": 3, "data": {}, "annotations": [{"id": 31, "completed_by": 5, "result": []}]},
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    export = LabelStudioExport(name="ls", kind="label_studio", path=str(path), from_name="cls")
    stats = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.quarantined) == (6, 3, 3)
    assert stats.reasons == {"skipped_annotation": 1, "multiple_choices": 1, "missing_field": 1}
    v = votes(landed)
    assert sorted(v["worker_id"]) == ["5", "6", "ann@x"]  # email when completed_by is an object, else the id
    assert v.filter(pl.col("worker_id") == "ann@x")["submitted_at"][0] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert v["image_id"].null_count() == 0
    q = quarantine(landed)
    assert sorted(q["check"]) == ["missing_field", "multiple_choices", "skipped_annotation"]
    assert all(q["source_table"] == "crowd_votes")


def test_malformed_fields_are_quarantined_not_tracebacks(landed, tmp_path):
    """`data`, `annotations` or a choice `value` of the wrong type: a quarantine row with the reason."""
    tasks = [
        {"id": 1, "data": "data/a.png", "annotations": []},
        {"id": 2, "data": {"image": image_id("data/a.png")}, "annotations": "cat"},
        {"id": 3, "data": {"image": image_id("data/a.png")},
         "annotations": [{"id": 31, "completed_by": 5, "result": [{"type": "choices", "value": "cat"}]}]},
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    export = LabelStudioExport(name="ls", kind="label_studio", path=str(path))
    stats = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    assert (stats.new, stats.quarantined) == (0, 3)
    assert stats.reasons == {"bad_field": 2, "no_choice": 1}


def test_json_min_export(landed, tmp_path):
    rows = [{"id": 1, "image": "/data/upload/3/abcd1234-a.png", "choice": "cat", "annotator": 4, "annotation_id": 9,
             "created_at": "2026-01-02T03:04:05Z"},
            {"id": 2, "image": "data/c.parquet#0", "cls": {"choices": ["dog"]}, "annotator": "x@y", "annotation_id": 10,
             "ground_truth": True}]  # starred as the task's ground truth: a known answer
    path = tmp_path / "min.json"
    path.write_text(json.dumps(rows[:1]))
    stats = land_export(landed, LabelStudioExport(name="m", kind="label_studio", path=str(path)), ItemIndex.from_lake(landed), "r")
    path.write_text(json.dumps(rows[1:]))
    stats2 = land_export(landed, LabelStudioExport(name="m", kind="label_studio", path=str(path), from_name="cls"),
                         ItemIndex.from_lake(landed), "r")
    assert (stats.new, stats2.new, stats.pending_items) == (1, 1, 0)
    v = votes(landed).sort("task_id")
    assert v.select("label", "worker_id", "image_id").rows() == [("cat", "4", image_id(URIS[0])), ("dog", "x@y", image_id(URIS[2]))]
    assert v["status"].to_list() == ["submitted", "gold"]


def test_the_data_key_naming_the_image_is_found(tmp_path):
    from ingest.votes.label_studio import detect
    from sluice.errors import InputError

    def export(tasks) -> str:
        path = tmp_path / "ls.json"
        path.write_text(json.dumps(tasks))
        return str(path)

    assert detect(export([{"id": 1, "data": {"image": "/data/upload/1/ab12cd34-a.png"}}])) == {}
    assert detect(export([{"id": 1, "data": {"caption": "a cat", "img": "/data/local-files/?d=cats/a.jpg"}},
                          {"id": 2, "data": {"caption": "a dog", "img": "https://example.org/b"}}])) == {"data_key": "img"}
    assert detect(export([{"id": 1, "photo": "s3://bucket/a.JPG", "annotator": 3, "choice": "cat"}])) == {"data_key": "photo"}
    with pytest.raises(InputError, match="set data_key"):
        detect(export([{"id": 1, "data": {"left": "a.png", "right": "b.png"}}]))


def test_a_json_min_control_named_otherwise_is_found(tmp_path, landed):
    from ingest.votes.label_studio import detect

    path = tmp_path / "min.json"
    path.write_text(json.dumps([
        {"id": 1, "image": "data/a.png", "annotator": 3, "annotation_id": 10, "label": "cat", "lead_time": 2.5,
         "created_at": "2026-01-01T00:00:00Z"},
        {"id": 1, "image": "data/a.png", "annotator": 4, "annotation_id": 11, "label": "dog", "lead_time": 1.0}]))
    found = detect(str(path))
    assert found == {"from_name": "label"}
    stats = land_export(landed, LabelStudioExport(name="m", kind="label_studio", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.new, stats.quarantined) == (2, 0)
