"""Reading a labels file in the formats sets publish vs the plain CSV of the same labels.

N images (no pixels needed: the labels are matched to the folder's paths) labelled three ways, each matched by
``ingest/sources/labels_file.py: match`` as the image-folder connector does: a COCO JSON (``images`` +
``annotations`` + ``categories``, as camera-trap sets ship them), a one-hot CSV (one column a class, Plant
Pathology's / ISIC's shape) and CVAT's ``annotations.xml``, each against the named baseline, the CSV of
``file,label`` giving the same labels, in the same run. Same labels required.

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

        def run(name: str) -> None:
            labels_json._read.cache_clear()  # each round reads the file again
            out = match(tmp / name, images, tmp / "images", None, None, None)
            found[name] = {p: label for p, (label, _) in out.by_image.items()}
        times = {name: best_of(lambda name=name: run(name), args.repeat)
                 for name in ("labels.csv", "coco.json", "onehot.csv", "annotations.xml")}
    assert len(found["labels.csv"]) == args.rows and all(found[n] == found["labels.csv"] for n in found), "labels differ"
    print(f"{args.rows:,} images, {args.classes} classes: " + ", ".join(f"{n} {t:.2f}s" for n, t in times.items()))
    for name, what in (("coco.json", "COCO JSON labels file"), ("onehot.csv", "one-hot CSV labels file"),
                       ("annotations.xml", "CVAT annotations.xml")):
        print(ratio_line(f"match a {what}", times[name], "the file,label CSV of the same labels", times["labels.csv"]))


if __name__ == "__main__":
    main()
