"""Removing the older versions of a table that still hold erased rows.

A delete writes a new version; every older version keeps its Parquet files, and the older commits of
the Delta log keep column statistics (min/max values: image ids among them). delta-rs cannot rewrite
history, so the older versions are expired, whichever writer is about:

1. vacuum with zero retention every file a commit removed (old versions' data), and, as
   ``sluice lake maintain`` does, orphan files older than :data:`sluice.maintenance.ORPHAN_FLOOR_HOURS`
   only: a younger orphan may be a write in flight (``--verify`` reports one that holds erased data);
2. write a checkpoint at HEAD and drop the log before it (``cleanup_metadata`` with the log retention
   set to zero for that call, then set back), so the old commits and their statistics are gone.

Afterwards the table's history starts at that checkpoint: time travel to an earlier version fails in
one line (``sluice sql --at``, ``sluice history``), and dataset versions that recorded one can no
longer be rebuilt from the lake (``sluice dataset rebuild``); their DVC snapshots are handled by
:mod:`sluice.erasure_snapshots`. A writer that read the table before the expiry and commits after it
fails with a conflict and reruns; a reader of an old version in flight fails.
"""

from __future__ import annotations

from sluice.catalog import with_retries

LOG_RETENTION = "delta.logRetentionDuration"
DEFAULT_LOG_RETENTION = "interval 30 days"  # Delta's default, written back when the table had none set


def expire_history(lake, name: str) -> dict:
    """Vacuum removed files (and old orphans), then drop the log before a fresh checkpoint.

    Returns ``{"files": n deleted, "version": HEAD after}``."""
    from sluice.maintenance import ORPHAN_FLOOR_HOURS

    def vacuum(hours: int, full: bool) -> list[str]:
        return lake.table(name).vacuum(dry_run=False, full=full, retention_hours=hours,
                                       enforce_retention_duration=False)

    deleted = with_retries(lambda: vacuum(0, False), lake.retries, f"vacuum {name}")
    deleted += with_retries(lambda: vacuum(ORPHAN_FLOOR_HOURS, True), lake.retries, f"vacuum orphans of {name}")
    before = lake.table(name).metadata().configuration.get(LOG_RETENTION)
    _set_log_retention(lake, name, "interval 0 seconds")
    try:
        table = lake.table(name)
        table.create_checkpoint()
        table.cleanup_metadata()
    finally:
        _set_log_retention(lake, name, before or DEFAULT_LOG_RETENTION)
    return {"files": len(deleted), "version": lake.table(name).version()}


def _set_log_retention(lake, name: str, value: str) -> None:
    with_retries(lambda: lake.table(name).alter.set_table_properties({LOG_RETENTION: value}, raise_if_not_exists=False),
                 lake.retries, f"set {LOG_RETENTION} on {name}")
