"""``sluice init --votes``: a vote export's ``labels.exports`` entry, its kind and settings told by the file, and
the true labels beside the votes (``--truth``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sluice import class_order
from sluice.delimited import column_key, header_line
from sluice.errors import InputError
from sluice.init_entries import detected, entry_name, existing, rel
from sluice.item_labels import read_item_labels


WIDE_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".parquet", ".pq")  # answers as arrays / columns: the wide kind


def vote_export(path: str, root: Path, taken: set[str], classes: tuple[str, list[str]] | None = None,
                sources: tuple[dict, ...] = ()) -> dict:
    """A ``labels.exports`` entry, its kind told by the file (Label Studio JSON, MTurk CSV, a long CSV
    with one vote a row, else a wide table or array with one column per answer) and the settings its
    connector detects in it; labels given as class indices get ``class_names`` from what the images the
    votes name say (``class_order.from_votes``, over ``sources``' class folders), else from ``classes``
    (where they come from, the names in index order)."""
    import polars as pl

    from sluice.connectors import get

    p = existing(path, "vote file")
    if (suffix := p.suffix.lower()) in (".xlsx", ".xls", ".xlsm", ".ods", ".numbers"):
        raise InputError(f"{path}: a spreadsheet workbook is not read; save the sheet as CSV (UTF-8) and give that")
    entry = {"name": entry_name("votes", path, taken), "path": rel(p, root)}
    if p.is_dir() or suffix == ".manifest":
        kinds = ["ground_truth"]  # a SageMaker Ground Truth job's folder or output manifest
    elif suffix in (".json", ".jsonl", ".ndjson"):  # a tool's own export, a mapping of mappings, else a vote a record
        kinds = ["label_studio", "labelbox", "nested", "csv"] if suffix == ".json" else ["labelbox", "ground_truth", "csv"]
    elif suffix in (".yaml", ".yml"):
        kinds = ["nested"]  # {worker: {item: label}}: the bluebirds' labels.yaml
    elif suffix in (".parquet", ".pq"):
        kinds = ["csv", "wide"]  # one vote a row, else wide
    elif suffix in WIDE_SUFFIXES:
        kinds = ["wide"]
    else:
        header = header_line(p)  # a votes file that is not UTF-8 is said here, in one line (sluice.delimited)
        kinds = ["mturk"] if "Input." in header and "Answer." in header else ["csv", "wide"]  # wide: a column per answer
    errors = []
    for kind in kinds:
        try:
            entry = {**entry, "kind": kind, **detected("votes", kind, p, path)}
            break
        except InputError as err:
            errors.append(err)
    else:  # what a kind that knew the file says, else the last (the most general) kind's word
        raise next((e for e in errors if ": not a " not in str(e)), errors[-1])
    if entry["kind"] == "wide" and not {"item_column", "item_key", "items_file"} & set(entry):
        print(f"[init] {path}: no item column: its rows are items by position (0, 1, ...); set item_key on its "
              "labels.exports entry to the raw_images field they index (e.g. column:train_index for CIFAR's "
              "training set in torchvision's order)", file=sys.stderr)
    connector = get("votes", entry["kind"])
    try:
        votes = connector.reader(connector.config.model_validate({**entry, "path": str(p)})).votes
    except InputError:  # the ingest_crowd stage reports what is wrong with the file, with its line
        return entry
    labels = votes["label"]
    indices = labels.drop_nulls().str.strip_chars().str.contains(r"^\d+$")
    if indices.len() and indices.mean() >= 0.99:
        top = int(labels.drop_nulls().str.strip_chars().cast(pl.Int64, strict=False).max() or 0)
        read = None if classes and classes[0] == "--classes" else \
            class_order.from_votes(votes["item_ref"], labels, class_order.file_labels(sources, root))
        if read and not (classes and read[0] == classes[1][:len(read[0])]):
            entry["class_names"] = read[0]
            print(f"[init] {path}: labels are class indices (0..{top}), named by the class folders of the images "
                  f"{read[1]} of its votes name: " + ", ".join(f"{k}={c}" for k, c in enumerate(read[0][:4]))
                  + (", ..." if len(read[0]) > 4 else "") + (f"; not {classes[0]}'s sorted order" if classes else "")
                  + " (class_names in params.yaml)")
        elif classes is None or top >= len(classes[1]):
            print(f"[init] {path}: labels are class indices (0..{top}); set class_names on its labels.exports entry "
                  "to the class names in index order (or pass --classes)", file=sys.stderr)
        else:
            entry["class_names"] = list(classes[1])
            print(f"[init] {path}: labels are class indices (0..{top}), named by {classes[0]}: "
                  f"0={classes[1][0]}, 1={classes[1][1] if len(classes[1]) > 1 else ''}..."
                  + (f", as the images {read[1]} of its votes name say" if read else "") + " (class_names in params.yaml)")
    return entry


# names a research collection gives its true labels beside the votes: truth.csv beside answer.csv, SQUARE's
# bm.gold.txt beside bm.response.txt, the bluebirds' gt.yaml beside labels.yaml, gt.csv, ground_truth.json, gold_labels.tsv (matched as column names are)
_TRUTH_ENDS = ("truth", "gold", "gt", "groundtruth", "truelabels", "truelabel", "goldlabels", "goldstandard")
_TRUTH_STARTS = ("truth", "gold", "groundtruth")
_TRUTH_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".yaml", ".yml")


def _truth_name(path: Path) -> bool:
    key = column_key(path.name[: -len(path.suffix)] if path.suffix else path.name)
    return key.endswith(_TRUTH_ENDS) or key.startswith(_TRUTH_STARTS)


def _token(path: Path) -> str:
    return re.split(r"[._\- ]", path.name.lower(), maxsplit=1)[0]


def _beside(votes: Path, mine: set[Path]) -> list[Path]:
    """The files beside ``votes`` named as true labels: the one that shares its first name token (``bm.gold.txt``
    for ``bm.response.txt``) where there is one, else those no other file there shares a first token with."""
    files = [f for f in votes.parent.iterdir() if f.is_file() and f.resolve() not in mine]
    named = [f for f in files if f.suffix.lower() in _TRUTH_SUFFIXES and _truth_name(f)]
    own = [f for f in named if _token(f) == _token(votes)]
    if len(own) == 1:
        return own
    others = {_token(f) for f in files if f not in named}
    return [f for f in named if _token(f) not in others]


def truth_file(votes: list[str], given: str | None, root: Path) -> str | None:
    """``labels.ground_truth``: the true labels the labels stage scores the crowd and each worker against (never
    used to label): the file given (``--truth``), else the one file beside the votes named as research collections
    name theirs (several: said, none taken). A file found is taken only where it reads as one label an item."""
    if given:
        p = existing(given, "truth file")
        read_item_labels(str(p), "--truth")  # a file that is no item -> label table fails here, not at repro
        return rel(p, root)
    mine = {Path(v).expanduser().resolve() for v in votes}
    found = sorted({f for v in mine if v.is_file() for f in _beside(v, mine)})
    if len(found) > 1:
        print(f"[init] several files beside the votes may hold their true labels ({', '.join(f.name for f in found[:4])}); "
              "none taken: pass --truth FILE to score the crowd against one", file=sys.stderr)
        return None
    if not found:
        return None
    try:
        labels = read_item_labels(str(found[0]), "truth file")
    except InputError as err:
        print(f"[init] {found[0].name} beside the votes is not taken as their true labels: {err}", file=sys.stderr)
        return None
    print(f"[init] {found[0]}: true labels of {labels.height} items beside the votes: the labels stage scores the "
          "crowd and each worker against them (labels.ground_truth; never used to label)")
    return rel(found[0], root)
