"""Crowd vote connectors: MTurk batch results CSV, Label Studio JSON export, plain long CSV.

Every vote lands in ``crowd_votes`` exactly once (``vote_id`` is a stable hash of the format, the
assignment or annotation, the worker and the item, so a re-ingested export adds nothing and an
assignment submitted twice counts once). Labels are stored as exported (trimmed); checking them
against the class list is the labels stage's job, because the class list can change after votes land.
Items are resolved against ``raw_images`` by ``source_uri`` (file path, ``file#row`` or URL) or by
``image_id``; a vote on an item that is not in ``raw_images`` still lands, with a null ``image_id``,
and is also written to ``quarantine`` as ``unknown_item``. Rows that cannot be a vote at all (no
worker, no label, a skipped annotation) go to ``quarantine`` only, with the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa

from sluice.config import CsvVotesExport, LabelStudioExport, MTurkExport
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.runs import utcnow

STAGE = "ingest_crowd"
DELIMITERS = (",", "\t", ";", "|")
MTURK_STATUS = {"approved": "approved", "rejected": "rejected", "submitted": "submitted"}
# MTurk writes times like "Sun Nov 29 10:00:00 PST 2026"; these are the zones it uses.
TZ_HOURS = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5, "EST": -5, "EDT": -4}
VOTE_SCHEMA = {"item_ref": pl.String, "worker_id": pl.String, "label": pl.String, "task_id": pl.String,
               "assignment": pl.String, "status": pl.String, "submitted_at": pl.Datetime("us", "UTC")}


@dataclass
class Reject:
    where: str  # file:line or file:task/annotation
    reason: str
    details: str


@dataclass
class Parsed:
    """What a reader made of one export: candidate votes and the rows that could not be votes."""

    votes: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    unparsed_times: int = 0

    @property
    def rows(self) -> int:
        return self.votes.height + len(self.rejects)


# ---------------------------------------------------------------------------- CSV plumbing
def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if not path.is_file():
        raise InputError(f"{path}: {what} must be a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what} is empty (0 bytes); an export with no votes still has its header")


def _header(path: Path) -> str:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return fh.readline().rstrip("\r\n")


def read_delimited(path: Path, required: list[str], delimiter: str | None, what: str) -> pl.DataFrame:
    """Read a CSV as strings, choosing the delimiter that yields every required column.

    A header that none of the candidates splits into the required columns is a user error naming the
    missing columns, or the delimiter when nothing splits the header at all.
    """
    _require_file(path, what)
    header = _header(path)
    candidates = [delimiter] if delimiter else list(DELIMITERS)
    parsed = {d: next(csv.reader([header], delimiter=d)) for d in candidates}
    chosen = next((d for d, cols in parsed.items() if set(required) <= set(cols)), None)
    if chosen is None:
        _, cols = max(parsed.items(), key=lambda kv: len(kv[1]))
        if len(cols) == 1 and delimiter is None:
            raise InputError(f"{path}: cannot split the header '{header[:80]}' on any of , ; tab | (unknown delimiter); "
                             f"set delimiter for {what}")
        missing = [c for c in required if c not in cols]
        raise InputError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} in {what} "
                         f"(header has {', '.join(repr(c) for c in cols)}); set the column names in params.yaml")
    try:
        frame = pl.read_csv(path, separator=chosen, infer_schema=False, encoding="utf8-lossy",
                            raise_if_empty=False, missing_columns="insert")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        raise InputError(f"{path}: malformed CSV ({str(err).splitlines()[0]})") from None
    stripped = [pl.col(c).str.strip_chars() for c in frame.columns]
    return frame.with_columns(pl.when(c != "").then(c).otherwise(None).name.keep() for c in stripped)


def _missing_field_rejects(frame: pl.DataFrame, path: Path, needed: dict[str, str]) -> tuple[pl.DataFrame, list[Reject]]:
    """Split off rows lacking a worker, item or label (line numbers count the header as line 1)."""
    frame = frame.with_row_index("__line", offset=2)
    bad = pl.any_horizontal([pl.col(c).is_null() for c in needed])
    rejects = [Reject(f"{path}:{row['__line']}", "missing_field",
                      "empty " + ", ".join(what for c, what in needed.items() if row[c] is None))
               for row in frame.filter(bad).iter_rows(named=True)]
    return frame.filter(~bad).drop("__line"), rejects


def _parse_mturk_time(text: str | None) -> datetime | None:
    parts = (text or "").split()
    if len(parts) != 6 or parts[4] not in TZ_HOURS:
        return None
    try:
        naive = datetime.strptime(" ".join(parts[:4] + parts[5:]), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(timedelta(hours=TZ_HOURS[parts[4]]))).astimezone(timezone.utc)


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _times(texts: list[str | None], parse) -> tuple[pl.Series, int]:
    values = [parse(t) for t in texts]
    unparsed = sum(1 for t, v in zip(texts, values) if t and v is None)
    return pl.Series("submitted_at", values, dtype=pl.Datetime("us", "UTC")), unparsed


# ---------------------------------------------------------------------------- readers
def read_mturk(export: MTurkExport) -> Parsed:
    """MTurk batch results: one row per assignment; a rejected assignment lands with status ``rejected``."""
    path = Path(export.path)
    needed = {"AssignmentId": "AssignmentId", "WorkerId": "WorkerId", export.item_column: "item", export.label_column: "label"}
    frame = read_delimited(path, list(needed), export.delimiter, f"MTurk export '{export.name}'")
    frame, rejects = _missing_field_rejects(frame, path, needed)
    for optional in ("HITId", "AssignmentStatus", "SubmitTime", "Reject"):
        if optional not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(optional))
    status = (pl.when(pl.col("Reject").is_not_null()).then(pl.lit("rejected"))
              .otherwise(pl.col("AssignmentStatus").str.to_lowercase().replace_strict(MTURK_STATUS, default="submitted"))
              .fill_null("submitted"))
    submitted, unparsed = _times(frame["SubmitTime"].to_list(), _parse_mturk_time)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col("WorkerId").alias("worker_id"),
        pl.col(export.label_column).alias("label"), pl.col("HITId").alias("task_id"),
        pl.col("AssignmentId").alias("assignment"), status.alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


def _ls_worker(completed_by) -> str | None:
    if isinstance(completed_by, dict):
        value = completed_by.get("email") or completed_by.get("id")
    else:
        value = completed_by
    return None if value is None or value == "" else str(value)


def _ls_choices(result, from_name: str | None) -> list[str]:
    out = []
    for r in result or []:
        if isinstance(r, dict) and r.get("type") == "choices" and (from_name is None or r.get("from_name") == from_name):
            out.extend(str(c) for c in (r.get("value") or {}).get("choices") or [])
    return out


def read_label_studio(export: LabelStudioExport) -> Parsed:
    """Label Studio JSON export: ``[{id, data: {<item_key>: ...}, annotations: [{completed_by, result}]}]``."""
    path = Path(export.path)
    _require_file(path, f"Label Studio export '{export.name}'")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); expected a Label Studio JSON export") from None
    if not isinstance(tasks, list):
        raise InputError(f"{path}: expected a list of tasks (Label Studio 'JSON' export), got {type(tasks).__name__}")
    rows, rejects, times = [], [], []
    for n, task in enumerate(tasks):
        if not isinstance(task, dict):
            rejects.append(Reject(f"{path}:task[{n}]", "not_a_task", f"expected an object, got {type(task).__name__}"))
            continue
        task_id = str(task.get("id", n))
        item = (task.get("data") or {}).get(export.item_key)
        annotations = task.get("annotations") or task.get("completions") or []
        if item is None or str(item).strip() == "":
            for a in annotations or [None]:
                rejects.append(Reject(f"{path}:task {task_id}", "missing_field", f"task has no data.{export.item_key}"))
            continue
        for a in annotations:
            where = f"{path}:task {task_id}/annotation {a.get('id') if isinstance(a, dict) else '?'}"
            if not isinstance(a, dict):
                rejects.append(Reject(where, "not_an_annotation", f"expected an object, got {type(a).__name__}"))
                continue
            worker = _ls_worker(a.get("completed_by"))
            choices = _ls_choices(a.get("result"), export.from_name)
            if a.get("was_cancelled"):
                rejects.append(Reject(where, "skipped_annotation", f"annotator {worker} skipped the task"))
            elif worker is None:
                rejects.append(Reject(where, "missing_field", "annotation has no completed_by"))
            elif len(choices) != 1:
                reason = "no_choice" if not choices else "multiple_choices"
                rejects.append(Reject(where, reason, f"{len(choices)} choices{' from ' + export.from_name if export.from_name else ''}: {choices[:5]}"))
            else:
                rows.append({"item_ref": str(item).strip(), "worker_id": worker.strip(), "label": choices[0].strip(),
                             "task_id": task_id, "assignment": str(a.get("id", "")), "status": "submitted"})
                times.append(a.get("created_at"))
    submitted, unparsed = _times(times, _parse_iso)
    votes = pl.DataFrame(rows, schema={k: v for k, v in VOTE_SCHEMA.items() if k != "submitted_at"}).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


def read_csv_votes(export: CsvVotesExport) -> Parsed:
    """A long CSV: item, worker, label and optionally a timestamp (ISO 8601) and a task id."""
    path = Path(export.path)
    needed = {export.item_column: "item", export.worker_column: "worker", export.label_column: "label"}
    required = list(needed) + [c for c in (export.time_column, export.task_column) if c]
    frame = read_delimited(path, required, export.delimiter, f"vote CSV '{export.name}'")
    frame, rejects = _missing_field_rejects(frame, path, needed)
    times = frame[export.time_column].to_list() if export.time_column else [None] * frame.height
    submitted, unparsed = _times(times, _parse_iso)
    task = pl.col(export.task_column) if export.task_column else pl.lit(None, pl.String)
    votes = frame.select(
        pl.col(export.item_column).alias("item_ref"), pl.col(export.worker_column).alias("worker_id"),
        pl.col(export.label_column).alias("label"), task.alias("task_id"),
        task.fill_null("").alias("assignment"), pl.lit("submitted").alias("status"),
    ).with_columns(submitted)
    return Parsed(votes, rejects, unparsed)


READERS = {"mturk": read_mturk, "label_studio": read_label_studio, "csv": read_csv_votes}


# ---------------------------------------------------------------------------- item resolution
def normalize_ref(refs: pl.Expr) -> pl.Expr:
    return refs.str.strip_chars().str.strip_prefix("file://")


def item_index(lake: Lake) -> pl.DataFrame:
    """``ref -> image_id`` for every way a vote may name a landed image: source_uri, its absolute path, image_id.

    A URI landed more than once with different bytes (a re-crawled URL) resolves to the latest fetch.
    """
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_uri", "fetched_at"]))
    local = raw.filter(~pl.col("source_uri").str.contains("://", literal=True))
    absolute = local.with_columns(pl.Series("source_uri", [os.path.abspath(u) for u in local["source_uri"]], pl.String))
    return (
        pl.concat([raw, absolute, raw.with_columns(pl.col("image_id").alias("source_uri"))])
        .sort("fetched_at", descending=True)
        .unique("source_uri", keep="first", maintain_order=True)
        .select(pl.col("source_uri").alias("ref"), "image_id")
    )


def resolve_items(votes: pl.DataFrame, index: pl.DataFrame, ref_column: str = "item_ref") -> pl.Series:
    """The image_id each vote's item reference names, null where no landed image matches."""
    refs = votes.select(normalize_ref(pl.col(ref_column)).alias("ref"))
    return refs.join(index, on="ref", how="left", maintain_order="left")["image_id"]


