"""Dataset versions: git tags + ``dvc.lock`` name them, DVC stores them, the lake can rebuild them.

A dataset version is a git revision whose ``dvc.lock`` has an ``export`` stage. Its snapshot
(``data/dataset/``) lives in DVC's cache and remotes; its manifest copy
``data/manifests/export.json`` lives in git, so the expected content hash and the Delta version of
every table read are known from git alone. That is what makes the checks here independent of DVC's
cache: DVC restores whatever bytes its cache holds without re-hashing them, so :func:`checkout`
re-hashes every file against the md5 in ``dvc.lock`` and the snapshot against the git manifest, and
refuses to replace the workspace copy with corrupted bytes.

:func:`maintain` keeps the lake small without breaking any of this: it compacts, then vacuums with
``keep_versions`` = every Delta version a tagged dataset (or the workspace) references.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sluice.errors import InputError, SluiceError, UserError

EXPORT_STAGE = "export"
EXPORT_MANIFEST = "data/manifests/export.json"
SNAPSHOT_MANIFEST = "manifest.json"
WORKSPACE = "workspace"


class CorruptCache(SluiceError):
    """DVC's cache holds bytes that do not match what dvc.lock / the git manifest say."""

    exit_code = 4


class VacuumRefused(UserError):
    """Vacuuming could delete files a tagged dataset needs."""


# ---------------------------------------------------------------------------------------------- git
def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True)
    if check and result.returncode:
        raise InputError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result


def repo_root(start: Path | str = ".") -> Path:
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True)
    if result.returncode:
        raise InputError(f"{Path(start).absolute()}: not inside a git repository (dataset versions are git revisions)")
    return Path(result.stdout.strip())


def resolve(root: Path, rev: str) -> str:
    """The commit a tag/branch/commit names, or an error pointing at `sluice dataset list`."""
    result = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if result.returncode:
        raise InputError(f"unknown version '{rev}': not a git tag, branch or commit (see `sluice dataset list`)")
    return result.stdout.decode().strip()


