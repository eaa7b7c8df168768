"""``sluice init --images ARCHIVE``: an image folder shipped as a zip, tar or 7z archive (Imagenette's ``.tgz``,
Food-101's ``.tar.gz``, a Kaggle ``.zip``, Kaggle's CIFAR-10 ``train.7z``, ImageNet's training tar of one tar a
class) is extracted once, safely, into the project's ``sources/`` folder, and that folder is the source.

Extracted, not read in place: a folder's layout is read from its paths and the files beside its images
(labels files, split lists, annotations), and a compressed tar has no random access, so every stage
that reads the source would decompress the whole archive again. Safely: a member that would land
outside the folder (an absolute path, ``..``, a link out of it, a device file) refuses the archive
(Python's ``tarfile`` ``data`` filter, the same rule for zip and 7z names; a 7z holding links is refused), an
encrypted or corrupt one is one
line, and the files must fit the disk's free space (declared sizes counted as they are written, so a
bomb stops at the budget, never fills the disk). Once: a marker beside the folder records the archive's
size and mtime, so ``sluice init --force`` again reuses it. The archive itself is never changed.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from sluice.errors import InputError

SOURCES = "sources"  # the project's folder of extracted sources (git-ignored)
SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip", ".7z")
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
RESERVE_BYTES = 512 << 20  # left free on the disk after extracting
PROGRESS_EVERY = 20_000  # files between progress lines
BESIDE_BYTES = 256 << 20  # a folder of archives: its other files up to this size are copied beside them (labels)


class _OverBudget(Exception):
    pass


def stem(path: Path) -> str:
    """The archive's name without its archive suffix (``imagenette2-160.tgz`` -> ``imagenette2-160``)."""
    name = path.name
    return next((name[: -len(s)] for s in SUFFIXES if name.lower().endswith(s)), path.stem)


def is_archive(path: Path) -> bool:
    """A zip, tar or 7z file by name and by content (an ``.npz`` is a zip too, but not by name)."""
    name = path.name.lower()
    if not path.is_file() or not name.endswith(SUFFIXES):
        return False
    try:
        if name.endswith(".7z"):
            with path.open("rb") as f:
                return f.read(len(SEVEN_ZIP_MAGIC)) == SEVEN_ZIP_MAGIC
        return zipfile.is_zipfile(path) if name.endswith(".zip") else tarfile.is_tarfile(path)
    except OSError:
        return False


def unreadable(path: Path) -> str | None:
    """Why a file named as an archive is not one that can be read (cut short, corrupt, another kind of file), or None."""
    name = path.name.lower()
    if not path.is_file() or not name.endswith(SUFFIXES) or is_archive(path):
        return None
    kind = "7z" if name.endswith(".7z") else "zip" if name.endswith(".zip") else "tar"
    return f"{path}: not a readable {kind} archive ({path.stat().st_size} bytes: cut short, corrupt or another kind " \
           "of file); download it again, or extract it yourself and give the folder"


def extract(archive: Path, project: Path, shown: str, within: str = "") -> Path:
    """The folder ``archive`` is extracted into (``project/sources/[within/]<stem>``), extracting it when it is not
    already."""
    dest = project / SOURCES / within / stem(archive)
    marker = project / SOURCES / f".{within.replace('/', '_') + '_' if within else ''}{dest.name}.extracted.json"  # outside
    stat = archive.stat()
    mark = {"archive": str(archive.absolute()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    previous = json.loads(marker.read_text()) if marker.is_file() else None
    if dest.exists():
        if previous and {k: previous.get(k) for k in mark} == mark:
            print(f"[init] {shown}: already extracted into {dest} ({previous.get('files', '?'):,} files)")
            return dest
        if previous is None:
            raise InputError(f"{dest}: exists and was not extracted from {shown} by sluice init; move it away, or give "
                             "that folder to --images")
        shutil.rmtree(dest)  # ours, from another version of the archive
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    budget = shutil.disk_usage(partial).free - RESERVE_BYTES
    print(f"[init] {shown}: extracting into {dest} ...")
    try:
        files, size = _extract(archive, partial, budget, shown)
        inner = sorted(p for p in partial.rglob("*") if is_archive(p))
        for k, nested in enumerate(inner):  # ImageNet's training tar: one tar a class, extracted where it lies
            n, s = _extract(nested, nested.with_name(stem(nested)), budget - size, f"{shown}: {nested.relative_to(partial)}")
            nested.unlink()
            files, size = files + n - 1, size + s
            if (k + 1) % 100 == 0:
                print(f"[init] {shown}: {k + 1:,} of {len(inner):,} archives inside it extracted")
    except _OverBudget:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(f"{shown}: its files do not fit the free space beside the project ({budget / 1e9:.1f} GB, "
                         f"{RESERVE_BYTES >> 20} MB kept free); free some, or extract it elsewhere and give the folder") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, dest)
    marker.write_text(json.dumps({**mark, "files": files, "bytes": size}))
    print(f"[init] {shown}: extracted {files:,} files ({size / 1e6:,.1f} MB) into {dest} "
          f"(the archive is not changed)" + (f"; the {len(inner):,} archives inside it extracted too" if inner else ""))
    return dest


def archives_only(folder: Path) -> list[Path]:
    """The archives at the top of ``folder`` when no image file lies anywhere in it (a Kaggle download: dogs-vs-cats'
    ``train.zip`` and ``test1.zip``; aerial-cactus' ``train.zip`` beside ``train.csv``); else []."""
    from sluice.imaging import image_extensions

    if not folder.is_dir():
        return []
    extensions = image_extensions()
    if any(Path(f).suffix.lower() in extensions for _, _, files in os.walk(folder) for f in files):
        return []
    return sorted(p for p in folder.iterdir() if is_archive(p))


def extract_folder(folder: Path, project: Path, shown: str) -> Path:
    """``project/sources/<folder>``: each archive of :func:`archives_only` extracted there (into ``<stem>/``), and the
    folder's other small files (a labels CSV, its class list; up to :data:`BESIDE_BYTES` each) copied beside them."""
    for archive in archives_only(folder):
        extract(archive, project, f"{shown}/{archive.name}", within=folder.name)
    dest = project / SOURCES / folder.name
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not is_archive(p) and not p.name.startswith(".")):
        if path.stat().st_size <= BESIDE_BYTES and not (dest / path.name).exists():
            shutil.copy2(path, dest / path.name)
    return dest