# ---------------------------------------------------------------------------- landing
def vote_ids(fmt: str, votes: pl.DataFrame) -> pl.Series:
    keys = zip(votes["assignment"].to_list(), votes["worker_id"].to_list(), votes["item_ref"].to_list())
    return pl.Series("vote_id", [hashlib.sha256(f"{fmt}\x1f{a}\x1f{w}\x1f{i}".encode()).hexdigest()[:32] for a, w, i in keys],
                     pl.String)


@dataclass
class ExportStats:
    rows: int = 0
    new: int = 0
    already_present: int = 0
    duplicates: int = 0
    rejected_assignments: int = 0
    unknown_items: int = 0
    quarantined: int = 0
    unparsed_times: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def quarantine_frame(rows: list[tuple[str, str, str, str]], source_table: str, run_id: str, now) -> pa.Table:
    """Quarantine rows from ``(row_key, check, reason, details)`` tuples."""
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "source_table": [source_table] * len(rows), "row_key": [r[0] for r in rows], "stage": [STAGE] * len(rows),
        "check": [r[1] for r in rows], "reason": [r[2] for r in rows], "details": [r[3] for r in rows],
        "run_id": [run_id] * len(rows), "quarantined_at": pa.array([now] * len(rows), ts),
    })


def vote_rows(parsed: Parsed, export, index: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """The export's votes as ``crowd_votes`` rows, one per vote_id (first occurrence kept)."""
    votes = parsed.votes
    return (
        votes.with_columns(vote_ids(export.kind, votes), resolve_items(votes, index).alias("image_id"))
        .unique("vote_id", keep="first", maintain_order=True)
        .select("vote_id", "item_ref", "image_id", "worker_id", "label", "task_id", "status", "submitted_at",
                pl.lit(Path(export.path).as_posix()).alias("source_file"), pl.lit(export.kind).alias("source_format"),
                pl.lit(run_id).alias("run_id"))
    )


def land_export(lake: Lake, export, index: pl.DataFrame, run_id: str) -> ExportStats:
    parsed = READERS[export.kind](export)
    rows = vote_rows(parsed, export, index, run_id)
    stats = ExportStats(rows=parsed.rows, duplicates=parsed.votes.height - rows.height,
                        rejected_assignments=int((rows["status"] == "rejected").sum()), unparsed_times=parsed.unparsed_times)
    now = utcnow()
    stats.new = lake.merge_insert("crowd_votes", rows.to_arrow(), run_id=run_id)
    stats.already_present = rows.height - stats.new
    unknown = rows.filter(pl.col("image_id").is_null())
    stats.unknown_items = unknown.height
    quarantine = [(r.where, r.reason, r.reason, r.details) for r in parsed.rejects]
    quarantine += [(v, "unknown_item", "unknown_item",
                    json.dumps({"item_ref": ref, "source_file": export.path, "worker_id": w}, sort_keys=True))
                   for v, ref, w in unknown.select("vote_id", "item_ref", "worker_id").iter_rows()]
    if quarantine:
        lake.merge_insert("quarantine", quarantine_frame(quarantine, "crowd_votes", run_id, now), run_id=run_id)
    stats.quarantined = len(parsed.rejects)
    stats.reasons = Counter(r.reason for r in parsed.rejects)
    if unknown.height:
        stats.reasons["unknown_item"] = unknown.height
    return stats


def _report(name: str, s: ExportStats) -> str:
    from sluice.runs import reconcile

    reconcile(f"{STAGE}:{name}", s.rows, new=s.new, already_present=s.already_present, duplicates=s.duplicates,
              quarantined=s.quarantined)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items())) or "none"
    note = f", timestamps not parsed {s.unparsed_times} (landed without)" if s.unparsed_times else ""
    return (f"[{STAGE}] {name}: rows {s.rows}, new votes {s.new}, already present {s.already_present}, "
            f"duplicates {s.duplicates}, rejected assignments {s.rejected_assignments}, "
            f"quarantined {s.quarantined + s.unknown_items} ({reasons}){note}")


