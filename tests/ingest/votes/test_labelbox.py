"""Labelbox exports (v2 NDJSON): each labeler's label of a data row is a vote."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingest.votes.labelbox import LabelboxExport, detect, read
from sluice.errors import InputError


def label(worker: str | None, *answers: tuple[str, str], checklist: list[str] | None = None, skipped: bool = False,
          objects: bool = False) -> dict:
    classifications = [{"feature_id": "f", "name": q, "value": q, "radio_answer": {"name": a, "value": a, "classifications": []}}
                       for q, a in answers]
    if checklist is not None:
        classifications.append({"name": "animal", "checklist_answers": [{"name": c, "value": c} for c in checklist]})
    box = [{"name": "box", "bounding_box": {"top": 0, "left": 0, "width": 5, "height": 5},
            "classifications": [{"name": "animal", "radio_answer": {"name": "dog"}}]}] if objects else []
    return {"label_kind": "Default", "id": f"L-{worker}", "performance_details": {"skipped": skipped},
            "label_details": {"created_at": "2023-05-01T10:00:00+00:00", **({"created_by": worker} if worker else {})},
            "annotations": {"objects": box, "classifications": classifications, "relationships": []}}


def record(row: dict, *labels: dict, project: str = "p1") -> dict:
    return {"data_row": {"id": "dr", **row}, "media_attributes": {"mime_type": "image/jpeg"},
            "projects": {project: {"name": "animals", "labels": list(labels)}}}


def write(tmp_path, records, name="export.ndjson"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def export(path, **kw) -> LabelboxExport:
    return LabelboxExport(name="lb", kind="labelbox", path=str(path), **kw)


def test_each_labelers_answer_is_a_vote_and_bad_labels_are_rejected_with_their_line(tmp_path):
    path = write(tmp_path, [
        record({"external_id": "cat1.jpg", "row_data": "https://x/cat1.jpg"},
               label("ann@x.com", ("animal", "cat")), label("bob@x.com", ("animal", "dog"), objects=True)),
        record({"global_key": "img-7", "row_data": "https://x/7.jpg"}, label("ann@x.com", ("animal", "cat")),
               label(None, ("animal", "cat")), label("cy@x.com", checklist=["cat", "dog"]), label("dee@x.com", skipped=True),
               label("eve@x.com")),
        "{broken", record({}, label("ann@x.com", ("animal", "cat")))])
    parsed = read(export(path))
    assert parsed.votes.select("item_ref", "worker_id", "label").rows() == [
        ("cat1.jpg", "ann@x.com", "cat"), ("cat1.jpg", "bob@x.com", "dog"),  # an object's classification is not the image's
        ("img-7", "ann@x.com", "cat")]
    assert parsed.votes["submitted_at"][0] == datetime(2023, 5, 1, 10, tzinfo=UTC)
    assert [(r.reason, r.where.rsplit(":", 1)[-1][:1]) for r in parsed.rejects] == [
        ("missing_field", "2"), ("multiple_choices", "2"), ("skipped_annotation", "2"), ("no_choice", "2"),
        ("bad_record", "3"), ("missing_field", "4")]
    assert read(export(path, item_field="row_data")).votes["item_ref"][0] == "https://x/cat1.jpg"


def test_several_questions_need_the_one_to_read(tmp_path):
    path = write(tmp_path, [record({"external_id": "a.jpg"}, label("ann", ("animal", "cat"), ("quality", "good")))],
                 name="export.json")
    with pytest.raises(InputError, match=r"several classification questions \(animal, quality\)"):
        detect(str(path))
    path.write_text(json.dumps([json.loads(path.read_text())]))  # a JSON array of the same records
    assert read(export(path, question="quality")).votes.select("worker_id", "label").rows() == [("ann", "good")]
    assert [r.reason for r in read(export(path)).rejects] == ["multiple_choices"]


def test_detect_refuses_other_files(tmp_path):
    other = write(tmp_path, [{"image": "a.jpg", "worker": "w", "label": "cat"}])
    with pytest.raises(InputError, match="not a Labelbox export"):
        detect(str(other))
    assert detect(str(write(tmp_path, [record({"external_id": "a.jpg"}, label("ann", ("animal", "cat")))]))) == {}
