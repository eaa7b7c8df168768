"""Landing a wide vote file vs the same votes as a long CSV.

CIFAR-10N's shape by default: 50,000 items x 3 answer columns of class indices in a ``torch.save``d
dict of arrays (150,000 votes), landed by the ``wide`` connector with ``class_names``; the baseline
is the same votes written as a long CSV (item, worker, label names) landed by the ``csv`` connector,
each into a fresh lake in the same run. Both pass through the same landing (pseudonyms, vote ids,
item resolution, a Delta merge-insert), so the ratio is what reading the wide file costs or saves.

    python benchmarks/votes_wide.py [--items 50000] [--answers 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def land(export, root: Path) -> int:
    from ingest.votes.land import land_export
    from sluice.items import ItemIndex
    from sluice.lake import Lake
    from sluice.privacy import worker_pseudonymizer

    lake = Lake(str(root))
    return land_export(lake, export, ItemIndex.from_lake(lake), "bench", worker_pseudonymizer(True)).new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--answers", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("SLUICE_PSEUDONYM_KEY", "benchmark-key")
    import polars as pl
    import torch

    from ingest.votes.plain_csv import CsvVotesExport
    from ingest.votes.wide import WideVotesExport

    rng = np.random.default_rng(0)
    labels = {f"random_label{j + 1}": rng.integers(0, 10, args.items) for j in range(args.answers)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save(labels, tmp / "human.pt")
        long = pl.DataFrame({"item": np.tile(np.arange(args.items), args.answers).astype(str),
                             "worker": np.repeat(list(labels), args.items),
                             "label": np.asarray(CLASSES)[np.concatenate(list(labels.values()))]})
        long.write_csv(tmp / "votes.csv")
        wide = WideVotesExport(name="w", kind="wide", path=str(tmp / "human.pt"), label_columns=list(labels),
                               class_names=CLASSES)
        plain = CsvVotesExport(name="c", kind="csv", path=str(tmp / "votes.csv"))
        lakes = iter(range(10_000))
        counts = {}

        def run(export, key):
            counts[key] = land(export, tmp / f"lake{next(lakes)}")

        t_wide = best_of(lambda: run(wide, "wide"), args.repeat)
        t_csv = best_of(lambda: run(plain, "csv"), args.repeat)
    n = args.items * args.answers
    assert counts == {"wide": n, "csv": n}, counts
    print(f"{n:,} votes ({args.items:,} items x {args.answers} answers): wide .pt {t_wide:.2f}s, long CSV {t_csv:.2f}s")
    print(ratio_line("land a wide .pt (CIFAR-10N's shape)", t_wide, "the same votes as a long CSV", t_csv, target=0.8))


if __name__ == "__main__":
    main()
