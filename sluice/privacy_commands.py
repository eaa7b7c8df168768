"""``sluice erase`` (right to erasure, ``--verify``) and ``sluice privacy report`` (see docs/privacy.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from sluice.errors import InputError
from sluice.output import add_output_args, emit

REBUILD = "dvc repro --force --single-item dataset && dvc repro"
REBUILD_LABELS = "dvc repro --force --single-item labels && dvc repro"  # after --worker: the labels stage holds the workers


def register(sub) -> None:
    e = sub.add_parser(
        "erase", help="erase images, a person or a worker from every table, every version and every DVC snapshot",
        description="Delete every row the selector reaches from every table of the lake, remove the older Delta "
                    "versions that still hold them (time travel before the erasure stops working for those tables), "
                    "find the dataset versions and DVC cache/remote objects that hold the erased images and, with "
                    "--purge-snapshots, delete those objects and refuse those versions at checkout. The erasure is "
                    "recorded in the append-only `erasures` table as hashes and counts only. --verify searches the "
                    "lake files, the DVC cache and remote for everything ever erased.")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--image-id", nargs="+", metavar="ID", help="image ids (sha256 of the image bytes)")
    what.add_argument("--source-uri", nargs="+", metavar="URI", help="where images came from (raw_images.source_uri)")
    what.add_argument("--source", metavar="NAME", help="every image of one source (ingest.sources name, or crawl)")
    what.add_argument("--worker", metavar="RAW_ID", help="a crowd worker's votes (their raw id; pseudonymised here)")
    what.add_argument("--subject", nargs="+", metavar="RAW_ID",
                      help="every image of a person (a patient: their id as the source gives it, e.g. a DICOM "
                           "PatientID; pseudonymised here)")
    what.add_argument("--verify", action="store_true", help="search the lake, DVC cache and remote for erased data; "
                                                             "exit 0 with 0 hits, 1 listing the hits")
    e.add_argument("--reason", help="why (recorded; do not put personal data here)")
    e.add_argument("--purge-snapshots", action="store_true",
                   help="delete the DVC cache and remote objects that hold erased images and mark their versions "
                        "erased; delete past runs' report copies (runs/<run>/report.html) that show erased data")
    e.add_argument("--dry-run", action="store_true", help="report what would be erased; change nothing")
    e.set_defaults(func=_erase)

    p = sub.add_parser("privacy", help="privacy and compliance: report")
    ps = p.add_subparsers(dest="privacy_command", metavar="SUBCOMMAND", required=True)
    r = ps.add_parser("report", help="metadata stripped, faces blurred, pseudonymised workers, erasures, roles, "
                                     "licences per source",
                      description="One row per fact about personal data in the lake: images whose metadata was "
                                  "stripped at landing, faces blurred or dropped, crowd workers and subjects "
                                  "(patients) stored as pseudonyms, erasures performed (images erased, dataset "
                                  "versions purged, DVC objects deleted), roles defined, and the licence share per "
                                  "source. Reads the lake only; changes nothing (docs/privacy.md).")
    add_output_args(r)
    r.set_defaults(func=_report)


def _context():
    from sluice.config import load_params
    from sluice.dvc_store import repo_root
    from sluice.lake import Lake

    params = load_params()
    try:
        root = repo_root()
    except InputError:
        root = None
    return params, Lake.from_params(params), root


def _erase(args) -> int:
    from sluice.erasure_record import erase, verify

    params, lake, root = _context()
    if args.verify:
        if args.purge_snapshots or args.dry_run or args.reason:
            raise InputError("--verify takes no --purge-snapshots, --dry-run or --reason")
        hits, notes, count = verify(lake, params, root)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        for hit in hits:
            print(hit.line())
        print(f"erase --verify: {len(hits)} hit(s) for {count} erasure(s)", file=sys.stderr if hits else sys.stdout)
        return 1 if hits else 0
    kind, values = next((k, v) for k, v in (("image_id", args.image_id), ("source_uri", args.source_uri),
                                             ("source", [args.source] if args.source else None),
                                             ("worker", [args.worker] if args.worker else None),
                                             ("subject", args.subject)) if v)
    out = erase(lake, params, kind, values, args.reason, args.purge_snapshots, args.dry_run, root)
    _print(out, args)
    return 1 if out.hits else 0


def _print(out, args) -> None:
    verb = "would delete" if args.dry_run else "deleted"
    rows = [{"table": t, "rows": n} for t, n in sorted(out.counts.items()) if n]
    head = f"erase ({'dry run' if args.dry_run else out.erasure_id}): {verb} {sum(out.counts.values())} row(s) " \
           f"in {len(rows)} table(s), {out.images} image(s)"
    print(head)
    for r in rows:
        print(f"  {r['table']:<14} {r['rows']:>7}")
    if out.expired:
        print(f"older versions removed of: {', '.join(out.expired)} (time travel before this erasure now fails for "
              f"them)")
    for note in out.notes:
        print(f"note: {note}", file=sys.stderr)
    names = ", ".join(n for _, n in out.versions) or "none"
    if args.purge_snapshots and not args.dry_run and (out.versions or out.objects):
        print(f"purged {out.objects} DVC object(s); dataset versions erased (checkout refuses them): {names}")
    elif out.versions or out.objects:
        print(f"dataset versions holding erased images: {names} ({out.objects} DVC object(s)); "
              f"{'--purge-snapshots would delete' if args.dry_run else 'rerun with --purge-snapshots to delete'} them")
    for name in out.unchecked:
        print(f"note: dataset version {name}: snapshot listing in neither the DVC cache nor the remote; not checked",
              file=sys.stderr)
    rebuild = REBUILD_LABELS if args.worker else REBUILD
    if out.workspace:
        state = "was deleted" if args.purge_snapshots and not args.dry_run else "holds erased images"
        print(f"the current snapshot ({Path(_snapshot(args))}) {state}: rebuild it without them with `{rebuild}`")
    elif not args.dry_run and out.images and (Path(_snapshot(args)) / "manifest.json").is_file():
        print(f"the current snapshot was exported before this erasure: `{rebuild}` rebuilds it from the lake")
    if out.cached:
        print(f"source hash cache: {out.cached} entr{'y' if out.cached == 1 else 'ies'} of erased images "
              f"{'would be ' if args.dry_run else ''}dropped")
    if out.removed:
        print(f"deleted {len(out.removed)} past run report(s) that showed erased data (e.g. {out.removed[0]})")
    if out.originals:
        print(f"{len(out.originals)} original file(s) still exist at their source (e.g. {out.originals[0]}): later "
              "ingests skip them, but delete them there too, and their rows in a labels file (they are quarantined as "
              "label_for_missing_file once the files are gone); until then the folder listing hashes them again "
              "(runs/source_hashes.sqlite), which `sluice erase --verify` reports", file=sys.stderr)
    from sluice.config import load_params
    from sluice.erasure_workspace import run_report_copies

    names = set(run_report_copies(out.reports, load_params()))
    copies = [h for h in out.reports if h.where in names]
    rest = [h for h in out.reports if h.where not in names]
    if copies:
        print(f"{len(copies)} past run report(s) show erased data (e.g. {copies[0].line()}): nothing rewrites them; "
              f"{'--purge-snapshots would delete' if args.dry_run else 'rerun with --purge-snapshots to delete'} them")
    if rest:
        print(f"{len(rest)} report or manifest file(s) in the workspace name erased data (e.g. "
              f"{rest[0].line()}): `{rebuild}` rewrites them")
    for hit in out.hits:
        print(f"still found after the erasure: {hit.line()}", file=sys.stderr)
    if out.hits:
        print("a write in flight may have brought erased rows back: run `sluice erase` again once the pipeline is idle",
              file=sys.stderr)


def _snapshot(args) -> str:
    from sluice.config import load_params

    return load_params().export.out_dir


def _report(args) -> int:
    from sluice.config import load_params
    from sluice.lake import Lake
    from sluice.privacy_report import report

    params = load_params()
    emit(report(Lake.from_params(params), params), args)
    return 0
