"""``sluice dataset list|show|diff|checkout|rebuild|publish`` and ``sluice lake maintain|doctor`` (see docs/versioning.md)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from sluice.errors import InputError
from sluice.output import add_output_args, emit


def register(sub) -> None:
    d = sub.add_parser("dataset", help="dataset versions: list, show, diff, checkout, rebuild, publish",
                       description="Dataset versions are git revisions (tags) whose dvc.lock has an export stage; "
                                   "the snapshot bytes live in DVC, the manifest copy in git. VERSION is a tag, branch, "
                                   "commit, or 'workspace' (the data/dataset folder as it is now); in diff, @N is Delta version N of the "
                                   "gold `dataset` table, read from the lake.")
    ds = d.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    p = ds.add_parser("list", help="tagged dataset versions: hash, rows per split, table versions")
    p.add_argument("--all", action="store_true", help="every commit that changed dvc.lock, not only tags")
    add_output_args(p)
    p.set_defaults(func=_list)

    p = ds.add_parser("show", help="one version's manifest: classes, counts, mean/std, table versions, params")
    p.add_argument("version")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.set_defaults(func=_show)

    p = ds.add_parser("diff", help="rows added/removed per split and class between two versions")
    p.add_argument("a", metavar="A", help="a dataset version (git ref, 'workspace') or @N (dataset table version)")
    p.add_argument("b", metavar="B", nargs="?", default="workspace", help="default: workspace")
    add_output_args(p)
    p.set_defaults(func=_diff)

    p = ds.add_parser("checkout", help="restore a version's snapshot byte for byte (through DVC), verified",
                      description="Restore VERSION's snapshot from DVC's cache (fetching from the default remote if "
                                  "needed) into the snapshot folder, checking every file's md5 against dvc.lock and the "
                                  "content hash against the manifest in git. The folder is replaced only if all checks "
                                  "pass. dvc.lock is not touched: `dvc checkout` returns to the committed version.")
    p.add_argument("version")
    p.add_argument("--out", help="restore into this folder instead (default: export.out_dir)")
    p.add_argument("--repair", action="store_true", help="delete corrupted cache objects and fetch them again")
    p.set_defaults(func=_checkout)

    p = ds.add_parser("rebuild", help="rebuild a snapshot from the lake by Delta time travel and compare hashes",
                      description="Rebuild the snapshot a manifest describes from the lake, reading every table at "
                                  "the Delta version the manifest recorded, and check the content hash matches. "
                                  "Exit 0 when it does, 1 when it does not.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="a snapshot manifest.json or data/manifests/export.json")
    src.add_argument("--version", dest="version", help="take the manifest of this version instead")
    p.add_argument("--out", help="write the rebuilt snapshot here (default: a temporary folder, removed)")
    p.set_defaults(func=_rebuild)

    p = ds.add_parser("publish", help="copy the snapshot to object storage (s3://...) to train from there",
                      description="Copy a snapshot folder (default: export.out_dir), checked against its content hash, "
                                  "to URL (s3://bucket/prefix, file:///abs/path): the shards first, then the manifest "
                                  "with every file's sha256. Set train.snapshot (or `sluice train --snapshot`) to URL "
                                  "to train from it: each rank fetches only the shards it reads, checking each one. "
                                  "S3 settings come from the AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                                  "AWS_REGION, AWS_ENDPOINT_URL; AWS_ALLOW_HTTP=true for a plain-http test server).")
    p.add_argument("url", metavar="URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--snapshot", help="the snapshot folder to publish (default: export.out_dir)")
    which.add_argument("--version", help="publish this dataset version (restored through DVC into a temporary folder)")
    p.set_defaults(func=_publish)

    lk = sub.add_parser("lake", help="lake housekeeping: maintain, doctor")
    ls = lk.add_subparsers(dest="lake_command", metavar="SUBCOMMAND", required=True)
    p = ls.add_parser("maintain", help="compact small files, vacuum old and orphaned files; keeps tagged versions",
                      description="For every table: compact small files, then vacuum files that were removed (or "
                                  "never committed: orphans of failed writes) longer ago than the retention. Orphans "
                                  "younger than 1 hour are never deleted, whatever the retention: a write in flight "
                                  "looks the same until it commits. Files of any Delta version referenced by a tagged "
                                  "dataset version (or the workspace snapshot) are always kept; if a tag's manifest "
                                  "cannot be read, nothing is vacuumed. Nothing is committed when nothing is due.")
    p.add_argument("--retention-hours", type=int, help="override maintain.retention_hours")
    p.add_argument("--table", action="append", help="only this table (repeatable; default maintain.tables or all)")
    p.add_argument("--dry-run", action="store_true", help="report what would be removed; change nothing")
    p.set_defaults(func=_maintain)
    p = ls.add_parser("doctor", help="check every table's Delta log and files; changes nothing",
                      description="For every table: is its Delta log readable (no truncated, missing or overwritten "
                                  "commit, no missing checkpoint), are HEAD's files all there, and which is the oldest "
                                  "version time travel can still read; a table older than a version its stage "
                                  "manifests (paths.manifests) recorded is reported as 'behind manifest' (its newest "
                                  "commit file was deleted?). Changes nothing. Exit 1 when a table is damaged or "
                                  "behind.")
    p.add_argument("--table", action="append", help="only this table (repeatable; default all)")
    p.set_defaults(func=_doctor)


def _params():
    from sluice.config import load_params

    return load_params()


def _root(*revs: str) -> Path:
    """The git repository's root; for the workspace alone, the current folder will do."""
    from sluice.dvc_store import WORKSPACE, repo_root

    try:
        return repo_root()
    except InputError:
        if revs and all(r == WORKSPACE for r in revs):
            return Path.cwd()
        raise


