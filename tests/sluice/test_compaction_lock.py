"""One compaction of a table at a time, planned on HEAD: deltalake would otherwise double the rows."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.compute as pc
from deltalake import DeltaTable

from sluice import key_index
from sluice.compaction_lock import LOCK_NAME, compaction_lock, local_folder
from sluice.catalog import spec
from sluice.lake import Lake
from sluice.maintenance import maintain_table
from tests.sluice.test_auto_compact import _batch


def _rows(lake: Lake) -> tuple[int, int]:
    ids = lake.read("raw_images", columns=["image_id"]).column("image_id")
    return len(ids), pc.count_distinct(ids).as_py()


def test_deltalake_doubles_rows_when_a_stale_compaction_commits(lake):
    """Why the lock exists (fails, and the lock can go, once deltalake detects the conflict itself)."""
    for b in range(4):
        lake.append("raw_images", _batch(b, 5))
    stale = DeltaTable(lake.uri("raw_images"))
    DeltaTable(lake.uri("raw_images")).optimize.compact()
    stale.optimize.compact()
    assert _rows(lake) == (40, 20)


def test_merge_inserts_compaction_plans_on_head_after_another_process_compacted(lake, monkeypatch):
    import sluice.lake

    monkeypatch.setattr(sluice.lake, "AUTO_COMPACT_FILES", 100)
    for b in range(4):
        lake.merge_insert("raw_images", _batch(b, 5))
    index = key_index.index_for(lake.uri("raw_images"), spec("raw_images").keys, None)  # this writer's
    DeltaTable(lake.uri("raw_images")).optimize.compact()  # another process, after this writer's last refresh
    monkeypatch.setattr(sluice.lake, "AUTO_COMPACT_FILES", 4)
    lake._compact_small_files("raw_images", index, 5, None)  # due by this writer's (stale) index
    assert _rows(lake) == (20, 20)
    assert (Path(lake.uri("raw_images")) / LOCK_NAME).is_file()
    assert lake.merge_insert("raw_images", _batch(4, 5)) == 5  # and the index follows
    assert _rows(lake) == (25, 25)


def test_maintain_waits_for_a_compaction_in_progress_and_then_compacts_head(lake):
    for b in range(4):
        lake.append("raw_images", _batch(b, 5))
    holding, done = threading.Event(), threading.Event()
    reports = []

    def maintain():
        holding.wait()
        reports.append(maintain_table(lake, "raw_images", set(), 0, 128, dry_run=False))
        done.set()

    worker = threading.Thread(target=maintain)
    worker.start()
    with compaction_lock(lake.uri("raw_images")):  # another compactor, mid-way
        holding.set()
        assert not done.wait(1.0)  # maintain is blocked on the lock
        DeltaTable(lake.uri("raw_images")).optimize.compact()
    worker.join(60)
    assert _rows(lake) == (20, 20)
    assert reports[0].compacted["numFilesRemoved"] in (0, None) and reports[0].deferred == []


def test_object_storage_has_no_local_lock():
    assert local_folder("s3://bucket/lake/raw_images") is None
    assert local_folder("file:///data/lake/raw_images") == "/data/lake/raw_images"
    with compaction_lock("s3://bucket/lake/raw_images"):
        pass