def run(params, only: str | None = None) -> dict:
    """Land every configured vote export (or just ``only``) and return the stage summary."""
    from sluice.runs import new_run_id

    exports = [e for e in params.labels.exports if only is None or e.name == only]
    if only is not None and not exports:
        names = ", ".join(e.name for e in params.labels.exports) or "none configured"
        raise InputError(f"no vote export named '{only}' in labels.exports (exports: {names})")
    for e in exports:
        if not Path(e.path).exists():
            raise InputError(f"{e.path}: file of vote export '{e.name}' does not exist")
    lake = Lake.from_params(params)
    if not lake.exists("raw_images"):
        print(f"[{STAGE}] raw_images does not exist yet: every vote will be an unknown item (run ingest first)")
    index = item_index(lake)
    run_id = new_run_id(STAGE)
    summary = {}
    for export in exports:
        stats = land_export(lake, export, index, run_id)
        summary[export.name] = stats.as_dict()
        print(_report(export.name, stats))
        if stats.rows == 0:
            print(f"[{STAGE}] {export.name}: the export holds no votes")
    return {"run_id": run_id, "exports": summary,
            "versions": {t: lake.version(t) for t in ("crowd_votes", "quarantine")},
            "rows": {t: lake.count(t) for t in ("crowd_votes", "quarantine")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
