"""Label Studio JSON export: tasks, each with several annotations whose ``choices`` result is the vote.

The "JSON-MIN" export (one flat row per annotation: data fields, ``annotator``, the control's value)
is read too.

An annotation marked as the task's ground truth (``"ground_truth": true``: starred in Label Studio) lands as a known
answer (status ``gold``): the labels stage pins its item to it and scores workers against it, as Label Studio's own
agreement with ground truth does, and never counts it as a worker's vote.

The item is ``task.data[<data_key>]``; Label Studio's image references (``/data/local-files/?d=``,
``/data/upload/...``, ``http://host:8080/data/...``) are reduced to file names by ``sluice.items``.
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


class LabelStudioExport(VoteExport):
    """Label Studio JSON export: tasks with several annotations (choices) each."""

    kind: Literal["label_studio"]
    data_key: str = "image"  # key of task['data'] naming the item
    from_name: str | None = None  # only choices of this control; null = any choices result


def _worker(completed_by) -> str | None:
    value = (completed_by.get("email") or completed_by.get("id")) if isinstance(completed_by, dict) else completed_by
    return None if value is None or value == "" else str(value)


def _choices(result, from_name: str | None) -> list[str]:
    out = []
    for r in result if isinstance(result, list) else []:
        if isinstance(r, dict) and r.get("type") == "choices" and (from_name is None or r.get("from_name") == from_name):
            value = r.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            out.extend(str(c) for c in (choices if isinstance(choices, list) else []))
    return out


def _min_annotation(row: dict, from_name: str | None) -> list[dict]:
    """A JSON-MIN row (no ``annotations``, an ``annotator``) as the one annotation it is."""
    if "annotator" not in row or "data" in row:
        return []
    key = from_name or "choice"
    value = row.get(key)
    choices = value.get("choices") if isinstance(value, dict) else value
    choices = [] if choices is None else choices if isinstance(choices, list) else [choices]
    return [{"id": row.get("annotation_id", row.get("id")), "completed_by": row.get("annotator"),
             "created_at": row.get("created_at"), "ground_truth": row.get("ground_truth"),
             "result": [{"type": "choices", "from_name": key, "value": {"choices": choices}}]}]


def _load(path: Path, name: str) -> list:
    require_file(path, f"Label Studio export '{name}'")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); expected a Label Studio JSON export") from None
    if not isinstance(tasks, list):
        raise InputError(f"{path}: expected a list of tasks (Label Studio 'JSON' export), got {type(tasks).__name__}")
    return tasks


def read(export: LabelStudioExport) -> Parsed:
    path = Path(export.path)
    rows, rejects, created = [], [], []
    for n, task in enumerate(_load(path, export.name)):
        if not isinstance(task, dict):
            rejects.append(Reject(f"{path}:task[{n}]", "not_a_task", f"expected an object, got {type(task).__name__}"))
            continue
        task_id = str(task.get("id", n))
        data, annotations = task.get("data"), task.get("annotations") or task.get("completions")
        if data is not None and not isinstance(data, dict) or annotations is not None and not isinstance(annotations, list):
            field, value = ("data", data) if data is not None and not isinstance(data, dict) else ("annotations", annotations)
            rejects.append(Reject(f"{path}:task {task_id}", "bad_field",
                                  f"task {field} is a {type(value).__name__}, expected {'an object' if field == 'data' else 'a list'}"))
            continue
        item = (data or task).get(export.data_key)
        annotations = annotations or _min_annotation(task, export.from_name)
        if item is None or str(item).strip() == "":
            for _ in annotations or [None]:
                rejects.append(Reject(f"{path}:task {task_id}", "missing_field", f"task has no data.{export.data_key}"))
            continue
        for a in annotations:
            where = f"{path}:task {task_id}/annotation {a.get('id') if isinstance(a, dict) else '?'}"
            if not isinstance(a, dict):
                rejects.append(Reject(where, "not_an_annotation", f"expected an object, got {type(a).__name__}"))
                continue
            worker = _worker(a.get("completed_by"))
            choices = _choices(a.get("result"), export.from_name)
            if a.get("was_cancelled"):
                rejects.append(Reject(where, "skipped_annotation", "the annotator skipped the task"))
            elif worker is None:
                rejects.append(Reject(where, "missing_field", "annotation has no completed_by"))
            elif len(choices) != 1:
                reason = "no_choice" if not choices else "multiple_choices"
                rejects.append(Reject(where, reason, f"{len(choices)} choices{' from ' + export.from_name if export.from_name else ''}: {choices[:5]}"))
            else:
                # an annotation starred as the task's ground truth is a known answer (gold), not one more vote
                rows.append({"item_ref": str(item).strip(), "worker_id": worker.strip(), "label": choices[0].strip(),
                             "task_id": task_id, "assignment": str(a.get("id", "")),
                             "status": "gold" if a.get("ground_truth") is True else "submitted"})
                created.append(a.get("created_at"))
    submitted, unparsed = times(created, parse_iso)
    votes = pl.DataFrame(rows, schema={k: v for k, v in VOTE_SCHEMA.items() if k != "submitted_at"}).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


_IMAGE_REF = r"(?i)(\.(jpe?g|png|gif|bmp|webp|tiff?|heic)(\?.*)?$|^https?://|/data/(local-files|upload)/)"


# the keys of a JSON-MIN row that are not a control's answer
_MIN_META = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "task_id",
             "project", "completed_by", "ground_truth", "was_cancelled"}


def detect(path: str) -> dict:
    """``data_key`` when the tasks name their image under another key than ``image`` (``img``,
    ``image_url``, ``$photo``...): the one data key whose values look like image references; for a
    JSON-MIN export whose control is not named ``choice``, ``from_name``: the one key holding answers."""
    import re

    tasks = [t for t in _load(Path(path), Path(path).name)[:200] if isinstance(t, dict)]
    datas = [t["data"] if isinstance(t.get("data"), dict) else t for t in tasks]
    if not datas:
        return {}
    if not any({"data", "annotations", "completions", "annotator"} & set(t) for t in tasks):
        raise InputError(f"{path}: not a Label Studio export (no task has data, annotations or an annotator; its "
                         f"objects have {', '.join(sorted({k for t in tasks for k in t})[:12])})")
    found = {}
    if not any("image" in d for d in datas):
        keys = {k for d in datas for k, v in d.items() if isinstance(v, str) and re.search(_IMAGE_REF, v.strip())}
        if len(keys) != 1:
            raise InputError(f"{path}: cannot tell which task data key names the image (keys: "
                             f"{', '.join(sorted({k for d in datas for k in d}))}); set data_key on its labels.exports entry")
        found["data_key"] = keys.pop()
    minimal = [t for t in tasks if "annotator" in t and "data" not in t and "annotations" not in t]
    if minimal and not any("choice" in t for t in minimal):  # JSON-MIN: the choices sit under the control's name
        data_key = found.get("data_key", "image")
        controls = {k for t in minimal for k, v in t.items() if k not in _MIN_META and k != data_key
                    and (isinstance(v, str) or (isinstance(v, dict) and "choices" in v)
                         or (isinstance(v, list) and all(isinstance(c, str) for c in v)))}
        if len(controls) == 1:
            found["from_name"] = controls.pop()
    return found


CONNECTOR = Connector("votes", "label_studio", LabelStudioExport, read, "Label Studio JSON export (choices)",
                      detect=detect)
