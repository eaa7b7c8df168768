"""Landing what source connectors read: batches merge-inserted into ``raw_images``, rejections to ``quarantine``.

Records are grouped into batches of ``ingest.batch_rows`` rows or ``ingest.batch_bytes`` bytes of
images, whichever comes first, so memory stays bounded by one batch: a batch is held as records, as
its Arrow table and through the Parquet write, ~8x its bytes at the peak (521 MB of photos in one
batch: 3.9 GB; in batches of 64 MiB: 0.87 GB; ``benchmarks/large_photos.py``), so 2,000 phone photos
of 5 MB would need ~80 GB. Each batch is one Delta commit; a rerun adds nothing (rows are keyed
by image id, source and URI). Every record is counted once as new, already present or quarantined, and the counts reconcile.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from ingest import source_labels
from ingest.sources.base import Record, content_id
from sluice.lake import Lake
from sluice.progress import ProgressLines, progress
from sluice.runs import utcnow
from sluice.stage import Quarantine, stage_logger


@dataclass
class IngestStats:
    seen: int = 0
    inserted: int = 0
    already_present: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    commit_s: list[float] = field(default_factory=list)  # per batch: the key check, append and compaction
    landed_labels: list[pa.Table] = field(default_factory=list)  # per batch: keys, labels and split hints read
    relabelled: int = 0  # rows given the label / split hint / subject the source now gives (ingest/source_labels.py)
    withdrawn: int = 0  # labelled rows whose file the source no longer holds: label withdrawn
    subjects_as_given: int = 0  # images whose subject landed as the source gives it (no pseudonym: sluice/privacy.py)

    def as_dict(self) -> dict:
        return {"seen": self.seen, "inserted": self.inserted, "already_present": self.already_present,
                "quarantined": self.quarantined, "quarantine_reasons": dict(self.reasons),
                "relabelled": self.relabelled, "labels_withdrawn": self.withdrawn,
                "subjects_as_given": self.subjects_as_given,
                "commits": commit_summary(self.commit_s)}


def commit_summary(seconds: list[float]) -> dict:
    """How many batches were committed and the median seconds of a commit (the key check, the append and
    any compaction; not the reading of the files) in the first and last tenth of them: whether a
    commit's cost grows with the table."""
    out: dict = {"batches": len(seconds)}
    if len(seconds) >= 10:
        tenth = len(seconds) // 10
        first, last = statistics.median(seconds[:tenth]), statistics.median(seconds[-tenth:])
        out |= {"median_s_first_tenth": round(first, 4), "median_s_last_tenth": round(last, 4),
                "last_vs_first": round(last / max(first, 1e-9), 3)}
    return out


def raw_batch(records: list[Record], source, run_id: str, now) -> pa.Table:
    """``records`` as rows of ``raw_images``."""
    return pa.table({
        "image_id": [r.image_id or content_id(r.content) for r in records],
        "content": pa.array([r.content for r in records], pa.binary()),
        "source": [source.name] * len(records),
        "source_uri": [r.uri for r in records],
        "item_id": pa.array([r.item_id for r in records], pa.string()),
        "source_label": pa.array([r.label for r in records], pa.string()),
        "split_hint": pa.array([r.split_hint for r in records], pa.string()),
        "license": pa.array([source.license] * len(records), pa.string()),
        "extra": pa.array([r.extra for r in records], pa.string()),
        "fetched_at": pa.array([now] * len(records), pa.timestamp("us", tz="UTC")),
        "run_id": [run_id] * len(records),
        "subject": pa.array([r.subject for r in records], pa.string()),
    })


def land(lake: Lake, source, records: Iterator[Record], run_id: str, batch_rows: int,
         batch_bytes: int | None = None, subject_name: Callable[[str], str] | None = None) -> IngestStats:
    """Write ``records`` to ``raw_images`` (and rejections to ``quarantine``) in batches of at most
    ``batch_rows`` records, cut earlier once their images hold ``batch_bytes``; each subject through
    ``subject_name`` (its pseudonym), or as given where that is None (counted)."""
    stats = IngestStats()
    good: list[Record] = []
    held = [0]  # bytes of the images in ``good``
    rejected = Quarantine("ingest", f"source:{source.name}", run_id)

    def flush():
        held[0] = 0
        if good:
            batch = raw_batch(good, source, run_id, utcnow())
            stats.landed_labels.append(batch.select(["image_id", "source_uri", *source_labels.RECONCILED]))
            started = time.perf_counter()
            inserted = lake.merge_insert("raw_images", batch, run_id=run_id)
            stats.commit_s.append(time.perf_counter() - started)
            stats.inserted += inserted
            stats.already_present += len(good) - inserted
            good.clear()
        rejected.write(lake)

    bar = progress(desc=f"ingest {source.name}", unit="img")
    # off a terminal: a line every few seconds (the bar's counterpart in logs, CI and dvc repro)
    lines = ProgressLines(stage_logger("ingest"), lambda elapsed: (
        f"{source.name}: {stats.seen:,} records read ({stats.seen / max(elapsed, 1e-9):,.0f}/s), "
        f"{stats.inserted:,} landed, {stats.already_present:,} already present, {stats.quarantined:,} quarantined"))
    for record in records:
        stats.seen += 1
        bar.update()
        lines.tick()
        if record.reject:
            stats.quarantined += 1
            stats.reasons[record.reject] += 1
            rejected.add(record.uri, record.reject, details=record.details)
        else:
            if record.subject is not None:
                if subject_name is None:
                    stats.subjects_as_given += 1
                else:
                    record.subject = subject_name(record.subject)
            good.append(record)
            held[0] += len(record.content or b"")
        if len(good) + len(rejected) >= batch_rows or (batch_bytes is not None and held[0] >= batch_bytes):
            flush()
    flush()
    bar.close()
    return stats


def ingest_source(lake: Lake, source, run_id: str, batch_rows: int, max_bytes: int,
                  batch_bytes: int | None = None, subject_name: Callable[[str], str] | None = None) -> IngestStats:
    """Read ``source`` with its kind's connector and land it; then its rows take the labels it gives now."""
    from sluice import connectors

    reader = connectors.get("source", source.kind).reader
    stats = land(lake, source, reader(source, max_bytes), run_id, batch_rows, batch_bytes, subject_name)
    done = source_labels.reconcile(lake, source.name, stats.landed_labels, run_id)
    stats.relabelled, stats.withdrawn, stats.landed_labels = done.relabelled, done.withdrawn, []
    return stats


def summarize(source, stats: IngestStats) -> dict:
    """The manifest entry of one source: its counts and their reconciliation line."""
    from sluice.runs import reconcile

    return stats.as_dict() | {"reconcile": reconcile(
        f"ingest:{source.name}", stats.seen, new=stats.inserted, already_present=stats.already_present,
        quarantined=stats.quarantined)}
