"""What ``sluice init`` writes for one source or vote export: its name, its path as params hold it (relative
to the project when inside it) and the settings its connector finds in the data."""

from __future__ import annotations

from pathlib import Path

from sluice import not_downloaded
from sluice.errors import InputError


def rel(path: str | Path, root: Path) -> str:
    """``path`` as written in params: relative to the project when inside it, else absolute."""
    full = Path(path).expanduser().absolute()
    return (full.relative_to(root.absolute()) if full.is_relative_to(root.absolute()) else full).as_posix()


def inside(value, root: Path):
    """``value`` (a detected setting: a path, a list or mapping of them, anything else) with every absolute path
    inside the project written relative to it."""
    if isinstance(value, dict):
        return {k: inside(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [inside(v, root) for v in value]
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(root.absolute()):
        return rel(value, root)
    return value


def existing(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{path}: {what} not found")
    not_downloaded.check(p, path)  # a clone without its LFS content: say so before reading pointers as data
    return p


def entry_name(kind: str, path: str, taken: set[str]) -> str:
    base = f"{kind}-{Path(path).expanduser().absolute().name}".lower().replace(" ", "-")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def detected(family: str, kind: str, p: Path, shown: str) -> dict:
    """What the connector finds the entry needs in the data at ``p`` (printed when anything)."""
    from sluice.connectors import SUBJECT_KEYS, get

    found = detect(str(p)) if (detect := get(family, kind).detect) else {}
    if found:
        print(f"[init] {shown}: " + ", ".join(f"{k}={v}" for k, v in found.items()) + " (found in the data; in params.yaml)")
    if label := found.get("positive_label"):
        print(f"[init] column '{found.get('label_column')}' gives several labels an image (multi-label): the pipeline "
              f"learns one, so it is read as one versus the rest, '{label}' / 'not_{label}' ({label}: the label nearest "
              "half of the rows); set positive_label to the label to learn, or null to keep only the rows of one label")
    key = next((k for k in SUBJECT_KEYS if found.get(k)), None)
    if key:
        what = "the images' paths (person1_..., patient00001/, a track's frames) name" if key == "subject_pattern" else \
            f"{key.split('_')[1]} '{found[key]}' names"
        print(f"[init] {what} what each image shows (a patient, a lesion, a sequence): the dataset keeps each "
              f"one's images in one split (set {key}: null to split images one by one)")
    return found
