"""Labelbox's export (v2, NDJSON): one line per data row, every labeler's label of it under its projects.

A line: ``{"data_row": {"external_id": "cat1.jpg", "global_key": ..., "row_data": "https://..."}, "projects":
{"<id>": {"labels": [{"label_details": {"created_by": "ann@example.com", "created_at": ...}, "annotations":
{"classifications": [{"name": "animal", "radio_answer": {"name": "cat"}}]}}, ...]}}}``. Each label is one
vote: its labeler (``created_by``) for the answer to the classification question (``question``: the one
global radio or checklist question the export holds, else named on the export). A JSON array of such
records is read too.

The item is the data row's ``external_id`` (the file name it was uploaded with), else its ``global_key``,
else its ``row_data`` URL. A line that is no JSON object, a row naming no image, a label without its
labeler, a skipped label, an answer of several options (a checklist) or none: a reject with its line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import polars as pl

from ingest.votes.base import VOTE_SCHEMA, Parsed, Reject, VoteExport, parse_iso, times
from sluice.connectors import Connector
from sluice.delimited import require_file
from sluice.errors import InputError

ITEM_FIELDS = ("external_id", "global_key", "row_data")
_SAMPLE = 200  # records read to find the question


class LabelboxExport(VoteExport):
    """A Labelbox export (v2 NDJSON, or a JSON array of its records)."""

    kind: Literal["labelbox"]
    question: str | None = None  # the classification's name; null = the one the export holds
    item_field: Literal["auto", "external_id", "global_key", "row_data"] = "auto"


def _records(path: Path, limit: int | None = None) -> list[tuple[int, object]]:
    """(line, record) of each record: a JSON array's items (line = position + 1) or each non-empty line."""
    require_file(path, f"Labelbox export '{path.name}'")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise InputError(f"{path}: not valid JSON ({err}); expected a Labelbox export") from None
        return list(enumerate(records if isinstance(records, list) else [], 1))[:limit]
    out: list[tuple[int, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((number, json.loads(line)))
            except (ValueError, RecursionError):
                out.append((number, None))
            if limit and len(out) >= limit:
                break
    return out


def _labels(record: dict) -> list[tuple[str, int, object]]:
    """(project, position, label) of every label of a record, across its projects."""
    projects = record.get("projects") if isinstance(record.get("projects"), dict) else {}
    return [(p, k, label) for p, project in projects.items() if isinstance(project, dict)
            for k, label in enumerate(project.get("labels") or [])]


def _classifications(label) -> list[dict]:
    """A label's global classifications (those of the whole image, not of an object in it)."""
    annotations = label.get("annotations") if isinstance(label, dict) else None
    found = annotations.get("classifications") if isinstance(annotations, dict) else None
    return [c for c in found or [] if isinstance(c, dict)]


def _answer(classification: dict) -> list[str]:
    radio = classification.get("radio_answer")
    if isinstance(radio, dict):
        return [str(radio.get("name") or radio.get("value") or "")] if radio.get("name") or radio.get("value") else []
    checks = classification.get("checklist_answers")
    return [str(c.get("name") or c.get("value")) for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


def _item(row: dict, field: str) -> str | None:
    for name in ITEM_FIELDS if field == "auto" else (field,):
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def read(export: LabelboxExport) -> Parsed:
    path = Path(export.path)
    rows, rejects, created = [], [], []
    for number, record in _records(path):
        where = f"{path}:{number}"
        row = record.get("data_row") if isinstance(record, dict) else None
        if not isinstance(row, dict):
            rejects.append(Reject(where, "bad_record", "not a Labelbox record (no data_row object)"))
            continue
        item = _item(row, export.item_field)
        labels = _labels(record)
        if item is None:
            rejects += [Reject(where, "missing_field", f"the data row has no {' or '.join(ITEM_FIELDS)}")] * max(len(labels), 1)
            continue
        for project, k, label in labels:
            at = f"{where}/label {label.get('id', k) if isinstance(label, dict) else k}"
            details = label.get("label_details") if isinstance(label, dict) and isinstance(label.get("label_details"), dict) else {}
            worker = details.get("created_by")
            skipped = isinstance(label, dict) and (label.get("label_kind") == "Skipped" or
                                                   (label.get("performance_details") or {}).get("skipped") is True)
            answers = [a for c in _classifications(label) if export.question in (None, c.get("name"), c.get("value"))
                       for a in _answer(c)]
            if skipped:
                rejects.append(Reject(at, "skipped_annotation", "the labeler skipped the data row"))
            elif not worker:
                rejects.append(Reject(at, "missing_field", "the label has no label_details.created_by"))
            elif len(answers) != 1:
                rejects.append(Reject(at, "no_choice" if not answers else "multiple_choices",
                                      f"{len(answers)} answers{' to ' + export.question if export.question else ''}: {answers[:5]}"))
            else:
                rows.append({"item_ref": item, "worker_id": str(worker).strip(), "label": answers[0].strip(),
                             "task_id": str(row.get("id", number)), "assignment": str(label.get("id", f"{project}/{k}")),
                             "status": "submitted"})
                created.append(details.get("created_at"))
    submitted, unparsed = times(created, parse_iso)
    votes = pl.DataFrame(rows, schema={k: v for k, v in VOTE_SCHEMA.items() if k != "submitted_at"}).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


def detect(path: str) -> dict:
    """``question`` where the export's labels answer several classification questions (an InputError naming
    them); an InputError where the file is no Labelbox export."""
    records = [r for _, r in _records(Path(path), _SAMPLE) if isinstance(r, dict)]
    if not records or not all("data_row" in r for r in records):
        raise InputError(f"{path}: not a Labelbox export (no line with data_row and projects)")
    names = sorted({str(c.get("name") or c.get("value")) for r in records for _, _, label in _labels(r)
                    for c in _classifications(label) if "radio_answer" in c or "checklist_answers" in c})
    if len(names) > 1:
        raise InputError(f"{path}: its labels answer several classification questions ({', '.join(names[:8])}); add "
                         "the export to labels.exports in params.yaml with kind: labelbox and question: <the one to read>")
    return {}


CONNECTOR = Connector("votes", "labelbox", LabelboxExport, read, "Labelbox export (v2 NDJSON): each labeler's label",
                      detect=detect)
