"""Image-folder ingest into Delta vs writing the same Arrow batches to plain Parquet with pyarrow.

Both sides read the same folder with the same connector and build the same Arrow batches (hashing
included); the baseline writes each batch as a Parquet file, Sluice merge-inserts it into
``raw_images`` (idempotent by key, one commit per batch). Target: >= 0.6x, >= 1,000 rows per commit.
Also reports the write step alone.

Then the growth of a commit's cost with the table: ``--scale-rows`` synthetic rows (small contents,
10% of every batch keys already landed) merge-inserted batch by batch; the mean commit time of the
first and last tenth of the batches (target: last <= 1.5x first; the automatic compaction of batch
files is included), next to a plain Parquet write of each batch, and the first commit of a new
process (which builds the key index from the key columns).

    python benchmarks/ingest_delta.py [--images 20000] [--batch-rows 2000] [--scale-rows 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line  # noqa: E402

from ingest.landing import raw_batch  # noqa: E402
from ingest.sources.image_folder import ImageFolderSource, read_image_folder  # noqa: E402
from sluice.lake import AUTO_COMPACT_FILES, Lake  # noqa: E402


def make_folder(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:06d}.png")


def batches(src, batch_rows):
    buf = []
    for rec in read_image_folder(src, 10**9):
        buf.append(rec)
        if len(buf) == batch_rows:
            yield buf
            buf = []
    if buf:
        yield buf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000, help="images of the end-to-end run (0: skip)")
    ap.add_argument("--batch-rows", type=int, default=2_000)
    ap.add_argument("--scale-rows", type=int, default=200_000, help="rows of the commit-growth run (0: skip)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-ingest-"))
    try:
        if args.images:
            image_ingest(work, args.images, args.batch_rows)
        if args.scale_rows:
            commit_growth(work, args.scale_rows, args.batch_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def image_ingest(work: Path, images: int, batch_rows: int) -> None:
    print(f"writing {images} 32x32 PNGs ...", file=sys.stderr)
    make_folder(work / "imgs", images)
    src = ImageFolderSource(name="bench", kind="image_folder", path=str(work / "imgs"))
    now = datetime.now(timezone.utc)

    # warm the page cache so both sides read from memory
    sum(len(b) for b in batches(src, batch_rows))

    out = work / "parquet"
    out.mkdir()
    t0 = time.perf_counter()
    write_pq = 0.0
    for k, recs in enumerate(batches(src, batch_rows)):
        table = raw_batch(recs, src, "bench", now)
        w0 = time.perf_counter()
        pq.write_table(table, out / f"part-{k:05d}.parquet")
        write_pq += time.perf_counter() - w0
    parquet_s = time.perf_counter() - t0

    lake = Lake(str(work / "lake"))
    t0 = time.perf_counter()
    write_delta = 0.0
    commits = 0
    for recs in batches(src, batch_rows):
        table = raw_batch(recs, src, "bench", now)
        w0 = time.perf_counter()
        lake.merge_insert("raw_images", table)
        write_delta += time.perf_counter() - w0
        commits += 1
    delta_s = time.perf_counter() - t0
    assert lake.count("raw_images") == images

    print(f"rows: {images}, commits: {commits}, rows per commit: {images / commits:.0f}")
    print(ratio_line("ingest image folder -> Delta (end to end)", delta_s, "same batches -> plain Parquet", parquet_s, 0.6))
    print(ratio_line("write step alone (merge-insert commit)", write_delta, "pyarrow.parquet.write_table", write_pq))
    t0 = time.perf_counter()
    for recs in batches(src, batch_rows):
        lake.merge_insert("raw_images", raw_batch(recs, src, "bench", now))
    rerun_s = time.perf_counter() - t0
    print(ratio_line("idempotent rerun (0 new rows)", rerun_s, "first ingest", delta_s))


def synthetic(lo: int, hi: int, now, dup_share: float = 0.1) -> pa.Table:
    """Rows lo..hi-1, plus ``dup_share`` of the batch re-sent from earlier batches (a rerun's overlap)."""
    ids = list(range(lo, hi)) + [i for i in range(max(0, lo - 1), 0, -7)][: int((hi - lo) * dup_share)]
    return pa.table({
        "image_id": [hashlib.sha256(b"%d" % i).hexdigest() for i in ids],
        "content": [b"%032d" % i for i in ids], "source": ["bench"] * len(ids),
        "source_uri": [f"s3://bucket/img/{i}.jpg" for i in ids], "fetched_at": [now] * len(ids),
        "run_id": ["bench"] * len(ids),
    })


def commit_growth(work: Path, rows: int, batch_rows: int) -> None:
    from sluice import key_index

    now = datetime.now(timezone.utc)
    lake = Lake(str(work / "growth"))
    out = work / "growth-parquet"
    out.mkdir()
    commit_s, cpu_s, parquet_s = [], [], []
    for k, lo in enumerate(range(0, rows, batch_rows)):
        batch = synthetic(lo, min(lo + batch_rows, rows), now)
        t0, c0 = time.perf_counter(), time.process_time()
        lake.merge_insert("raw_images", batch)
        commit_s.append(time.perf_counter() - t0)
        cpu_s.append(time.process_time() - c0)
        t0 = time.perf_counter()
        pq.write_table(batch, out / f"part-{k:05d}.parquet")
        parquet_s.append(time.perf_counter() - t0)
    assert lake.count("raw_images") == rows
    tenth = max(1, len(commit_s) // 10)
    first, last = float(np.mean(commit_s[1:tenth + 1])), float(np.mean(commit_s[-tenth:]))
    print(f"commit growth: {rows} rows in {len(commit_s)} commits of {batch_rows} (+10% already landed)")
    print(f"  merge-insert commit, mean of the first tenth of the commits (after the one creating the table): "
          f"{first * 1e3:.1f} ms; last tenth: {last * 1e3:.1f} ms (compactions included); last/first "
          f"{last / first:.2f}x  [{'meets' if last <= 1.5 * first else 'MISSES'} target <= 1.5x]")
    tenths = [float(np.mean(commit_s[1 + t * tenth: 1 + (t + 1) * tenth])) * 1e3 for t in range(10)]
    print("  mean commit per tenth of the run (ms): " + " ".join(f"{t:.1f}" for t in tenths))
    cpu = [float(np.mean(cpu_s[1 + t * tenth: 1 + (t + 1) * tenth])) * 1e3 for t in range(10)]
    print("  CPU time of this process per commit, per tenth (ms; less sensitive to other load than wall time): "
          + " ".join(f"{t:.1f}" for t in cpu) + f"; last/first {cpu[-1] / cpu[0]:.2f}x")
    print(f"  last tenth vs second tenth (after the first automatic compaction at {AUTO_COMPACT_FILES} files): "
          f"{tenths[-1] / tenths[1]:.2f}x")
    print(f"  single commits: the first (after the one creating the table) {commit_s[1] * 1e3:.1f} ms, the last "
          f"{commit_s[-1] * 1e3:.1f} ms; median of the first 10 {np.median(commit_s[1:11]) * 1e3:.1f} ms, of the last 10 "
          f"{np.median(commit_s[-10:]) * 1e3:.1f} ms ({np.median(commit_s[-10:]) / np.median(commit_s[1:11]):.2f}x)")
    print(f"  median commit: first tenth {np.median(commit_s[1:tenth + 1]) * 1e3:.1f} ms, last tenth "
          f"{np.median(commit_s[-tenth:]) * 1e3:.1f} ms")
    print(f"  plain Parquet write of the same batches: first tenth {np.mean(parquet_s[:tenth]) * 1e3:.1f} ms, "
          f"last tenth {np.mean(parquet_s[-tenth:]) * 1e3:.1f} ms")
    print(ratio_line("  all commits", sum(commit_s), "plain Parquet writes", sum(parquet_s)))
    key_index._INDEXES.clear()  # as a new process
    t0 = time.perf_counter()
    lake.merge_insert("raw_images", synthetic(rows, rows + batch_rows, now))
    print(f"  first commit of a new process at {rows} rows (builds the key index): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
