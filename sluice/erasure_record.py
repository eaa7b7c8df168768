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
from sluice.errors import InputError
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
    reports: list[Hit] = field(default_factory=list)  # derived workspace files that name erased data (erasure_workspace)
    removed: list[str] = field(default_factory=list)  # past runs' report copies deleted (--purge-snapshots)
    cached: int = 0  # source-hash cache rows dropped (dry run: that would be)


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
           "reason": reason, "erased_at": utcnow(), "run_id": run_id, "name_hashes": sorted(targets.names)}
    lake.append("erasures", pa.Table.from_pylist([row]), run_id=run_id)
    return erasure_id


def lake_hits(lake, targets: Targets) -> list[Hit]:
    """Erased data in any file under a local lake (every table, every version, the Delta logs)."""
    if "://" in lake.root:
        return []
    return scan_folder(Path(lake.root), targets)


def erase(lake, params, kind: str, raw_values: list[str], reason: str | None, purge: bool, dry_run: bool,
          root: Path | None) -> Outcome:
    """Delete from the lake, expire older versions, find (and with ``purge`` delete) DVC copies and old run
    reports, drop the erased images from the source-hash cache, record. An erasure that finds nothing to
    erase (no row, no older version, no snapshot) changes nothing, records nothing and raises one line."""
    from sluice import erasure, erasure_workspace
    from sluice.erasure_history import expire_history
    from sluice.runs import new_run_id

    values = erasure.stored_values(kind, raw_values, params, lake)
    sel = erasure.resolve(lake, kind, values)
    run_id = new_run_id("erase")
    snapshot_dir = Path(params.export.out_dir)
    base = root or Path.cwd()
    plan = erasure.plan(lake, sel)
    targets = sel.targets()
    if dry_run:
        _require_found(lake, params, sel, kind, plan, None, root, snapshot_dir, purge)
        out = Outcome(None, plan, images=len(sel.ids), originals=_originals(sel.uris))
        _find_snapshots(out, root, _with_history(lake, targets), snapshot_dir, purge=False)
        out.cached = erasure_workspace.drop_cached_hashes(base, sel.ids, dry_run=True)
        out.reports = [h for h in erasure_workspace.scan(base, params, _with_history(lake, targets))  # the cache: said
                       if not (out.cached and h.where == erasure_workspace.paths.SOURCE_HASH_CACHE)]  # apart
        return out
    expired = _tables_holding(lake, targets, touched={t for t, n in plan.items() if n})
    _require_found(lake, params, sel, kind, plan, expired, root, snapshot_dir, purge)
    counts = erasure.delete(lake, sel, run_id, params.dataset.seed)
    for name in expired:
        expire_history(lake, name)
    out = Outcome(None, counts, expired, images=len(sel.ids), originals=_originals(sel.uris))
    _find_snapshots(out, root, _with_history(lake, targets), snapshot_dir, purge)
    out.erasure_id = record(lake, sel, counts, expired, out.versions if purge else [], out.objects if purge else 0,
                            reason, run_id)
    out.hits = lake_hits(lake, targets)
    out.cached = erasure_workspace.drop_cached_hashes(base, sel.ids)
    out.reports = erasure_workspace.scan(base, params, all_targets(lake))  # this erasure's and earlier ones' leftovers
    copies = erasure_workspace.run_report_copies(out.reports, params)
    if purge and copies:
        out.removed = erasure_workspace.delete_files(base, copies)
        out.reports = [h for h in out.reports if h.where not in out.removed]
    return out


def _require_found(lake, params, sel, kind: str, plan: dict, expired: list[str] | None, root: Path | None,
                   snapshot_dir: Path, purge: bool) -> None:
    """Raise one line, before anything changes, when the selector reaches nothing: no row at HEAD, no older
    version, no dataset version. An erasure repeated with ``--purge-snapshots`` goes on while dataset
    versions still hold what earlier erasures erased."""
    if any(plan.values()):
        return
    targets = sel.targets()
    if expired is None:  # a dry run: whether older versions hold it
        expired = _tables_holding(lake, targets, touched=set())
    if expired:
        return
    if root is not None and (targets.ids or targets.pixels):
        own = Outcome(None, plan)
        _find_snapshots(own, root, targets, snapshot_dir, purge=False)
        if own.versions or own.objects:
            return
    prior = all_targets(lake)
    already = bool(targets.ids and targets.ids <= prior.ids) or bool(targets.values & prior.values)
    flag = "--" + kind.replace("_", "-")
    if already:
        if purge:  # what earlier erasures left: dataset versions, past runs' report copies
            from sluice import erasure_workspace

            left = Outcome(None, plan)
            if root is not None:
                _find_snapshots(left, root, _with_history(lake, targets), snapshot_dir, purge=False)
            history = _with_history(lake, targets)
            if left.versions or left.objects or erasure_workspace.run_report_copies(
                    erasure_workspace.scan(root or Path.cwd(), params, history), params):
                return
        raise InputError(f"{flag}: already erased by an earlier erasure, nothing of it is left in the lake: nothing "
                         "done, nothing recorded (--purge-snapshots deletes dataset versions that still hold erased "
                         "data; `sluice erase --verify` checks)")
    hint = {"subject": "; a subject is matched as given and as its pseudonym under $SLUICE_PSEUDONYM_KEY, which must "
                       "be the key it landed with",
            "worker": "; a worker is matched by its pseudonym under $SLUICE_PSEUDONYM_KEY, which must be the key "
                      "its votes landed with"}.get(kind, "")
    raise InputError(f"{flag}: matches nothing in the lake (no row of any table, no older version, no dataset "
                     f"version): nothing erased, nothing recorded (check the value{hint})")


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
    from sluice import erasure_workspace

    targets = all_targets(lake)
    notes = []
    count = lake.count("erasures") if lake.exists("erasures") else 0
    if not targets:
        return [], ["no erasures recorded: nothing to look for"], count
    hits = lake_hits(lake, targets)
    if "://" in lake.root:
        notes.append(f"the lake at {lake.root} is not local: its files were not scanned")
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
        base = root
    else:
        notes.append("not in a git repository: no DVC cache or remote checked")
        base = Path.cwd()
        hits += scan_folder(base / params.export.out_dir, targets, label=params.export.out_dir)
    hits += erasure_workspace.scan(base, params, targets)
    return hits, notes, count
