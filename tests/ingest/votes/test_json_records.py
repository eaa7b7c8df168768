"""Votes as JSON records (JSON Lines or an array): found, read and landed like a long CSV."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ingest.votes.json_records import flat
from ingest.votes.land import land_export
from ingest.votes.plain_csv import CsvVotesExport, detect
from sluice.errors import InputError
from sluice.items import ItemIndex

from .test_land import landed, quarantine, votes  # noqa: F401  (the lake of three named images)


def _jsonl(path, records, extra: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return path


def test_nested_fields_by_dotted_path_and_one_answer_lists_as_the_answer():
    assert flat({"image": " a.png ", "worker": {"id": 7}, "accept": ["cat"], "n": 2.0, "ok": True, "none": None,
                 "many": ["cat", "dog"], "empty": "", "chose": []}) == {
        "image": "a.png", "worker.id": "7", "accept": "cat", "n": "2", "ok": "true", "none": None,
        "many": '["cat", "dog"]', "empty": None, "chose": None}


def test_json_lines_land_and_a_bad_line_is_quarantined_with_its_line(landed, tmp_path):  # noqa: F811
    path = _jsonl(tmp_path / "votes.jsonl", [
        {"image_url": "data/a.png", "annotator": {"id": "w1"}, "label": "cat"},
        {"image_url": "data/a.png", "annotator": {"id": "w2"}, "label": "dog"},
        {"image_url": "https://example.org/b.png", "annotator": {"id": "w1"}, "label": None},
    ], extra='{"image_url": "data/a.png", "annot\n[1, 2]\n')
    found = detect(str(path))
    assert found == {"item_column": "image_url", "worker_column": "annotator.id"}
    stats = land_export(landed, CsvVotesExport(name="j", kind="csv", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.quarantined) == (5, 2, 3)
    assert sorted(votes(landed)["label"]) == ["cat", "dog"]
    q = quarantine(landed).sort("row_key")
    assert [(k.rsplit(":", 1)[1], r) for k, r in zip(q["row_key"], q["reason"])] == [
        ("3", "missing_field"), ("4", "bad_record"), ("5", "bad_record")]


def test_a_json_array_of_records_is_read_and_not_taken_for_label_studio(landed, tmp_path):  # noqa: F811
    from ingest.votes.label_studio import detect as label_studio_detect

    path = tmp_path / "votes.json"
    path.write_text(json.dumps([{"file_name": "data/a.png", "rater": "r1", "class": "cat"},
                                {"file_name": "data/c.parquet#0", "rater": "r2", "class": "dog"}]))
    with pytest.raises(InputError, match="not a Label Studio export"):
        label_studio_detect(str(path))
    found = detect(str(path))
    assert found == {"item_column": "file_name", "worker_column": "rater", "label_column": "class"}
    stats = land_export(landed, CsvVotesExport(name="j", kind="csv", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new) == (2, 2)


def test_a_choice_interface_export_votes_what_was_accepted(landed, tmp_path):  # noqa: F811
    """Prodigy's choice JSONL: the image inline as a data: URI, its name in meta.file, the options chosen in
    accept, and answer accept / reject / ignore: rejected and skipped tasks are never aggregated."""
    inline = "data:image/png;base64,iVBORw0KGgo="
    path = _jsonl(tmp_path / "prodigy.jsonl", [
        {"image": inline, "meta": {"file": "data/a.png"}, "accept": ["cat"], "answer": "accept", "_annotator_id": "s-ann"},
        {"image": inline, "meta": {"file": "data/a.png"}, "accept": ["dog"], "answer": "reject", "_annotator_id": "s-bob"},
        {"image": inline, "meta": {"file": "data/a.png"}, "accept": [], "answer": "ignore", "_annotator_id": "s-cy"},
    ])
    found = detect(str(path))
    assert found == {"item_column": "meta.file", "worker_column": "_annotator_id", "label_column": "accept",
                     "status_column": "answer", "rejected_values": ["reject", "ignore"]}
    stats = land_export(landed, CsvVotesExport(name="p", kind="csv", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.new, stats.rejected_assignments, stats.quarantined) == (2, 1, 1)  # the skip chose nothing
    landed_votes = votes(landed)
    assert landed_votes.filter(pl.col("status") == "submitted")["label"].to_list() == ["cat"]


def test_a_field_no_record_has_is_a_user_error_naming_the_fields(landed, tmp_path):  # noqa: F811
    path = _jsonl(tmp_path / "votes.jsonl", [{"image": "data/a.png", "who": "w1", "label": "cat"}])
    with pytest.raises(InputError, match=r"no record of vote file 'j' has the field\(s\) 'worker' \(its records have "
                                         r"'image', 'who', 'label'\)"):
        land_export(landed, CsvVotesExport(name="j", kind="csv", path=str(path), item_column="image"),
                    ItemIndex.from_lake(landed), "r")
