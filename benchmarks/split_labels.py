"""Labelling a flat test folder by its file while landing it vs landing it unlabelled.

GTSRB's shape as Kaggle ships it: ``Train/<class>/`` (43 classes) beside a flat ``Test/`` of 12,630 images and
``Test.csv`` (``...,ClassId,Path``). ``sluice ingest`` lands the same folder twice into fresh lakes in one run:
with ``split_labels: {Test: Test.csv}`` (``ingest/sources/split_labels.py``: the file read, each row matched to
its image, numbers named by the class folders) and, as the named baseline, without it (the test images land
unlabelled). Small PNGs (16 x 16), so the ratio shows the labelling's cost against the rest of the landing,
not against reading large files.

    python benchmarks/split_labels.py [--train 4300] [--test 12630] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def png(rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write(root: Path, train: int, test: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(train):
        (root / "Train" / str(i % 43)).mkdir(parents=True, exist_ok=True)
        (root / "Train" / str(i % 43) / f"{i:05d}.png").write_bytes(png(rng))
    (root / "Test").mkdir()
    rows = ["Width,Height,Roi.X1,Roi.Y1,Roi.X2,Roi.Y2,ClassId,Path"]
    for i in range(test):
        (root / "Test" / f"{i:05d}.png").write_bytes(png(rng))
        rows.append(f"16,16,1,1,15,15,{rng.integers(0, 43)},Test/{i:05d}.png")
    (root / "Test.csv").write_text("\n".join(rows) + "\n")


def land(source: dict, lake: Path) -> dict:
    from ingest import public
    from sluice.config import Params

    params = Params.model_validate({"lake": {"root": str(lake)}, "ingest": {"sources": [source]}})
    return public.run(params)["sources"][source["name"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=4_300)
    ap.add_argument("--test", type=int, default=12_630)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp / "gtsrb", args.train, args.test)
        lakes, stats = iter(range(1000)), {}
        source = {"name": "g", "kind": "image_folder", "path": str(tmp / "gtsrb")}

        def run(name: str, extra: dict) -> None:  # a fresh lake each time (a writer keeps its key index in memory)
            stats[name] = land({**source, **extra}, tmp / f"lake-{next(lakes)}")
        t_labelled = best_of(lambda: run("labelled", {"split_labels": {"Test": str(tmp / "gtsrb" / "Test.csv")}}),
                             args.repeat)
        t_plain = best_of(lambda: run("plain", {}), args.repeat)
    assert stats["labelled"]["inserted"] == stats["plain"]["inserted"] == args.train + args.test, stats
    print(f"{args.train + args.test:,} images ({args.test:,} in the flat Test/): labelled by Test.csv {t_labelled:.2f}s, "
          f"unlabelled {t_plain:.2f}s")
    print(ratio_line("ingest with split_labels", t_labelled, "the same folder with its test images unlabelled", t_plain))


if __name__ == "__main__":
    main()