def _extract(archive: Path, into: Path, budget: int, shown: str) -> tuple[int, int]:
    """(files, bytes) written from ``archive`` into ``into``; a corrupt, encrypted or hostile archive is an InputError."""
    import py7zr.exceptions as seven

    try:
        if archive.name.lower().endswith(".zip"):
            return _unzip(archive, into, budget, shown)
        if archive.name.lower().endswith(".7z"):
            return _un7z(archive, into, budget, shown)
        return _untar(archive, into, budget, shown)
    except _OverBudget:
        raise
    except InputError:
        raise
    except seven.PasswordRequired:
        raise InputError(f"{shown}: cannot extract: encrypted (a password is required); extract it by hand and give "
                         "the folder") from None
    except (seven.ArchiveError, seven.AbsolutePathError) as err:
        raise InputError(f"{shown}: cannot extract ({err.__class__.__name__}: {err})") from None
    except tarfile.FilterError as err:
        raise InputError(f"{shown}: refused: a member would be written outside the folder or is not a plain file or "
                         f"folder ({err}); extract it by hand if you trust it, and give the folder") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError, RuntimeError,
            ValueError) as err:  # RuntimeError: zipfile's "password required"
        raise InputError(f"{shown}: cannot extract ({err.__class__.__name__}: {err})") from None


def _untar(archive: Path, into: Path, budget: int, shown: str) -> tuple[int, int]:
    count = [0, 0]

    def guarded(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        member = tarfile.data_filter(member, path)
        if member.isfile():
            count[0] += 1
            count[1] += member.size
            if count[1] > budget:
                raise _OverBudget
            if count[0] % PROGRESS_EVERY == 0:
                print(f"[init] {shown}: {count[0]:,} files ({count[1] / 1e6:,.0f} MB)")
        return member

    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tf:
        tf.extractall(into, filter=guarded)
    return count[0], count[1]


def _safe_name(name: str) -> PurePosixPath:
    """A member's name as a relative path inside the folder (a Windows tool's backslashes are folders), or
    tarfile.FilterError (the archive is refused) for one that would be written outside it."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in (path.parts[0] if path.parts else ""):
        raise tarfile.FilterError(f"'{name}' would be written outside the folder")
    return path


def _un7z(archive: Path, into: Path, budget: int, shown: str) -> tuple[int, int]:
    """A 7z archive (py7zr: LZMA / LZMA2, PPMd, BZip2, Deflate, Zstandard; BCJ filters) member by member in the
    archive's order, which for a solid archive decompresses each block once."""
    import py7zr
    from py7zr.callbacks import ExtractCallback

    class Progress(ExtractCallback):
        files = 0

        def report_end(self, processing_file_path, wrote_bytes) -> None:
            self.files += 1
            if self.files % PROGRESS_EVERY == 0:
                print(f"[init] {shown}: {self.files:,} of {len(members):,} files")

        def report_start_preparation(self) -> None: ...
        def report_start(self, processing_file_path, processing_bytes) -> None: ...
        def report_update(self, decompressed_bytes) -> None: ...
        def report_warning(self, message) -> None: ...
        def report_postprocess(self) -> None: ...

    with py7zr.SevenZipFile(archive, "r") as z:
        if z.needs_password():
            raise py7zr.exceptions.PasswordRequired()
        members = z.list()
        for info in members:
            _safe_name(info.filename)
            if info.is_symlink:
                raise tarfile.FilterError(f"'{info.filename}' is a link (links in a 7z archive are not followed)")
        files = [i for i in members if not i.is_directory]
        size = sum(i.uncompressed or 0 for i in files)
        if size > budget:
            raise _OverBudget
        into.mkdir(parents=True, exist_ok=True)
        z.extractall(path=into, callback=Progress())
    return len(files), size


def _unzip(archive: Path, into: Path, budget: int, shown: str) -> tuple[int, int]:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _safe_name(info.filename)
        size = sum(i.file_size for i in members if not i.is_dir())
        if size > budget:
            raise _OverBudget
        files, made = 0, set()
        for info in members:
            # a Windows tool's zip may separate folders by backslashes: cat\\1.jpg is cat/1.jpg, not a file of that name
            target = into.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if info.is_dir() or info.filename.endswith(("/", "\\")):
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, min(max(info.file_size, 1), 1 << 20))
            files += 1
            if files % PROGRESS_EVERY == 0:
                print(f"[init] {shown}: {files:,} of {len(members):,} files")
    return files, size
