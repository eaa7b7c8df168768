"""Quality gate on a large table: Sluice's batched GX + DuckDB pushdown vs GX on one pandas frame.

Builds a ``raw_images`` Delta table of N rows (1 KiB of content each), then validates it twice, each
in a fresh process so peak memory is measured separately:

- **sluice**: ``quality.gate.run_layer("bronze", only=["raw_images"])`` -- row checks streamed from
  DuckDB in batches of ``quality.batch_rows`` (binary content reduced to its length in SQL), aggregate
  checks (key uniqueness, test/train leak) as DuckDB queries, failing keys quarantined.
- **baseline**: the naive way -- read the whole table into one pandas frame and let GX validate the
  same row expectations plus ``expect_compound_columns_to_be_unique`` on it.

Prints both wall times and peak RSS, and the headline ratios (baseline / sluice). Usage:
``python benchmarks/quality.py [--rows N] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(lake_root: str, rows: int, batch: int = 50_000) -> None:
    import hashlib

    import numpy as np
    import pyarrow as pa

    from sluice.lake import Lake
    from sluice.runs import utcnow

    lake = Lake(lake_root)
    rng = np.random.default_rng(0)
    now = utcnow()
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        blob = rng.integers(0, 256, (n, 1024), dtype=np.uint8)
        content = [bytes(b) for b in blob]
        lake.append("raw_images", pa.table({
            "image_id": [hashlib.sha256(c).hexdigest() for c in content],
            "content": pa.array(content, pa.binary()), "source": ["bench"] * n,
            "source_uri": [f"bench/{start + i}.png" for i in range(n)],
            "source_label": [str(i % 10) for i in range(n)],
            "split_hint": ["test" if i % 5 == 0 else "train" for i in range(n)],
            "license": ["CC0"] * n, "extra": [None] * n,
            "fetched_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")), "run_id": ["bench"] * n}))


def run_sluice(lake_root: str, reports: str, batch_rows: int) -> dict:
    from quality.gate import run_layer
    from sluice.config import parse_params
    from sluice.lake import Lake

    params = parse_params({"lake": {"root": lake_root},
                           "quality": {"reports_dir": reports, "manifests_dir": reports, "batch_rows": batch_rows,
                                       "classes": [str(i) for i in range(10)]}})
    report = run_layer("bronze", params, Lake(lake_root), docs=False, only=["raw_images"])
    return {"success": report["success"], "checks": report["counts"]["checks"]}


def run_baseline(lake_root: str) -> dict:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from quality.gxcontext import batch_definition
    from quality.suites import raw_images as raw_suite
    from sluice.config import parse_params
    from sluice.lake import Lake

    lake = Lake(lake_root)
    frame = lake.read("raw_images").to_pandas()  # everything, in one frame
    frame["content_bytes"] = frame["content"].map(len)
    params = parse_params({"lake": {"root": lake_root}})
    suite = raw_suite(type("E", (), {"params": params})())
    expectations = [c.expectation(c.column) for c in suite.checks if c.kind == "row"]
    expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=["image_id", "source", "source_uri"]))
    result = batch_definition("baseline").get_batch(batch_parameters={"dataframe": frame}).validate(
        gx.ExpectationSuite(name="baseline", expectations=expectations))
    return {"success": result.success, "checks": len(expectations)}


def child(role: str, lake_root: str, reports: str, batch_rows: int) -> None:
    import great_expectations  # noqa: F401  (import cost excluded from the timing, same for both)

    start = time.perf_counter()
    out = run_sluice(lake_root, reports, batch_rows) if role == "sluice" else run_baseline(lake_root)
    out["seconds"] = time.perf_counter() - start
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(role: str, lake_root: str, reports: str, batch_rows: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--role", role, "--lake", lake_root, "--reports", reports,
                           "--batch-rows", str(batch_rows)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"{role} failed:\n{done.stderr[-3000:]}")
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--batch-rows", type=int, default=25_000)
    ap.add_argument("--quick", action="store_true", help="100,000 rows")
    ap.add_argument("--role", choices=["sluice", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--lake", help=argparse.SUPPRESS)
    ap.add_argument("--reports", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        child(args.role, args.lake, args.reports, args.batch_rows)
        return
    rows = 100_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        lake_root = str(Path(tmp) / "lake")
        t = time.perf_counter()
        build(lake_root, rows)
        print(f"built raw_images: {rows:,} rows x 1 KiB content in {time.perf_counter() - t:.1f}s")
        ours = measure("sluice", lake_root, str(Path(tmp) / "reports"), args.batch_rows)
        base = measure("baseline", lake_root, str(Path(tmp) / "reports"), args.batch_rows)
    for name, r in (("sluice (batched GX + DuckDB)", ours), ("baseline (GX on one pandas frame)", base)):
        print(f"{name:<36} {r['seconds']:7.2f}s  {rows / r['seconds']:>10,.0f} rows/s  peak RSS {r['peak_mb']:7.0f} MB  "
              f"passed={r['success']}")
    print(f"headline: sluice gate {base['seconds'] / ours['seconds']:.2f}x the speed and "
          f"{base['peak_mb'] / ours['peak_mb']:.2f}x less peak memory than GX on one pandas frame "
          f"({rows:,} rows, batch_rows {args.batch_rows:,})")


if __name__ == "__main__":
    main()
