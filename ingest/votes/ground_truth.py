"""Amazon SageMaker Ground Truth: a labeling job's output manifest and, where present, each worker's answer.

A job writes ``manifests/output/output.manifest`` (JSON Lines: one line per data object, the input line plus
the label attribute, e.g. ``{"source-ref": "s3://bucket/cat1.jpg", "animals": 0, "animals-metadata":
{"class-name": "cat", "type": "groundtruth/image-classification", "human-annotated": "yes", ...}}``) and
every worker's answer under ``annotations/worker-response/iteration-N/<object>/<time>.json``, ``<object>``
being the line's position in the manifest (``{"answers": [{"workerId": ..., "answerContent":
{"crowd-image-classifier": {"label": "cat"}}, "submissionTime": ...}]}``).

Given the job's folder (or a manifest inside one), the votes are the workers' answers: what the labels
stage aggregates. Given a manifest alone they are the job's consolidated labels, one a data object, from
one pseudo-worker per job (``ground-truth:<job>``, or ``ground-truth-auto:<job>`` for objects its automated
labeling labelled, ``human-annotated: no``); a custom job whose manifest keeps ``annotationsFromAllWorkers``
gives each worker's answer from the manifest itself. A line that is no JSON object, an object without an
image, a job's failure (``failure-reason``), an answer with several labels (multi-label jobs) or none: a
reject with its file and line (or object), nothing else lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes.base import VOTE_SCHEMA, Parsed, Reject, VoteExport, parse_iso, times
from sluice.connectors import Connector
from sluice.errors import InputError

MANIFEST = Path("manifests") / "output" / "output.manifest"
RESPONSES = Path("annotations") / "worker-response"
_SAMPLE = 200  # manifest lines read to find the label attribute


class GroundTruthExport(VoteExport):
    """A SageMaker Ground Truth job: its folder, or its output manifest."""

    kind: Literal["ground_truth"]
    item_field: str = "source-ref"  # the manifest field naming the image
    label_attribute: str | None = None  # the job's label attribute; null = the one the manifest's metadata names
    votes_from: Literal["auto", "workers", "consolidated"] = "auto"  # auto: workers' answers where the folder has them


def _paths(path: Path) -> tuple[Path, Path | None]:
    """The manifest and the worker-response folder (None where there is none) of a job folder or manifest."""
    if path.is_dir():
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise InputError(f"{path}: not a Ground Truth job folder (no {MANIFEST})")
        job = path
    elif path.is_file():
        manifest, job = path, path.parents[2] if len(path.parents) > 2 and path.parent.name == "output" else None
    else:
        raise InputError(f"{path}: Ground Truth output not found")
    responses = job / RESPONSES if job is not None and (job / RESPONSES).is_dir() else None
    return manifest, responses


def _lines(manifest: Path, limit: int | None = None) -> list[tuple[int, dict | None, str]]:
    """(line number, the object or None, the text) of each non-empty line."""
    out = []
    with manifest.open(encoding="utf-8-sig", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                record = None
            out.append((number, record if isinstance(record, dict) else None, text.strip()[:80]))
            if limit and len(out) >= limit:
                break
    return out


def _attributes(record: dict) -> list[str]:
    """The label attributes of a manifest line: ``X`` with an ``X-metadata`` object naming a Ground Truth type."""
    return [key[: -len("-metadata")] for key, meta in record.items()
            if key.endswith("-metadata") and isinstance(meta, dict) and str(meta.get("type", "")).lower().startswith("groundtruth/")]


def _answer_label(content) -> list[str]:
    """The labels of one answer's content, wherever the template put them (``{"crowd-image-classifier":
    {"label": "cat"}}``, a custom form's ``{"category": {"label": "cat"}}``, a multi-select's ``labels``)."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except (ValueError, RecursionError):
            return [content]
    if isinstance(content, dict):
        for key in ("label", "labels"):
            value = content.get(key)
            if isinstance(value, str):
                return [value]
            if isinstance(value, list):
                return [str(v) for v in value]
        for value in content.values():
            found = _answer_label(value)
            if found:
                return found
    return []