def _snapshot_dir() -> str:
    return _params().export.out_dir


def _table(rows: list[dict]) -> str:
    import pyarrow as pa

    from sluice.output import render

    return render(pa.Table.from_pylist(rows), "table")


def _list(args) -> int:
    from sluice.versions import list_versions

    from sluice.erasure_snapshots import erased_versions

    rows = list_versions(_root(), _snapshot_dir(), all_commits=args.all)
    if not rows:
        print("no dataset versions yet: run `dvc repro export`, commit, and `git tag v1`", file=sys.stderr)
        return 0
    erased = {c[:10]: e["erasure_id"] for c, e in erased_versions(_lake()).items()}
    if erased:  # versions whose snapshot `sluice erase --purge-snapshots` deleted
        rows = [{**r, "erased_by": erased.get(r.get("commit"))} for r in rows]
    emit(rows, args)
    return 0


def _show(args) -> int:
    from sluice.versions import load_version

    v = load_version(_root(args.version), args.version, _snapshot_dir())
    m = v.manifest
    if args.json:
        print(json.dumps(m, indent=2, sort_keys=True))
        return 0
    print(f"version       {v.rev}" + (f" ({v.commit[:10]})" if v.commit else ""))
    print(f"content_hash  {m.get('content_hash')}  (manifest from {v.manifest_source})")
    print(f"image_shape   {m.get('image_shape')}   classes {len(m.get('classes', []))}: {', '.join(m.get('classes', []))}")
    print(f"mean / std    {m.get('mean')} / {m.get('std')}  ({m.get('stats_source', 'train split')})")
    print("tables        " + ", ".join(f"{t}@{n}" for t, n in sorted(m.get("table_versions", {}).items())))
    for split, entry in m.get("splits", {}).items():
        counts = " ".join(f"{c}:{n}" for c, n in entry.get("class_counts", {}).items())
        print(f"{split:<6} {entry['rows']:>7} rows in {len(entry['shards'])} shard(s)   {counts}")
    print("params        " + json.dumps(m.get("params", {}).get("export", {}), sort_keys=True))
    return 0


