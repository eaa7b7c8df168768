"""``sluice lake maintain``: compact small files and vacuum old ones, safe under concurrent writers.

Two kinds of file can go:

- **removed** files: a commit removed them (overwrite, compaction) longer ago than the retention.
  Only readers of old versions need them; ``--retention-hours 0`` is allowed.
- **orphans**: files no commit references. Most are leftovers of writes that died, but a write in
  flight looks exactly the same until it commits, and deleting its file would leave HEAD pointing at
  nothing. So orphans younger than :data:`ORPHAN_FLOOR_HOURS` are never touched, whatever the
  retention says, and the report counts them as ``held``.

Files of any Delta version a tagged dataset (or the workspace snapshot) references are always kept.
Nothing is committed when there is nothing to do: deltalake's vacuum writes two commits per call, so
it is only called for files that exist and are due.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sluice.dvc_store import export_outs, tags
from sluice.errors import SluiceError, UserError
from sluice.lake_health import readable

#: Uncommitted files younger than this are never deleted: longer than any sluice write takes to commit.
ORPHAN_FLOOR_HOURS = 1


class VacuumRefused(UserError):
    """Vacuuming could delete files a tagged dataset needs."""


def protected_versions(root: Path | None, workspace_manifest: Path | None,
                       erased: set[str] = frozenset()) -> tuple[dict[str, set[int]], list[str]]:
    """table -> Delta versions that tagged datasets (and the workspace snapshot) need; + unreadable tags.
    Tags whose commit is in ``erased`` (snapshots purged by `sluice erase`) need nothing."""
    from sluice.versions import load_version

    keep: dict[str, set[int]] = {}
    unknown: list[str] = []

    def add(manifest: dict) -> None:
        for table, version in (manifest.get("table_versions") or {}).items():
            if version is not None:
                keep.setdefault(table, set()).add(int(version))

    if root is not None:
        for name, commit, _ in tags(root):
            if commit in erased or export_outs(root, commit) is None:
                continue
            try:
                add(load_version(root, commit).manifest)
            except SluiceError as err:
                unknown.append(f"{name} ({err})")
    if workspace_manifest is not None and workspace_manifest.is_file():
        add(json.loads(workspace_manifest.read_text()))
    return keep, unknown


@dataclass
class TableReport:
    table: str
    version_before: int
    version_after: int
    compacted: dict
    removed: list[str]
    orphans: list[str]
    held: list[str]  # orphans older than the retention but younger than the floor: kept for in-flight writes
    kept_versions: list[int]
    broken_versions: list[int]
    deferred: list[str]  # steps that lost every commit race to busy writers (the next run does them)


def maintain_table(lake, name: str, keep: set[int], retention_hours: int, target_file_mb: int,
                   dry_run: bool) -> TableReport:
    """Compact small files, then vacuum removed files older than the retention and orphans older than
    ``max(retention, ORPHAN_FLOOR_HOURS)``, except the files of the versions in ``keep``."""
    table = lake.table(name)
    before = table.version()
    missing = sorted(v for v in keep if v > before)
    if missing:
        raise VacuumRefused(f"{name}: a tagged dataset references version(s) {missing} but the table is at version "
                            f"{before} (is this the right lake?); refusing to vacuum")
    compacted, deferred = {}, []
    if not dry_run:
        compacted = _unless_overtaken(lambda: _compact(lake, name, target_file_mb), lake, f"compact {name}",
                                      deferred) or {}
    kept = sorted(keep)
    orphan_hours = max(retention_hours, ORPHAN_FLOOR_HOURS)
    removed = _due(lake, name, kept, retention_hours, full=False)
    orphans = _due(lake, name, kept, orphan_hours, full=True) - removed
    held = _due(lake, name, kept, retention_hours, full=True) - removed - orphans
    if not dry_run:
        if removed:
            _unless_overtaken(lambda: _vacuum(lake, name, kept, retention_hours, full=False), lake,
                              f"vacuum {name}", deferred)
        if orphans:
            _unless_overtaken(lambda: _vacuum(lake, name, kept, orphan_hours, full=True), lake,
                              f"vacuum orphans of {name}", deferred)
    broken = [v for v in kept if not readable(lake, name, v)]
    return TableReport(name, before, lake.table(name).version(),
                       {k: compacted.get(k) for k in ("numFilesAdded", "numFilesRemoved")},
                       sorted(removed), sorted(orphans), sorted(held), kept, broken, deferred)


def _compact(lake, name: str, target_file_mb: int) -> dict:
    from sluice.compaction_lock import compaction_lock

    with compaction_lock(lake.uri(name)):  # and the table loaded inside it (see sluice/compaction_lock.py)
        return lake.table(name).optimize.compact(target_size=target_file_mb << 20)


def _unless_overtaken(step, lake, what: str, deferred: list[str]):
    """Run a maintenance ``step`` with the lake's commit retries; if writers' commits keep overtaking it
    (each retry conflicts with a compaction or repair that landed meanwhile), leave it to the next run
    and say so in ``deferred``: housekeeping never fails because the lake is busy."""
    from sluice.catalog import lost_commit_race, with_retries

    try:
        return with_retries(step, lake.retries, what)
    except Exception as err:
        if not lost_commit_race(err):
            raise
        deferred.append(what)
        return None


def _vacuum(lake, name: str, kept: list[int], hours: int, full: bool, dry_run: bool = False) -> list[str]:
    return lake.table(name).vacuum(dry_run=dry_run, full=full, retention_hours=hours, enforce_retention_duration=False,
                                   keep_versions=kept or None)


def _due(lake, name: str, kept: list[int], hours: int, full: bool) -> set[str]:
    """Files a vacuum would delete, relative to the table, that still exist (deltalake's dry run also
    lists files an earlier vacuum already deleted, which made every idle run report the same orphans)."""
    root = lake.uri(name).rstrip("/") + "/"
    listed = {f.removeprefix("file://").removeprefix(root) for f in _vacuum(lake, name, kept, hours, full, dry_run=True)}
    if "://" in lake.root:
        return listed
    return {f for f in listed if os.path.exists(root + f)}
