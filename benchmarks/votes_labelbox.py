"""Landing a Labelbox export (v2 NDJSON) vs the same votes as a long CSV.

``--items`` data rows, each with ``--answers`` labels from as many labelers answering one radio question
(10,000 x 3: 30,000 votes), landed by the ``labelbox`` connector; the baseline is the same votes written as a
long CSV (item, worker, label) landed by the ``csv`` connector, each into a fresh lake in the same run. Both
pass through the same landing (pseudonyms, vote ids, item resolution, a Delta merge-insert), so the ratio is
what reading Labelbox's nested records costs: a JSON parse a data row in Python (a third of the time),
the CSV read in native code (target 0.3x; measured 0.37x on the 2-core development machine).

    python benchmarks/votes_labelbox.py [--items 10000] [--answers 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line
from votes_wide import land

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def record(k: int, row) -> str:
    labels = [{"label_kind": "Default", "id": f"l{k}-{j}", "label_details": {"created_by": f"w{j}@example.com",
               "created_at": "2023-05-01T10:00:00+00:00"}, "annotations": {"objects": [], "relationships": [],
               "classifications": [{"name": "animal", "value": "animal", "radio_answer": {"name": CLASSES[c], "value": CLASSES[c]}}]}}
              for j, c in enumerate(row)]
    return json.dumps({"data_row": {"id": f"dr{k}", "external_id": f"{k}.png", "row_data": f"https://x/{k}.png"},
                       "projects": {"p": {"name": "animals", "labels": labels}}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--answers", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("SLUICE_PSEUDONYM_KEY", "benchmark-key")
    import polars as pl

    from ingest.votes.labelbox import LabelboxExport
    from ingest.votes.plain_csv import CsvVotesExport

    labels = np.random.default_rng(0).integers(0, 10, (args.items, args.answers))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "export.ndjson").write_text("\n".join(record(k, row) for k, row in enumerate(labels)) + "\n")
        pl.DataFrame({"item": np.repeat([f"{k}.png" for k in range(args.items)], args.answers),
                      "worker": np.tile([f"w{j}@example.com" for j in range(args.answers)], args.items),
                      "label": np.asarray(CLASSES)[labels.ravel()]}).write_csv(tmp / "votes.csv")
        lb = LabelboxExport(name="l", kind="labelbox", path=str(tmp / "export.ndjson"))
        plain = CsvVotesExport(name="c", kind="csv", path=str(tmp / "votes.csv"))
        lakes = iter(range(10_000))
        counts = {}

        def run(export, key):
            counts[key] = land(export, tmp / f"lake{next(lakes)}")

        t_lb = best_of(lambda: run(lb, "labelbox"), args.repeat)
        t_csv = best_of(lambda: run(plain, "csv"), args.repeat)
    n = args.items * args.answers
    assert counts == {"labelbox": n, "csv": n}, counts
    print(f"{n:,} votes ({args.items:,} data rows x {args.answers} labels): Labelbox NDJSON {t_lb:.2f}s, long CSV {t_csv:.2f}s")
    print(ratio_line("land a Labelbox export", t_lb, "the same votes as a long CSV", t_csv, target=0.3))


if __name__ == "__main__":
    main()