def _diff(args) -> int:
    from sluice.dvc_store import WORKSPACE, Cache
    from sluice.versions import diff, lake_members, load_version, members

    revs = (args.a, args.b)
    root, snap = _root(*[r for r in revs if not r.startswith("@")] or [WORKSPACE]), _snapshot_dir()
    cache = Cache(root)
    sides = []
    for rev in revs:
        if rev.startswith("@"):  # a Delta version of the gold `dataset` table, read from the lake
            sides.append((f"dataset@{rev[1:]}", lake_members(_lake(), rev)))
        else:
            _refuse_erased(root, rev)  # a snapshot an erasure purged is named as such, not as never pushed
            v = load_version(root, rev, snap, cache)
            sides.append((v.content_hash[:12], members(root, v, snap, cache)))
    rows = diff(sides[0][1], sides[1][1])
    before, after = sides[0][1], sides[1][1]
    moved = sum(1 for k, (split, _) in before.items() if k in after and after[k][0] != split)
    print(f"{args.a} ({sides[0][0]}) -> {args.b} ({sides[1][0]}): "
          f"+{sum(r['added'] for r in rows)} -{sum(r['removed'] for r in rows)} rows, {moved} image(s) in both "
          "moved to another split", file=sys.stderr)
    emit(rows, args)
    return 0


def _lake():
    from sluice.lake import Lake

    return Lake.from_params(_params())


def _checkout(args) -> int:
    from sluice.checkout import checkout

    root = _root()
    _refuse_erased(root, args.version)
    dest = Path(args.out) if args.out else root / _snapshot_dir()
    result = checkout(root, args.version, dest.absolute(), repair=args.repair)
    if result.repaired:
        print(f"repaired {len(result.repaired)} corrupted cache object(s): {', '.join(result.repaired)}", file=sys.stderr)
    print(f"restored {result.rev} ({result.commit[:10]}) into {result.dest}: {result.files} files, "
          f"content_hash {result.content_hash} verified against the manifest in git")
    if not args.out:
        print("note: dvc.lock still describes HEAD; `dvc checkout data/dataset` goes back to it", file=sys.stderr)
    return 0


def _publish(args) -> int:
    from sluice.snapshot_store import publish

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"publish: {done}/{total} files", file=sys.stderr)
    if args.version:
        from sluice.checkout import checkout

        root = _root()
        _refuse_erased(root, args.version)
        with tempfile.TemporaryDirectory(prefix=".publish-") as tmp:
            folder = Path(tmp) / "snapshot"
            checkout(root, args.version, folder, repair=False)
            manifest = publish(folder, args.url, progress=progress)
        folder = f"version {args.version}"
    else:
        folder = Path(args.snapshot or _snapshot_dir())
        manifest = publish(folder, args.url, progress=progress)
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"published {folder} to {args.url}: {len(manifest['files'])} files, {size / 1e6:.1f} MB, "
          f"content_hash {manifest['content_hash'][:16]}")
    return 0


def _refuse_erased(root: Path, rev: str) -> None:
    """One line naming the erasure when ``rev``'s snapshot was purged (sluice/erasure_snapshots.py)."""
    from sluice.dvc_store import WORKSPACE, resolve
    from sluice.erasure_snapshots import refuse_if_erased

    if rev != WORKSPACE:
        refuse_if_erased(_lake(), resolve(root, rev), rev)


