"""Erased images in DVC: the dataset versions whose snapshots hold them, and the cache and remote objects.

Every git revision that is a dataset version (each tag, and each commit that changed ``dvc.lock``:
what ``sluice dataset list --all`` lists) names its snapshot folder by the md5 of a DVC ``.dir``
listing. The local cache and the default remote are scanned object by object
(:mod:`sluice.erasure_scan`: a shard's ``ids.txt`` names the image, its ``images.npy`` holds the
pixels, a DVC-tracked source folder holds the image file itself); a version is affected when its
listing names an object that holds erased data. Purging deletes those objects (only those: a shard's
labels and weights files are often byte-identical to another version's and hold no personal data)
from the cache and the remote, deletes the workspace snapshot
when it holds erased data, and the erasure row records the versions so that
``sluice dataset checkout`` refuses them in one line (:func:`refuse_if_erased`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sluice.erasure_scan import Hit, Targets, scan_bytes, scan_folder, walk
from sluice.errors import UserError

log = logging.getLogger("sluice.erase")


class ErasedVersion(UserError):
    """A dataset version whose snapshot was purged by an erasure."""


@dataclass
class Store:
    """The DVC cache (and default remote, if one is configured) of one repository."""

    root: Path
    cache_dir: Path | None = None
    remote: object = None  # a dvc HashFileDB, or None
    remote_note: str = ""
    _repo: object = field(default=None, repr=False)

    @classmethod
    def open(cls, root: Path) -> Store:
        from dvc.repo import Repo

        if not (root / ".dvc").is_dir():
            return cls(root, None, None, "no DVC repository")
        repo = Repo(str(root))
        store = cls(root, Path(repo.cache.local.path), _repo=repo)
        try:
            store.remote = repo.cloud.get_remote_odb(None, "erase")
        except Exception as err:  # noqa: BLE001 - no default remote is normal
            store.remote_note = f"no default DVC remote ({type(err).__name__}): only the local cache was searched"
        return store

    def local_objects(self) -> dict[str, Path]:
        """md5 (with ``.dir`` for listings) -> path of every object in the local cache."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return {}
        return {p.parent.name + p.name: p for p in walk(self.cache_dir) if len(p.parent.name) == 2}

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()

    def remote_objects(self) -> dict[str, str]:
        if self.remote is None:
            return {}
        return {oid: self.remote.oid_to_path(oid) for oid in self.remote.all()}

    def remote_where(self) -> str:
        return str(getattr(self.remote, "path", "remote"))

    def read(self, oid: str) -> bytes | None:
        local = self.cache_dir / oid[:2] / oid[2:] if self.cache_dir else None
        if local is not None and local.is_file():
            return local.read_bytes()
        if self.remote is not None:
            try:
                return self.remote.fs.cat_file(self.remote.oid_to_path(oid))
            except (OSError, FileNotFoundError):
                return None
        return None


@dataclass
class Finding:
    hits: list[Hit]  # every object or file holding erased data
    objects: dict[str, str]  # md5 -> where ("cache" / "remote" / "cache+remote") of objects to purge
    versions: list[tuple[str, str]]  # (commit, name) of affected dataset versions
    unchecked: list[str]  # versions whose listing is in neither cache nor remote
    workspace: bool  # the snapshot folder in the workspace holds erased data
    notes: list[str]


def dataset_revisions(root: Path) -> list[tuple[str, str]]:
    """(commit, name) of every tag and every commit that changed dvc.lock, that is a dataset version."""
    from sluice.dvc_store import export_outs, git, tags

    names: dict[str, str] = {}
    for name, commit, _ in tags(root):
        names.setdefault(commit, name)
    out = git(root, "log", "--format=%H", "--", "dvc.lock", check=False).stdout.decode().split()
    for commit in reversed(out):
        names.setdefault(commit, commit[:10])
    return [(c, n) for c, n in names.items() if export_outs(root, c) is not None]


def find(root: Path, targets: Targets, snapshot_dir: Path, store: Store | None = None) -> Finding:
    """Where erased data sits in DVC's cache, its default remote and the workspace snapshot."""
    from sluice.dvc_store import export_outs, snapshot_out

    store = store or Store.open(root)
    notes = [store.remote_note] if store.remote_note else []
    hits, held = [], {}
    for oid, path in store.local_objects().items():
        kinds = scan_bytes(path.read_bytes(), targets)
        hits += [Hit(f"DVC cache {path}", k) for k in sorted(kinds)]
        if kinds:
            held[oid] = "cache"
    for oid, path in store.remote_objects().items():
        kinds = scan_bytes(store.remote.fs.cat_file(path), targets)
        hits += [Hit(f"DVC remote {path}", k) for k in sorted(kinds)]
        if kinds:
            held[oid] = "cache+remote" if oid in held else "remote"
    versions, unchecked = [], []
    for commit, name in dataset_revisions(root):
        try:
            out = snapshot_out(export_outs(root, commit), name)
        except UserError:
            continue
        listing = store.read(out.md5)
        if listing is None:
            unchecked.append(name)
            continue
        if any(e["md5"] in held for e in json.loads(listing)):
            versions.append((commit, name))
    workspace_hits = scan_folder(snapshot_dir, targets, label=str(snapshot_dir))
    return Finding(hits + workspace_hits, held, versions, unchecked, bool(workspace_hits), notes)


def purge(finding: Finding, store: Store, snapshot_dir: Path) -> int:
    """Delete the finding's objects from the cache and the remote, and the workspace snapshot if it holds
    erased data. Returns the number of objects deleted."""
    local = store.local_objects()
    remote = store.remote_objects()
    deleted = 0
    for oid in finding.objects:
        if oid in local:
            os.chmod(local[oid], 0o644)  # DVC leaves cache objects read-only
            local[oid].unlink()
            deleted += 1
        if oid in remote:
            store.remote.fs.rm(remote[oid])
            deleted += 1
    if finding.workspace and snapshot_dir.is_dir():
        shutil.rmtree(snapshot_dir)
    return deleted


# ---------------------------------------------------------------------------------------------- refusing
def erased_versions(lake) -> dict[str, dict]:
    """commit -> {erasure_id, erased_at, name} of every dataset version an erasure purged."""
    if lake is None or not lake.exists("erasures"):
        return {}
    found = {}
    for row in lake.read("erasures", ["erasure_id", "erased_at", "versions_purged"]).to_pylist():
        for entry in row["versions_purged"] or []:
            commit, _, name = entry.partition(" ")
            found[commit] = {"erasure_id": row["erasure_id"], "erased_at": row["erased_at"], "name": name or commit[:10]}
    return found


def refuse_if_erased(lake, commit: str, rev: str) -> None:
    """Raise one line naming the erasure when ``commit``'s snapshot was purged."""
    info = erased_versions(lake).get(commit)
    if info:
        when = info["erased_at"].strftime("%Y-%m-%d %H:%M UTC") if info["erased_at"] else "?"
        raise ErasedVersion(f"{rev} ({commit[:10]}): its snapshot was purged by erasure {info['erasure_id']} "
                            f"({when}) because it held erased data; check out a later version, or rebuild the "
                            "current one (docs/privacy.md)")
