"""Files that stand in for content that was never downloaded.

A data repository cloned without Git LFS (Hugging Face's and GitHub's dataset repositories keep their
images, Parquet files and archives in LFS) holds a ~130-byte text pointer in place of each such file;
a git-annex clone holds links into ``.git/annex/objects`` whose targets are absent (or, unlocked, a
pointer line). Read as data they are "not an image" or "not a Parquet file", which hides the fix: one
command in the repository. This module names them, so that ``sluice init`` refuses a source that is
mostly pointers and ingest quarantines each one as ``not_downloaded`` with the command that fetches it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sluice.errors import InputError

REASON = "not_downloaded"  # the quarantine reason of a pointer met among real files
LFS_PREFIX = b"version https://git-lfs.github.com/spec/"
ANNEX_MARK = "/annex/objects/"
MAX_POINTER_BYTES = 512  # a pointer is ~130 bytes (git-lfs allows 1,024); a 32 px JPEG is ~900
SCAN_FILES = 20_000  # sluice init looks at this many files of a folder (walk order)
_LFS_SIZE = re.compile(rb"^size (\d+)$", re.M)


def pointer_note(content: bytes) -> str | None:
    """What the bytes of a file are, when they are a pointer to content elsewhere; else None."""
    if len(content) > MAX_POINTER_BYTES:
        return None
    if content.startswith(LFS_PREFIX):
        size = _LFS_SIZE.search(content)
        return (f"a Git LFS pointer{f' to {int(size.group(1)):,} bytes' if size else ''}, not the file: "
                "run `git lfs pull` in its repository")
    if content.startswith(ANNEX_MARK.encode()):  # an unlocked git-annex file: /annex/objects/SHA256E-s...
        return "a git-annex pointer, not the file: run `git annex get` on it in its repository"
    return None


def link_note(path: Path) -> str | None:
    """A git-annex link whose content is not here (a broken link into ``.git/annex/objects``); else None."""
    try:
        target = os.readlink(path)
    except OSError:  # not a link
        return None
    if ANNEX_MARK in target.replace(os.sep, "/") and not path.exists():
        return "a git-annex link whose content is not here: run `git annex get` on it in its repository"
    return None


def file_note(path: Path) -> str | None:
    """:func:`pointer_note` or :func:`link_note` for a file on disk (reads at most a small file's bytes)."""
    if note := link_note(path):
        return note
    try:
        if not path.is_file() or path.stat().st_size > MAX_POINTER_BYTES:
            return None
        with path.open("rb") as f:
            return pointer_note(f.read(MAX_POINTER_BYTES + 1))
    except OSError:
        return None


def scan(root: Path, limit: int = SCAN_FILES) -> tuple[int, int, Path | None]:
    """(pointers, files looked at, the first pointer) among up to ``limit`` files under ``root``; files
    whose names start with a dot (``.gitattributes``) are not data and not counted."""
    pointers, seen, first = 0, 0, None
    for parent, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            seen += 1
            path = Path(parent, name)
            if file_note(path):
                pointers += 1
                first = first or path
            if seen >= limit:
                return pointers, seen, first
    return pointers, seen, first


def check(path: Path, shown: str) -> None:
    """Refuse a source file that is a pointer, or a folder whose files are mostly pointers (the data was
    never downloaded, so every stage would read nothing); say so when only some are (each is quarantined
    as ``not_downloaded`` until fetched)."""
    if not path.is_dir():
        if note := file_note(path):
            raise InputError(f"{shown}: {note}")
        return
    pointers, seen, first = scan(path)
    if not pointers:
        return
    where = f"{pointers:,} of the {seen:,} files{' looked at' if seen >= SCAN_FILES else ''}"
    note = file_note(first) if first else None
    example = f"{first.relative_to(path).as_posix()} is {note}" if first and note else ""
    if 2 * pointers > seen:
        raise InputError(f"{shown}: {where} are pointers to content never downloaded ({example}), then give it again")
    print(f"[init] {shown}: {where} are pointers to content never downloaded ({example}); ingest quarantines "
          f"each as {REASON} until then")
