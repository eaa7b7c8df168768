"""Reading a labels file in the formats sets publish vs the plain CSV of the same labels.

N images (no pixels needed: the labels are matched to the folder's paths) labelled three ways, each matched by
``ingest/sources/labels_file.py: match`` as the image-folder connector does: a COCO JSON (``images`` +
``annotations`` + ``categories``, as camera-trap sets ship them), a one-hot CSV (one column a class, Plant
Pathology's / ISIC's shape), CVAT's ``annotations.xml``, a table of findings read as one finding (CheXpert's
``train.csv``: fourteen columns of ``1.0`` / ``0.0`` / ``-1.0`` / blank, ``Edema``) and a column of several labels a cell
read one versus the rest (ChestX-ray14's ``Finding Labels``, ``No Finding``), each against the named baseline, the CSV
of ``file,label`` giving the same labels, in the same run. Same labels required.

    python benchmarks/labels_files.py [--rows 100000] [--classes 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def write(root: Path, rows: int, classes: int) -> list[Path]:
    names = [f"loc{i % 50}/IMG_{i:07d}.JPG" for i in range(rows)]
    labels = [f"class_{i * 7919 % classes}" for i in range(rows)]
    (root / "labels.csv").write_text("file,label\n" + "".join(f"{n},{c}\n" for n, c in zip(names, labels)))
    order = sorted(set(labels))
    (root / "onehot.csv").write_text("image," + ",".join(order) + "\n" + "".join(
        n + "," + ",".join("1" if c == k else "0" for k in order) + "\n" for n, c in zip(names, labels)))
    ids = {c: k for k, c in enumerate(order)}
    (root / "coco.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": n} for i, n in enumerate(names)],
        "annotations": [{"id": i, "image_id": i, "category_id": ids[c]} for i, c in enumerate(labels)],
        "categories": [{"id": k, "name": c} for c, k in ids.items()]}))
    (root / "annotations.xml").write_text("<annotations><version>1.1</version>" + "".join(
        f'<image id="{i}" name="{n}"><tag label="{c}"/></image>' for i, (n, c) in enumerate(zip(names, labels)))
        + "</annotations>")
    findings = ["No Finding", "Cardiomegaly", "Edema", "Pleural Effusion", "Atelectasis", "Pneumonia", "Fracture",
                "Lung Opacity", "Lung Lesion", "Consolidation", "Pneumothorax", "Pleural Other", "Support Devices",
                "Enlarged Cardiomediastinum"]
    values = ["1.0", "0.0", "-1.0", "", ""]
    cells = [[values[(i * 31 + k * 17) % 5] for k in range(len(findings))] for i in range(rows)]
    (root / "chexpert.csv").write_text("Path,Sex,Age," + ",".join(findings) + "\n" + "".join(
        f"CheXpert-v1.0-small/images/{n},Female,60," + ",".join(c) + "\n" for n, c in zip(names, cells)))
    edema = findings.index("Edema")
    (root / "chexpert_plain.csv").write_text("file,label\n" + "".join(
        f"{n},{'Edema' if c[edema] == '1.0' else 'not_Edema'}\n" for n, c in zip(names, cells) if c[edema] != "-1.0"))
    several = ["No Finding", "No Finding", "Effusion|Infiltration", "Cardiomegaly", "Atelectasis|Effusion|Mass"]
    (root / "data_entry.csv").write_text("Image Index,Finding Labels\n" + "".join(
        f"{n},{several[i % 5]}\n" for i, n in enumerate(names)))
    (root / "data_entry_plain.csv").write_text("file,label\n" + "".join(
        f"{n},{'No Finding' if i % 5 in (0, 1) else 'not_No Finding'}\n" for i, n in enumerate(names)))
    return [root / "images" / n for n in names]


def main() -> None:
    from ingest.sources import labels_json
    from ingest.sources.labels_file import match

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = write(tmp, args.rows, args.classes)
        found: dict[str, dict] = {}

        chosen = {"chexpert.csv": {"file_column": "Path", "label_column": "Edema"},
                  "data_entry.csv": {"positive_label": "No Finding"}}

        def run(name: str) -> None:
            labels_json._read.cache_clear()  # each round reads the file again
            how = chosen.get(name, {})
            out = match(tmp / name, images, tmp / "images", how.get("file_column"), how.get("label_column"), None,
                        positive_label=how.get("positive_label"))
            found[name] = {p: label for p, (label, *_) in out.by_image.items()}
        times = {name: best_of(lambda name=name: run(name), args.repeat)
                 for name in ("labels.csv", "coco.json", "onehot.csv", "annotations.xml", "chexpert.csv",
                              "chexpert_plain.csv", "data_entry.csv", "data_entry_plain.csv")}
    same = {"chexpert.csv": "chexpert_plain.csv", "data_entry.csv": "data_entry_plain.csv"}
    assert len(found["labels.csv"]) == args.rows and all(found[n] == found[same.get(n, "labels.csv")] for n in found
                                                        if "plain" not in n), "labels differ"
    print(f"{args.rows:,} images, {args.classes} classes: " + ", ".join(f"{n} {t:.2f}s" for n, t in times.items()))
    for name, what in (("coco.json", "COCO JSON labels file"), ("onehot.csv", "one-hot CSV labels file"),
                       ("annotations.xml", "CVAT annotations.xml")):
        print(ratio_line(f"match a {what}", times[name], "the file,label CSV of the same labels", times["labels.csv"]))
    print(ratio_line("match CheXpert's findings table as one finding (Edema)", times["chexpert.csv"],
                     "the file,label CSV of the same labels", times["chexpert_plain.csv"]))
    print(ratio_line("match ChestX-ray14's several labels a cell, one versus the rest", times["data_entry.csv"],
                     "the file,label CSV of the same labels", times["data_entry_plain.csv"]))


if __name__ == "__main__":
    main()
