"""Batched, idempotent landing of a crawl's fetches in the lake, on one writer thread.

Rows collect in memory until ``batch_rows`` images, images of ``batch_bytes`` bytes, or twenty times as
many crawl_log rows (which are tiny) are pending; the batch then goes to a writer thread so Delta commits overlap with crawling. Each
batch commits ``raw_images`` (merge-insert by key: a re-crawl adds nothing), then ``quarantine``, then
``crawl_log``, and only then marks its URLs done in the job journal — so a URL is never "done"
unless its rows are in the lake. The queue holds at most two batches (memory stays bounded).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from ingest.crawl.items import Fetch
from ingest.crawl.journal import Journal
from sluice.lake import Lake, dumps_extra
from sluice.progress import ProgressLines, progress
from sluice.stage import Quarantine, stage_logger

TS = pa.timestamp("us", tz="UTC")
LOG_ROWS_PER_IMAGE_ROW = 20  # a no-op re-crawl of 10k URLs: one crawl_log commit


@dataclass
class Batch:
    images: list[Fetch] = field(default_factory=list)
    rejects: list[Fetch] = field(default_factory=list)
    logs: list[Fetch] = field(default_factory=list)
    image_bytes: int = 0


def image_rows(fetches: list[Fetch], source: str, run_id: str) -> pa.Table:
    return pa.table({
        "image_id": [hashlib.sha256(f.body).hexdigest() for f in fetches],
        "content": pa.array([f.body for f in fetches], pa.binary()),
        "source": [source] * len(fetches),
        "source_uri": [f.url for f in fetches],
        "item_id": [f.item_id for f in fetches],
        "source_label": [f.label for f in fetches],
        "split_hint": pa.array([f.split_hint for f in fetches], pa.string()),
        "license": [f.license for f in fetches],
        "extra": [dumps_extra(page_url=f.page_url, last_modified=f.last_modified, content_type=f.content_type,
                              alt=f.alt, gps_removed=f.gps_removed or None) for f in fetches],
        "fetched_at": pa.array([f.fetched_at for f in fetches], TS),
        "run_id": [run_id] * len(fetches),
    })


def quarantine_of(fetches: list[Fetch], source: str, run_id: str) -> Quarantine:
    """Rejected responses (and listed images that failed to arrive: ``fetch_failed``, with the error), keyed by URL
    under ``crawl:<source>``; merged, so a re-crawl adds nothing."""
    quarantine = Quarantine("crawl", f"crawl:{source}", run_id)
    for f in fetches:
        reason = f.reason or "fetch_failed"
        quarantine.add(f.url, reason, reason, f.details or f.error)
    return quarantine


def log_rows(fetches: list[Fetch], run_id: str) -> pa.Table:
    return pa.table({
        "url": [f.url for f in fetches],
        "status": pa.array([f.status for f in fetches], pa.int32()),
        "bytes": pa.array([f.bytes for f in fetches], pa.int64()),
        "referer": [f.referer for f in fetches],
        "robots": [f.robots for f in fetches],
        "outcome": [f.outcome for f in fetches],
        "error": [f.error or f.details for f in fetches],
        "fetched_at": pa.array([f.fetched_at for f in fetches], TS),
        "run_id": [run_id] * len(fetches),
        "etag": [f.etag for f in fetches],
        "last_modified": [f.last_modified for f in fetches],
        "from_cache": pa.array([f.from_cache for f in fetches], pa.bool_()),
    })


class LakeSink:
    """Collects fetches and lands them; ``close()`` flushes, joins the writer and returns the counters."""

    def __init__(self, lake: Lake, source: str, run_id: str, batch_rows: int, journal: Journal | None = None,
                 on_error: Callable[[BaseException], None] | None = None, batch_bytes: int | None = None):
        self.lake, self.source, self.run_id, self.batch_rows = lake, source, run_id, batch_rows
        self.batch_bytes = batch_bytes
        self.journal, self.on_error = journal, on_error
        self.outcomes: Counter = Counter()
        self.inserted = self.already_present = self.quarantined = self.commits = self.unlabelled = 0
        self.from_cache = self.pages_not_modified = 0
        self.error: BaseException | None = None
        self._pending = Batch()
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self._bar = progress(desc=f"crawl {source}", unit="fetch")
        self._lines = ProgressLines(stage_logger("crawl"), self._progress_line)
        self._thread = threading.Thread(target=self._writer, name="crawl-lake-writer", daemon=True)
        self._thread.start()

    def add(self, fetch: Fetch) -> None:
        if self.error is not None:
            return  # the crawl is being stopped; nothing more can land
        self.outcomes[fetch.outcome] += 1
        self.from_cache += bool(fetch.from_cache)
        self.pages_not_modified += fetch.outcome == "not_modified" and fetch.kind == "page"
        self._bar.update()
        self._lines.tick()
        batch = self._pending
        if fetch.outcome == "image":
            self.unlabelled += fetch.label is None
            batch.images.append(fetch)
            batch.image_bytes += len(fetch.body)
        elif fetch.quarantined:
            batch.rejects.append(fetch)
        batch.logs.append(fetch)
        if (len(batch.images) >= self.batch_rows or len(batch.logs) >= LOG_ROWS_PER_IMAGE_ROW * self.batch_rows
                or (self.batch_bytes is not None and batch.image_bytes >= self.batch_bytes)):
            self._handoff()

    def _handoff(self) -> None:
        batch, self._pending = self._pending, Batch()
        if batch.logs:
            self._queue.put(batch)

    def _writer(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                self._commit(batch)
            except BaseException as err:  # reported by close(); the crawl is asked to stop
                self.error = err
                if self.on_error:
                    self.on_error(err)

    def _commit(self, batch: Batch) -> None:
        if batch.images:
            new = self.lake.merge_insert("raw_images", image_rows(batch.images, self.source, self.run_id), run_id=self.run_id)
            self.inserted += new
            self.already_present += len(batch.images) - new
        if batch.rejects:
            quarantine_of(batch.rejects, self.source, self.run_id).write(self.lake)
            self.quarantined += len(batch.rejects)
        self.lake.append("crawl_log", log_rows(batch.logs, self.run_id), run_id=self.run_id)
        self.commits += 1
        if self.journal is not None:
            self.journal.mark_done(sorted({f.url for f in batch.logs if f.outcome not in ("redirect", "robots")}))

    def close(self) -> dict:
        self._handoff()
        self._queue.put(None)
        self._thread.join()
        self._bar.close()
        if self.error is not None:
            raise self.error
        return self.counters()

    def _progress_line(self, seconds: float) -> str:
        o = self.outcomes
        requests, dropped = sum(o.values()), sum(v for k, v in o.items() if k.startswith("dropped:"))
        return (f"progress: {requests} requests ({requests / max(seconds, 1e-9):.1f}/s), pages {o['page']}, "
                f"images {o['image']} ({o['image'] / max(seconds, 1e-9):.1f}/s, {self.inserted} landed new so far), "
                f"not modified {o['not_modified']} (pages {self.pages_not_modified}), "
                f"dropped {dropped}, errors {o['error']}; {seconds:.0f}s")

    def counters(self) -> dict:
        dropped = {k.removeprefix("dropped:"): v for k, v in sorted(self.outcomes.items()) if k.startswith("dropped:")}
        return {"requests": sum(self.outcomes.values()), "pages": self.outcomes["page"],
                "images": self.outcomes["image"], "pages_not_modified": self.pages_not_modified,
                "not_modified": self.outcomes["not_modified"] - self.pages_not_modified,
                "from_cache": self.from_cache, "unlabelled": self.unlabelled, "new_images": self.inserted,
                "already_present": self.already_present, "quarantined": self.quarantined,
                "redirects": self.outcomes["redirect"], "errors": self.outcomes["error"],
                "dropped": dropped, "commits": self.commits}
