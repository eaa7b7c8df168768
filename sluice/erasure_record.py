"""The ``erasures`` audit table, and ``sluice erase`` from selector to report (:func:`erase`, :func:`verify`).

One row per erasure, appended, never updated or deleted: a uuid, the selector kind, the sha256 of each
selector value (a worker as its pseudonym), of each erased image id and of each erased pixel hash,
rows deleted per table, the tables whose history was expired, the dataset versions purged and how
many DVC objects went, the reason, the time and the run id. Never content, never a raw id: the
hashes are what ``--verify`` searches for, and someone who holds an image can tell from them that it
was erased, nothing more.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sluice.erasure_scan import Hit, Targets, scan_folder
from sluice.tombstones import all_targets


@dataclass
class Outcome:
    erasure_id: str | None
    counts: dict[str, int]
    expired: list[str] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    objects: int = 0
    workspace: bool = False
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: int = 0
    originals: list[str] = field(default_factory=list)  # local source files that still hold an erased image
    reports: list[Hit] = field(default_factory=list)  # stage manifests and quality reports that name erased data


def record(lake, sel, counts: dict, expired: list[str], versions: list[tuple[str, str]], objects: int,
           reason: str | None, run_id: str) -> str:
    import pyarrow as pa

    from sluice.runs import utcnow

    targets = sel.targets()
    erasure_id = uuid.uuid4().hex
    row = {"erasure_id": erasure_id, "selector": sel.kind, "selector_hashes": sorted(targets.values),
           "image_hashes": sorted(targets.ids), "pixel_hashes": sorted(targets.pixels),
           "rows_deleted": json.dumps(counts, sort_keys=True), "tables_expired": sorted(expired),
           "versions_purged": [f"{c} {n}" for c, n in versions], "objects_purged": objects,
           "reason": reason, "erased_at": utcnow(), "run_id": run_id}
    lake.append("erasures", pa.Table.from_pylist([row]), run_id=run_id)
    return erasure_id


def lake_hits(lake, targets: Targets) -> list[Hit]:
    """Erased data in any file under a local lake (every table, every version, the Delta logs)."""
    if "://" in lake.root:
        return []
    return scan_folder(Path(lake.root), targets)


def erase(lake, params, kind: str, raw_values: list[str], reason: str | None, purge: bool, dry_run: bool,
          root: Path | None) -> Outcome:
    """Delete from the lake, expire older versions, find (and with ``purge`` delete) DVC copies, record."""
    from sluice import erasure
    from sluice.erasure_history import expire_history
    from sluice.runs import new_run_id

    values = erasure.stored_values(kind, raw_values, params)
    sel = erasure.resolve(lake, kind, values)
    run_id = new_run_id("erase")
    snapshot_dir = Path(params.export.out_dir)
    if dry_run:
        out = Outcome(None, erasure.plan(lake, sel), images=len(sel.ids), originals=_originals(sel.uris))
        _find_snapshots(out, root, _with_history(lake, sel.targets()), snapshot_dir, purge=False)
        return out
    counts = erasure.delete(lake, sel, run_id, params.dataset.seed)
    targets = sel.targets()
    expired = []
    for name in _tables_holding(lake, targets, touched={t for t, n in counts.items() if n}):
        expire_history(lake, name)
        expired.append(name)
    out = Outcome(None, counts, expired, images=len(sel.ids), originals=_originals(sel.uris))
    _find_snapshots(out, root, _with_history(lake, targets), snapshot_dir, purge)
    out.erasure_id = record(lake, sel, counts, expired, out.versions if purge else [], out.objects if purge else 0,
                            reason, run_id)
    out.hits = lake_hits(lake, targets)
    base = root or Path.cwd()
    out.reports = [h for place in (params.paths.manifests, params.quality.reports_dir)
                   for h in scan_folder(base / place, targets, label=place)]
    return out


def _originals(uris: set[str]) -> list[str]:
    """The erased images' URIs that are local files still there (an image folder source): the next ingest
    would land them again."""
    paths = (Path(u.removeprefix("file://")) for u in sorted(uris) if "://" not in u or u.startswith("file://"))
    return [str(p) for p in paths if p.is_file()]


def _with_history(lake, targets: Targets) -> Targets:
    merged = all_targets(lake)
    merged.update(targets)
    return merged


def _tables_holding(lake, targets: Targets, touched: set[str]) -> list[str]:
    """Tables whose files (any version, any log entry) hold erased data, or whose HEAD just lost rows."""
    from sluice.catalog import TABLES

    names = []
    for name in TABLES:
        if name == "erasures" or not lake.exists(name):
            continue
        if name in touched or ("://" not in lake.root and scan_folder(Path(lake.uri(name)), targets)):
            names.append(name)
    return names


def _find_snapshots(out: Outcome, root: Path | None, targets: Targets, snapshot_dir: Path, purge: bool) -> None:
    from sluice import erasure_snapshots as snaps

    if root is None:
        out.notes.append("not in a git repository: no dataset versions or DVC cache to check")
        return
    store = snaps.Store.open(root)
    try:
        finding = snaps.find(root, targets, root / snapshot_dir, store)
        out.versions, out.unchecked, out.workspace = finding.versions, finding.unchecked, finding.workspace
        out.notes += finding.notes
        if purge:
            out.objects = snaps.purge(finding, store, root / snapshot_dir)
        else:
            out.objects = len(finding.objects)
    finally:
        store.close()


def verify(lake, params, root: Path | None) -> tuple[list[Hit], list[str], int]:
    """(hits, notes, erasures checked): every erased hash searched for in the lake, DVC and the workspace."""
    from sluice import erasure_snapshots as snaps

    targets = all_targets(lake)
    notes = []
    count = lake.count("erasures") if lake.exists("erasures") else 0
    if not targets:
        return [], ["no erasures recorded: nothing to look for"], count
    hits = lake_hits(lake, targets)
    if "://" in lake.root:
        notes.append(f"the lake at {lake.root} is not local: its files were not scanned")
    places = [params.export.out_dir, params.paths.manifests, params.quality.reports_dir]
    if root is not None:
        store = snaps.Store.open(root)
        try:
            finding = snaps.find(root, targets, root / params.export.out_dir, store)
        finally:
            store.close()
        hits += finding.hits
        notes += finding.notes
        notes += [f"dataset version {v}: its snapshot listing is in neither the cache nor the remote (not checked)"
                  for v in finding.unchecked]
        places = places[1:]
        base = root
    else:
        notes.append("not in a git repository: no DVC cache or remote checked")
        base = Path.cwd()
    for place in places:
        hits += scan_folder(base / place, targets, label=place)
    return hits, notes, count
