"""SageMaker Ground Truth: a job folder's worker answers, or a manifest's consolidated labels."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from ingest.votes.ground_truth import GroundTruthExport, detect, read
from ingest.votes.land import land_export
from sluice.errors import InputError
from sluice.items import ItemIndex

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def line(k: int, label: str, attribute: str = "animals", human: str = "yes", **meta) -> dict:
    return {"source-ref": f"s3://my-bucket/raw/img{k}.jpg", attribute: ["cat", "dog"].index(label) if label in ("cat", "dog") else 0,
            f"{attribute}-metadata": {"class-name": label, "job-name": f"labeling-job/{attribute}", "confidence": 0.9,
                                      "type": "groundtruth/image-classification", "human-annotated": human,
                                      "creation-date": "2020-10-18T22:18:13.527256", **meta}}


def answer(worker: str | None, content) -> dict:
    return {"answerContent": content, "submissionTime": "2020-10-18T22:11:00.000Z", "timeSpentInSeconds": 9.1,
            **({"workerId": worker} if worker else {})}


def job(tmp_path: Path, lines: list, responses: dict[str, list] | None = None) -> Path:
    folder = tmp_path / "animals"
    (folder / "manifests" / "output").mkdir(parents=True)
    (folder / "manifests" / "output" / "output.manifest").write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    for obj, answers in (responses or {}).items():
        d = folder / "annotations" / "worker-response" / "iteration-1" / obj
        d.mkdir(parents=True)
        (d / "2020-10-18_22:11:00.json").write_text(answers if isinstance(answers, str) else json.dumps({"answers": answers}))
    return folder


def export(path: Path, **kw) -> GroundTruthExport:
    return GroundTruthExport(name="gt", kind="ground_truth", path=str(path), **kw)


def classifier(label):
    return {"crowd-image-classifier": {"label": label}}


def test_a_job_folder_gives_each_workers_answer_by_its_objects_manifest_line(tmp_path):
    folder = job(tmp_path, [line(0, "cat"), line(1, "dog"), "{not json"], {
        "0": [answer("private.us-east-1.a", classifier("cat")), answer("private.us-east-1.b", classifier("dog"))],
        "1": [answer("private.us-east-1.a", {"category": {"label": "dog"}}),  # a custom form's answer
              answer("private.us-east-1.b", {"crowd-image-classifier-multi-select": {"labels": ["cat", "dog"]}}),
              answer(None, classifier("dog"))],
        "7": [answer("private.us-east-1.a", classifier("cat"))],  # no manifest line 7
        "2": "not json"})  # the unreadable line's object, unreadable too
    for path in (folder, folder / "manifests" / "output" / "output.manifest"):  # the folder, or its manifest
        parsed = read(export(path))
        v = parsed.votes.sort("item_ref", "worker_id")
        assert v.select("item_ref", "worker_id", "label").rows() == [
            ("s3://my-bucket/raw/img0.jpg", "private.us-east-1.a", "cat"), ("s3://my-bucket/raw/img0.jpg", "private.us-east-1.b", "dog"),
            ("s3://my-bucket/raw/img1.jpg", "private.us-east-1.a", "dog")]
        assert v["submitted_at"][0] == datetime(2020, 10, 18, 22, 11, tzinfo=UTC) and set(v["task_id"]) == {"0", "1"}
        assert sorted(r.reason for r in parsed.rejects) == ["bad_record", "missing_field", "multiple_choices",
                                                             "unknown_object", "unknown_object"]
        assert any(r.where.endswith("output.manifest:3") for r in parsed.rejects)


def test_a_manifest_alone_gives_the_jobs_consolidated_labels(tmp_path):
    manifest = tmp_path / "output.manifest"
    failed = {"source-ref": "s3://b/img9.jpg", "animals-metadata": {"type": "groundtruth/image-classification",
                                                                    "failure-reason": "ClientError: no worker answered"}}
    multi = {"source-ref": "s3://b/img8.jpg", "animals": [1], "animals-metadata": {
        "type": "groundtruth/image-classification-multilabel", "class-map": {"0": "cat", "1": "dog"}, "job-name": "animals"}}
    manifest.write_text("\n".join(json.dumps(x) for x in [line(0, "cat"), line(1, "dog", human="no"), failed, multi,
                                                         {"animals": 0}]) + "\n")
    parsed = read(export(manifest))
    assert parsed.votes.select("item_ref", "worker_id", "label").rows() == [
        ("s3://my-bucket/raw/img0.jpg", "ground-truth:animals", "cat"),
        ("s3://my-bucket/raw/img1.jpg", "ground-truth-auto:animals", "dog"),  # labelled by the job's own model
        ("s3://b/img8.jpg", "ground-truth:animals", "dog")]  # a one-label answer of a multi-label job, named
    assert [(r.reason, r.details[:11]) for r in parsed.rejects] == [("labeling_failed", "ClientError"),
                                                                   ("missing_field", "no source-r")]
    with pytest.raises(InputError, match="votes_from is workers"):
        read(export(manifest, votes_from="workers"))


def test_a_custom_jobs_manifest_keeps_every_workers_answer(tmp_path):
    record = {"source-ref": "s3://b/img0.jpg", "pets": {"annotationsFromAllWorkers": [
        {"workerId": "private.w1", "annotationData": {"content": json.dumps({"pet": {"label": "cat"}})}},
        {"workerId": "private.w2", "annotationData": {"content": json.dumps({"pet": {"label": "dog"}})}}]},
        "pets-metadata": {"type": "groundtruth/custom", "job-name": "pets", "human-annotated": "yes"}}
    manifest = tmp_path / "output.manifest"
    manifest.write_text(json.dumps(record) + "\n")
    assert read(export(manifest)).votes.select("worker_id", "label").rows() == [("private.w1", "cat"), ("private.w2", "dog")]


def test_detect_refuses_other_json_lines_and_reads_the_latest_of_chained_jobs(tmp_path):
    other = tmp_path / "votes.jsonl"
    other.write_text(json.dumps({"image": "a.jpg", "worker": "w", "label": "cat"}) + "\n")
    with pytest.raises(InputError, match="not a SageMaker Ground Truth manifest"):
        detect(str(other))
    with pytest.raises(InputError, match="not a Ground Truth job folder"):
        detect(str(tmp_path))
    chained = {**line(0, "cat", "first"), **line(0, "dog", "second", **{"creation-date": "2021-01-01T00:00:00"})}
    manifest = tmp_path / "output.manifest"
    manifest.write_text(json.dumps(chained) + "\n")
    assert detect(str(manifest)) == {"label_attribute": "second"}
    assert detect(str(job(tmp_path, [line(0, "cat")]))) == {}
    assert read(export(manifest, label_attribute="second")).votes["label"].to_list() == ["dog"]


def test_s3_image_references_land_on_the_images_of_the_same_names(lake, tmp_path):
    uris = ["/photos/img0.jpg", "/photos/img1.jpg"]
    lake.merge_insert("raw_images", pa.Table.from_pylist([
        {"image_id": hashlib.sha256(u.encode()).hexdigest(), "content": u.encode(), "source": "t", "source_uri": u,
         "source_label": None, "fetched_at": NOW, "run_id": "r"} for u in uris]))
    folder = job(tmp_path, [line(0, "cat"), line(1, "dog")], {
        "0": [answer("private.a", classifier("cat"))], "1": [answer("private.a", classifier("dog"))]})
    stats = land_export(lake, export(folder), ItemIndex.from_lake(lake), "r")
    assert (stats.new, stats.quarantined, stats.pending_items) == (2, 0, 0)
    landed = pl.from_arrow(lake.read("crowd_votes"))
    assert landed["image_id"].null_count() == 0 and landed["image_id"].n_unique() == 2
