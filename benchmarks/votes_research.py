"""Landing research collections' vote layouts vs the same votes as a CSV with a header.

SQUARE's shape (``worker item label`` lines, tab-separated, no header; the blank-separated variant too) and the
bluebirds' (a YAML mapping ``{worker: {item: label}}``, the ``nested`` connector),
200,000 votes by default (CIFAR-10H's size: ~500,000), read by position (``header: false``) with the columns
``sluice init`` told apart by their values, landed into a fresh lake; the baseline is the same votes written
as ``item,worker,label`` with a header, landed by the same ``csv`` connector in the same run. Both pass through
the same landing (pseudonyms, vote ids, item resolution, a Delta merge-insert), so the ratio is what reading
the file by position costs. Init's column detection is timed apart (once per file, at init).

    python benchmarks/votes_research.py [--votes 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line
from votes_wide import land


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("SLUICE_PSEUDONYM_KEY", "benchmark-key")
    import polars as pl

    import yaml

    from ingest.votes.nested import NestedVotesExport
    from ingest.votes.plain_csv import CsvVotesExport, detect

    rng = np.random.default_rng(0)
    workers, items = 500, args.votes // 20
    frame = pl.DataFrame({"worker": [f"A{w:05d}" for w in rng.integers(0, workers, args.votes)],
                          "item": [f"img_{i:06d}.png" for i in np.tile(np.arange(items), 20)[:args.votes]],
                          "label": rng.choice(["airplane", "cat", "dog", "frog", "ship"], args.votes)})
    frame = frame.unique(["worker", "item"], keep="first", maintain_order=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame.write_csv(tmp / "bm.response.txt", separator="\t", include_header=False)
        (tmp / "blank.txt").write_text("\n".join(" ".join(r) for r in frame.iter_rows()) + "\n")
        frame.select("item", "worker", "label").write_csv(tmp / "votes.csv")
        nested: dict = {}
        for worker, item, label in frame.iter_rows():
            nested.setdefault(worker, {})[item] = label
        (tmp / "labels.yaml").write_text(yaml.safe_dump(nested))
        started = time.perf_counter()
        found = detect(str(tmp / "bm.response.txt"))
        t_detect = time.perf_counter() - started
        assert found == {"header": False, "item_column": "column_2", "worker_column": "column_1",
                         "label_column": "column_3"}, found
        tab = CsvVotesExport(name="t", kind="csv", path=str(tmp / "bm.response.txt"), **found)
        blank = CsvVotesExport(name="b", kind="csv", path=str(tmp / "blank.txt"), **found)
        plain = CsvVotesExport(name="c", kind="csv", path=str(tmp / "votes.csv"))
        mapping = NestedVotesExport(name="y", kind="nested", path=str(tmp / "labels.yaml"))
        lakes = iter(range(10_000))
        counts = {}

        def run(export, key):
            counts[key] = land(export, tmp / f"lake{next(lakes)}")

        t_tab = best_of(lambda: run(tab, "tab"), args.repeat)
        t_blank = best_of(lambda: run(blank, "blank"), args.repeat)
        t_yaml = best_of(lambda: run(mapping, "yaml"), args.repeat)
        t_csv = best_of(lambda: run(plain, "csv"), args.repeat)
    n = frame.height
    assert counts == {"tab": n, "blank": n, "yaml": n, "csv": n}, counts
    print(f"{n:,} votes ({items:,} items, {workers} workers): headerless tab {t_tab:.2f}s, headerless blanks "
          f"{t_blank:.2f}s, YAML mapping {t_yaml:.2f}s, CSV with a header {t_csv:.2f}s; init's column detection {t_detect:.2f}s once")
    print(ratio_line("land a headerless tab file (SQUARE's shape)", t_tab, "the same votes as a CSV with a header",
                     t_csv, target=0.9))
    print(ratio_line("land a headerless blank-separated file", t_blank, "the same votes as a CSV with a header",
                     t_csv, target=0.8))
    print(ratio_line("land a YAML mapping {worker: {item: label}} (the bluebirds' shape)", t_yaml,
                     "the same votes as a CSV with a header", t_csv, target=0.2))


if __name__ == "__main__":
    main()
