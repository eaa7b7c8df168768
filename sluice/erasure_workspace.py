"""The workspace files the pipeline derives from the lake, where erased data can linger after an erasure.

Stage manifests, the quality reports, the run report (``report.out``) and its copy per training run
(``<train.runs_dir>/<run_id>/report.html``: thumbnails of label issues, the workers table), the metrics
and plots folders, the insight folder (saliency), and the source-hash cache of ``list_sources``
(``runs/source_hashes.sqlite``: a folder file's path and content hash, which is its image id).
:func:`places` lists them for ``sluice erase`` and ``--verify``; model checkpoints are not looked into
(sluice/erasure_scan.py).

What an erasure does with them: the cache loses the erased images' rows (:func:`drop_cached_hashes`; it
is only a cache, rebuilt by hashing the file again); the copies of run reports under ``runs_dir`` that
show erased data are deleted with ``--purge-snapshots`` (nothing rewrites an old run's report); the rest
is named, and the rebuild the command prints rewrites it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sluice import paths
from sluice.erasure_scan import Hit, Targets, scan_folder


def places(params) -> list[str]:
    """Files and folders (relative to the project) that hold what the stages derived from the lake."""
    return list(dict.fromkeys([params.paths.manifests, params.quality.reports_dir, params.report.out,
                               str(paths.METRICS), str(paths.PLOTS), params.report.insight_dir,
                               params.insight.out_dir, params.train.runs_dir]))


def scan(base: Path, params, targets: Targets) -> list[Hit]:
    return [h for place in places(params) for h in scan_folder(base / place, targets, label=place)]


def run_report_copies(hits: list[Hit], params) -> list[str]:
    """The hits that are a past run's copy of the run report (``<runs_dir>/<run_id>/report.html``)."""
    prefix = params.train.runs_dir.rstrip("/") + "/"
    return sorted({h.where for h in hits if h.where.startswith(prefix) and h.where.endswith("/report.html")})


def delete_files(base: Path, names: list[str]) -> list[str]:
    gone = []
    for name in names:
        path = base / name
        if path.is_file():
            path.unlink()
            gone.append(name)
    return gone


def drop_cached_hashes(base: Path, ids: set[str], dry_run: bool = False) -> int:
    """Delete the source-hash cache's rows whose content hash is an erased image id; the freed pages are
    overwritten (``secure_delete``, then ``VACUUM``) so the file holds no trace. Returns the rows."""
    path = base / paths.SOURCE_HASH_CACHE
    if not ids or not path.is_file():
        return 0
    db = sqlite3.connect(path)
    try:
        if not db.execute("select 1 from sqlite_master where type = 'table' and name = 'hashes'").fetchone():
            return 0
        wanted = sorted(ids)
        chunks = [wanted[i:i + 500] for i in range(0, len(wanted), 500)]  # under SQLite's variable limit
        where = "select count(*) from hashes where sha256 in ({})"
        if dry_run:
            return sum(db.execute(where.format(",".join("?" * len(c))), c).fetchone()[0] for c in chunks)
        db.execute("pragma secure_delete = on")
        with db:
            count = sum(db.execute(f"delete from hashes where sha256 in ({','.join('?' * len(c))})", c).rowcount
                        for c in chunks)
        if count:
            db.execute("vacuum")
        return count
    finally:
        db.close()
