"""What each class index of crowd votes names, read from the images the votes name.

Vote files often give labels as class indices (LabelMe's ``answers.txt``: 0..7, CIFAR-10N's arrays). Class
folders give names but no order: torchvision's ``ImageFolder`` numbers them sorted, and so do CIFAR's files,
but LabelMe numbers highway 0, insidecity 1, tallbuilding 2, street 3, forest 4... Mapping its indices
through the sorted folders would land every vote on the wrong class, silently. Where the votes' items name
images whose folders label them, those say it: index i is the label that most of the images its votes name
carry (crowd votes are noisy, so a majority, not every vote). ``sluice init`` uses this to write
``class_names`` for such an export, or to confirm the sorted order, and says which.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

MIN_VOTES = 3  # votes per index on labelled images before its name is read from them
CLASSES_PROPERTY = "sluice.classes"  # the class list, recorded on the dataset table (a class may have no row)


def ordered(labels: Iterable[str]) -> list[str]:
    """Class names sorted numerically when they are all integers ("2" before "10"), else alphabetically."""
    unique = sorted(set(labels))
    if all(lab.lstrip("-").isdigit() for lab in unique):
        return sorted(unique, key=int)
    return unique


def folded(names: Iterable[str]) -> tuple[list[str], list[list[str]]]:
    """``names`` :func:`ordered`, keeping one spelling of names that differ only in case (the labels stage folds
    case: ``Cat/`` and ``cat/`` are one class), and the groups of spellings so merged."""
    spellings: dict[str, list[str]] = {}
    for name in ordered(names):
        spellings.setdefault(name.casefold(), []).append(name)
    return [group[0] for group in spellings.values()], [group for group in spellings.values() if len(group) > 1]


def class_list(declared: Iterable[str] | None, found: Iterable[str]) -> list[str]:
    """The project's class list, whose positions are the class indices: ``labels.classes`` in the order the
    user gave, then any other label ``found`` (:func:`ordered`); without a declared list, every label found.

    A class keeps its index while it has a resolved label anywhere, also where the dataset stage leaves it
    no row (its groups quarantined, undersampled away): indices never shift under a model's head, and the
    gold gate reports the empty class (a 0 share of train) instead of the snapshot gate a changed list."""
    declared = list(dict.fromkeys(declared or []))
    return declared + ordered(set(found) - set(declared))


def record(lake, table: str, classes: list[str]) -> None:
    """Set ``classes`` as a property of ``table`` (one commit, only when it changes): the class list of the
    rows, including classes with no row, which the rows themselves cannot say."""
    from sluice.catalog import with_retries

    value = json.dumps(list(classes), separators=(",", ":"))
    if lake.table(table).metadata().configuration.get(CLASSES_PROPERTY) == value:
        return
    with_retries(lambda: lake.table(table).alter.set_table_properties({CLASSES_PROPERTY: value}, raise_if_not_exists=False),
                 lake.retries, f"record the class list on {table}")


def recorded(lake, table: str, version: int | None = None) -> list[str] | None:
    """The class list recorded on ``table`` at ``version``, or None (a table written before it was recorded)."""
    value = lake.table(table, version).metadata().configuration.get(CLASSES_PROPERTY)
    return list(json.loads(value)) if value else None


def from_votes(items: Iterable[str | None], labels: Iterable[str | None],
               file_labels: Iterable[tuple[str, str]]) -> tuple[list[str], int] | None:
    """The class names in index order (0..the largest index voted) that the images the votes name say, and
    how many votes said it; None where an index has fewer than MIN_VOTES votes on labelled images, no majority
    label, or two indices would name one class (then nothing is guessed)."""
    by_key: dict[str, str | None] = {}
    for rel, label in file_labels:  # a path, and its file name where no other file shares it
        for key in dict.fromkeys((rel, rel.rsplit("/", 1)[-1])):
            by_key[key] = label if by_key.get(key, label) == label else None
    counts: dict[int, Counter] = defaultdict(Counter)
    for item, label in zip(items, labels):
        label = (label or "").strip()
        if item and label.isdigit() and (folder := _lookup(by_key, item)):
            counts[int(label)][folder] += 1
    if not counts:
        return None
    names = []
    for index in range(max(counts) + 1):
        voted = counts.get(index, Counter())
        total = sum(voted.values())
        if total < MIN_VOTES:
            return None
        name, n = voted.most_common(1)[0]
        if n <= total / 2:
            return None
        names.append(name)
    return (names, sum(sum(c.values()) for c in counts.values())) if len(set(names)) == len(names) else None


def _lookup(by_key: dict[str, str | None], item: str) -> str | None:
    """The label of the image an item names: by its path, else its longest tail that is a known path or name
    (``https://host/batch/forest/a.jpg``, ``D:\\set\\a.jpg``)."""
    parts = [p for p in item.strip().replace("\\", "/").split("?")[0].split("/") if p]
    for n in range(len(parts), 0, -1):
        found = by_key.get("/".join(parts[-n:]))
        if found:
            return found
    return None


def known(given: list[str] | None, sources: list[dict], root: Path) -> tuple[str, list[str]] | None:
    """The class names in index order and where they come from: ``--classes``, else the first source
    whose data says (CIFAR's meta, a Parquet file's ClassLabel, an image folder's sorted class folders)."""
    if given:
        return "--classes", list(given)
    for src in sources:
        names = source_classes(src, root)
        if names:
            return f"source {src['name']}", names
    return None


def source_classes(src: dict, root: Path) -> list[str] | None:
    """The class names a source's data gives, in index order (its connector's ``class_names``), or None."""
    connector, config = _connector(src, root)
    names = connector.class_names(config) if connector.class_names else None
    return list(names) if names else None


def file_labels(sources: Iterable[dict], root: Path) -> Iterator[tuple[str, str]]:
    """(path, label) of every image the sources' paths label (their connectors' ``file_labels``), lazily."""
    for src in sources:
        connector, config = _connector(src, root)
        if connector.file_labels:
            yield from connector.file_labels(config)


def _connector(src: dict, root: Path):
    from sluice.connectors import get

    connector = get("source", src["kind"])
    path = Path(src["path"]) if Path(src["path"]).is_absolute() else root / src["path"]
    return connector, connector.config.model_validate({**src, "path": str(path)})
