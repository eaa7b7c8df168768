"""``sluice dataset checkout``: restore a version's snapshot byte for byte from DVC, verified.

DVC restores whatever bytes its cache holds without re-hashing them, so :func:`checkout` re-hashes
every file against the md5 in ``dvc.lock`` while copying and the assembled folder against the
manifest in git, and refuses to replace the workspace copy with corrupted bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sluice.dvc_store import (
    SNAPSHOT_MANIFEST,
    WORKSPACE,
    Cache,
    CorruptCache,
    LockedOut,
    snapshot_out,
)
from sluice.errors import InputError
from sluice.versions import Version, load_version


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
