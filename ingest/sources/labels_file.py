"""A labels file beside a flat image folder: one row per image naming its file and its label.

The layout of many published sets and most competition data (``train/`` plus ``train.csv`` with
``id,label``): the class is not a folder. A row names its image by relative path (``train/a.jpg``), by
file name (``a.jpg``) or by stem (``a``, the usual ``id``), tried in that order, or by a longer path
from another machine (``C:\\set\\train\\a.jpg``: its longest tail that fits); a name that fits several
images names none of them (quarantined as ``ambiguous_file_name``, never guessed), unless the labels file's name
says a split and one of them is in that split's folder (Kaggle's CIFAR-10: ``trainLabels.csv``'s ``1`` is
``train/1.png``, not ``test/1.png``). An image no row
names lands unlabelled (a test folder usually has no labels); a row that names no image, and a later
row giving an image a different label, are quarantined with the file and line. Flowers-102's
``imagelabels.mat`` labels the folder's images by position instead; a JSON file's rows are read by
``labels_json.py`` (COCO, JSON Lines, arrays, mappings) and matched the same way.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.sources import attribute_table, labels_json
from ingest.sources.base import Record, split_of, subject_of, word_split
from ingest.sources.split_lists import named, unknown_index
from sluice.delimited import DELIMITERS, column_key, read_delimited
from sluice.errors import InputError

if TYPE_CHECKING:
    import polars as pl

# header names, matched ignoring case, spaces, "-" and "_" (most specific first)
FILE_NAMES = ("file", "filename", "filepath", "path", "imagepath", "image", "imagefile", "imagename", "imageid", "img",
              "id", "idcode", "name", "fname", "sample", "sampleid", "imageindex")  # ChestX-ray14's Image Index
LABEL_NAMES = ("label", "labels", "class", "classname", "classid", "category", "target", "breed", "species", "diagnosis",
               "dx", "y", "predictionstring",  # ImageNet's LOC_val_solution.csv: the wnid, then its boxes
               "findinglabels", "tags", "tag")  # ChestX-ray14's Finding Labels, Planet's tags: often several a row
SPLIT_NAMES = ("split", "subset", "fold", "set", "partition")
# what several images show at once, so that a split between them leaks (HAM10000's lesion_id, ChestX-ray14's Patient ID,
# a camera trap's seq_id, Happywhale's individual_id): the dataset stage keeps each one's images in one split. The
# widest first: ISIC 2020's file has patient_id and lesion_id, and a patient's lesions share a split too
SUBJECT_NAMES = ("patientid", "patient", "subjectid", "subject", "participantid", "participant", "personid",
                 "individualid", "animalid", "caseid", "studyid", "lesionid", "seqid", "sequenceid", "sequence",
                 "captureid", "eventid", "burstid", "videoid", "video")  # Snapshot Serengeti's capture_id: a burst
SAMPLE_ROWS = 500
_SEVERAL = 20  # rows of several labels a cell among the first ones, at the least, before one label is read versus the rest
ONE_HOT = "<one-hot columns>"  # the label column a one-hot file's columns make



def find_columns(path: Path) -> dict:
    """The file, label (and split) columns of a labels file by their usual names; InputError when unsure."""
    if labels_json.reads(path):
        header = labels_json.header(path)
        line = ", ".join(header)
    elif attribute_table.reads(path):  # CelebA's list_attr_celeba.txt: a count, the names, then the rows
        header = attribute_table.header(path)
        line = ", ".join(header)
    else:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            line = f.readline().rstrip("\r\n")
        header = [c.strip() for c in max((next(csv.reader([line], delimiter=d), []) for d in DELIMITERS), key=len)]
    by_key = {}
    for name in header:
        by_key.setdefault(column_key(name), name)
    found = {role: next((by_key[k] for k in names if k in by_key), None)
             for role, names in (("file_column", FILE_NAMES), ("label_column", LABEL_NAMES), ("split_column", SPLIT_NAMES),
                                 ("subject_column", SUBJECT_NAMES))}
    if not found["file_column"] and found["subject_column"] and found["label_column"]:  # RSNA's patientId: the
        found["file_column"] = found["subject_column"]  # file is named by its patient (<patientId>.dcm)
    if not found["file_column"] and len(header) == 2 and not labels_json.reads(path):  # a CSV's file, then label
        found = {"file_column": header[0], "label_column": found["label_column"] or header[1], "split_column": None}
    if (found["file_column"] and not found["label_column"] and len(header) == 2 and found["split_column"] is None
            and not labels_json.reads(path)):  # Kaggle's id,has_cactus: the file, and the one other column
        found["label_column"] = next(c for c in header if c != found["file_column"])
    if found["file_column"] and not found["label_column"] and (hot := one_hot_columns(path, header, found)):
        return {"file_column": found["file_column"], "label_columns": hot,
                **{k: found[k] for k in ("split_column", "subject_column") if found.get(k)}}
    if found["file_column"] and not found["label_column"] and (attributes := _attributes(path, header, found)):
        return {"file_column": found["file_column"], "label_column": attributes[0],
                **{k: found[k] for k in ("split_column", "subject_column") if found.get(k)}}
    if not found["file_column"] or not found["label_column"] or found["file_column"] == found["label_column"]:
        raise InputError(f"{path}: cannot tell which columns of this labels file hold the file name and the label "
                         f"(found {line[:120]!r}); set file_column and label_column on its ingest.sources entry")
    return {k: v for k, v in found.items() if v}


_ONES, _ZEROS = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no", ""}


def _attributes(path: Path, header: list[str], found: dict) -> list[str]:
    """The yes / no attribute columns of a table of them (CelebA's), the most balanced first; [] for any other."""
    others = [c for c in header if c and c not in (found["file_column"], found.get("split_column"))]
    rows = attribute_table.sample(path, others, read_rows) if len(others) >= 2 else None
    binary = attribute_table.binary_columns(rows, others) if rows is not None and rows.height else []
    if len(binary) < 2:
        return []
    first = attribute_table.most_balanced(rows, binary)
    return [first, *(c for c in binary if c != first)]


def one_hot_columns(path: Path, header: list[str], found: dict) -> list[str]:
    """The columns that mark each row's class with a 1 (Plant Pathology's ``healthy,multiple_diseases,rust,scab``,
    ISIC's ``MEL,NV,BCC,...`` of 1.0 / 0.0, Roboflow's classification CSV): two or more columns of 0 / 1 alone in the
    first rows, 90% of which mark exactly one, none named for a rater; else []."""
    others = [c for c in header if c and c not in (found["file_column"], found.get("split_column"))]
    if len(others) < 2:
        return []
    try:
        rows = read_rows(path, others).head(SAMPLE_ROWS)
    except (InputError, OSError, ValueError):
        return []
    hot = [c for c in others if {v.strip().lower() for v in rows[c].fill_null("").to_list()} <= _ONES | _ZEROS]
    if len(hot) < 2 or not rows.height or any(re.search(r"rater|annotator|worker|vote|answer|judge", c, re.I) for c in hot):
        return []  # a wide file of crowd answers, a column a rater (docs/labels.md), is votes, not one-hot labels
    marked = [sum((row[c] or "").strip().lower() in _ONES for c in hot) for row in rows.select(hot).iter_rows(named=True)]
    return hot if sum(m == 1 for m in marked) >= 0.9 * len(marked) else []


def with_one_hot_label(rows: pl.DataFrame, columns: list[str], name: str) -> pl.DataFrame:
    """``rows`` with a column ``name``: the one-hot columns marked 1, joined by ``|`` (several: several labels)."""
    import polars as pl

    marked = [pl.when(pl.col(c).str.strip_chars().str.to_lowercase().is_in(list(_ONES))).then(pl.lit(c)) for c in columns]
    return rows.with_columns(pl.concat_str(marked, separator="|", ignore_nulls=True).replace("", None).alias(name))


@dataclass
class FileLabels:
    """The labels file read and matched against the folder's images."""

    by_image: dict[Path, tuple[str, str | None, str | None]] = field(default_factory=dict)  # image -> (label, split, subject)
    rejects: list[Record] = field(default_factory=list)


def match(labels_file: Path | list[Path], images: Iterable[Path], root: Path, file_column: str | None,
          label_column: str | None, split_column: str | None, class_names: list[str] | None = None, base: int = 0,
          label_columns: list[str] | None = None, subject_column: str | None = None,
          uncertain: str = "ignore", positive_label: str | None = None) -> FileLabels:
    """The labels file's rows (or the rows of several files of one header: CheXpert's ``train.csv`` and ``valid.csv``)
    matched to ``images``; a label that is a class index named by ``class_names`` (counted from ``base``), one past
    them a reject naming its line; ``subject_column``: what each image shows (a patient, a lesion), kept with it;
    ``uncertain``: what an uncertain finding is (attribute_table.py); ``positive_label``: a cell of several labels
    (``Effusion|Infiltration``) read as that one label or ``not_<it>``."""
    files = labels_file if isinstance(labels_file, list) else [labels_file]
    images = list(images)
    if files[0].suffix.lower() == ".mat":
        return _by_position(files[0], images, root)
    found = find_columns(files[0]) if not (file_column and (label_column or label_columns)) else {}
    file_column = file_column or found["file_column"]
    label_columns = label_columns or ([] if label_column else found.get("label_columns", []))
    label_column = label_column or found.get("label_column") or ONE_HOT
    split_column = split_column or found.get("split_column")
    required = [file_column, *(label_columns or [label_column]), *(c for c in (split_column, subject_column) if c)]
    index: dict[str, list[Path]] = {}
    for image in images:
        rel = image.relative_to(root).as_posix()
        for key in dict.fromkeys((rel, image.name, image.stem)):
            index.setdefault(key, []).append(image)
    out = FileLabels()
    folded = folded_index(index)
    for path in files:
        rows = read_rows(path, required)
        rows = with_one_hot_label(rows, label_columns, ONE_HOT) if label_columns else attribute_table.as_labels(
            rows, label_column, finding_table(path, file_column), uncertain)
        if positive_label:
            rows = one_versus_rest(rows, label_column, positive_label)
        _match_rows(path, rows, index, root, out, file_column, label_column, split_column, subject_column,
                    class_names, base, label_columns, several_files=len(files) > 1, folded=folded)
    missing = [r for r in out.rejects if r.reject == "label_for_missing_file"]
    if images and not out.by_image and missing:  # keyed otherwise than the files: not one row lands its label
        raise InputError(f"{missing[0].uri.rsplit(':', 1)[0]}: no row of the labels file names an image of the folder ({len(missing)} "
                         f"rows; e.g. '{missing[0].item_id}' against files like '{images[0].relative_to(root).as_posix()}'"
                         f"): set file_column on the source, or key the file by the images' names or paths")
    return out


def one_versus_rest(rows: pl.DataFrame, column: str, positive: str) -> pl.DataFrame:
    """``rows`` with each cell of ``column`` that names labels (one, or several: ChestX-ray14's ``Effusion|Infiltration``,
    Planet's ``haze primary``) written ``positive`` where it names it, else ``not_<positive>``; blanks stay blank."""
    import polars as pl

    cells = rows[column].to_list()
    return rows.with_columns(pl.Series(column, [
        None if cell is None or not cell.strip() else positive if positive in labels_of(cell, column) else f"not_{positive}"
        for cell in cells], pl.String))


def several_labels(path: Path, file_column: str, label_column: str) -> dict:
    """``{"positive_label": L}`` where a tenth or more of a labels file's first rows (and 20) give several labels a cell
    (ChestX-ray14's ``Finding Labels``, Planet's ``tags``): L is the label closest to half of the rows (ChestX-ray14's
    ``No Finding``: normal or not), so every image is labelled, one label or not; else {}."""
    try:
        cells = [c for c in read_rows(path, [file_column, label_column]).head(SAMPLE_ROWS * 4)[label_column].to_list()
                 if c and c.strip()]
    except (InputError, OSError, ValueError):
        return {}
    sets = [set(labels_of(c, label_column)) for c in cells]
    several = sum(len(s) > 1 for s in sets)
    if several < max(_SEVERAL, 0.1 * len(sets)):
        return {}
    counts: dict[str, int] = {}
    for names in sets:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return {"positive_label": min(sorted(counts), key=lambda k: abs(counts[k] / len(sets) - 0.5))}


def finding_table(path: Path, file_column: str) -> bool:
    """Whether the labels file's columns are findings with uncertainty (attribute_table.findings: CheXpert's)."""
    try:
        header = [c for c in read_rows(path, [file_column]).columns if c not in ("line", file_column)] \
            if labels_json.reads(path) else None
        if header is None:
            with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
                line = f.readline().rstrip("\r\n")
            header = [c.strip() for c in max((next(csv.reader([line], delimiter=d), []) for d in DELIMITERS), key=len)
                      if c.strip() and c.strip() != file_column]
        rows = attribute_table.sample(path, header, read_rows) if len(header) >= 2 else None
    except (InputError, OSError, ValueError):
        return False
    return rows is not None and attribute_table.findings(rows, header)


def _match_rows(labels_file: Path, rows, index: dict[str, list[Path]], root: Path, out: FileLabels, file_column: str,
                label_column: str, split_column: str | None, subject_column: str | None,
                class_names: list[str] | None, base: int, label_columns: list[str] | None,
                several_files: bool = False, folded: dict[str, list[Path]] | None = None) -> None:
    """One labels file's rows matched through ``index`` into ``out``; of ``several_files`` (train.csv and valid.csv),
    a row without a split column's value is of the split the file's name says (its folder's, where it has one)."""
    nothing = [None] * rows.height
    file_split = word_split(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", labels_file.stem))  # trainLabels -> train
    for line, name, label, split, subject in zip(rows["line"], rows[file_column], rows[label_column],
                                                 rows[split_column] if split_column else nothing,
                                                 rows[subject_column] if subject_column else nothing):
        where = f"{labels_file}:{line}"
        key = (name or "").strip()
        key = (key.replace("\\", "/") if "\\" in key and "/" not in key else key).removeprefix("./")  # Windows
        label = before_boxes(label)
        hits = lookup(index, key, folded)
        if len(hits) > 1 and file_split:  # Kaggle's CIFAR-10: trainLabels.csv's "1" is train/1.png, not test/1.png
            hits = [h for h in hits if file_split in {split_of(p) for p in h.relative_to(root).parts[:-1]}] or hits
        if label == attribute_table.UNCERTAIN:
            out.rejects.append(Record(where, item_id=key or None, reject="uncertain_label", details=(
                f"{label_column!r} is -1 (uncertain): the image lands unlabelled; uncertain_label: positive or "
                "negative on the source reads it as one (CheXpert's U-Ones / U-Zeros)")))
        elif not key or label is None or not label.strip():
            out.rejects.append(Record(where, item_id=key or None, reject="missing_field", details=(
                f"empty {'file name' if not key else 'label'}" if not key or not label_columns
                else f"no class column marked 1 ({', '.join(label_columns[:6])}{', ...' if len(label_columns) > 6 else ''})")))
        elif len(several := labels_of(label, label_column)) > 1:
            out.rejects.append(Record(where, item_id=key, reject="multiple_labels", details=(
                f"{label.strip()!r} gives {len(several)} labels; a classifier here learns one label an image, so the "
                "image lands unlabelled (votes or a file of one label each can label it)")))
        elif named(label.strip(), class_names, base) is None:
            out.rejects.append(unknown_index(where, key, label.strip(), class_names or [], base))
        elif not hits:
            out.rejects.append(Record(where, item_id=key, reject="label_for_missing_file",
                                      details=f"no image in {root} is named {key!r}"))
        elif len(hits) > 1 and not copies(hits):
            out.rejects.append(Record(where, item_id=key, reject="ambiguous_file_name",
                                      details=f"{key!r} names {len(hits)} images ({hits[0].relative_to(root)}, "
                                              f"{hits[1].relative_to(root)}, ...) that differ; name it by its path"))
        elif hits[0] in out.by_image and out.by_image[hits[0]][0] != named(label.strip(), class_names, base):
            out.rejects.append(Record(where, item_id=key, reject="conflicting_label",
                                      details=f"{key!r} labelled {label.strip()!r} here and "
                                              f"{out.by_image[hits[0]][0]!r} on an earlier line (the first kept)"))
        else:  # one image, or copies of it (HAM10000's part folders are shipped twice): each takes the label
            for hit in hits:
                out.by_image.setdefault(hit, (named(label.strip(), class_names, base), (split or "").strip().lower() or
                                              (file_split if several_files else None), subject_of(subject)))


def read_rows(path: Path, required: list[str]) -> pl.DataFrame:
    """A labels file's rows as strings (CSV / TSV, or JSON: ``labels_json.py``) with ``line``, where each row is."""
    if attribute_table.reads(path):
        return attribute_table.read(path, required)
    if not labels_json.reads(path):
        return read_delimited(path, required, None, f"labels file {path.name}").with_row_index("line", offset=2)
    rows = labels_json.read(path)
    if missing := [c for c in required if c not in rows.columns]:
        raise InputError(f"{path}: no field {', '.join(map(repr, missing))} in the labels file's rows (fields: "
                         f"{', '.join(c for c in rows.columns if c != 'line')}); set the column names in params.yaml")
    return rows


def labels_of(label: str, column: str) -> list[str]:
    """The distinct labels a cell gives: one, or several joined by ``|`` or ``;`` (ChestX-ray14's
    ``Effusion|Infiltration``), or by spaces in a column of tags (Planet's ``tags``: ``haze primary``)."""
    separator = r"[|;]" if column_key(column) not in ("tags", "tag") else r"[|;\s]"
    return list(dict.fromkeys(t.strip() for t in re.split(separator, label) if t.strip())) or [label.strip()]


def copies(paths: list[Path]) -> bool:
    """Whether the files are byte-for-byte copies of one another (sizes first: most that differ stop there)."""
    try:
        if len({p.stat().st_size for p in paths}) != 1:
            return False
        first = paths[0].read_bytes()
        return all(p.read_bytes() == first for p in paths[1:])
    except OSError:
        return False


def _by_position(labels_file: Path, images: list[Path], root: Path) -> FileLabels:
    """Flowers-102's ``imagelabels.mat``: one number a image, the folder's images in name order (image_00001.jpg
    first); as many labels as images, else one line saying both counts."""
    from ingest.sources import matlab

    found = matlab.numbers(labels_file)
    if len(found) != 1:
        raise InputError(f"{labels_file}: expected one array of labels, found {', '.join(found) or 'none'}")
    [labels] = found.values()
    ordered = sorted(images, key=lambda p: p.relative_to(root).as_posix())
    if len(labels) != len(ordered):
        raise InputError(f"{labels_file}: {len(labels)} labels for the {len(ordered)} images of {root}; its labels "
                         "name the images by position (name order), so the counts must agree")
    out = FileLabels()
    out.by_image = {image: (str(int(label)), None, None) for image, label in zip(ordered, labels)}
    return out




def before_boxes(label: str | None) -> str | None:
    """A label followed by its object's box (ImageNet's ``n01751748 160 139 372 291 n01751748 ...``): the label
    alone; any other label as it is (``grade 2`` stays so)."""
    words = (label or "").split()
    if len(words) >= 5 and not _number(words[0]) and all(_number(w) for w in words[1:5]):
        return words[0]
    return label


def _number(word: str) -> bool:
    return word.replace(".", "", 1).lstrip("-").isdigit()


def lookup(index: dict[str, list[Path]], key: str, folded: dict[str, list[Path]] | None = None) -> list[Path]:
    """The images a row's name fits: the name itself, else its longest tail that fits any (a path from the
    machine the file was written on: ``/home/ann/set/train/a.jpg`` -> ``train/a.jpg``); else, with ``folded``
    (:func:`folded_index`), the same ignoring case (``P00945`` or ``p00945.JPG`` for ``p00945.jpg``); else the same
    without its image extension, so that its stem names it (``P00945.jpeg`` for ``p00945.jpg``)."""
    bare = re.sub(r"(?i)\.(jpe?g|jfif|png|gif|bmp|webp|tiff?|heic|dcm)$", "", key)  # p1.jpeg for a landed p1.jpg
    tries = [(index, key), *([(folded, key.lower())] if folded is not None else []),
             *([(index, bare), *([(folded, bare.lower())] if folded is not None else [])] if bare != key else [])]
    for names, name in tries:
        if name in names:
            return names[name]
        parts = [p for p in name.split("/") if p]
        for n in range(len(parts) - 1, 0, -1):
            tail = "/".join(parts[-n:])
            if tail in names:
                return names[tail]
    return []


def folded_index(index: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """``index`` by lower-case name: two files whose names differ only in case share an entry (so a row naming
    either is ambiguous there, as two folders' ``001.png`` are)."""
    folded: dict[str, dict[Path, None]] = {}
    for name, paths in index.items():
        folded.setdefault(name.lower(), {}).update(dict.fromkeys(paths))
    return {name: list(paths) for name, paths in folded.items()}
