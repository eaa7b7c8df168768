"""What in a source folder is nobody's image, in one place: the image-folder connector and the folder
digest that DVC tracks in its place (``ingest/source_listing.py``) must leave out the same folders."""

from __future__ import annotations

from pathlib import PurePath


def metadata(path: PurePath) -> bool:
    """A folder that holds no one's images: hidden (``.git``, ``.ipynb_checkpoints``) or macOS's ``__MACOSX``
    zip residue (its ``._name.jpg`` files are resource forks, not pictures)."""
    return path.name.startswith(".") or path.name == "__MACOSX"


# files an operating system leaves in a folder of pictures: Finder's view settings, Windows' thumbnail cache and
# folder settings (an image folder copied from a Mac or a Windows share carries them)
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".directory", "icon\r"})


def keep_files(names: list[str], skipped: set[str]) -> list[str]:
    """``names`` less the system files, whose names go to ``skipped`` (said in the ingest log, as metadata folders)."""
    system = [n for n in names if n.lower() in SYSTEM_FILES]
    skipped.update(system)
    return [n for n in names if n.lower() not in SYSTEM_FILES] if system else names