def _responses(responses: Path):
    """(where, data object, text) of each worker-response file, iteration by iteration, object by object
    (``os.scandir`` and plain strings: a job of 100,000 objects is as many folders)."""
    root = str(responses)
    for iteration in sorted(e.name for e in os.scandir(root) if e.name.startswith("iteration-") and e.is_dir()):
        objects = sorted((e.name for e in os.scandir(os.path.join(root, iteration)) if e.is_dir()),
                         key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
        for obj in objects:
            folder = os.path.join(root, iteration, obj)
            for name in sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json")):
                where = f"{RESPONSES}/{iteration}/{obj}/{name}"
                try:
                    with open(os.path.join(folder, name), "rb") as f:
                        yield where, obj, f.read().decode("utf-8-sig")
                except (OSError, UnicodeDecodeError):
                    yield where, obj, ""


def _vote(rows: list, rejects: list, where: str, item: str, worker, labels: list[str], task: str, assignment: str,
          at, created: list) -> None:
    if not worker:
        rejects.append(Reject(where, "missing_field", "the answer has no workerId"))
    elif len(labels) != 1:
        rejects.append(Reject(where, "no_choice" if not labels else "multiple_choices", f"{len(labels)} labels: {labels[:5]}"))
    else:
        rows.append({"item_ref": item, "worker_id": str(worker).strip(), "label": labels[0].strip(), "task_id": task,
                     "assignment": assignment, "status": "submitted"})
        created.append(at)


def read(export: GroundTruthExport) -> Parsed:
    manifest, responses = _paths(Path(export.path))
    workers = export.votes_from == "workers" or (export.votes_from == "auto" and responses is not None)
    if workers and responses is None:
        raise InputError(f"{export.path}: votes_from is workers but there is no {RESPONSES} folder beside {manifest}")
    rows: list[dict] = []
    rejects: list[Reject] = []
    created: list = []
    items: dict[str, str] = {}  # a data object's position in the manifest -> its image
    for position, (number, record, text) in enumerate(_lines(manifest)):
        where = f"{manifest}:{number}"
        if record is None:
            rejects.append(Reject(where, "bad_record", f"not a JSON object: {text}"))
            continue
        item = str(record.get(export.item_field) or "").strip()
        if not item:
            rejects.append(Reject(where, "missing_field", f"no {export.item_field}"))
            continue
        items[str(position)] = item
        if not workers:
            _consolidated(record, export, where, item, str(position), rows, rejects, created)
    if workers:
        for where, obj, text in _responses(responses):
            item = items.get(obj)
            try:
                answers = json.loads(text).get("answers")
            except (ValueError, AttributeError, RecursionError):
                answers = None
            if item is None or not isinstance(answers, list):
                rejects.append(Reject(where, "unknown_object" if item is None else "bad_record",
                                      f"no readable manifest line for object {obj}" if item is None else "no answers list"))
                continue
            for k, a in enumerate(answers):
                a = a if isinstance(a, dict) else {}
                _vote(rows, rejects, f"{where}/answer {k}", item, a.get("workerId"), _answer_label(a.get("answerContent")),
                      obj, f"{where.rsplit('/', 3)[-3]}/{where.rsplit('/', 1)[-1]}/{k}", a.get("submissionTime"), created)
    submitted, unparsed = times(created, parse_iso)
    votes = pl.DataFrame(rows, schema={k: v for k, v in VOTE_SCHEMA.items() if k != "submitted_at"}).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


def _consolidated(record: dict, export: GroundTruthExport, where: str, item: str, task: str, rows: list,
                  rejects: list, created: list) -> None:
    attribute = export.label_attribute or next(iter(_attributes(record)), None)
    meta = record.get(f"{attribute}-metadata") if attribute else None
    if not isinstance(meta, dict) or attribute not in record:
        reason = (meta or {}).get("failure-reason") if isinstance(meta, dict) else None
        rejects.append(Reject(where, "labeling_failed" if reason else "missing_field",
                              str(reason) if reason else f"no label attribute{' ' + attribute if attribute else ''}"))
        return
    value, job = record[attribute], str(meta.get("job-name", attribute)).rsplit("/", 1)[-1]
    if isinstance(value, dict) and isinstance(value.get("annotationsFromAllWorkers"), list):
        for k, a in enumerate(value["annotationsFromAllWorkers"]):
            a = a if isinstance(a, dict) else {}
            content = a.get("annotationData", {}).get("content") if isinstance(a.get("annotationData"), dict) else None
            _vote(rows, rejects, f"{where}/worker {k}", item, a.get("workerId"), _answer_label(content), task,
                  f"{task}/{k}", meta.get("creation-date"), created)
        return
    names, class_map = meta.get("class-name"), meta.get("class-map") if isinstance(meta.get("class-map"), dict) else {}
    labels = [names] if isinstance(names, str) else [str(class_map.get(str(v), v)) for v in value] \
        if isinstance(value, list) else [str(class_map.get(str(value), value))] if value is not None else []
    auto = str(meta.get("human-annotated", "yes")).lower() == "no"
    _vote(rows, rejects, where, item, f"ground-truth{'-auto' if auto else ''}:{job}", labels, task, task,
          meta.get("creation-date"), created)


def detect(path: str) -> dict:
    """``label_attribute`` where the manifest's lines name several Ground Truth attributes (chained jobs: the
    latest job's), none when one; an InputError where the file is no Ground Truth manifest."""
    manifest, _ = _paths(Path(path))
    lines = [r for _, r, _ in _lines(manifest, _SAMPLE) if r is not None]
    found = {a for r in lines for a in _attributes(r)}
    if not lines or not any("source-ref" in r for r in lines) or not found:
        raise InputError(f"{path}: not a SageMaker Ground Truth manifest (no line with source-ref and a label "
                         "attribute whose -metadata names a groundtruth/ type)")
    if len(found) == 1:
        return {}
    # chained jobs: each line keeps every earlier job's attribute; the latest job's is read (named in params.yaml)
    latest = {a: max((str(r[f"{a}-metadata"].get("creation-date", "")) for r in lines if isinstance(r.get(f"{a}-metadata"), dict)),
                     default="") for a in found}
    return {"label_attribute": max(sorted(found), key=lambda a: latest[a])}


CONNECTOR = Connector("votes", "ground_truth", GroundTruthExport, read,
                      "SageMaker Ground Truth job: workers' answers, or its output manifest", detect=detect)
