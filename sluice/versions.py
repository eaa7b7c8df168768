"""Dataset versions: list them, read one's manifest, compare two (``sluice dataset list|show|diff``).

A version is a git revision (tag, branch, commit) whose ``dvc.lock`` has an ``export`` stage, or
``workspace`` for the snapshot folder as it is now. The manifest copy in git names the expected
content hash and the Delta version of every table read, so a version is known from git alone;
:mod:`sluice.checkout` restores its bytes, :mod:`sluice.maintenance` keeps its table versions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sluice.dvc_store import (
    EXPORT_MANIFEST,
    EXPORT_STAGE,
    SNAPSHOT_MANIFEST,
    WORKSPACE,
    Cache,
    CorruptCache,
    LockedOut,
    export_outs,
    git,
    git_file,
    md5_file,
    resolve,
    snapshot_out,
    tags,
)
from sluice.errors import InputError, UserError


# ---------------------------------------------------------------------------------------------- versions
@dataclass
class Version:
    """One dataset version: its manifest, and where its snapshot bytes are."""

    rev: str
    commit: str | None
    manifest: dict
    manifest_source: str  # "git", "dvc cache" or the workspace folder
    outs: dict[str, LockedOut] | None = None

    @property
    def content_hash(self) -> str:
        return self.manifest.get("content_hash", "")


def load_version(root: Path, rev: str, snapshot_dir: str = "data/dataset", cache: Cache | None = None) -> Version:
    """The manifest of ``rev`` (a git revision, or ``workspace`` for the folder as it is now)."""
    if rev == WORKSPACE:
        path = root / snapshot_dir / SNAPSHOT_MANIFEST
        if not path.is_file():
            raise InputError(f"{path}: no snapshot in the workspace (run `dvc repro export` or `sluice dataset checkout`)")
        return Version(WORKSPACE, None, json.loads(path.read_text()), str(path.parent))
    commit = resolve(root, rev)
    outs = export_outs(root, commit)
    if outs is None:
        raise InputError(f"{rev}: not a dataset version (its dvc.lock has no '{EXPORT_STAGE}' stage)")
    raw = git_file(root, commit, EXPORT_MANIFEST)
    if raw is not None:
        return Version(rev, commit, json.loads(raw), "git", outs)
    cache = cache or Cache(root)
    if EXPORT_MANIFEST in outs:  # the manifest copy is DVC-cached rather than in git: verify it against dvc.lock
        locked = outs[EXPORT_MANIFEST]
        path = cache.path(locked.md5)
        if not path.is_file():
            cache.fetch(commit, locked.path)
        if path.is_file() and md5_file(path) == locked.md5:
            return Version(rev, commit, json.loads(path.read_bytes()), "dvc cache", outs)
    out = snapshot_out(outs, rev)
    files = cache.listing(out, commit)
    cache.ensure(commit, out, {SNAPSHOT_MANIFEST: files[SNAPSHOT_MANIFEST]})
    path = cache.path(files[SNAPSHOT_MANIFEST])
    if md5_file(path) != files[SNAPSHOT_MANIFEST]:
        raise CorruptCache(f"DVC cache object {path} ({out.path}/{SNAPSHOT_MANIFEST} at {rev}) is corrupted; rerun with --repair")
    return Version(rev, commit, json.loads(path.read_bytes()), "dvc cache", outs)


def list_versions(root: Path, snapshot_dir: str = "data/dataset", all_commits: bool = False) -> list[dict]:
    """Every tagged dataset version (or every commit that changed dvc.lock), oldest first, + the workspace."""
    if all_commits:
        log = git(root, "log", "--reverse", "--format=%H\t%cI", "--", "dvc.lock").stdout.decode().splitlines()
        revs = [(c[:10], c, d) for c, d in (line.split("\t") for line in log)]
    else:
        revs = tags(root)
    rows = []
    for name, commit, date in revs:
        if export_outs(root, commit) is None:
            continue
        try:
            v = load_version(root, commit, snapshot_dir)
            rows.append(summary_row(name, commit[:10], date, v.manifest))
        except UserError as err:
            rows.append({"version": name, "commit": commit[:10], "date": date, "content_hash": None, "note": str(err)})
    workspace = root / snapshot_dir / SNAPSHOT_MANIFEST
    if workspace.is_file():
        rows.append(summary_row(WORKSPACE, "-", "-", json.loads(workspace.read_text())))
    return rows


def summary_row(name: str, commit: str, date: str, manifest: dict) -> dict:
    splits = manifest.get("splits", {})
    return {"version": name, "commit": commit, "date": date, "content_hash": manifest.get("content_hash", "")[:16],
            **{s: splits.get(s, {}).get("rows", 0) for s in ("train", "val", "test")},
            "classes": len(manifest.get("classes", [])),
            "tables": ", ".join(f"{t}@{v}" for t, v in sorted(manifest.get("table_versions", {}).items()))}


# ---------------------------------------------------------------------------------------------- diff
def members(root: Path, version: Version, snapshot_dir: str, cache: Cache | None = None) -> dict[str, tuple[str, str]]:
    """image_id -> (split, class) of a version's snapshot, read from the workspace or the DVC cache."""
    import io

    import numpy as np

    manifest = version.manifest
    if version.rev == WORKSPACE:
        def read(rel: str) -> bytes:
            return (root / snapshot_dir / rel).read_bytes()
    else:
        cache = cache or Cache(root)
        out = snapshot_out(version.outs, version.rev)
        files = cache.listing(out, version.commit)
        cache.ensure(version.commit, out, files)

        def read(rel: str) -> bytes:
            data = cache.path(files[rel]).read_bytes()
            if hashlib.md5(data).hexdigest() != files[rel]:
                raise CorruptCache(f"DVC cache object for {out.path}/{rel} at {version.rev} is corrupted; "
                                   f"`sluice dataset checkout {version.rev} --repair` re-fetches it")
            return data
    classes = manifest["classes"]
    result = {}
    for split, entry in manifest["splits"].items():
        for shard in entry["shards"]:
            ids = read(f"{shard['stem']}.ids.txt").decode().split()
            labels = np.load(io.BytesIO(read(f"{shard['stem']}.labels.npy")))
            result.update({i: (split, classes[int(c)]) for i, c in zip(ids, labels)})
    return result


def lake_members(lake, pin: str) -> dict[str, tuple[str, str]]:
    """image_id -> (split, label) of the gold ``dataset`` table at Delta version ``@N``, from the lake."""
    from sluice.lake_health import require_readable

    number = pin.removeprefix("@")
    if not number.isdigit():
        raise InputError(f"{pin!r}: expected @N, a Delta version of the dataset table (e.g. @3)")
    require_readable(lake, "dataset", int(number))
    table = lake.read("dataset", ["image_id", "split", "label"], version=int(number))
    return {i: (s, str(c)) for i, s, c in zip(*(table.column(k).to_pylist() for k in ("image_id", "split", "label")))}


def diff(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> list[dict]:
    """Rows added/removed per (split, class). A row that changed split or class counts in both."""
    from collections import Counter

    old, new = Counter(before.values()), Counter(after.values())
    gone = Counter(v for k, v in before.items() if after.get(k) != v)
    came = Counter(v for k, v in after.items() if before.get(k) != v)
    keys = sorted(set(old) | set(new), key=lambda k: (("train", "val", "test").index(k[0]) if k[0] in ("train", "val", "test") else 9, k[1]))
    return [{"split": s, "class": c, "before": old[(s, c)], "after": new[(s, c)], "added": came[(s, c)],
             "removed": gone[(s, c)]} for s, c in keys]
