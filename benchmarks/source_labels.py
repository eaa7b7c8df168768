"""What a rerun of ingest pays to reconcile a source's labels with what it says now (ingest/source_labels.py).

A lake holding ``--rows`` rows of one source (small stand-in images, labelled, in batches of 2,000) is
ingested again from the same records: the baseline is that rerun's landing alone (every record read,
keyed and found already present), ours is the reconciliation after it (reading the source's keys and
labels and comparing them with what the rerun saw), first with nothing changed, then with 1% of the
labels corrected and 1% of the files gone (one Delta update of those rows). The figure is the
reconciliation's time as a share of the landing's, measured in the same run. The records are made in
memory, so the landing here reads no file: a real rerun, which reads every file, makes the share smaller.

    python benchmarks/source_labels.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.landing import land  # noqa: E402
from ingest.source_labels import reconcile  # noqa: E402
from ingest.sources.base import Record  # noqa: E402
from sluice.lake import Lake  # noqa: E402


def records(n: int, relabel: float = 0.0, gone: float = 0.0):
    """``n`` records (a few hundred bytes each), the first ``relabel`` share labelled otherwise, the last
    ``gone`` share left out."""
    changed, kept = int(n * relabel), n - int(n * gone)
    for k in range(kept):
        yield Record(uri=f"/data/photos/{k:07d}.jpg", content=b"\xff\xd8" + k.to_bytes(8, "big") * 40,
                     label=f"class{(k + (k < changed)) % 10}", split_hint="train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    source = SimpleNamespace(name="photos", license=None)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(str(Path(tmp) / "lake"))
        land(lake, source, records(args.rows), "r0", batch_rows=2000)
        for case, kwargs in (("nothing changed", {}), ("1% relabelled, 1% gone", {"relabel": 0.01, "gone": 0.01})):
            started = time.perf_counter()
            stats = land(lake, source, records(args.rows, **kwargs), "r1", batch_rows=2000)
            landing = time.perf_counter() - started
            started = time.perf_counter()
            done = reconcile(lake, source.name, stats.landed_labels, "r1")
            ours = time.perf_counter() - started
            print(f"{case}: reconcile {ours:.2f}s = {ours / landing:.2f}x the rerun's landing ({landing:.2f}s, "
                  f"{args.rows:,} rows, {stats.already_present:,} already present); relabelled {done.relabelled:,}, "
                  f"labels withdrawn {done.withdrawn:,}")


if __name__ == "__main__":
    main()
