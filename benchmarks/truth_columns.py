"""Reading the true labels from columns of a vote file vs from a file of one label an item.

CIFAR-10H's raw trials repeat each image's true class on every vote row (``true_category``, ~50 rows an image):
``labels.ground_truth: {path, item_column, label_column}`` reads those two columns of the vote file and keeps one
label an item (checking that an item's rows agree). The baseline is the same truth as the ``item,label`` file a
collection ships beside its votes, read by the same ``sluice.item_labels.read_item_labels`` in the same run; both
give the same labels. The ratio is what reading the whole vote file (and the agreement check) costs at the labels
stage, once a run; per row read it is the same reader's speed (the two columns alone are parsed).

    python benchmarks/truth_columns.py [--items 10000] [--votes-per-item 50] [--repeat 3]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--votes-per-item", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import polars as pl

    from sluice.item_labels import read_item_labels
    from sluice.params_labels import LabelColumns

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    rng = np.random.default_rng(0)
    true = rng.integers(0, 10, args.items)
    item = np.repeat(np.arange(args.items), args.votes_per_item)
    chosen = np.where(rng.random(item.size) < 0.95, true[item], rng.integers(0, 10, item.size))
    names = pl.Series([f"{classes[c]}/test_batch_index_{i}.png" for i, c in enumerate(true)])
    votes = pl.DataFrame({"annotator_id": rng.integers(0, 2_500, item.size), "trial_index": np.arange(item.size),
                          "chosen_label": chosen, "chosen_category": pl.Series(classes).gather(chosen),
                          "true_label": true[item], "true_category": pl.Series(classes).gather(true[item]),
                          "image_filename": names.gather(item), "is_attn_check": np.zeros(item.size, np.int8)})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        votes.write_csv(tmp / "cifar10h-raw.csv")
        pl.DataFrame({"item": names, "label": pl.Series(classes).gather(true)}).write_csv(tmp / "truth.csv")
        spec = LabelColumns(path=str(tmp / "cifar10h-raw.csv"), item_column="image_filename", label_column="true_category")
        got = {}
        t_cols = best_of(lambda: got.__setitem__("columns", read_item_labels(spec, "truth")), args.repeat)
        t_file = best_of(lambda: got.__setitem__("file", read_item_labels(str(tmp / "truth.csv"), "truth")), args.repeat)
    assert got["columns"].sort("item").equals(got["file"].sort("item")), "the two readings differ"
    print(f"{args.items:,} items, {item.size:,} vote rows: truth from the vote file's columns {t_cols:.3f}s, "
          f"from a truth file {t_file:.3f}s")
    print(ratio_line("read the truth from columns of a CIFAR-10H-shaped vote file", t_cols,
                     "the same truth as an item,label file", t_file))
    per_col, per_file = t_cols / item.size * 1e6, t_file / args.items * 1e6
    print(f"the same, per row read: {per_file / per_col:.2f}x a row of the item,label file ({per_col:.3f} vs "
          f"{per_file:.3f} us a row; target >= 0.50x)")


if __name__ == "__main__":
    main()
