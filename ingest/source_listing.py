"""The ``list_sources`` stage: a digest of each local image folder, which ``ingest_public`` depends on.

Why DVC does not track the folder itself: DVC hashes a folder dependency file by file and stops on a
file name that is not UTF-8 (a Latin-1 ``café.jpg`` copied from an old disk: "'utf-8' codec can't
encode character '\\udce9' ... surrogates not allowed", naming no file), though ingest reads such a file
like any other; and each ``dvc status`` walks and stats the whole folder through DVC's own state
database (3.3 s for CIFAR-10's 60,000 files, warm).

This stage runs on every ``dvc repro`` (``always_changed``) and writes one small JSON file: per folder
source, its file count, bytes and a SHA-256 over every (name, content hash) pair, in name order.
Content hashes are cached under ``runs/`` keyed by (device, inode, size, mtime), as DVC's state is, so
a rerun reads only new or changed files; a touched or copied folder with the same contents gives the
same digest, so ``ingest_public`` and every stage after it are skipped. Metadata folders (hidden,
``__MACOSX``) are left out, as the image-folder connector leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ingest.sources.folders import SYSTEM_FILES, metadata
from sluice import paths
from sluice.errors import InputError
from sluice.progress import ProgressLines
from sluice.stage import stage_logger, stage_main

UNREADABLE = "unreadable"  # the content hash of a file that cannot be opened (ingest quarantines it)
# Threads pay for large files (hashlib releases the GIL while it hashes, and reads overlap on a cold
# disk); small ones are a few system calls each under the GIL, where one thread was fastest (CIFAR-10's
# 60,001 files of ~1 KB, page-cached: 2.9 s with 1 thread, 4.3 s with 2, 5.6 s with 4).
_HASH_THREADS = 8
_LARGE = 64 * 1024  # mean bytes a file from which the threads hash
_CHUNK = 256  # files a thread hashes per task: one task per small file costs more in locks than the hash


def folder_sources(sources) -> list:
    """The configured sources this stage lists: local image folders."""
    return [s for s in sources if s.kind == "image_folder" and "://" not in str(s.path)]


class HashCache:
    """Content hashes of files by path, valid while (device, inode, size, mtime_ns) is unchanged."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("create table if not exists hashes (path blob primary key, dev int, ino int, size int, "
                        "mtime_ns int, sha256 text)")
        self.rows = {row[0]: row[1:] for row in self.db.execute("select * from hashes")}
        self.seen: dict[bytes, tuple] = {}

    def lookup(self, path: bytes, st: os.stat_result) -> str | None:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        row = self.rows.get(path)
        return row[4] if row is not None and tuple(row[:4]) == key else None

    def keep(self, path: bytes, st: os.stat_result, sha256: str) -> None:
        self.seen[path] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha256)

    def save(self, prefixes: list[bytes]) -> None:
        """Store what this run saw that is new or changed; entries under a listed folder that no longer
        exist are dropped."""
        gone = [(p,) for p in self.rows if p not in self.seen and any(p.startswith(x) for x in prefixes)]
        changed = [(p, *v) for p, v in self.seen.items() if self.rows.get(p) != v]
        with self.db:
            self.db.executemany("delete from hashes where path = ?", gone)
            self.db.executemany("insert or replace into hashes values (?, ?, ?, ?, ?, ?)", changed)
        self.db.close()


def _sha256(path: bytes) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return UNREADABLE


def _walk(folder: bytes):
    """(relative name, full path) of every file under ``folder`` outside metadata folders, system files left out
    (as the connector leaves them), in name order."""
    found, cut = [], len(folder) + 1
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not metadata(Path(os.fsdecode(d)))]
        found += [(full[cut:], full) for full in (parent + b"/" + n for n in names
                                                  if os.fsdecode(n).lower() not in SYSTEM_FILES)]
    return sorted(found)


def list_folder(folder: str | Path, cache: HashCache, log=None) -> dict:
    """Files, bytes, names not in UTF-8 and the digest of one folder (bytes paths throughout, so a name
    in any encoding is listed as it is on disk)."""
    root = os.fsencode(os.path.abspath(folder))
    entries, stats, todo = _walk(root), {}, []
    for rel, full in entries:
        try:
            st = os.stat(full)
        except OSError:
            continue  # a broken link: hashed as unreadable below
        stats[full] = st
        if cache.lookup(full, st) is None:
            todo.append(full)
    done = {}
    lines = ProgressLines(log, lambda s: f"{os.fsdecode(root)}: hashed {len(done):,} of {len(todo):,} new or "
                                         f"changed files ({s:.0f} s)") if log else None
    chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    large = sum(stats[p].st_size for p in todo) >= _LARGE * len(todo)
    with ThreadPoolExecutor(_HASH_THREADS if large else 1) as pool:
        for chunk, shas in zip(chunks, pool.map(lambda paths: [_sha256(p) for p in paths], chunks)):
            done.update(zip(chunk, shas))
            if lines:
                lines.tick()
    digest, size, not_utf8 = hashlib.sha256(), 0, 0
    for rel, full in entries:
        st = stats.get(full)
        sha = UNREADABLE if st is None else done.get(full) or cache.lookup(full, st)
        if st is not None and sha != UNREADABLE:
            cache.keep(full, st, sha)
            size += st.st_size
        digest.update(rel + b"\0" + sha.encode() + b"\n")
        try:
            rel.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += 1
    return {"files": len(entries), "bytes": size, "hashed": len(todo), "names_not_utf8": not_utf8,
            "sha256": digest.hexdigest()}


def run(params) -> dict:
    """The listing of every folder source (the stage's output, without the per-run ``hashed`` count)."""
    log = stage_logger("list_sources")
    cache = HashCache(Path(paths.SOURCE_HASH_CACHE))
    listing = {}
    for src in folder_sources(params.ingest.sources):
        if not os.path.isdir(src.path):
            listing[src.name] = {"path": str(src.path), "missing": True}  # ingest says so, with the fix
            continue
        if Path.cwd().resolve().is_relative_to(Path(src.path).resolve()):
            raise InputError(f"{src.path}: image folder of source '{src.name}' holds this project ({Path.cwd()}), "
                             "whose own files (lake, reports, plots) would be read as images; move the project out")
        found = list_folder(src.path, cache, log)
        log.info(f"{src.name}: {found['files']:,} files, {found['bytes']:,} bytes, {found['hashed']:,} hashed "
                 f"(new or changed), {found['names_not_utf8']:,} named outside UTF-8")
        listing[src.name] = {"path": str(src.path), **{k: v for k, v in found.items() if k != "hashed"}}
    cache.save([os.fsencode(os.path.abspath(s.path)) + b"/" for s in folder_sources(params.ingest.sources)])
    return listing


def main() -> None:
    def go():
        from sluice.config import load_params

        out = Path(paths.SOURCE_LISTING)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sources": run(load_params())}, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out)

    stage_main(go)


if __name__ == "__main__":
    main()
