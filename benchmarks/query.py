"""DuckDB over the lake vs DuckDB over the same data as plain Parquet.

Builds a ``raw_images``-shaped Delta table (metadata plus small payloads) through the catalog, writes
the very same Arrow data as plain Parquet, and times an aggregate query on both with DuckDB
(``sluice.sql.connect`` views vs ``read_parquet``). Target: >= 0.8x.

    python benchmarks/query.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, ratio_line  # noqa: E402

from sluice.lake import Lake  # noqa: E402
from sluice.sql import connect  # noqa: E402

QUERY = ("SELECT source, split_hint, count(*) AS n, count(DISTINCT source_label) AS labels, "
         "sum(octet_length(content)) AS bytes FROM {t} WHERE source_label <> 'label3' GROUP BY 1, 2 ORDER BY 1, 2")


def synthetic(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = [f"{x:064x}" for x in rng.integers(0, 2**62, rows)]
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    payload = rng.integers(0, 255, 64, dtype=np.uint8).tobytes()
    return pa.table({
        "image_id": ids, "content": pa.array([payload] * rows, pa.binary()),
        "source": pa.array(rng.choice(["folder", "cifar", "parquet", "crawl"], rows)),
        "source_uri": [f"uri/{i}" for i in range(rows)],
        "source_label": pa.array([f"label{x}" for x in rng.integers(0, 10, rows)]),
        "split_hint": pa.array(rng.choice(["train", "test"], rows)),
        "fetched_at": pa.array([now] * rows, pa.timestamp("us", tz="UTC")), "run_id": ["bench"] * rows,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-query-"))
    try:
        data = synthetic(args.rows)
        lake = Lake(str(work / "lake"))
        lake.append("raw_images", data)
        pq.write_table(lake.read("raw_images"), work / "plain.parquet")

        lake_con = connect(lake)
        plain_con = duckdb.connect()
        plain_sql = QUERY.format(t=f"read_parquet('{work / 'plain.parquet'}')")
        lake_sql = QUERY.format(t="raw_images")
        assert lake_con.execute(lake_sql).fetchall() == plain_con.execute(plain_sql).fetchall()
        plain_s = best_of(lambda: plain_con.execute(plain_sql).fetchall(), 5)
        lake_s = best_of(lambda: lake_con.execute(lake_sql).fetchall(), 5)
        print(f"rows: {args.rows}")
        print(ratio_line("DuckDB aggregate over the Delta lake", lake_s, "DuckDB over plain Parquet", plain_s, 0.8))
        pinned = connect(lake, {"raw_images": lake.version("raw_images")})
        pinned_s = best_of(lambda: pinned.execute(lake_sql).fetchall(), 5)
        print(ratio_line("time-travel read (pinned Delta version)", pinned_s, "DuckDB over plain Parquet", plain_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
