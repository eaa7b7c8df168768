"""The ``ingest_crowd`` stage: land every configured vote export in ``crowd_votes`` exactly once.

``vote_id`` is a stable hash of the format, the assignment or annotation, the worker and the item as
exported, so a re-ingested export adds nothing and an assignment submitted twice counts once (the last copy in the
file wins); a vote already landed whose label, status or time the export now gives otherwise (a batch downloaded
again after more rejections) is updated in place and counted as changed. Labels
land as exported (trimmed): checking them against the class list is the labels stage's job, because the
class list can change after votes land. Each vote also keeps its normalised item name (``item``) and
the export's ``item_key`` (see ``sluice.items``), and the image it resolves to *now* (``image_id``,
null while its image has not landed: the vote is pending, not rejected; the labels stage re-resolves
every vote on every run). Rows that cannot be a vote at all (no worker, no label, a skipped
annotation) go to ``quarantine`` only, with the file and line (never the worker). Worker IDs are
pseudonymised before anything lands (``sluice.privacy``; ``privacy.pseudonymize_workers``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ingest.votes.base import Parsed, named_labels
from sluice.connectors import get
from sluice.errors import InputError
from sluice.items import ItemIndex, normalize
from sluice.lake import Lake
from sluice.privacy import worker_pseudonymizer
from sluice.stage import Quarantine, stage_logger

STAGE = "ingest_crowd"
log = stage_logger(STAGE)


def vote_ids(fmt: str, votes: pl.DataFrame) -> pl.Series:
    keys = zip(votes["assignment"].to_list(), votes["worker_id"].to_list(), votes["item_ref"].to_list())
    return pl.Series("vote_id", [hashlib.sha256(f"{fmt}\x1f{a}\x1f{w}\x1f{i}".encode()).hexdigest()[:32] for a, w, i in keys],
                     pl.String)


@dataclass
class ExportStats:
    rows: int = 0
    new: int = 0
    already_present: int = 0
    changed: int = 0  # of already_present, votes whose label, status or time the export now gives otherwise: updated
    erased: int = 0  # votes of erased data (an erased worker, image or subject's images): not landed again
    duplicates: int = 0
    rejected_assignments: int = 0
    known_answers: int = 0  # rows an export marks as the item's known answer (status gold: Label Studio's ground truth)
    pending_items: int = 0  # votes of the export whose item matches no landed image (yet)
    shared_items: int = 0  # of those, votes whose item names several landed files (never resolves by waiting)
    shared_example: str = ""
    pending_example: str = ""  # one item of the votes waiting for their image
    images_landed: int = 0  # raw_images' rows when the export landed (0: votes first, waiting is expected)
    quarantined: int = 0
    unparsed_times: int = 0
    no_answer: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def vote_rows(parsed: Parsed, export, index: ItemIndex, run_id: str) -> pl.DataFrame:
    """The export's votes as ``crowd_votes`` rows, one per vote_id: the last occurrence wins (a worker who answers
    an item again further down the file changed their answer; a later copy of an assignment is the newer one)."""
    votes = parsed.votes.with_columns(named_labels(parsed.votes["label"], export.class_names))
    item = normalize(votes["item_ref"], export.item_pattern, export.item_replace).alias("item")
    return (
        votes.with_columns(vote_ids(export.kind, votes), item)
        .with_columns(index.resolve(votes.select(item)["item"], export.item_key).alias("image_id"))
        .unique("vote_id", keep="last", maintain_order=True)
        .select("vote_id", "item_ref", "item", pl.lit(export.item_key).alias("item_key"), "image_id", "worker_id",
                "label", "task_id", "status", "submitted_at",
                pl.lit(Path(export.path).as_posix()).alias("source_file"), pl.lit(export.kind).alias("source_format"),
                pl.lit(run_id).alias("run_id"))
    )


UPDATED = ["label", "status", "submitted_at", "run_id"]  # what a re-downloaded export may change in a landed vote


def changed_votes(lake: Lake, rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``rows`` already in ``crowd_votes`` whose label, status or submission time differ from the landed
    ones: an MTurk batch downloaded again after more assignments were rejected, a Label Studio annotation whose answer
    was corrected. Same vote (same vote_id), new values: they are updated in place, not ignored."""
    if not rows.height or not lake.exists("crowd_votes"):
        return rows.clear()
    landed = pl.from_arrow(lake.read("crowd_votes", ["vote_id", *UPDATED[:-1]]))
    both = rows.join(landed.with_columns(pl.col("vote_id").cast(pl.String)), on="vote_id", suffix="__landed")
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}__landed")) for c in UPDATED[:-1]])
    return both.filter(differs).select(rows.columns)


