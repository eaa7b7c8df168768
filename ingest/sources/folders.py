"""What in a source folder is nobody's image, in one place: the image-folder connector and the folder
digest that DVC tracks in its place (``ingest/source_listing.py``) must leave out the same folders."""

from __future__ import annotations

from pathlib import PurePath


def metadata(path: PurePath) -> bool:
    """A folder that holds no one's images: hidden (``.git``, ``.ipynb_checkpoints``) or macOS's ``__MACOSX``
    zip residue (its ``._name.jpg`` files are resource forks, not pictures)."""
    return path.name.startswith(".") or path.name == "__MACOSX"
