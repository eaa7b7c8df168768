"""``sluice init --votes``: true labels and control answers kept *inside* a vote file, a row per vote.

Collections often ship the reference label on every vote row: CIFAR-10H's ``true_category`` / ``true_label`` beside
each trial's ``chosen_label``; crowd platforms put a control task's known answer in its own column (Toloka's
``GOLDEN:result``, Figure Eight's ``<question>_gold``). The first is ``labels.ground_truth`` (the crowd is scored
against it, never labelled by it); the second ``labels.gold_file`` (the requester's known answers: they pin their
items and seed the workers' models, as the platform used them). Both become a :class:`LabelColumns` over the vote
file, keyed as its votes are.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sluice.delimited import column_key, first_fields
from sluice.errors import InputError
from sluice.item_labels import read_label_columns
from sluice.params_labels import LabelColumns

# a research collection's reference label beside each vote (matched as column names are: lower case, letters and digits)
TRUTH_COLUMNS = ("truecategory", "trueclass", "truelabel", "truth", "groundtruth", "gt", "trueanswer", "correctlabel",
                 "correctclass", "correctanswer")
_GOLD_PREFIXES = ("golden:", "golden.")  # Toloka: GOLDEN:<the output's name>


def _header(path: Path) -> list[str] | None:
    """The column names of a delimited or Parquet vote file (None for JSON records and other layouts)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if suffix in (".json", ".jsonl", ".ndjson", ".yaml", ".yml"):
        return None
    return first_fields(path)[1]


def _whole_numbers(labels) -> bool:
    values = labels.drop_nulls().str.strip_chars()
    return bool(values.len()) and bool(values.str.contains(r"^\d+$").all())


def _gold_column(header: list[str], label: str) -> str | None:
    """The control answers' column of the vote file's answer column ``label``: ``GOLDEN:result`` beside
    ``OUTPUT:result``, ``is_it_a_cat_gold`` beside ``is_it_a_cat``."""
    tail = label.partition(":")[2] or label.partition(".")[2]
    wanted = {p + tail.lower() for p in _GOLD_PREFIXES} if tail else set()
    for name in header:
        if name.lower() in wanted or column_key(name) == column_key(label) + "gold":
            return name
    return None


def _spec(entry: dict, column: str) -> dict:
    spec = {"path": entry["path"], "item_column": entry.get("item_column", "item"), "label_column": column}
    spec |= {k: entry[k] for k in ("item_key", "delimiter") if k in entry}
    return spec


def _taken(entry: dict, p: Path, column: str, role: str, use: str) -> dict | None:
    """The columns' spec where they read as one label an item (whole numbers named by the export's class_names where
    its votes are class indices), else None (said why)."""
    spec = _spec(entry, column)
    try:
        labels = read_label_columns(LabelColumns.model_validate({**spec, "path": str(p)}), role)
        if labels["label"].str.contains("\n").any():  # Figure Eight's gold may accept several answers, a line each
            raise InputError(f"item '{labels.filter(labels['label'].str.contains(chr(10)))['item'][0]}' accepts "
                             "several answers (a line each): a known answer is one class")
        if _whole_numbers(labels["label"]):
            if not entry.get("class_names"):
                print(f"[init] {p.name}: column {column} holds class indices and the votes' classes are not numbered; "
                      f"not taken as {role}", file=sys.stderr)
                return None
            spec["class_names"] = list(entry["class_names"])
            read_label_columns(LabelColumns.model_validate({**spec, "path": str(p)}), role)
    except InputError as err:
        print(f"[init] {p.name}: column {column} is not taken as {role}: {err}", file=sys.stderr)
        return None
    print(f"[init] {p.name}: column {column} holds the {role} of {labels.height} items"
          + (" (class indices, named by the export's class_names)" if "class_names" in spec else "") + f": {use}")
    return spec


def label_columns(exports: list[dict], root: Path, truth_wanted: bool = True) -> tuple[dict | None, dict | None]:
    """``(ground_truth, gold_file)`` found inside the long vote files of ``exports``: the first export holding each
    (no ground truth looked for unless ``truth_wanted``: a truth file given or found beside the votes comes first)."""
    truth = gold = None
    for entry in exports:
        if entry.get("kind") != "csv" or entry.get("header") is False:
            continue
        p = (root / entry["path"]).resolve()
        header = _header(p) or []
        if truth_wanted and truth is None:
            found = [n for n in header if column_key(n) in TRUTH_COLUMNS and n != entry.get("label_column")]
            # names before numbers: CIFAR-10H's true_category ("cat") before its true_label (3)
            for column in sorted(found, key=lambda n: "label" in column_key(n)):
                truth = _taken(entry, p, column, "true labels", "labels.ground_truth (the crowd and each worker are "
                                                                "scored against them; never used to label)")
                if truth:
                    break
        if gold is None and (column := _gold_column(header, entry.get("label_column", "label"))):
            gold = _taken(entry, p, column, "known answers", "labels.gold_file (they pin their items and seed the "
                                                             "workers' models)")
    return truth, gold
