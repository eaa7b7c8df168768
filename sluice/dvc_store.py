"""Git and DVC access for dataset versions: revisions, ``dvc.lock`` entries, and DVC's local cache.

A dataset version is a git revision whose ``dvc.lock`` has an ``export`` stage. Its snapshot
(``data/dataset/``) lives in DVC's cache and remotes; its manifest copy ``data/manifests/export.json``
lives in git. DVC restores whatever bytes its cache holds without re-hashing them, so callers check
every object against the md5 ``dvc.lock`` records (:func:`md5_file`, :class:`Cache`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sluice.errors import InputError, SluiceError

EXPORT_STAGE = "export"
EXPORT_MANIFEST = "data/manifests/export.json"
SNAPSHOT_MANIFEST = "manifest.json"
WORKSPACE = "workspace"


class CorruptCache(SluiceError):
    """DVC's cache holds bytes that do not match what dvc.lock / the git manifest say."""

    exit_code = 4


# ---------------------------------------------------------------------------------------------- git
def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    if check and result.returncode:
        raise InputError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result


def repo_root(start: Path | str = ".") -> Path:
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=False)
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