def _rebuild(args) -> int:
    from sluice.lake import Lake
    from sluice.rebuild import rebuild
    from sluice.versions import load_version

    if args.manifest:
        path = Path(args.manifest)
        if not path.is_file():
            raise InputError(f"{path}: manifest not found")
        try:
            manifest = json.loads(path.read_text())
        except ValueError as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
    else:
        _refuse_erased(_root(), args.version)
        manifest = load_version(_root(), args.version, _snapshot_dir()).manifest
    expected = manifest.get("content_hash")
    with tempfile.TemporaryDirectory(prefix="sluice-rebuild-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "dataset"
        rebuilt = rebuild(Lake.from_params(_params()), manifest, out)
    tables = ", ".join(f"{t}@{v}" for t, v in sorted(manifest["table_versions"].items()))
    if rebuilt["content_hash"] == expected:
        print(f"rebuilt from {tables}: content_hash {expected} matches")
        return 0
    print(f"rebuilt from {tables}: content_hash {rebuilt['content_hash']} does NOT match the manifest's {expected}",
          file=sys.stderr)
    return 1


def _maintain(args) -> int:
    from sluice.catalog import TABLES
    from sluice.dvc_store import repo_root
    from sluice.lake import Lake
    from sluice.maintenance import ORPHAN_FLOOR_HOURS, VacuumRefused, maintain_table, protected_versions

    params = _params()
    cfg = params.maintain
    lake = Lake.from_params(params)
    try:
        root = repo_root()
    except InputError:
        root = None
        print("not in a git repository: only the workspace snapshot's versions are protected", file=sys.stderr)
    from sluice.erasure_snapshots import erased_versions

    keep, unknown = protected_versions(root, Path(params.export.out_dir) / "manifest.json", set(erased_versions(lake)))
    if unknown:
        raise VacuumRefused("cannot tell which Delta versions these tagged datasets need, refusing to vacuum: "
                            + "; ".join(unknown))
    names = args.table or cfg.tables or [n for n in TABLES if lake.exists(n)]
    retention = cfg.retention_hours if args.retention_hours is None else args.retention_hours
    if retention < ORPHAN_FLOOR_HOURS:
        print(f"note: files no commit references are kept for at least {ORPHAN_FLOOR_HOURS} h whatever the retention "
              f"(a write in flight looks the same until it commits)", file=sys.stderr)
    rows = []
    for name in names:
        if not lake.exists(name):
            raise InputError(f"table '{name}' does not exist in the lake at {lake.root}")
        r = maintain_table(lake, name, keep.get(name, set()), retention, cfg.target_file_mb, args.dry_run)
        rows.append({"table": r.table, "version": r.version_before, "commits": r.version_after - r.version_before,
                     "compacted": f"{r.compacted.get('numFilesRemoved') or 0} -> {r.compacted.get('numFilesAdded') or 0}",
                     "vacuumed": len(r.removed), "orphans": len(r.orphans), "held": len(r.held),
                     "kept_versions": ", ".join(map(str, r.kept_versions)) or "-",
                     "broken": ", ".join(map(str, r.broken_versions)) or "-"})
        for step in r.deferred:
            print(f"warning: {step}: writers kept committing over it ({lake.retries} retries); deferred to the next "
                  f"`sluice lake maintain`", file=sys.stderr)
        for v in r.broken_versions:
            print(f"warning: {name}@{v} (needed by a tagged dataset) is already missing files", file=sys.stderr)
    verb = "would remove" if args.dry_run else "removed"
    held = sum(r["held"] for r in rows)
    print(f"lake maintain ({'dry run, ' if args.dry_run else ''}retention {retention} h): {verb} "
          f"{sum(r['vacuumed'] for r in rows)} old file(s) and {sum(r['orphans'] for r in rows)} orphan(s)"
          + (f"; held {held} orphan(s) younger than {ORPHAN_FLOOR_HOURS} h" if held else ""), file=sys.stderr)
    print(_table(rows))
    return 1 if any(r["broken"] != "-" for r in rows) else 0


def _doctor(args) -> int:
    from sluice.catalog import TABLES
    from sluice.lake import Lake
    from sluice.lake_health import doctor, recorded_versions
    from sluice.runs import lake_identity

    params = _params()
    lake = Lake.from_params(params)
    names = args.table or [n for n in TABLES if lake.exists(n)]
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        raise InputError(f"unknown table '{unknown[0]}'; tables: {', '.join(TABLES)}")
    rows = doctor(lake, names, recorded_versions(lake_identity(lake)["id"], params.paths.manifests))
    damaged = [r for r in rows if r["status"] != "ok"]
    for r in damaged:
        print(r["detail"], file=sys.stderr)
    print(_table(rows))
    behind = sum(r["status"] == "behind manifest" for r in rows)
    print(f"lake doctor: {len(rows)} table(s), {len(damaged) - behind} damaged, {behind} behind their manifests; "
          "nothing was changed", file=sys.stderr)
    return 1 if damaged else 0
