"""Landing a CSV of pixel values vs the same images as a folder of PNGs.

The Digit Recognizer's shape: ``train.csv`` of ``label,pixel0..pixel783`` (28 x 28 greyscale digit-like strokes,
one row an image) and, as the named baseline, the class folders of PNGs the same images would be in a user's
folder (``train/<digit>/<n>.png``), each landed by ``sluice ingest`` (the ``pixel_csv`` and ``image_folder``
connectors) into a fresh lake in the same run. Both end as rows of ``raw_images`` (a PNG per image, its label
and split), so the ratio is what parsing the CSV's text and encoding each image costs against listing and
reading files already encoded. Kaggle's file holds 42,000 rows (``--rows 42000``); the default is smaller.

    python benchmarks/ingest_pixel_csv.py [--rows 10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def digit(rng) -> np.ndarray:
    """A 28 x 28 greyscale digit-like image: two or three thick white strokes on black, anti-aliased."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (112, 112), 0)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 4))):
        draw.line([tuple(rng.integers(24, 88, 2).tolist()) for _ in range(3)], fill=255, width=int(rng.integers(8, 14)))
    return np.asarray(im.resize((28, 28), Image.Resampling.LANCZOS))


def write(root: Path, rows: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = np.stack([digit(rng) for _ in range(rows)])
    labels = rng.integers(0, 10, rows)
    (root / "csv").mkdir(parents=True)
    with (root / "csv" / "train.csv").open("w") as f:
        f.write("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
        for label, image in zip(labels, images):
            f.write(f"{label}," + ",".join(map(str, image.reshape(-1).tolist())) + "\n")
    for k in range(10):
        (root / "folder" / "train" / str(k)).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / "folder" / "train" / str(label) / f"{i}.png", optimize=False)


def land(source: dict, lake: Path) -> int:
    from ingest import public
    from sluice.config import Params

    params = Params.model_validate({"lake": {"root": str(lake)}, "ingest": {"sources": [source]}})
    return public.run(params)["sources"][source["name"]]["inserted"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.rows)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            path = tmp / ("csv" if kind == "pixel_csv" else "folder")
            counts[kind] = land({"name": "s", "kind": kind, "path": str(path)}, tmp / f"lake-{next(lakes)}")
        t_csv = best_of(lambda: run("pixel_csv"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.rows
    assert counts == {"pixel_csv": n, "image_folder": n}, counts
    print(f"{n:,} images of 28x28: a CSV of pixel values {t_csv:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land a CSV of pixel values", t_csv, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