def _not_erased(lake: Lake, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` without the votes of erased data (sluice/tombstones.py), counted apart: they are neither already
    present nor pending an image that will never land."""
    from sluice import tombstones

    if not rows.height:
        return rows
    return pl.from_arrow(tombstones.drop_erased("crowd_votes", rows.to_arrow(), tombstones.all_targets(lake)))


def update_changed(lake: Lake, changed: pl.DataFrame, run_id: str) -> int:
    """Set the new label, status and time (and this run's id) on ``changed`` votes; Delta's history keeps the earlier
    values (time travel). A vote of erased data is never written again, updates included (sluice/tombstones.py)."""
    from sluice import tombstones

    if not changed.height:
        return 0
    data = tombstones.drop_erased("crowd_votes", changed.to_arrow(), tombstones.all_targets(lake))
    return lake.update_columns("crowd_votes", data.select(["vote_id", *UPDATED]), UPDATED, run_id=run_id,
                               operation="update changed votes") if data.num_rows else 0


def land_export(lake: Lake, export, index: ItemIndex, run_id: str,
                pseudonymize: Callable[[str], str] | None = None) -> ExportStats:
    """Read one export and land its votes; worker IDs go through ``pseudonymize`` first (sluice.privacy)."""
    parsed = get("votes", export.kind).reader(export)
    if pseudonymize is not None and parsed.votes.height:
        raw_ids = parsed.votes["worker_id"].unique()
        names = pl.Series([pseudonymize(w) for w in raw_ids], dtype=pl.String)
        parsed.votes = parsed.votes.with_columns(pl.col("worker_id").replace_strict(raw_ids, names))
    rows = vote_rows(parsed, export, index, run_id)
    stats = ExportStats(rows=parsed.rows, duplicates=parsed.votes.height - rows.height,
                        rejected_assignments=int((rows["status"] == "rejected").sum()),
                        known_answers=int((rows["status"] == "gold").sum()), unparsed_times=parsed.unparsed_times,
                        no_answer=parsed.no_answer)
    kept = _not_erased(lake, rows)
    stats.erased, rows = rows.height - kept.height, kept
    changed = changed_votes(lake, rows)
    stats.new = lake.merge_insert("crowd_votes", rows.to_arrow(), run_id=run_id)
    stats.already_present = rows.height - stats.new
    stats.changed = update_changed(lake, changed, run_id)
    stats.pending_items = int(rows["image_id"].null_count())
    if stats.pending_items:
        pending = rows.filter(pl.col("image_id").is_null())
        many = index.shared(pending["item"], export.item_key)
        shared, waiting = pending.filter(many), pending.filter(~many)
        stats.shared_items = shared.height
        stats.shared_example = shared["item"][0] if shared.height else ""
        stats.pending_example = waiting["item"][0] if waiting.height else ""
        stats.images_landed = index.raw.height
    quarantine = Quarantine(STAGE, "crowd_votes", run_id)
    for r in parsed.rejects:
        quarantine.add(r.where, r.reason, r.reason, r.details)
    quarantine.write(lake)  # a rerun lands none of them again (the table is keyed), but they are rows of this file
    stats.quarantined = len(parsed.rejects)
    stats.reasons = Counter(r.reason for r in parsed.rejects)
    return stats


def _waiting_hint(s: ExportStats) -> str:
    """One item still waiting for its image and, where images have landed, what to set when they are the same
    photos under other names (another folder, a prefix, an id): waiting will not resolve those."""
    if not s.pending_example:
        return ""
    hint = (": if its image has landed under another name, set item_key or item_pattern on the export"
            if s.images_landed else "")
    return f", e.g. {s.pending_example!r}{hint}"


def _report(name: str, s: ExportStats) -> str:
    from sluice.runs import reconcile

    reconcile(f"{STAGE}:{name}", s.rows, new=s.new, already_present=s.already_present, duplicates=s.duplicates,
              quarantined=s.quarantined, **({"erased": s.erased} if s.erased else {}))
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items())) or "none"
    note = f", timestamps not parsed {s.unparsed_times} (landed without)" if s.unparsed_times else ""
    if s.known_answers:
        note += f", known answers (gold, not votes) {s.known_answers}"
    if s.no_answer:
        note += f", cells with no answer {s.no_answer} (empty, NaN or no_answer)"
    waiting = s.pending_items - s.shared_items
    pending = f", pending (no image landed yet{_waiting_hint(s)}) {waiting}" if waiting else ""
    if s.shared_items:  # a name two folders share: waiting will not resolve it
        pending += (f", pending (the item names several landed files, e.g. {s.shared_example!r}: key the votes "
                    f"by a longer path, or set item_key / item_pattern) {s.shared_items}")
    changed = f" (changed since landed: {s.changed}, updated)" if s.changed else ""
    erased = f", of erased data (not landed again) {s.erased}" if s.erased else ""
    return (f"{name}: rows {s.rows}, new votes {s.new}, already present {s.already_present}{changed}{erased}, "
            f"duplicates {s.duplicates}, rejected assignments {s.rejected_assignments}, "
            f"quarantined {s.quarantined} ({reasons}){pending}{note}")


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
    pseudonymize = worker_pseudonymizer(params.privacy.pseudonymize_workers)
    lake = Lake.from_params(params)
    index = ItemIndex.from_lake(lake)
    run_id = new_run_id(STAGE)
    summary = {}
    for export in exports:
        stats = land_export(lake, export, index, run_id, pseudonymize)
        summary[export.name] = stats.as_dict()
        log.info(_report(export.name, stats))
        if stats.rows == 0:  # a warning, not an error: an export of a batch nobody has answered yet is still one
            what = "header only" if Path(export.path).suffix.lower() in (".csv", ".tsv", ".txt") else "no records"
            log.warning(f"{export.name}: no votes in {export.path} ({what}): nothing landed from it")
    return {"run_id": run_id, "exports": summary,
            "versions": {t: lake.version(t) for t in ("crowd_votes", "quarantine")},
            "rows": {t: lake.count(t) for t in ("crowd_votes", "quarantine")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)