def git_file(root: Path, rev: str, path: str) -> bytes | None:
    result = git(root, "show", f"{rev}:{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def tags(root: Path) -> list[tuple[str, str, str]]:
    """(tag, commit, ISO date) for every tag, oldest first."""
    out = git(root, "for-each-ref", "--sort=creatordate", "--format=%(refname:short)\t%(objectname)\t%(*objectname)\t%(creatordate:iso-strict)",
              "refs/tags").stdout.decode()
    rows = []
    for line in out.splitlines():
        name, obj, peeled, date = line.split("\t")
        rows.append((name, peeled or obj, date))
    return rows


# ---------------------------------------------------------------------------------------------- dvc.lock
@dataclass(frozen=True)
class LockedOut:
    path: str
    md5: str
    size: int | None = None
    nfiles: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


def export_outs(root: Path, rev: str) -> dict[str, LockedOut] | None:
    """The export stage's outputs as ``dvc.lock`` at ``rev`` records them (None: not a dataset version)."""
    raw = git_file(root, rev, "dvc.lock")
    if raw is None:
        return None
    stage = (yaml.safe_load(raw) or {}).get("stages", {}).get(EXPORT_STAGE)
    if not stage:
        return None
    return {o["path"]: LockedOut(o["path"], o.get("md5") or "", o.get("size"), o.get("nfiles"))
            for o in stage.get("outs", []) if o.get("md5")}


def snapshot_out(outs: dict[str, LockedOut], rev: str) -> LockedOut:
    dirs = [o for o in outs.values() if o.is_dir]
    if not dirs:
        raise InputError(f"{rev}: dvc.lock's export stage has no snapshot directory output")
    return dirs[0]


# ---------------------------------------------------------------------------------------------- DVC cache
@dataclass
class Cache:
    """DVC's local cache of one repository, fetching from its default remote when objects are missing."""

    root: Path
    _repo: object = field(default=None, repr=False)

    @property
    def repo(self):
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo(str(self.root))
        return self._repo

    def path(self, md5: str) -> Path:
        return Path(self.repo.cache.local.oid_to_path(md5))

    def fetch(self, rev: str, target: str) -> None:
        from dvc.exceptions import DvcException

        try:
            self.repo.fetch(targets=[target], revs=[rev], workspace=False)
        except DvcException as err:
            raise InputError(f"dvc fetch of {target} at {rev} failed: {err} (is a remote configured? `dvc remote list`)") from None

    def listing(self, out: LockedOut, rev: str) -> dict[str, str]:
        """relpath -> md5 of a directory output, fetched if needed; the listing's own md5 is checked."""
        path = self.path(out.md5)
        if not path.is_file():
            self.fetch(rev, out.path)
        if not path.is_file():
            raise InputError(f"{out.path} at {rev} is neither in the DVC cache nor on the remote (push it from the "
                             f"machine that built it: `dvc push`)")
        actual = md5_file(path)
        if actual + ".dir" != out.md5:
            raise CorruptCache(f"DVC cache object {path} (listing of {out.path} at {rev}) is corrupted: md5 {actual}, "
                               f"dvc.lock says {out.md5}; rerun with --repair to re-fetch it")
        return {e["relpath"]: e["md5"] for e in json.loads(path.read_text())}

    def ensure(self, rev: str, out: LockedOut, files: dict[str, str]) -> None:
        if any(not self.path(m).is_file() for m in files.values()):
            self.fetch(rev, out.path)
        missing = [r for r, m in files.items() if not self.path(m).is_file()]
        if missing:
            raise InputError(f"{len(missing)} file(s) of {out.path} at {rev} (e.g. {missing[0]}) are neither in the DVC "
                             f"cache nor on the remote (`dvc push` them from the machine that built it)")


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


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


def diff(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> list[dict]:
    """Rows added/removed per (split, class). A row that changed split or class counts in both."""
    from collections import Counter

    old, new = Counter(before.values()), Counter(after.values())
    gone = Counter(v for k, v in before.items() if after.get(k) != v)
    came = Counter(v for k, v in after.items() if before.get(k) != v)
    keys = sorted(set(old) | set(new), key=lambda k: (("train", "val", "test").index(k[0]) if k[0] in ("train", "val", "test") else 9, k[1]))
    return [{"split": s, "class": c, "before": old[(s, c)], "after": new[(s, c)], "added": came[(s, c)],
             "removed": gone[(s, c)]} for s, c in keys]


# ---------------------------------------------------------------------------------------------- checkout
@dataclass
class CheckoutResult:
    rev: str
    commit: str
    dest: Path
    content_hash: str
    files: int
    repaired: list[str]


def checkout(root: Path, rev: str, dest: Path, repair: bool = False, cache: Cache | None = None) -> CheckoutResult:
    """Restore ``rev``'s snapshot into ``dest`` from DVC's cache (fetching from the remote if needed).

    Every byte is checked while copying: each file's md5 against the ``dvc.lock`` listing, and the
    assembled folder's content hash against the manifest in git. Corrupted cache objects are named;
    with ``repair`` they are deleted and fetched again. ``dest`` is only replaced once all checks pass.
    """
    if rev == WORKSPACE:
        raise InputError("checkout needs a git revision (a tag, branch or commit), not 'workspace'")
    cache = cache or Cache(root)
    version = load_version(root, rev, cache=cache)
    out = snapshot_out(version.outs, rev)
    files = cache.listing(out, version.commit)
    cache.ensure(version.commit, out, files)
    staging = dest.parent / f".{dest.name}.checkout-tmp"
    try:
        actual, repaired = _stage(cache, version, out, files, staging, dest, repair)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dest.exists():
        old = dest.parent / f".{dest.name}.checkout-old"
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(dest)
    return CheckoutResult(rev, version.commit, dest, actual, len(files), repaired)


def _stage(cache: Cache, version: Version, out: LockedOut, files: dict[str, str], staging: Path, dest: Path,
           repair: bool) -> tuple[str, list[str]]:
    """Fill ``staging`` with verified bytes; return (content hash, repaired relpaths) or raise."""
    from sluice.snapshot import content_hash

    rev = version.rev
    repaired: list[str] = []
    for attempt in range(2):
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        bad = copy_verified(cache, files, staging)
        if not bad:
            break
        described = "; ".join(f"{rel} (cache {cache.path(files[rel])}: md5 {got}, dvc.lock says {files[rel]})" for rel, got in bad)
        if not repair or attempt:
            raise CorruptCache(f"DVC cache is corrupted for {len(bad)} file(s) of {rev} — {described}. "
                               f"{dest} was left as it was. Rerun with --repair to delete the bad objects and re-fetch "
                               f"them from the remote")
        for rel, _ in bad:
            cache.path(files[rel]).unlink()
            repaired.append(rel)
        cache.ensure(version.commit, out, files)
    actual = content_hash(staging)
    manifest = json.loads((staging / SNAPSHOT_MANIFEST).read_text())
    if actual != version.content_hash or actual != manifest.get("content_hash"):
        raise CorruptCache(f"{rev}: restored snapshot hashes to {actual}, but its manifest ({version.manifest_source}) says "
                           f"{version.content_hash}; {dest} was left as it was")
    return actual, repaired


def copy_verified(cache: Cache, files: dict[str, str], dest: Path) -> list[tuple[str, str]]:
    """Copy every cache object to ``dest/relpath`` hashing it on the way; return the mismatches."""
    bad = []
    for rel, md5 in sorted(files.items()):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.md5()
        with open(cache.path(md5), "rb") as src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
        if h.hexdigest() != md5:
            bad.append((rel, h.hexdigest()))
    return bad


# ---------------------------------------------------------------------------------------------- rebuild
def rebuild(params, manifest: dict, out_dir: Path) -> dict:
    """Rebuild a snapshot from the lake by Delta time travel to the manifest's table versions."""
    from transform.export import export

    versions = manifest.get("table_versions")
    if not versions:
        raise InputError("manifest has no table_versions (not written by the export stage?)")
    recorded = manifest.get("params", {}).get("export", {})
    shape = manifest.get("image_shape") or [params.clean.size]
    params = params.model_copy(update={
        "export": params.export.model_copy(update={k: v for k, v in recorded.items() if k == "shard_rows"}),
        "clean": params.clean.model_copy(update={"size": int(shape[0])}),
    })
    from sluice.lake import Lake

    try:
        rebuilt, _, _ = export(Lake.from_params(params), out_dir, params, versions=versions)
    except FileNotFoundError as err:
        raise InputError(f"a file of the pinned table versions {versions} is gone (vacuumed outside "
                         f"`sluice lake maintain`?): {str(err).splitlines()[0]}") from None
    return rebuilt


# ---------------------------------------------------------------------------------------------- maintain
def protected_versions(root: Path | None, workspace_manifest: Path | None) -> tuple[dict[str, set[int]], list[str]]:
    """table -> Delta versions that tagged datasets (and the workspace snapshot) need; + unreadable tags."""
    keep: dict[str, set[int]] = {}
    unknown: list[str] = []

    def add(manifest: dict) -> None:
        for table, version in (manifest.get("table_versions") or {}).items():
            if version is not None:
                keep.setdefault(table, set()).add(int(version))

    if root is not None:
        for name, commit, _ in tags(root):
            if export_outs(root, commit) is None:
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
    compacted: dict
    removed: list[str]
    orphans: list[str]
    kept_versions: list[int]
    broken_versions: list[int]


def maintain_table(lake, name: str, keep: set[int], retention_hours: int, target_file_mb: int,
                   dry_run: bool) -> TableReport:
    """Compact small files, then vacuum removed and orphaned files older than the retention, except
    the files of the versions in ``keep``."""
    from sluice.catalog import with_retries

    table = lake.table(name)
    before = table.version()
    missing = sorted(v for v in keep if v > before)
    if missing:
        raise VacuumRefused(f"{name}: a tagged dataset references version(s) {missing} but the table is at version "
                            f"{before} (is this the right lake?); refusing to vacuum")
    compacted = {}
    if not dry_run:
        compacted = with_retries(lambda: lake.table(name).optimize.compact(target_size=target_file_mb << 20),
                                 lake.retries, f"compact {name}")
    table = lake.table(name)
    kept = sorted(keep)
    opts = dict(retention_hours=retention_hours, enforce_retention_duration=False, keep_versions=kept or None)
    referenced = set(table.vacuum(dry_run=True, full=False, **opts))
    everything = table.vacuum(dry_run=True, full=True, **opts)
    if not dry_run and everything:
        everything = table.vacuum(dry_run=False, full=True, **opts)
    broken = [v for v in kept if not _readable(lake, name, v)]
    return TableReport(name, before, {k: compacted.get(k) for k in ("numFilesAdded", "numFilesRemoved")},
                       sorted(f for f in everything if f in referenced), sorted(f for f in everything if f not in referenced),
                       kept, broken)


def _readable(lake, name: str, version: int) -> bool:
    """Whether every data file of the version is still there (counting rows opens each file's footer)."""
    try:
        lake.table(name, version).to_pyarrow_dataset().count_rows()
        return True
    except (FileNotFoundError, OSError):
        return False
