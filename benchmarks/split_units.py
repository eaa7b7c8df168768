"""The dataset stage's split with subjects (a patient, a lesion: sluice/split_units.py) vs without.

N images in single-image duplicate groups across 10 classes, as the dataset stage loads them, split by
``transform/dataset.py: build`` twice in the same run: with subjects (each of 1 to 4 images, HAM10000's shape:
the groups joined into units by connected components, split by unit) and, the named baseline, the same
images with none. Every subject is required to land in one split.

    python benchmarks/split_units.py [--images 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line

from sluice.config import DatasetParams
from sluice.split_units import units
from transform.dataset import build


def members(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"{i:064x}" for i in range(n)]
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"image_id": ids, "dup_group": ids, "is_canonical": [True] * n,
                          "label": [f"class_{i % 10}" for i in range(n)], "hint_test": [False] * n,
                          "hint_train": [False] * n}).with_columns(landed=pl.lit(None, pl.Datetime("us", "UTC")))
    sizes = rng.integers(1, 5, n)  # subjects of 1..4 images, in landing order
    subject = np.repeat(np.arange(n), sizes)[:n]
    return frame, pl.DataFrame({"image_id": ids, "subject": [f"ham/HAM_{s:07d}" for s in subject]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    frame, subjects = members(args.images)
    cfg = DatasetParams(balance="none")

    def with_subjects():
        rows, _, counts = build(frame.join(units(frame.select("image_id", "dup_group"), subjects), on="dup_group"), cfg)
        assert counts["subjects"]["in_several_splits"] == 0, counts["subjects"]
        return rows

    rows = with_subjects()
    split_of = rows.join(subjects, on="image_id").group_by("subject").agg(pl.col("split").n_unique())
    assert split_of["split"].max() == 1 and rows.height == args.images
    ours = best_of(with_subjects, args.repeat)
    baseline = best_of(lambda: build(frame, cfg), args.repeat)
    print(f"{args.images:,} images, {subjects['subject'].n_unique():,} subjects of 1-4 images, every one in one split")
    print(ratio_line("dataset split with subjects", ours, "the same images without subjects", baseline))


if __name__ == "__main__":
    main()
