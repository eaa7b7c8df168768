"""Landing a SageMaker Ground Truth job's worker answers vs the same votes as a long CSV.

A job folder as Ground Truth writes it: an output manifest of ``--items`` data objects and one
worker-response JSON file per object holding ``--answers`` answers (10,000 files of 3 answers by default:
30,000 votes), landed by the ``ground_truth`` connector; the baseline is the same votes written as a long
CSV (item, worker, label) landed by the ``csv`` connector, each into a fresh lake in the same run. Both
pass through the same landing (pseudonyms, vote ids, item resolution, a Delta merge-insert), so the ratio
is what reading a file an object costs: 10,000 opens and JSON parses in Python against one CSV that
Polars reads in native code (target 0.3x; measured 0.37x on the 2-core development machine).

    python benchmarks/votes_ground_truth.py [--items 10000] [--answers 3] [--repeat 3]
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


def write_job(folder: Path, labels: np.ndarray) -> None:
    """``labels`` (items x answers class indices) as a Ground Truth job's manifest and worker responses."""
    (folder / "manifests" / "output").mkdir(parents=True)
    with (folder / "manifests" / "output" / "output.manifest").open("w") as f:
        for k in range(len(labels)):
            f.write(json.dumps({"source-ref": f"s3://bucket/raw/{k}.png", "job": 0, "job-metadata": {
                "class-name": CLASSES[0], "type": "groundtruth/image-classification", "job-name": "job"}}) + "\n")
    for k, row in enumerate(labels):
        d = folder / "annotations" / "worker-response" / "iteration-1" / str(k)
        d.mkdir(parents=True)
        answers = [{"answerContent": {"crowd-image-classifier": {"label": CLASSES[c]}}, "workerId": f"private.w{j}",
                    "submissionTime": "2020-10-18T22:11:00.000Z"} for j, c in enumerate(row)]
        (d / "2020-10-18_22:11:00.json").write_text(json.dumps({"answers": answers}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--answers", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("SLUICE_PSEUDONYM_KEY", "benchmark-key")
    import polars as pl

    from ingest.votes.ground_truth import GroundTruthExport
    from ingest.votes.plain_csv import CsvVotesExport

    labels = np.random.default_rng(0).integers(0, 10, (args.items, args.answers))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_job(tmp / "job", labels)
        pl.DataFrame({"item": np.repeat([f"s3://bucket/raw/{k}.png" for k in range(args.items)], args.answers),
                      "worker": np.tile([f"private.w{j}" for j in range(args.answers)], args.items),
                      "label": np.asarray(CLASSES)[labels.ravel()]}).write_csv(tmp / "votes.csv")
        gt = GroundTruthExport(name="g", kind="ground_truth", path=str(tmp / "job"))
        plain = CsvVotesExport(name="c", kind="csv", path=str(tmp / "votes.csv"))
        lakes = iter(range(10_000))
        counts = {}

        def run(export, key):
            counts[key] = land(export, tmp / f"lake{next(lakes)}")

        t_gt = best_of(lambda: run(gt, "ground_truth"), args.repeat)
        t_csv = best_of(lambda: run(plain, "csv"), args.repeat)
    n = args.items * args.answers
    assert counts == {"ground_truth": n, "csv": n}, counts
    print(f"{n:,} votes ({args.items:,} objects x {args.answers} answers): Ground Truth job {t_gt:.2f}s, long CSV {t_csv:.2f}s")
    print(ratio_line("land a Ground Truth job's worker responses", t_gt, "the same votes as a long CSV", t_csv, target=0.3))


if __name__ == "__main__":
    main()
